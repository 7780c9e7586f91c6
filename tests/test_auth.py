"""A locked door for shared links: `--auth` logins for the page and the API alike."""

from __future__ import annotations

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AuthenticationError

import app
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
