// The official MCP TypeScript SDK logging in through the mcpauth broker (`todo-broker`): the
// broker is the authorization server, an identity provider that cannot serve MCP clients is
// behind it.
//
//   node ts_broker_client.mjs <mcp-url> [--cimd-cert <pem> --cimd-key <pem> --cimd-host <name>]
//
// Without --cimd-*, the SDK registers dynamically (RFC 7591). With them, the client publishes
// its client ID metadata document over https at `https://<name>:<port>/client.json` (a server
// started here, with that certificate) and the SDK uses that URL as its client id.
//
// The SDK's `auth()` drives the flow; `redirectToAuthorization` plays the user's browser: the
// broker's authorization endpoint (303 to its consent page), the consent page (one form with
// hidden `transaction` and `csrf` inputs; the browser keeps the nonce cookie it sets), the
// approval (303 to the identity provider, with the binding cookie), the provider (whatever
// redirects it answers, until it sends the browser to the broker's callback), the callback
// (303 to the client's redirect URI with `code`, `state`, `iss`). Cookies are kept by hand, no
// redirect is followed implicitly. The code goes back to the SDK.
//
// Then `get_todos`, then `create_todo`: the server answers 403 `insufficient_scope`; when the
// SDK does not sign in again by itself, the script does it with the SDK's `auth()` for the
// granted scope plus the challenged one. Then a forced refresh (the SDK's `auth()` with the
// stored refresh token) and both tools again.
//
// Prints one JSON object for the Rust test to assert on.
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, auth } from '@modelcontextprotocol/sdk/client/auth.js';

