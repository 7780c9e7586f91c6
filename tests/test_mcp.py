"""Every job as an MCP tool (`--mcp`): the `mcp` client lists the tools with their documented parameters, draws a
picture and describes it, against a launched app; with logins, MCP takes them as HTTP Basic credentials and refuses
requests without them."""

from __future__ import annotations

import asyncio
import base64
import io
import re

import httpx
import pytest
from PIL import Image

import app
from models.metadata import read_metadata
from models.outputs import owner_folder
from tests.conftest import free_port

mcp = pytest.importorskip("mcp")
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

PROMPT = "a small red star at the top on a blue background"
TOOLS = {"text_to_image", "describe", "regenerate", "style_transfer", "inpaint", "instruct_edit"}


@pytest.fixture(scope="module")
def mcp_url():
    args = app.parse_args(["--port", str(free_port()), "--mcp"])
    blocks, url, _ = app.launch(args, prevent_thread_lock=True, quiet=True)
    yield url + "gradio_api/mcp/"
    blocks.close()


async def session_calls(url: str, calls: list[tuple[str, dict]], login: tuple[str, str] | None = None):
    http = httpx.AsyncClient(auth=login, timeout=httpx.Timeout(30, read=300))  # MCP's own timeouts; the login
    async with http, streamable_http_client(url, http_client=http) as (read, write, _):
        async with mcp.ClientSession(read, write) as session:
            await session.initialize()
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            return tools, [await session.call_tool(name, arguments) for name, arguments in calls]


def picture_url(answer) -> str:
    """gradio hands a gallery back as text holding each image's file URL."""
    return re.search(r"'url': '(http[^']+\.png)'", answer.content[0].text)[1]


def test_tools_draw_and_describe(mcp_url):
    tools, (drawn,) = asyncio.run(session_calls(mcp_url, [("text_to_image", {"prompt": PROMPT, "seed": 3})]))
    assert TOOLS <= set(tools)
    schema = tools["text_to_image"].inputSchema
    assert schema["required"] == ["prompt"]
    assert schema["properties"]["prompt"] == {"type": "string", "description": "what the image shows"}
    assert "-1: a random seed" in schema["properties"]["seed"]["description"]
    assert "Draw images from a text prompt" in tools["text_to_image"].description
    assert {"image", "preset", "detailed"} == set(tools["describe"].inputSchema["properties"])
    assert not drawn.isError, drawn.content
    png = httpx.get(picture_url(drawn), timeout=30).content
    picture = Image.open(io.BytesIO(png))
    assert read_metadata(picture)["prompt"] == PROMPT and read_metadata(picture)["seed"] == 3

    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    _, (described,) = asyncio.run(session_calls(mcp_url, [("describe", {"image": data_url})]))
    assert not described.isError, described.content
    assert described.content[0].text.strip().startswith("a ")
    _, (refused,) = asyncio.run(session_calls(mcp_url, [("text_to_image", {"prompt": ""})]))
    assert refused.isError and "`prompt`" in refused.content[0].text


def test_logins_lock_mcp_and_each_call_runs_as_its_caller(tmp_path, monkeypatch):
    kept = tmp_path / "kept"
    monkeypatch.setenv("DEPICT_OUTPUTS", str(kept))
    args = app.parse_args(["--port", str(free_port()), "--mcp", "--auth", "ann:secret", "--auth", "bob:two"])
    blocks, url, _ = app.launch(args, prevent_thread_lock=True, quiet=True)
    mcp_url = url + "gradio_api/mcp/"
    try:
        hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}}
        accept = {"Accept": "application/json, text/event-stream"}
        for login in (None, ("ann", "wrong"), ("eve", "secret"), ("bob", "secret")):
            refused = httpx.post(mcp_url, json=hello, headers=accept, auth=login, timeout=30)
            assert refused.status_code == 401 and "HTTP Basic" in refused.json()["error"]
        tools, (drawn, listed) = asyncio.run(session_calls(
            mcp_url, [("text_to_image", {"prompt": PROMPT, "seed": 4}), ("history_items", {})], ("ann", "secret")))
        assert TOOLS <= set(tools)
        assert not drawn.isError, drawn.content
        assert httpx.get(picture_url(drawn), timeout=30).status_code == 401  # the page's lock, on its files too
        png = httpx.get(picture_url(drawn), auth=("ann", "secret"), timeout=30).content
        assert read_metadata(Image.open(io.BytesIO(png)))["seed"] == 4
        assert picture_url(listed)  # ann's history lists her picture
        _, (bobs,) = asyncio.run(session_calls(mcp_url, [("history_items", {})], ("bob", "two")))
        assert not bobs.isError and ".png" not in bobs.content[0].text
    finally:
        blocks.close()
    assert len(list(owner_folder(kept, "ann").rglob("*.png"))) == 1  # the job ran as its caller
    assert not owner_folder(kept, "bob").exists()
