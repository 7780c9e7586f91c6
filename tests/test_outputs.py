"""Outputs that persist: every image the app makes is kept under `outputs/<job>/<date>/` and listed by History."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date

from gradio_client import Client, handle_file

import app
from demo.load_settings import read_settings, widget_value
from models.metadata import read_metadata
from models.outputs import atomic_write, keep, recent
from models.shapes import render
from tests.conftest import free_port

PROMPT = "a small red star at the top on a blue background"


@contextmanager
def running_app(preset):
    blocks, url, _ = app.launch(app.parse_args(["--port", str(free_port()), "--preset", str(preset)]),
                                prevent_thread_lock=True, quiet=True)  # fmt: skip
    try:
        yield Client(url, verbose=False)
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
