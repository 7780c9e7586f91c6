"""Outputs that persist: every image the app makes is kept under `outputs/<job>/<date>/` and listed by History; the
galleries' copies are private to the process and gone when it exits; only the images Depict lists are served."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import httpx
from gradio_client import Client, handle_file
from PIL import Image

import app
from demo.load_settings import read_settings, widget_value
from demo.results import private_dir
from models.metadata import read_metadata
from models.outputs import atomic_write, keep, recent
from models.shapes import render
from tests.conftest import free_port

PROMPT = "a small red star at the top on a blue background"


@contextmanager
def running_app(preset, **client):
    blocks, url, _ = app.launch(app.parse_args(["--port", str(free_port()), "--preset", str(preset)]),
                                prevent_thread_lock=True, quiet=True)  # fmt: skip
    try:
        yield Client(url, verbose=False, **client)
    finally:
        blocks.close()


def test_outputs_are_kept_and_listed_after_a_restart(tiny_preset, tmp_path, monkeypatch):
    kept = tmp_path / "kept"
    monkeypatch.setenv("DEPICT_OUTPUTS", str(kept))
    render("a large green circle in the center on a white background", seed=1).save(tmp_path / "picture.png")
    with running_app(tiny_preset) as client:
        client.predict(prompt=PROMPT, seed=11, num_images=2, api_name="/text_to_image")
        client.predict(image=handle_file(tmp_path / "picture.png"), style="warm", prompt=PROMPT, seed=4,
                       api_name="/style_transfer")  # fmt: skip
    today = date.today().isoformat()
    assert len(list((kept / "text_to_image" / today).glob("*.png"))) == 2
    assert len(list((kept / "style_transfer" / today).glob("*.png"))) == 1
    assert not list(kept.rglob("*.part")), "no temporary file is left behind"

    with running_app(tiny_preset) as client:  # a new process would see the same folder
        history = client.predict(api_name="/history")
    assert len(history) == 3
    newest = read_metadata(history[0]["image"])
    assert (newest["job"], newest["seed"]) == ("style_transfer", 4)
    for item in history[1:]:
        settings = read_settings(item["image"])  # what "Load settings" reads from a dropped PNG
        assert settings["prompt"] == PROMPT and settings["seed"] in (11, 12) and settings["num_images"] == 1
        assert widget_value("preset", settings["preset"], [settings["preset"]]) == settings["preset"]


def test_an_unwritable_folder_costs_a_warning_not_the_picture(client, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("DEPICT_OUTPUTS", str(tmp_path / "a-file" / "outputs"))
    gallery, meta = client.predict(prompt=PROMPT, seed=3, api_name="/text_to_image")
    assert read_metadata(gallery[0]["image"])["seed"] == 3  # the picture, newest first in the session's gallery
    assert len(meta["warnings"]) == 1 and meta["warnings"][0].startswith("Could not keep this picture in ")


def test_off_keeps_nothing(client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEPICT_OUTPUTS", "off")
    gallery, meta = client.predict(prompt=PROMPT, seed=9, api_name="/text_to_image")
    assert read_metadata(gallery[0]["image"])["seed"] == 9 and "warnings" not in meta
    assert client.predict(api_name="/history") == [] and not list(tmp_path.iterdir())


def test_writes_are_atomic_and_listed_newest_first(tmp_path):
    first = keep(tmp_path, "text_to_image", 1, b"first")
    second = keep(tmp_path, "inpaint", 2, b"second")
    (first.parent / ".half-written.png.1234.part").write_bytes(b"half")  # what a crash mid-write leaves
    assert recent(tmp_path, 10) == [second, first] and recent(tmp_path, 1) == [second]
    assert first.read_bytes() == b"first" and first.parent.name == date.today().isoformat()
    target = atomic_write(tmp_path / "manifest.jsonl", b"old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.glob("manifest*")) == ["manifest.jsonl"]


def test_gallery_copies_are_private_and_gone_at_exit(tmp_path):
    script = """if True:
        import os, stat
        from PIL import Image
        from demo.results import save_result
        from models import Result
        saved, warnings = save_result(Result([Image.new("RGB", (8, 8))], {"job": "text_to_image", "seed": 1}))
        folder = os.path.dirname(os.path.dirname(saved[0][0]))
        print(saved[0][0], folder, oct(stat.S_IMODE(os.stat(folder).st_mode)), warnings)
    """
    env = {**os.environ, "DEPICT_OUTPUTS": "off"}
    run = subprocess.run([sys.executable, "-c", script], cwd=Path(app.__file__).parent, env=env, capture_output=True,
                         text=True, timeout=120, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    copy, folder, mode, warnings = run.stdout.split()
    assert (mode, warnings) == ("0o700", "[]") and Path(copy).is_relative_to(tempfile.gettempdir())
    assert not Path(copy).exists() and not Path(folder).exists(), "the process's folder is removed when it exits"


def test_no_copy_can_be_written_and_the_picture_still_comes_back(client, tmp_path, monkeypatch):
    """Neither the gallery's copy nor the kept one can be written (a full disk behaves alike): the picture comes back
    with its parameters and a note."""
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("DEPICT_OUTPUTS", str(tmp_path / "a-file" / "outputs"))
    gallery_dir = private_dir("gallery")
    gallery_dir.mkdir(parents=True, exist_ok=True)
    gallery_dir.rename(tmp_path / "set-aside")
    gallery_dir.write_text("in the way")
    try:
        gallery, meta = client.predict(prompt=PROMPT, seed=5, api_name="/text_to_image")
    finally:
        gallery_dir.unlink()
        (tmp_path / "set-aside").rename(gallery_dir)
    assert read_metadata(gallery[0]["image"])["seed"] == 5
    assert len(meta["warnings"]) == 1 and meta["warnings"][0].startswith("Could not keep this picture in ")


def test_only_the_images_depict_lists_are_served(tiny_preset, monkeypatch):
    """`DEPICT_OUTPUTS` may be a folder holding other files (`.` or `~`): none of them can be fetched, the results
    can, and History lists only what Depict wrote."""
    with tempfile.TemporaryDirectory(dir=Path.home(), prefix=".depict-test-") as home:  # outside cwd and /tmp, as ~
        kept = Path(home)
        monkeypatch.setenv("DEPICT_OUTPUTS", str(kept))
        (kept / "secret.txt").write_text("a private note")
        stray = kept / "Pictures" / date.today().isoformat() / "holiday.png"
        stray.parent.mkdir(parents=True)
        render(PROMPT, seed=2).save(stray)
        with running_app(tiny_preset, download_files=False) as client:
            gallery, _ = client.predict(prompt=PROMPT, seed=7, api_name="/text_to_image")
            history = client.predict(api_name="/history")
            fetch = client.src.rstrip("/") + "/gradio_api/file="
            refused = [httpx.get(fetch + str(path)).status_code for path in (kept / "secret.txt", stray,
                                                                             *kept.rglob("*-7-*.png"))]  # fmt: skip
            served = [httpx.get(item["image"]["url"]) for item in (*gallery, *history)]
    assert refused == [403, 403, 403]
    assert [response.status_code for response in served] == [200, 200]
    assert all(read_metadata(Image.open(io.BytesIO(response.content)))["seed"] == 7 for response in served)
