"""Every job as an MCP tool (`--mcp`): the `mcp` client lists the tools with their documented parameters, draws a
picture and describes it, against a launched app."""

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


async def session_calls(url: str, calls: list[tuple[str, dict]]):
    async with streamable_http_client(url) as (read, write, _):
        async with mcp.ClientSession(read, write) as session:
            await session.initialize()
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            return tools, [await session.call_tool(name, arguments) for name, arguments in calls]


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
    # gradio hands a gallery back as text holding each image's file URL: read the PNG back from it
    picture_url = re.search(r"'url': '(http[^']+\.png)'", drawn.content[0].text)[1]
    png = httpx.get(picture_url, timeout=30).content
    picture = Image.open(io.BytesIO(png))
    assert read_metadata(picture)["prompt"] == PROMPT and read_metadata(picture)["seed"] == 3

    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    _, (described,) = asyncio.run(session_calls(mcp_url, [("describe", {"image": data_url})]))
    assert not described.isError, described.content
    assert described.content[0].text.strip().startswith("a ")
    _, (refused,) = asyncio.run(session_calls(mcp_url, [("text_to_image", {"prompt": ""})]))
    assert refused.isError and "`prompt`" in refused.content[0].text


def test_mcp_refuses_logins(capsys, monkeypatch):
    monkeypatch.delenv("DEPICT_AUTH", raising=False)
    with pytest.raises(SystemExit):
        app.parse_args(["--mcp", "--auth", "ann:secret"])
    assert "--mcp cannot be combined with logins" in capsys.readouterr().err
