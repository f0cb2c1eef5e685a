// The official MCP TypeScript SDK (@modelcontextprotocol/sdk) against an mcpauth server.
//
//   node ts_client.mjs <mcp-url> <issuer>
//
// Prints one JSON object with what happened, for the Rust test to assert on: the 401
// challenge, the SDK's own discovery of our metadata and of the authorization server, a
// `get_todos` call with a client-credentials provider, and a `create_todo` call without the
// scope (refused with our 403 challenge), with the status and challenge of every MCP request the
// SDK sent.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import {
  discoverAuthorizationServerMetadata,
  discoverOAuthProtectedResourceMetadata,
  extractWWWAuthenticateParams,
} from '@modelcontextprotocol/sdk/client/auth.js';

const [url, issuer] = process.argv.slice(2);
const results = { exchanges: [] };

// The SDK's fetch, recording the status and challenge of each MCP request.
const fetchAndRecord = async (input, init) => {
  const response = await fetch(input, init);
  if (String(input) === url && (init?.method ?? 'GET') === 'POST') {
    results.exchanges.push({ status: response.status, challenge: response.headers.get('www-authenticate') });
  }
  return response;
};

const anonymous = await fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
  body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
});
results.challengeStatus = anonymous.status;
const challenge = extractWWWAuthenticateParams(anonymous);
results.resourceMetadataUrl = challenge.resourceMetadataUrl?.href;
const resource = await discoverOAuthProtectedResourceMetadata(url, {
  resourceMetadataUrl: challenge.resourceMetadataUrl,
});
results.resource = resource.resource;
results.authorizationServers = resource.authorization_servers;
const server = await discoverAuthorizationServerMetadata(resource.authorization_servers[0]);
results.issuer = server?.issuer;

async function connect(clientId, scope) {
  const authProvider = new ClientCredentialsProvider({
    clientId,
    clientSecret: `${clientId}-secret`,
    scope,
    expectedIssuer: issuer,
  });
  const client = new Client({ name: 'mcpauth-interop', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider, fetch: fetchAndRecord });
  await client.connect(transport);
  results.protocolVersion = transport.protocolVersion;
  return client;
}

const reader = await connect('reader', 'read:todos');
const todos = await reader.callTool({ name: 'get_todos', arguments: {} });
results.getTodos = JSON.parse(todos.content[0].text);
try {
  await reader.callTool({ name: 'create_todo', arguments: { content: 'from the TS SDK' } });
  results.createTodo = 'accepted';
} catch (error) {
  results.createTodo = String(error);
}
console.log(JSON.stringify(results));
process.exit(0);
