"""The app's logins over MCP (`--mcp` with `--auth`).

Gradio 6.31 mounts its MCP server at `/gradio_api/mcp` with no login check, and sends each queued tool call through
an in-process `gradio_client.Client` of its own, with the MCP request's headers on the call's `queue/join` only. So:

- `BasicLogins`, an ASGI middleware on Gradio's app, answers an MCP request 401 unless it carries HTTP Basic
  credentials of one of the logins. On any route, valid Basic credentials open a Gradio session for that login: the
  request goes on with the session's cookie, as after the login form. The tool call's `queue/join` carries the
  caller's `Authorization` header, so the job runs as the caller (its pictures in the caller's folder), and the file
  URLs a tool answers with can be fetched with the same header.
- `connect` gives Gradio's in-process client a session of its own (as `MCP_USER`, a name no login can have), for the
  config, API info and queue stream it reads around each call.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets

from gradio_client import Client
from starlette.middleware import Middleware
from starlette.responses import JSONResponse

MCP_PATH = "/gradio_api/mcp"
MCP_USER = "depict:mcp"  # the in-process client's session (no login has a colon); each job runs as its MCP caller


def basic_credentials(headers: list[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic ...` header; None without one or when it is malformed."""
    value = dict(headers).get(b"authorization", b"").decode("latin-1")
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if colon else None


def gradio_session(app, user: str, token: str | None = None) -> str:
    """A token of Gradio's sessions (`app.tokens`, as its login form makes them) for `user`: `token` while it is
    still that user's (a logout ends it), else a new one."""
    if token is None or app.tokens.get(token) != user:
        token = secrets.token_urlsafe(16)
        app.tokens[token] = user
    return token


def with_cookie(headers: list[tuple[bytes, bytes]], cookie: str) -> list[tuple[bytes, bytes]]:
    """`headers` with `cookie` added to their one `cookie` header."""
    cookies = [value.decode("latin-1") for key, value in headers if key == b"cookie"]
    rest = [(key, value) for key, value in headers if key != b"cookie"]
    return [*rest, (b"cookie", "; ".join([*cookies, cookie]).encode("latin-1"))]


class BasicLogins:
    """ASGI middleware: Basic credentials of a login open its Gradio session; MCP requests need them (401 otherwise)."""

    def __init__(self, app, logins: list[tuple[str, str]]):
        self.app, self.logins, self.tokens = app, dict(logins), {}

    def user(self, headers) -> str | None:
        credentials = basic_credentials(headers)
        if credentials is None or credentials[0] not in self.logins:
            return None
        user, password = credentials
        return user if hmac.compare_digest(password.encode(), self.logins[user].encode()) else None

    async def __call__(self, scope, receive, send):
        user = self.user(scope["headers"]) if scope["type"] == "http" else None
        if user is not None:
            gradio = scope["app"]
            self.tokens[user] = gradio_session(gradio, user, self.tokens.get(user))
            cookie = f"access-token-{gradio.cookie_id}={self.tokens[user]}"
            scope = {**scope, "headers": with_cookie(scope["headers"], cookie)}
        elif scope["type"] == "http" and scope["path"].startswith(MCP_PATH):
            refused = JSONResponse({"error": "MCP needs one of the app's logins, sent as HTTP Basic credentials."},
                                   status_code=401, headers={"WWW-Authenticate": 'Basic realm="Depict"'})  # fmt: skip
            return await refused(scope, receive, send)
        await self.app(scope, receive, send)


def middleware(logins: list[tuple[str, str]]) -> Middleware:
    """`BasicLogins` for `logins`, as Gradio's `launch(app_kwargs={"middleware": [...]})` takes it."""
    return Middleware(BasicLogins, logins=logins)


def connect(blocks) -> None:
    """Give the launched app's MCP server its in-process client, logged in as `MCP_USER`. Gradio would make one on
    the first tool call with no login, which the app refuses; a Gradio without this hook stops the start."""
    server = getattr(blocks, "mcp_server_obj", None)
    if server is None or getattr(server, "_client_instance", False) is not None:
        raise RuntimeError("Gradio's MCP server is not the one Depict's logins are made for (gradio 6.31): serve MCP "
                           "without --auth, or use that Gradio.")  # fmt: skip
    cookies = {f"access-token-{blocks.app.cookie_id}": gradio_session(blocks.app, MCP_USER)}
    server._client_instance = Client(blocks.local_url, headers={"x-gradio-user": "mcp"}, download_files=False,
                                     verbose=False, analytics_enabled=False, ssl_verify=False, _skip_components=False,
                                     httpx_kwargs={"cookies": cookies})  # as Gradio makes it, with a session
