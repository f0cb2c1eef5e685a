"""The official MCP Python SDK (`mcp` on PyPI) against an mcpauth server.

    python py_client.py <mcp-url> <issuer> <protocol-version>

With its client-credentials OAuth provider (client `writer`, starting with `read:todos` only)
it lists todos, then calls `create_todo`: our server answers 403 `insufficient_scope`, the SDK
steps up to a token with `create:todos` and the call succeeds. Prints one JSON object with the
statuses seen, the scopes of the tokens obtained, the tool results, the negotiated protocol
version and the `MCP-Protocol-Version` / `Mcp-Method` / `Mcp-Name` headers the SDK sent.

`<protocol-version>`: `2026-07-28` negotiates with `server/discover` (the stateless protocol,
whose requests carry `Mcp-Method` and `Mcp-Name` headers); `2025-11-25` (the SDK's newest
handshake version) and `2025-06-18` use the `initialize` handshake, offering that version.
"""

import asyncio
import json
import sys

import httpx2
import mcp.client.session
from mcp import ClientSession
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client


HEADERS = ("mcp-protocol-version", "mcp-method", "mcp-name")


class Storage:
    """In-memory token storage that remembers the scope of every token obtained."""

    def __init__(self) -> None:
        self.tokens = None
        self.client_info = None
        self.scopes: list[str] = []

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens) -> None:
        self.tokens = tokens
        self.scopes.append(tokens.scope or "")

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info) -> None:
        self.client_info = client_info


async def main(url: str, issuer: str, version: str) -> None:
    storage = Storage()
    statuses: list[int] = []
    headers: list[dict[str, str]] = []

    async def record(response) -> None:
        request = response.request
        if request.url.path.endswith("/mcp") and request.method == "POST":
            statuses.append(response.status_code)
            sent = {k: request.headers[k] for k in HEADERS if k in request.headers}
            if sent not in headers:
                headers.append(sent)

    if version != "2026-07-28":
        # The SDK offers its newest handshake version; an older client offers an older one.
        mcp.client.session.LATEST_HANDSHAKE_VERSION = version

    provider = ClientCredentialsOAuthProvider(
        server_url=url,
        storage=storage,
        client_id="writer",
        client_secret="writer-secret",
        scope="read:todos",
        issuer=issuer,
    )
    results = {}
    async with httpx2.AsyncClient(auth=provider, event_hooks={"response": [record]}) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                if version == "2026-07-28":
                    await session.discover()
                else:
                    await session.initialize()
                results["protocolVersion"] = session.protocol_version
                todos = await session.call_tool("get_todos", {})
                results["getTodos"] = json.loads(todos.content[0].text)
                created = await session.call_tool("create_todo", {"content": "from the Python SDK"})
                results["createTodo"] = json.loads(created.content[0].text)
    results["statuses"] = statuses
    results["tokenScopes"] = storage.scopes
    results["headers"] = headers
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
