"""The official MCP Python SDK (`mcp` on PyPI) logging in through the mcpauth broker
(`todo-broker`): the broker is the authorization server, an identity provider that cannot serve
MCP clients is behind it.

    python py_broker_client.py <mcp-url>

The SDK's `OAuthClientProvider` registers dynamically and runs the authorization code flow. Its
redirect handler plays the user's browser with httpx, by hand: the broker's authorization
endpoint (303 to the consent page), the consent page (one form with hidden `transaction` and
`csrf` inputs; the nonce cookie it sets is kept), the approval (303 to the identity provider,
with the binding cookie), the provider's redirects until it sends the browser to the broker's
callback, and the callback (303 to the client's redirect URI with `code`, `state`, `iss`). Its
callback handler hands `code`, `state` and `iss` back to the SDK, which checks them.

Then `get_todos`, `create_todo` (403 `insufficient_scope`: the SDK signs in again for the
wider scope and retries), a forced refresh (the SDK's token expiry set in the past, so the next
request refreshes first) and both tools again. Prints one JSON object.
"""

import asyncio
import base64
import html
import json
import re
import sys
import time
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx2
from mcp import ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

REDIRECT_URI = "http://127.0.0.1/callback"


class Storage:
    """In-memory token storage that remembers every token obtained."""

    def __init__(self) -> None:
        self.tokens = None
        self.client_info = None
        self.history: list = []

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info) -> None:
        self.client_info = client_info


