"""A locked door for shared links: `--auth` logins for the page and the API alike, never silently left open, and
each login's pictures kept apart."""

from __future__ import annotations

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AuthenticationError

import app
from models.metadata import png_bytes, read_metadata
from models.outputs import keep
from models.shapes import render
from tests.conftest import free_port

PROMPT = "a small red star at the top on a blue background"


@pytest.mark.parametrize(
    "argv, env, file, logins",
    [
        ([], "", "", []),
        (["--auth", "ann:secret", "--auth", "bob:pa:ss"], "", "", [("ann", "secret"), ("bob", "pa:ss")]),
        ([], "ann:secret,bob:two", "", [("ann", "secret"), ("bob", "two")]),
        (["--auth", "ann:secret"], "env:ignored", "", [("ann", "secret")]),
        ([], "", "# logins\nann:secret\n\nbob:two\n", [("ann", "secret"), ("bob", "two")]),
    ],
)  # fmt: skip
def test_logins_from_flags_env_and_file(argv, env, file, logins, tmp_path, monkeypatch):
    monkeypatch.setenv("DEPICT_AUTH", env)
    if file:
        (tmp_path / "logins").write_text(file)
        argv = [*argv, "--auth-file", str(tmp_path / "logins")]
    assert app.parse_args(argv).auth == logins


@pytest.mark.parametrize("argv", [["--auth", "ann"], ["--auth", ":secret"], ["--auth", "ann:"], ["--auth-file", "/no/such"]])
def test_bad_logins_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        app.parse_args(argv)
    err = capsys.readouterr().err
    assert "USER:PASSWORD" in err or "does not exist" in err


def test_api_needs_the_login(tiny_preset):
    args = app.parse_args(["--port", str(free_port()), "--preset", str(tiny_preset), "--auth", "ann:secret"])
    blocks, url, _ = app.launch(args, prevent_thread_lock=True, quiet=True)
    try:
        with pytest.raises(AuthenticationError):
            Client(url, verbose=False)
        with pytest.raises(ValueError, match="Could not login"):
            Client(url, verbose=False, auth=("ann", "wrong"))
        raw = httpx.post(f"{url}gradio_api/call/text_to_image", json={"data": [PROMPT]})
        assert raw.status_code == 401
        client = Client(url, verbose=False, auth=("ann", "secret"))
        gallery, meta = client.predict(prompt=PROMPT, seed=2, api_name="/text_to_image")
        assert len(gallery) == 1 and meta["seeds"] == [2]
    finally:
        blocks.close()


@pytest.mark.parametrize(
    "argv, env, file, message",
    [
        ([], " ", "", "DEPICT_AUTH is set but names no login"),
        ([], ",", "", "DEPICT_AUTH is set but names no login"),
        ([], "", "# logins to come\n\n   \n", "names no login (only blank lines or # comments)"),
        (["--share"], "", "\n", "names no login"),
        (["--auth", " "], "", "", "USER:PASSWORD"),
    ],
)  # fmt: skip
def test_logins_asked_for_but_naming_none_stop_the_start(argv, env, file, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEPICT_AUTH", env)
    if file:
        (tmp_path / "logins").write_text(file)
        argv = [*argv, "--auth-file", str(tmp_path / "logins")]
    with pytest.raises(SystemExit):
        app.parse_args(argv)
    assert message in capsys.readouterr().err


def test_each_login_sees_only_its_own_history(tiny_preset, tmp_path, monkeypatch):
    kept = tmp_path / "kept"
    monkeypatch.setenv("DEPICT_OUTPUTS", str(kept))
    earlier = render(PROMPT, seed=1)
    keep(kept, "text_to_image", 99, png_bytes(earlier, {"prompt": "made before logins", "seed": 99}))
    other = "a large green circle in the center on a white background"
    args = app.parse_args(["--port", str(free_port()), "--preset", str(tiny_preset), "--auth", "ann:one", "--auth",
                           "bob:two"])  # fmt: skip
    blocks, url, _ = app.launch(args, prevent_thread_lock=True, quiet=True)
    try:
        ann, bob = Client(url, verbose=False, auth=("ann", "one")), Client(url, verbose=False, auth=("bob", "two"))
        ann.predict(prompt=PROMPT, seed=1, api_name="/text_to_image")
        bob.predict(prompt=other, seed=2, api_name="/text_to_image")
        seen = {name: [read_metadata(item["image"]) for item in client.predict(api_name="/history")]
                for name, client in (("ann", ann), ("bob", bob))}  # fmt: skip
        built_in = next(block for block in blocks.blocks.values() if block.elem_id == "history-gallery").value
    finally:
        blocks.close()
    assert [(meta["prompt"], meta["seed"]) for meta in seen["ann"]] == [(PROMPT, 1)]
    assert [(meta["prompt"], meta["seed"]) for meta in seen["bob"]] == [(other, 2)]
    assert not built_in, "the page every visitor gets lists no one's pictures"
    assert len(list((kept / "users").rglob("*.png"))) == 2
