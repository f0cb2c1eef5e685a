// The official MCP TypeScript SDK logging in with the authorization code flow (PKCE S256) at
// oidc-provider, against an mcpauth server — the flow an interactive MCP client uses.
//
//   node ts_authcode_client.mjs <mcp-url> <issuer>
//
// The SDK's own `auth()` does everything: it reads our 401 challenge, discovers our metadata and
// the authorization server, builds the authorization URL (PKCE challenge, `resource`, the scope
// our challenge names), and exchanges the code. The "browser" is a few lines below that follow
// the redirects (oidc-provider's interaction is automatic, see provider.mjs) until they reach
// the redirect URI, and hand the code back to the SDK. Then `get_todos` succeeds,
// `create_todo` meets our 403 `insufficient_scope`, the SDK asks for the wider scope, the
// browser goes round again, and the retried call succeeds.
//
// Prints one JSON object for the Rust test to assert on.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const [url, issuer] = process.argv.slice(2);
const REDIRECT_URI = 'http://127.0.0.1/callback';

// A user agent: follows redirects by hand (keeping oidc-provider's cookies) until the
// authorization server sends it to the redirect URI; returns that URI's query.
async function browse(start) {
  const cookies = new Map();
  let location = start.href;
  for (let hops = 0; hops < 20; hops += 1) {
    if (location.startsWith(REDIRECT_URI)) return new URL(location).searchParams;
    const response = await fetch(location, {
      redirect: 'manual',
      headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const at = pair.indexOf('=');
      cookies.set(pair.slice(0, at), pair.slice(at + 1));
    }
    const next = response.headers.get('location');
    if (!next) throw new Error(`no redirect from ${location}: ${response.status} ${await response.text()}`);
    location = new URL(next, location).href;
  }
  throw new Error('too many redirects');
}

// The SDK's OAuthClientProvider for a pre-registered public client, kept in memory.
class BrowserProvider {
  constructor() {
    this.authorizations = [];
    this.scopes = [];
  }
  get redirectUrl() { return REDIRECT_URI; }
  get clientMetadata() {
    return {
      client_name: 'mcpauth interop',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() { return { client_id: 'browser' }; }
  tokens() { return this.current; }
  saveTokens(tokens) {
    this.current = tokens;
    this.scopes.push(tokens.scope ?? '');
  }
  saveCodeVerifier(verifier) { this.verifier = verifier; }
  codeVerifier() { return this.verifier; }
  async redirectToAuthorization(authorizationUrl) {
    const query = authorizationUrl.searchParams;
    this.authorizations.push({
      endpoint: `${authorizationUrl.origin}${authorizationUrl.pathname}`,
      scope: query.get('scope'),
      resource: query.get('resource'),
      codeChallengeMethod: query.get('code_challenge_method'),
    });
    const answer = await browse(authorizationUrl);
    if (answer.get('error')) throw new Error(`authorization refused: ${answer}`);
    this.code = answer.get('code');
    this.iss = answer.get('iss');
  }
}

// Runs `action`; when the SDK sent the user to log in, completes the login and runs it again.
async function withLogin(transport, provider, action) {
  try {
    return await action();
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
    await transport.finishAuth(provider.code);
    return action();
  }
}

const results = { statuses: [], challenges: [] };
const fetchAndRecord = async (input, init) => {
  const response = await fetch(input, init);
  if (String(input) === url && (init?.method ?? 'GET') === 'POST') {
    results.statuses.push(response.status);
    const challenge = response.headers.get('www-authenticate');
    if (challenge) results.challenges.push(challenge);
  }
  return response;
};

const provider = new BrowserProvider();
const transport = new StreamableHTTPClientTransport(new URL(url), {
  authProvider: provider,
  fetch: fetchAndRecord,
});
const client = new Client({ name: 'mcpauth-interop-browser', version: '1.0.0' });
try {
  await client.connect(transport);
} catch (error) {
  if (!(error instanceof UnauthorizedError)) throw error;
  await transport.finishAuth(provider.code);
  // A transport starts once: connect again with a new one that holds the new token.
  await client.close();
}
const connected = new StreamableHTTPClientTransport(new URL(url), {
  authProvider: provider,
  fetch: fetchAndRecord,
});
await client.connect(connected);
results.protocolVersion = connected.protocolVersion;
const todos = await withLogin(connected, provider, () => client.callTool({ name: 'get_todos', arguments: {} }));
results.getTodos = JSON.parse(todos.content[0].text);
const created = await withLogin(connected, provider, () =>
  client.callTool({ name: 'create_todo', arguments: { content: 'from the browser flow' } }),
);
results.createTodo = JSON.parse(created.content[0].text);
results.authorizations = provider.authorizations;
results.tokenScopes = provider.scopes;
results.iss = provider.iss;
console.log(JSON.stringify(results));
process.exit(0);
