"""Batches from the command line: prompts split across two processes by Accelerate, and folders of images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
