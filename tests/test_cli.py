"""`python -m models`: the engine's jobs from the command line."""

from __future__ import annotations

import pytest
from PIL import Image

from models.__main__ import main
from models.metadata import read_metadata
from models.shapes import render

PROMPT = "a small red star at the top on a blue background"


def test_generate_writes_a_png_with_its_parameters(tiny_preset, tmp_path, capsys):
    out = tmp_path / "star.png"
    assert main(["--preset", str(tiny_preset), "generate", PROMPT, "--seed", "3", "--out", str(out)]) == 0
    meta = read_metadata(Image.open(out))
    assert (meta["prompt"], meta["seed"], meta["job"]) == (PROMPT, 3, "text_to_image")
    assert str(out) in capsys.readouterr().out


def test_generate_many_prompts_from_a_file(tiny_preset, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(f"{PROMPT}\n\na large blue circle in the center on a red background\n")
    assert main(["--preset", str(tiny_preset), "generate", "--prompts", str(prompts), "--out-dir", str(tmp_path / "out"),
                 "--adapter", "warm:0.5"]) == 0  # fmt: skip
    written = sorted((tmp_path / "out").glob("*.png"))
    assert [p.name for p in written] == ["0000.png", "0001.png"]
    assert read_metadata(Image.open(written[1]))["adapters"] == {"warm": 0.5}


def test_image_jobs_and_bad_input(tiny_preset, tmp_path, capsys):
    picture = tmp_path / "picture.png"
    render("a large green circle in the center on a white background", seed=1).save(picture)
    preset = ["--preset", str(tiny_preset)]
    assert main([*preset, "describe", str(picture)]) == 0
    for job, extra in (("regenerate", ["--description", PROMPT]), ("style", ["--style", "cool"]),
                       ("edit", ["--instruction", "make the circle red"])):  # fmt: skip
        out = tmp_path / f"{job}.png"
        assert main([*preset, job, str(picture), *extra, "--out", str(out)]) == 0
        assert Image.open(out).size == (64, 64)
    assert main([*preset, "generate", PROMPT, "--steps", "0", "--out", str(tmp_path / "x.png")]) == 2
    assert "`steps` must be" in capsys.readouterr().err


def test_resume_needs_a_batch(capsys):
    with pytest.raises(SystemExit):
        main(["generate", PROMPT, "--resume"])
    assert "--resume continues a batch" in capsys.readouterr().err
