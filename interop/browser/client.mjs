// A browser-based MCP client: the official MCP TypeScript SDK running in a web page served from
// another origin than the MCP server, logging in the way a single-page app does.
//
// Bundled for the browser by build.mjs; the page (index.html) loads it, and
// browser_client.mjs drives the page in headless Chromium. Every call the SDK makes is
// cross-origin: the MCP endpoint and its metadata (the server's CORS layer), the authorization
// server's metadata, registration and token endpoints (the development authorization server).
//
// The flow, across full-page redirects (state kept in sessionStorage):
//   1. connect → 401 with our challenge → the SDK discovers, registers (DCR) and sends the page
//      to the authorization endpoint with the scope the challenge names;
//   2. back on /callback with a code → the SDK redeems it → connect → get_todos;
//   3. create_todo → 403 insufficient_scope → the SDK sends the page to log in again for the
//      scope the 403 names;
//   4. back with a code → redeem → connect → create_todo → get_todos.
// The page then shows what happened and sets window.__mcpResult (or window.__mcpError).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const stored = (key) => {
  const value = sessionStorage.getItem(key);
  return value === null ? undefined : JSON.parse(value);
};
const store = (key, value) => sessionStorage.setItem(key, JSON.stringify(value));

// What happened, kept across the redirects.
const run = stored('run') ?? {
  pageOrigin: location.origin,
  // Every request to the MCP endpoint: method, status, and what the page could read.
  exchanges: [],
  // Every authorization request the SDK made the page navigate to.
  authorizations: [],
  // The `iss` of each authorization response (RFC 9207).
  issuers: [],
  // The scope of each token the SDK obtained.
  tokenScopes: [],
  registeredClient: null,
  sessionIdReadable: false,
};
const save = () => store('run', run);

// The SDK's OAuthClientProvider for a single-page app: dynamic registration, PKCE, tokens in
// sessionStorage, and a full-page redirect to log in.
class PageProvider {
  get redirectUrl() {
    return `${location.origin}/callback`;
  }
  get clientMetadata() {
    return {
      client_name: 'mcpauth browser client',
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() {
    return stored('client');
  }
  saveClientInformation(information) {
    store('client', information);
    run.registeredClient = information.client_id;
    save();
  }
  tokens() {
    return stored('tokens');
  }
  saveTokens(tokens) {
    store('tokens', tokens);
    run.tokenScopes.push(tokens.scope ?? '');
    save();
  }
  saveCodeVerifier(verifier) {
    store('verifier', verifier);
  }
  codeVerifier() {
    return stored('verifier');
  }
  redirectToAuthorization(authorizationUrl) {
    const query = authorizationUrl.searchParams;
    run.authorizations.push({
      endpoint: `${authorizationUrl.origin}${authorizationUrl.pathname}`,
      scope: query.get('scope'),
      resource: query.get('resource'),
      redirectUri: query.get('redirect_uri'),
      codeChallengeMethod: query.get('code_challenge_method'),
    });
    save();
    location.assign(authorizationUrl.href);
  }
}

function row(parent, tag, cells, className) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  for (const cell of cells) {
    const td = document.createElement('td');
    td.textContent = cell;
    element.append(td);
  }
  parent.append(element);
}

function render(error) {
  const state = document.querySelector('#state');
  state.textContent = error ? `failed: ${error}` : 'done: get_todos succeeded after 401 → login → 403 → step-up';
  state.className = error ? 'failed' : 'done';
  document.querySelector('#origins').textContent = `page ${run.pageOrigin} → MCP server ${run.mcpOrigin ?? '?'}`;
  const exchanges = document.querySelector('#exchanges');
  for (const e of run.exchanges) row(exchanges, 'tr', [e.method, String(e.status), e.challenge ?? ''], `s${e.status}`);
  const logins = document.querySelector('#logins');
  for (const a of run.authorizations) row(logins, 'tr', [a.scope, a.endpoint]);
  document.querySelector('#todos').textContent = JSON.stringify(run.finalTodos ?? null, null, 2);
}

async function main() {
  const { mcpUrl } = await (await fetch('/config.json')).json();
  run.mcpOrigin = new URL(mcpUrl).origin;

  // The SDK's fetch: records each request to the MCP endpoint, with what CORS lets the page read.
  const recordingFetch = async (input, init) => {
    const response = await fetch(input, init);
    if (String(input) === mcpUrl) {
      const sessionId = response.headers.get('mcp-session-id');
      if (sessionId) run.sessionIdReadable = true;
      run.exchanges.push({
        method: init?.method ?? 'GET',
        status: response.status,
        challenge: response.headers.get('www-authenticate'),
      });
      save();
    }
    return response;
  };

  const params = new URLSearchParams(location.search);
  if (params.get('error')) throw new Error(`authorization refused: ${params}`);
  const code = params.get('code');
  if (code) {
    run.issuers.push(params.get('iss'));
    save();
    history.replaceState(null, '', '/');
  }

  const provider = new PageProvider();
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), {
    authProvider: provider,
    fetch: recordingFetch,
  });
  if (code) await transport.finishAuth(code);
  const client = new Client({ name: 'mcpauth-browser-client', version: '1.0.0' });
  try {
    await client.connect(transport);
    run.protocolVersion = transport.protocolVersion;
    if (run.getTodos === undefined) {
      const todos = await client.callTool({ name: 'get_todos', arguments: {} });
      run.getTodos = JSON.parse(todos.content[0].text);
      save();
    }
    if (run.createTodo === undefined) {
      const created = await client.callTool({ name: 'create_todo', arguments: { content: 'from a web page' } });
      run.createTodo = JSON.parse(created.content[0].text);
      save();
    }
    const todos = await client.callTool({ name: 'get_todos', arguments: {} });
    run.finalTodos = JSON.parse(todos.content[0].text);
    save();
    await client.close();
  } catch (error) {
    // The SDK sent the page to the authorization server: this page is going away.
    if (error instanceof UnauthorizedError) return;
    throw error;
  }
  render();
  window.__mcpResult = run;
}

main().catch((error) => {
  window.__mcpError = String(error?.stack ?? error);
  render(window.__mcpError);
});