class Browser:
    """A user agent that keeps cookies by name (every server here is on 127.0.0.1, and cookies
    do not tell ports apart) and never follows a redirect by itself."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}
        self.http = httpx2.AsyncClient(follow_redirects=False, timeout=30)

    def absorb(self, response) -> None:
        for cookie in response.headers.get_list("set-cookie"):
            name, _, value = cookie.split(";")[0].partition("=")
            if re.search(r"max-age=0(;|$)", cookie, re.IGNORECASE):
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value

    def headers(self) -> dict[str, str]:
        return {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    async def get(self, url: str):
        response = await self.http.get(url, headers=self.headers())
        self.absorb(response)
        return response

    async def post(self, url: str, form: dict[str, str]):
        response = await self.http.post(url, data=form, headers=self.headers())
        self.absorb(response)
        return response


def redirect_of(response, what: str) -> str:
    location = response.headers.get("location")
    if response.status_code not in (302, 303) or not location:
        raise RuntimeError(f"{what}: expected a redirect, got {response.status_code}: {response.text}")
    return urljoin(str(response.request.url), location)


async def sign_in(browser: Browser, authorization_url: str, origin: str) -> tuple[dict, dict]:
    """The browser's part of one sign-in: what it saw, and the client redirect's query."""
    seen: dict = {"request": dict(parse_qsl(urlsplit(authorization_url).query))}
    authorize = await browser.get(authorization_url)
    seen["authorizeStatus"] = authorize.status_code
    consent_url = redirect_of(authorize, "authorize")
    seen["consentPath"] = urlsplit(consent_url).path
    page = await browser.get(consent_url)
    if page.status_code != 200:
        raise RuntimeError(f"consent page: {page.status_code}: {page.text}")
    forms = re.findall(r'<form method="post" action="([^"]*)">', page.text)
    if len(forms) != 1:
        raise RuntimeError(f"consent page: {len(forms)} forms: {page.text}")
    hidden = {
        name: html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page.text)
    }
    badge = re.search(r'<span class="badge[^"]*">([^<]*)</span>', page.text)
    seen["consent"] = {
        "status": page.status_code,
        "frameOptions": page.headers.get("x-frame-options"),
        "hiddenInputs": sorted(hidden),
        "decisions": re.findall(r'<button type="submit" name="decision" value="([^"]*)">', page.text),
        "badge": html.unescape(badge.group(1)) if badge else "",
        "nonceCookie": "mcpauth-browser" in browser.cookies,
    }
    approval = await browser.post(urljoin(consent_url, html.unescape(forms[0])), {**hidden, "decision": "approve"})
    seen["approvalStatus"] = approval.status_code
    location = redirect_of(approval, "consent approval")
    seen["upstream"] = {
        "endpoint": location.split("?")[0],
        "query": dict(parse_qsl(urlsplit(location).query)),
    }
    seen["bindingCookie"] = any(name.startswith("mcpauth-login-") for name in browser.cookies)
    hops = 0
    while not location.startswith(f"{origin}/callback/"):
        hops += 1
        if hops > 20:
            raise RuntimeError("the identity provider never sent the browser back")
        location = redirect_of(await browser.get(location), f"identity provider at {location}")
    seen["callback"] = location.split("?")[0]
    callback = await browser.get(location)
    seen["callbackStatus"] = callback.status_code
    final = redirect_of(callback, "callback")
    if not final.startswith(REDIRECT_URI):
        raise RuntimeError(f"redirected to {final}")
    seen["bindingCookieCleared"] = not any(name.startswith("mcpauth-login-") for name in browser.cookies)
    answer = dict(parse_qsl(urlsplit(final).query))
    if "error" in answer:
        raise RuntimeError(f"authorization refused: {answer}")
    seen["answer"] = {"params": sorted(answer), "iss": answer.get("iss")}
    # The SDK checks `state` itself; recorded here for the same report as the TypeScript client's.
    seen["stateMatches"] = answer.get("state") == seen["request"].get("state")
    return seen, answer


def claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def main(url: str) -> None:
    origin = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
    storage = Storage()
    browser = Browser()
    logins: list[dict] = []
    pending: dict = {}
    statuses: list[int] = []
    token_requests: list[dict] = []
    registrations: list[int] = []

    async def redirect_handler(authorization_url: str) -> None:
        seen, answer = await sign_in(browser, authorization_url, origin)
        logins.append(seen)
        pending.clear()
        pending.update(answer)

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=pending["code"], state=pending.get("state"), iss=pending.get("iss"))

    async def record(response) -> None:
        request = response.request
        if request.method != "POST":
            return
        if str(request.url) == url:
            statuses.append(response.status_code)
        elif str(request.url) == f"{origin}/token":
            form = dict(parse_qsl(request.content.decode()))
            token_requests.append(
                {"grantType": form.get("grant_type"), "status": response.status_code, "resource": form.get("resource")}
            )
        elif str(request.url) == f"{origin}/register":
            registrations.append(response.status_code)

    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="mcpauth interop (Python SDK)",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    results: dict = {}
    text = lambda result: json.loads(result.content[0].text)  # noqa: E731
    async with httpx2.AsyncClient(auth=provider, event_hooks={"response": [record]}, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await session.initialize()
                results["protocolVersion"] = session.protocol_version
                results["getTodos"] = text(await session.call_tool("get_todos", {}))
                results["scopeBeforeStepUp"] = storage.tokens.scope
                results["createTodo"] = text(await session.call_tool("create_todo", {"content": "from the Python SDK"}))
                results["scopeAfterStepUp"] = storage.tokens.scope
                # A forced refresh: the token is taken for expired, so the SDK refreshes it before
                # the next request.
                before = storage.tokens
                provider.context.token_expiry_time = time.time() - 1
                results["getTodosAfterRefresh"] = text(await session.call_tool("get_todos", {}))
                after = storage.tokens
                results["createTodoAfterRefresh"] = text(
                    await session.call_tool("create_todo", {"content": "after the refresh"})
                )
    await browser.http.aclose()
    results["refreshTokenRotated"] = bool(after.refresh_token) and after.refresh_token != before.refresh_token
    results["accessTokenRenewed"] = after.access_token != before.access_token
    results["scopeAfterRefresh"] = after.scope
    results["accessTokenClaims"] = claims(after.access_token)
    results["metadataIssuer"] = str(provider.context.oauth_metadata.issuer)
    results["clientId"] = storage.client_info.client_id
    results["statuses"] = statuses
    results["tokenRequests"] = token_requests
    results["registrations"] = registrations
    results["logins"] = logins
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
