// An oidc-provider authorization server for the interop tests (the engine Logto is built on).
//
//   node provider.mjs [--port N] [--kid K]
//
// Listens on 127.0.0.1 (an ephemeral port unless --port), issuer http://127.0.0.1:<port>/oidc —
// an issuer with a path, so only the appended well-known forms exist. Resource indicators
// issue JWT access tokens (typ at+jwt, aud = the resource), client credentials are on, PKCE
// S256 is required. The signing key is new on every start; --kid reuses a key ID (to test a
// rotation that keeps the kid). Prints "issuer <url>" once listening; stops on SIGTERM.
//
// Clients: `reader`, `writer` and `admin` (client credentials, secret `<id>-secret`), and
// `browser`, a public client for the authorization code flow with PKCE whose redirect URI is
// http://127.0.0.1/callback. Its user interaction is automatic: the end-user `alice` logs in and
// consents to every scope asked for (at /interaction/<uid>, outside the issuer path).
import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);

const SCOPES = 'create:todos read:todos delete:todos';
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: args.kid ?? `rs256-${randomBytes(6).toString('hex')}`,
  use: 'sig',
  alg: 'RS256',
};

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(args.port ?? 0), '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}/oidc`;

const client = (id, scope) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: 'client_secret_basic',
  scope,
});

const browser = {
  client_id: 'browser',
  application_type: 'native',
  grant_types: ['authorization_code'],
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1/callback'],
  token_endpoint_auth_method: 'none',
  scope: SCOPES,
};

const provider = new Provider(issuer, {
  clients: [
    client('reader', 'read:todos'),
    client('writer', 'read:todos create:todos'),
    client('admin', SCOPES),
    browser,
  ],
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  jwks: { keys: [jwk] },
  scopes: ['openid', ...SCOPES.split(' ')],
  pkce: { required: () => true },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client, oneOf) => oneOf,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => ({
        scope: SCOPES,
        audience: resourceIndicator,
        accessTokenTTL: 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
});

// The automatic user interaction: log `alice` in, then grant whatever the client asked for.
async function interact(req, res) {
  const details = await provider.interactionDetails(req, res);
  let result;
  if (details.prompt.name === 'login') {
    result = { login: { accountId: 'alice' } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const { missingOIDCScope, missingResourceScopes } = details.prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    for (const [resource, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(resource, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
server.on('request', (req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interact(req, res).catch((error) => {
      res.statusCode = 500;
      res.end(String(error));
    });
  } else if (req.url === '/oidc' || req.url.startsWith('/oidc/') || req.url.startsWith('/oidc?')) {
    req.originalUrl = req.url;
    req.url = req.url.slice('/oidc'.length) || '/';
    callback(req, res);
  } else {
    res.statusCode = 404;
    res.end();
  }
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
console.log(`issuer ${issuer}`);
console.log(`kid ${jwk.kid}`);
