// oidc-provider configured the way Google's sign-in is, as the identity provider behind the
// mcpauth broker in the interop tests:
//
//   node upstream_provider.mjs --redirect-uri <broker callback> --secret <client secret>
//
// What makes it Google-like (and unusable by MCP clients directly): no dynamic registration, no
// client ID metadata documents, no resource indicators (a `resource` parameter is not even
// read), one static confidential client (`todo-broker`, `client_secret_basic`) whose only
// redirect URI is the broker's callback, PKCE optional, scopes `openid email offline_access`,
// RS256 ID tokens, refresh tokens when `offline_access` is granted. The issuer is the origin
// (`http://127.0.0.1:<port>`, OpenID Connect discovery at its root).
//
// The user interaction is automatic: the end-user (see SUBJECT) logs in and consents to what
// was asked, at /interaction/<uid>.
//
// Prints "issuer <url>" and "subject <sub>" once listening, then one JSON line per request to
// the authorization endpoint ({"event":"authorization","query":{…}}: every parameter as it
// arrived, before oidc-provider drops the ones it does not know) and per successful token
// request ({"event":"token","grantType":…}), so the tests can see what the broker sent.
// Stops on SIGTERM.
import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
if (!args['redirect-uri'] || !args.secret) {
  console.error('usage: node upstream_provider.mjs --redirect-uri <url> --secret <secret>');
  process.exit(2);
}

// Google's subjects are long decimal strings.
const SUBJECT = '104857600000000000042';
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `rs256-${randomBytes(6).toString('hex')}`,
  use: 'sig',
  alg: 'RS256',
};

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(args.port ?? 0), '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const log = (event) => console.log(JSON.stringify(event));

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'todo-broker',
      client_secret: args.secret,
      redirect_uris: [args['redirect-uri']],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'openid email offline_access',
    },
  ],
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  jwks: { keys: [jwk] },
  scopes: ['openid', 'email', 'offline_access'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  findAccount: (ctx, accountId) => ({
    accountId,
    claims: () => ({ sub: accountId, email: 'user@example.com', email_verified: true }),
  }),
  pkce: { required: () => false },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: false },
    resourceIndicators: { enabled: false },
  },
});

provider.on('grant.success', (ctx) => {
  log({
    event: 'token',
    grantType: ctx.oidc.params.grant_type,
    clientId: ctx.oidc.client?.clientId,
    clientAuthMethod: ctx.oidc.client?.clientAuthMethod,
  });
});

// The automatic user interaction: log SUBJECT in, then grant whatever the client asked for.
async function interact(req, res) {
  const details = await provider.interactionDetails(req, res);
  let result;
  if (details.prompt.name === 'login') {
    result = { login: { accountId: SUBJECT } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const { missingOIDCScope, missingOIDCClaims } = details.prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    result = { consent: { grantId: await grant.save() } };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
server.on('request', (req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname === '/auth') {
    log({ event: 'authorization', query: Object.fromEntries(url.searchParams) });
  }
  if (url.pathname.startsWith('/interaction/')) {
    interact(req, res).catch((error) => {
      res.statusCode = 500;
      res.end(String(error));
    });
  } else {
    callback(req, res);
  }
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
console.log(`issuer ${issuer}`);
console.log(`subject ${SUBJECT}`);
