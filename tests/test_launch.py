"""Launch settings: flags, env vars, Hugging Face Spaces, and --share without a tunnel."""

from __future__ import annotations

import importlib
import socket

import app


def reload_app(monkeypatch, **env):
    for key in ("SPACE_ID", "DEPICT_HOST", "DEPICT_PORT", "DEPICT_SHARE", "DEPICT_PRESET", "DEPICT_AUTH"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return importlib.reload(app)


def test_local_defaults_and_flags(monkeypatch):
    module = reload_app(monkeypatch)
    args = module.parse_args([])
    assert (args.host, args.port, args.share, args.preset) == ("127.0.0.1", 7860, False, "bundled")
    args = module.parse_args(["--host", "0.0.0.0", "--port", "9000", "--share", "--preset", "sd-turbo"])
    assert (args.host, args.port, args.share, args.preset) == ("0.0.0.0", 9000, True, "sd-turbo")


def test_env_vars_mirror_the_flags(monkeypatch):
    module = reload_app(monkeypatch, DEPICT_HOST="0.0.0.0", DEPICT_PORT="8123", DEPICT_SHARE="1", DEPICT_PRESET="sd15-lcm")
    args = module.parse_args([])
    assert (args.host, args.port, args.share, args.preset) == ("0.0.0.0", 8123, True, "sd15-lcm")


def test_spaces_configuration(monkeypatch):
    module = reload_app(monkeypatch, SPACE_ID="someone/depict", DEPICT_PRESET="sdxl-turbo")
    args = module.parse_args(["--share"])
    assert module.on_spaces() and args.host == "0.0.0.0" and args.share is False and args.preset == "sdxl-turbo"
    reload_app(monkeypatch)


def test_share_without_a_tunnel_still_serves_locally(monkeypatch, tiny_preset, capsys):
    module = reload_app(monkeypatch)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    blocks, url, share_url = module.launch(
        module.parse_args(["--port", str(port), "--share", "--preset", str(tiny_preset)]),
        prevent_thread_lock=True, quiet=True,
    )  # fmt: skip
    try:
        assert share_url is None and url.startswith("http://127.0.0.1")
        out = capsys.readouterr().out
        assert "Could not open a public share link" in out
        assert out.count("The share link is open to anyone who has it") == 1  # no --auth
        assert blocks.get_api_info()["named_endpoints"]
        assert blocks._queue.max_size == 64
    finally:
        blocks.close()