const [url, ...rest] = process.argv.slice(2);
const args = Object.fromEntries(
  rest.reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const REDIRECT_URI = 'http://127.0.0.1/callback';
const origin = new URL(url).origin;

const unescape = (text) =>
  text
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');

// A user agent that keeps cookies by name (every server here is on 127.0.0.1, and cookies do not
// tell ports apart) and never follows a redirect by itself.
class Browser {
  constructor() {
    this.cookies = new Map();
  }
  absorb(response) {
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      if (/max-age=0(;|$)/i.test(cookie)) this.cookies.delete(name);
      else this.cookies.set(name, pair.slice(at + 1));
    }
    return response;
  }
  headers() {
    return { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
  }
  async get(target) {
    return this.absorb(await fetch(target, { redirect: 'manual', headers: this.headers() }));
  }
  async post(target, form) {
    return this.absorb(
      await fetch(target, {
        method: 'POST',
        redirect: 'manual',
        headers: { ...this.headers(), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form),
      }),
    );
  }
}

async function expectRedirect(response, what) {
  const location = response.headers.get('location');
  if (![302, 303].includes(response.status) || !location) {
    throw new Error(`${what}: expected a redirect, got ${response.status}: ${await response.text()}`);
  }
  return location;
}

// The browser's part of one sign-in; returns what it saw and the client redirect's query.
async function signIn(browser, authorizationUrl) {
  const seen = { request: Object.fromEntries(authorizationUrl.searchParams) };
  const authorize = await browser.get(authorizationUrl);
  seen.authorizeStatus = authorize.status;
  const consentUrl = new URL(await expectRedirect(authorize, 'authorize'), authorizationUrl);
  seen.consentPath = consentUrl.pathname;
  const page = await browser.get(consentUrl);
  const html = await page.text();
  if (page.status !== 200) throw new Error(`consent page: ${page.status}: ${html}`);
  const forms = [...html.matchAll(/<form method="post" action="([^"]*)">/g)];
  if (forms.length !== 1) throw new Error(`consent page: ${forms.length} forms: ${html}`);
  const hidden = Object.fromEntries(
    [...html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)].map(([, name, value]) => [
      name,
      unescape(value),
    ]),
  );
  seen.consent = {
    status: page.status,
    frameOptions: page.headers.get('x-frame-options'),
    hiddenInputs: Object.keys(hidden).sort(),
    decisions: [...html.matchAll(/<button type="submit" name="decision" value="([^"]*)">/g)].map(([, v]) => v),
    badge: unescape(html.match(/<span class="badge[^"]*">([^<]*)<\/span>/)?.[1] ?? ''),
    nonceCookie: browser.cookies.has('mcpauth-browser'),
  };
  const approval = await browser.post(new URL(unescape(forms[0][1]), consentUrl), {
    ...hidden,
    decision: 'approve',
  });
  seen.approvalStatus = approval.status;
  let location = new URL(await expectRedirect(approval, 'consent approval'), consentUrl);
  seen.bindingCookie = [...browser.cookies.keys()].some((name) => name.startsWith('mcpauth-login-'));
  seen.upstream = {
    endpoint: `${location.origin}${location.pathname}`,
    query: Object.fromEntries(location.searchParams),
  };
  const callbackPrefix = `${origin}/callback/`;
  for (let hops = 0; !location.href.startsWith(callbackPrefix); hops += 1) {
    if (hops === 20) throw new Error('the identity provider never sent the browser back');
    const answer = await browser.get(location);
    location = new URL(await expectRedirect(answer, `identity provider at ${location}`), location);
  }
  seen.callback = `${location.origin}${location.pathname}`;
  const callback = await browser.get(location);
  seen.callbackStatus = callback.status;
  const final = new URL(await expectRedirect(callback, 'callback'));
  if (!final.href.startsWith(REDIRECT_URI)) throw new Error(`redirected to ${final}`);
  seen.bindingCookieCleared = ![...browser.cookies.keys()].some((name) => name.startsWith('mcpauth-login-'));
  const answer = Object.fromEntries(final.searchParams);
  if (answer.error) throw new Error(`authorization refused: ${final.search}`);
  seen.answer = { params: Object.keys(answer).sort(), iss: answer.iss };
  return { seen, answer };
}

// The SDK's OAuthClientProvider: everything in memory, a browser for the sign-ins.
class BrokerClientProvider {
  constructor(clientMetadataUrl) {
    this.metadataUrl = clientMetadataUrl;
    this.browser = new Browser();
    this.logins = [];
    this.tokenHistory = [];
    this.clientSaves = [];
  }
  get redirectUrl() {
    return REDIRECT_URI;
  }
  get clientMetadataUrl() {
    return this.metadataUrl;
  }
  get clientMetadata() {
    return {
      client_name: 'mcpauth interop (TypeScript SDK)',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(information) {
    this.client = information;
    this.clientSaves.push(information.client_id);
  }
  tokens() {
    return this.current;
  }
  saveTokens(tokens) {
    this.current = tokens;
    this.tokenHistory.push(tokens);
  }
  invalidateCredentials(what) {
    if (what === 'all' || what === 'tokens') this.current = undefined;
    if (what === 'all' || what === 'client') this.client = undefined;
  }
  discoveryState() {
    return this.discovery;
  }
  saveDiscoveryState(state) {
    this.discovery = state;
  }
  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
  state() {
    this.expectedState = randomBytes(16).toString('base64url');
    return this.expectedState;
  }
  async redirectToAuthorization(authorizationUrl) {
    const { seen, answer } = await signIn(this.browser, authorizationUrl);
    seen.stateMatches = answer.state === this.expectedState;
    this.logins.push(seen);
    this.code = answer.code;
  }
}

// The client's metadata document, served over https when asked for.
async function publishMetadataDocument() {
  const fetches = [];
  const server = https.createServer(
    { cert: readFileSync(args['cimd-cert']), key: readFileSync(args['cimd-key']) },
    (req, res) => {
      fetches.push({ path: req.url, userAgent: req.headers['user-agent'] ?? null });
      if (req.url !== '/client.json') {
        res.statusCode = 404;
        res.end();
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(document));
    },
  );
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const documentUrl = `https://${args['cimd-host']}:${server.address().port}/client.json`;
  const document = {
    client_id: documentUrl,
    client_name: 'mcpauth interop (client ID metadata document)',
    redirect_uris: [REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
  return { documentUrl, fetches };
}

const challengeScope = (challenge) => challenge?.match(/scope="([^"]*)"/)?.[1];
const union = (...scopes) => [...new Set(scopes.flatMap((s) => s?.split(' ') ?? []).filter(Boolean))].join(' ');
const claims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());

const results = { statuses: [], challenges: [], tokenRequests: [], registrations: [] };
let lastAuthorization;
const recordingFetch = async (input, init) => {
  const target = String(input instanceof Request ? input.url : input);
  const response = await fetch(input, init);
  const method = init?.method ?? 'GET';
  if (target === url && method === 'POST') {
    results.statuses.push(response.status);
    const challenge = response.headers.get('www-authenticate');
    if (challenge) results.challenges.push(challenge);
    lastAuthorization = new Headers(init.headers).get('authorization');
  } else if (target === `${origin}/token`) {
    const form = new URLSearchParams(String(init.body));
    results.tokenRequests.push({
      grantType: form.get('grant_type'),
      status: response.status,
      resource: form.get('resource'),
    });
  } else if (target === `${origin}/register`) {
    results.registrations.push(response.status);
  }
  return response;
};

let cimd;
if (args['cimd-cert']) cimd = await publishMetadataDocument();
const provider = new BrokerClientProvider(cimd?.documentUrl);
const transportOptions = { authProvider: provider, fetch: recordingFetch };
const client = new Client({ name: 'mcpauth-interop-broker', version: '1.0.0' });

let transport = new StreamableHTTPClientTransport(new URL(url), transportOptions);
try {
  await client.connect(transport);
} catch (error) {
  if (!(error instanceof UnauthorizedError)) throw error;
  await transport.finishAuth(provider.code);
  // A transport starts once: connect again with a new one that holds the token.
  await client.close();
  transport = new StreamableHTTPClientTransport(new URL(url), transportOptions);
  await client.connect(transport);
}
results.protocolVersion = transport.protocolVersion;
const text = (result) => JSON.parse(result.content[0].text);
results.getTodos = text(await client.callTool({ name: 'get_todos', arguments: {} }));
const scopeBeforeStepUp = provider.tokens()?.scope;

const createTodo = (content) => client.callTool({ name: 'create_todo', arguments: { content } });
try {
  results.createTodo = text(await createTodo('from the TypeScript SDK'));
  results.stepUp = 'none';
} catch (error) {
  if (error instanceof UnauthorizedError) {
    // The SDK sent the user to sign in again for the challenged scope.
    results.stepUp = 'sdk';
    await transport.finishAuth(provider.code);
  } else if (error instanceof StreamableHTTPError && error.code === 403) {
    // The SDK answered the 403 with a refresh (same scope) and gave up: sign in again for the
    // granted scope plus the challenged one, as a client that keeps its other grants does.
    results.stepUp = 'explicit';
    results.sdkStepUpError = error.message;
    const scope = union(scopeBeforeStepUp, challengeScope(results.challenges.at(-1)));
    provider.invalidateCredentials('tokens');
    const serverUrl = new URL(url);
    const started = await auth(provider, { serverUrl, scope, fetchFn: recordingFetch });
    if (started !== 'REDIRECT') throw new Error(`step-up sign-in: ${started}`);
    const done = await auth(provider, { serverUrl, authorizationCode: provider.code, fetchFn: recordingFetch });
    if (done !== 'AUTHORIZED') throw new Error(`step-up code exchange: ${done}`);
  } else {
    throw error;
  }
  results.createTodo = text(await createTodo('from the TypeScript SDK'));
}
results.scopeBeforeStepUp = scopeBeforeStepUp;
results.scopeAfterStepUp = provider.tokens()?.scope;

// A forced refresh: the SDK's auth() with the stored refresh token and no code.
const before = provider.tokens();
results.refreshOutcome = await auth(provider, { serverUrl: new URL(url), fetchFn: recordingFetch });
const after = provider.tokens();
results.refreshTokenRotated = Boolean(after.refresh_token) && after.refresh_token !== before.refresh_token;
results.accessTokenRenewed = after.access_token !== before.access_token;
results.scopeAfterRefresh = after.scope;
results.getTodosAfterRefresh = text(await client.callTool({ name: 'get_todos', arguments: {} }));
results.createTodoAfterRefresh = text(await createTodo('after the refresh'));
results.usedRefreshedToken = lastAuthorization === `Bearer ${after.access_token}`;
results.accessTokenClaims = claims(after.access_token);

results.metadataIssuer = provider.discovery?.authorizationServerMetadata?.issuer;
results.clientId = provider.client?.client_id;
results.clientSaves = provider.clientSaves;
results.logins = provider.logins;
results.cimd = cimd ?? null;
console.log(JSON.stringify(results));
process.exit(0);
