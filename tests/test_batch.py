"""Batches from the command line: prompts split across two processes by Accelerate, folders of images, a manifest
that survives failures and kills, and `--resume`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from models.__main__ import main
from models.metadata import read_metadata
from models.shapes import render
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [
    "a small red star at the top on a blue background",
    "a large green circle in the center on a white background",
    "a small purple square on the left on a yellow background",
    "a large orange triangle at the bottom on a gray background",
    "a small white cross on the right on a black background",
]


def manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def test_two_processes_make_each_prompt_once(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS[:2] + [""] + PROMPTS[2:]) + "\n")  # a blank line is no prompt
    out = tmp_path / "out"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--main_process_port", str(free_port()), "-m", "models", "generate", "--prompts", str(prompts),
               "--out-dir", str(out), "--steps", "2", "--seed", "5"]  # fmt: skip
    run = subprocess.run(command, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = manifest(out)
    assert [line["index"] for line in lines] == list(range(len(PROMPTS)))
    assert [line["prompt"] for line in lines] == PROMPTS
    assert {line["process"] for line in lines} == {0, 1}, "both processes should have had a share"
    assert sorted(path.name for path in out.glob("*.png")) == [line["file"] for line in lines]
    assert not list(out.glob("manifest-*.jsonl")), "the second process's lines are merged into manifest.jsonl"
    for line in lines:
        meta = read_metadata(out / line["file"])
        assert (meta["prompt"], meta["seed"], line["seed"]) == (line["prompt"], 5, 5) and line["seconds"] > 0
    assert run.stdout.split() == [str(out / line["file"]) for line in lines]  # printed once, by the main process


@pytest.fixture
def pictures(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for index, caption in enumerate(PROMPTS[:3]):
        render(caption, seed=index).save(folder / f"scene{index}.png")
    (folder / "notes.txt").write_text("not a picture")
    return folder


def test_folders_of_images(tiny_preset, pictures, tmp_path, capsys):
    preset = ["--preset", str(tiny_preset)]
    assert main([*preset, "describe", str(pictures), "--out-dir", str(tmp_path / "described")]) == 0
    described = manifest(tmp_path / "described")
    assert [Path(line["image"]).name for line in described] == ["scene0.png", "scene1.png", "scene2.png"]
    assert all(isinstance(line["description"], str) for line in described)
    assert capsys.readouterr().out.count("\t") == 3

    assert main([*preset, "style", str(pictures), "--style", "cool", "--out-dir", str(tmp_path / "styled")]) == 0
    styled = manifest(tmp_path / "styled")
    assert [line["file"] for line in styled] == ["0000-scene0.png", "0001-scene1.png", "0002-scene2.png"]
    assert Image.open(tmp_path / "styled" / "0001-scene1.png").size == (64, 64)
    assert read_metadata(tmp_path / "styled" / "0002-scene2.png")["adapters"] == {"cool": 1.0}


def test_a_batch_needs_an_out_dir_and_reports_bad_items(tiny_preset, pictures, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--preset", str(tiny_preset), "describe", str(pictures)])
    assert "needs --out-dir" in capsys.readouterr().err
    (pictures / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert main(["--preset", str(tiny_preset), "describe", str(pictures), "--out-dir", str(out)]) == 2
    lines = manifest(out)
    assert [Path(line["image"]).name for line in lines] == ["broken.png", "scene0.png", "scene1.png", "scene2.png"]
    assert "not a readable image" in lines[0]["error"] and all("description" in line for line in lines[1:])
    assert "not a readable image" in capsys.readouterr().err


def test_a_failed_input_is_recorded_and_resume_makes_only_what_is_missing(tiny_preset, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    odd = f"{PROMPTS[1]}\u2028and a line separator\x0cand a form feed"  # one prompt: only "\n" ends a line
    prompts.write_text("\n".join([PROMPTS[0], odd, PROMPTS[2]]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    (out / "0001.png").mkdir(parents=True)  # the second file cannot be written: an error other than bad input
    command = ["--preset", str(tiny_preset), "generate", "--prompts", str(prompts), "--out-dir", str(out), "--steps",
               "2"]  # fmt: skip
    assert main(command) == 2
    lines = manifest(out)
    assert [line["prompt"] for line in lines] == [PROMPTS[0], odd, PROMPTS[2]]
    assert "file" in lines[0] and "file" in lines[2] and lines[1]["error"].startswith("IsADirectoryError")
    assert "IsADirectoryError" in capsys.readouterr().err
    made = {name: (out / name).stat().st_mtime_ns for name in ("0000.png", "0002.png")}

    (out / "0001.png").rmdir()
    assert main([*command, "--resume"]) == 0
    assert capsys.readouterr().out.split() == [str(out / "0001.png")]  # only the missing one was made
    assert [(line["index"], line["file"]) for line in manifest(out)] == [(0, "0000.png"), (1, "0001.png"),
                                                                       (2, "0002.png")]  # fmt: skip
    assert {name: (out / name).stat().st_mtime_ns for name in made} == made
    assert read_metadata(out / "0001.png")["prompt"] == odd


def test_a_killed_batch_keeps_the_lines_it_made(tiny_preset, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS * 100))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "models", "--preset", str(tiny_preset), "generate", "--prompts", str(prompts),
               "--out-dir", str(out), "--steps", "1"]  # fmt: skip
    run = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while run.poll() is None and time.monotonic() < deadline:
            if (out / "manifest.jsonl").is_file() and (out / "manifest.jsonl").read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.05)
    finally:
        run.kill()
        run.wait()
    lines = manifest(out)  # every line whole: each is written in one append
    assert 3 <= len(lines) < len(PROMPTS) * 100, "the batch should have been stopped part way"
    assert [line["index"] for line in lines] == list(range(len(lines)))
    assert all((out / line["file"]).is_file() for line in lines)
