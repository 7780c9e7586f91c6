"""Bad input of every kind, sent to the launched app: each case gets a clear message (or, for awkward but
valid images, a result), and the server keeps serving afterwards.

One table, one row per case: (endpoint, arguments, expected), where `expected` is a regular expression the
error must match, or `OK` when the request must succeed. `FILE:<name>` arguments are uploads built by `UPLOADS`.
"""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from models.__main__ import main
from models.metadata import read_metadata
from models.shapes import render
from tests.test_inputs import animated_gif, bomb_png, exif_rotated, png_bytes

OK = None
PROMPT = "a small red star at the top on a blue background"


def picture() -> Image.Image:
    return render("a large green circle in the center on a white background", seed=1)


def mask(size: int, painted: bool) -> Image.Image:
    image = Image.new("L", (size, size), 0)
    if painted:
        image.paste(255, (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    return image


UPLOADS = {
    "picture.png": lambda: png_bytes(picture()),
    "mask.png": lambda: png_bytes(mask(64, painted=True)),
    "empty_mask.png": lambda: png_bytes(mask(64, painted=False)),
    "small_mask.png": lambda: png_bytes(mask(32, painted=True)),
    "text.png": lambda: b"this is text, not a PNG",
    "truncated.png": lambda: png_bytes(picture())[:200],
    "bomb.png": lambda: bomb_png(100_000, 100_000),
    "huge.png": lambda: bomb_png(5000, 5000),
    "large.png": lambda: png_bytes(Image.new("L", (5000, 5000), 128)),  # 25 Mpx in a few KB
    "empty.png": lambda: b"",
    "one_pixel.png": lambda: png_bytes(Image.new("RGB", (1, 1), (200, 30, 30))),
    "sliver.png": lambda: png_bytes(Image.new("RGB", (4000, 2), (200, 30, 30))),
    "grey16.png": lambda: png_bytes(Image.new("I;16", (32, 32), 40000)),
    "cmyk.jpg": lambda: png_bytes(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), format="JPEG"),
    "palette.png": lambda: png_bytes(picture().convert("P")),
    "alpha.png": lambda: png_bytes(picture().convert("RGBA")),
    "animated.gif": animated_gif,
    "rotated.jpg": exif_rotated,
}

IMAGE = "FILE:picture.png"
CASES = [
    # uploads that are not images, or are too big to decode
    ("/describe", {"image": None}, r"`image` is required"),
    ("/describe", {"image": "FILE:text.png"}, r"cannot identify image file|not a readable image"),
    ("/describe", {"image": "FILE:truncated.png"}, r"truncated|not a readable image"),
    ("/describe", {"image": "FILE:empty.png"}, r"cannot identify image file|not a readable image"),
    ("/describe", {"image": "FILE:bomb.png"}, r"declares more than the .* pixels allowed|decompression bomb"),
    ("/describe", {"image": "FILE:huge.png"}, r"more than the .* pixels allowed"),
    ("/describe", {"image": "FILE:large.png"}, r"`image` is 5000x5000, more than the .* pixels allowed"),
    ("/inpaint", {"image": "FILE:large.png", "mask": "FILE:mask.png", "prompt": PROMPT}, r"5000x5000, more than the"),
    ("/instruct_edit", {"image": "FILE:large.png", "instruction": "make it red"}, r"5000x5000, more than the"),
    ("/regenerate", {"image": "FILE:bomb.png", "description": PROMPT}, r"declares more than the .* pixels allowed|decompression bomb"),
    # awkward but valid images: decoded to RGB and used
    ("/describe", {"image": "FILE:one_pixel.png"}, OK),
    ("/describe", {"image": "FILE:sliver.png"}, OK),
    ("/describe", {"image": "FILE:grey16.png"}, OK),
    ("/describe", {"image": "FILE:cmyk.jpg"}, OK),
    ("/describe", {"image": "FILE:palette.png"}, OK),
    ("/describe", {"image": "FILE:alpha.png"}, OK),
    ("/describe", {"image": "FILE:animated.gif"}, OK),
    ("/regenerate", {"image": "FILE:rotated.jpg", "description": PROMPT, "keep_layout": 0.5}, OK),
    ("/style_transfer", {"image": "FILE:sliver.png", "style": "warm", "prompt": PROMPT}, OK),
    # masks
    ("/inpaint", {"image": IMAGE, "mask": "FILE:empty_mask.png", "prompt": PROMPT}, r"`mask` is empty"),
    ("/inpaint", {"image": IMAGE, "mask": "FILE:small_mask.png", "prompt": PROMPT}, r"`mask` must be the size"),
    ("/inpaint", {"image": IMAGE, "mask": None, "prompt": PROMPT}, r"`mask` is required|paint"),
    # text
    ("/text_to_image", {"prompt": ""}, r"`prompt` is empty"),
    ("/text_to_image", {"prompt": " \n\t "}, r"`prompt` is empty"),
    ("/text_to_image", {"prompt": "x" * 10_000}, r"`prompt` must be at most 2000 characters"),
    ("/text_to_image", {"prompt": "a red star \u202e\u200b\ufffd ÿþ 🌟"}, OK),  # odd but valid text is drawn
    ("/text_to_image", {"prompt": "a red\x00 star"}, r"NUL character"),
    ("/text_to_image", {"prompt": PROMPT, "negative_prompt": "y" * 10_000}, r"`negative_prompt` must be at most"),
    ("/regenerate", {"image": IMAGE, "description": ""}, r"`description` is empty"),
    ("/instruct_edit", {"image": IMAGE, "instruction": "   "}, r"`instruction` is empty"),
    # numbers out of range, NaN, fractional, negative
    ("/text_to_image", {"prompt": PROMPT, "steps": 0}, r"`?steps`? must be|less than minimum"),
    ("/text_to_image", {"prompt": PROMPT, "steps": 10**6}, r"`?steps`? must be|greater than maximum"),
    ("/text_to_image", {"prompt": PROMPT, "steps": 2.5}, r"`steps` must be a whole number"),
    ("/text_to_image", {"prompt": PROMPT, "steps": "NaN"}, r"`?steps`? must be|not a valid|NaN"),
    ("/text_to_image", {"prompt": PROMPT, "guidance": -3}, r"`?guidance`? must be|less than minimum"),
    ("/text_to_image", {"prompt": PROMPT, "guidance": "inf"}, r"Expected a `float`, .* 'inf'"),
    ("/text_to_image", {"prompt": PROMPT, "width": 4096, "height": 4096}, r"greater than maximum value 1024"),
    ("/text_to_image", {"prompt": PROMPT, "width": -64}, r"`?width`? must be|less than minimum"),
    ("/text_to_image", {"prompt": PROMPT, "height": 60}, r"`height` must be a multiple of 8"),
    ("/text_to_image", {"prompt": PROMPT, "seed": 2**80}, r"greater than maximum value 4294967295"),
    ("/text_to_image", {"prompt": PROMPT, "num_images": 10_000}, r"`?num_images`? must be|greater than maximum"),
    ("/text_to_image", {"prompt": PROMPT, "num_images": 0}, r"`?num_images`? must be|less than minimum"),
    ("/regenerate", {"image": IMAGE, "description": PROMPT, "keep_layout": 1.5}, r"`?keep_layout`? must be|greater than maximum"),
    ("/style_transfer", {"image": IMAGE, "style": "warm", "strength": "nan"}, r"Expected a `float`, .* 'nan'"),
    ("/style_transfer", {"image": IMAGE, "style": "warm", "style_weight": 1e9}, r"weight of 'warm' must be|greater than maximum"),
    # names: unknown, path traversal, absolute paths, malformed weights
    ("/text_to_image", {"prompt": PROMPT, "preset": "no-such-preset"}, r"no-such-preset"),
    ("/text_to_image", {"prompt": PROMPT, "preset": "../../etc"}, r"`preset` must be one of|not in the list"),
    ("/text_to_image", {"prompt": PROMPT, "preset": "someone/remote-code-model"}, r"`preset` must be one of|not in the list"),
    ("/text_to_image", {"prompt": PROMPT, "scheduler": "magic"}, r"`scheduler` must be one of|not in the list"),
    ("/text_to_image", {"prompt": PROMPT, "adapters": "../../etc/passwd:1"}, r"unknown adapter"),
    ("/text_to_image", {"prompt": PROMPT, "adapters": "/etc/passwd"}, r"unknown adapter '/etc/passwd'"),
    ("/text_to_image", {"prompt": PROMPT, "adapters": "warm:lots"}, r"must be a number"),
    ("/text_to_image", {"prompt": PROMPT, "adapters": "warm:nan"}, r"weight of 'warm' must be"),
    ("/style_transfer", {"image": IMAGE, "style": "missing"}, r"unknown adapter 'missing'"),
    ("/style_transfer", {"image": IMAGE, "style": "../adapters/warm"}, r"unknown adapter"),
]


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    for name, make in UPLOADS.items():
        (folder / name).write_bytes(make())
    return folder


def test_the_table_covers_at_least_30_cases():
    assert len(CASES) >= 30 and len({(e, repr(a)) for e, a, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("endpoint,arguments,expected", CASES, ids=[f"{e}-{i}" for i, (e, _, _) in enumerate(CASES)])
def test_each_bad_input_gets_a_clear_answer_and_the_server_keeps_serving(client, uploads, endpoint, arguments, expected):
    arguments = {k: handle_file(uploads / v[5:]) if isinstance(v, str) and v.startswith("FILE:") else v
                 for k, v in arguments.items()}  # fmt: skip
    if expected is OK:
        client.predict(**arguments, api_name=endpoint)  # raises AppError on failure
    else:
        with pytest.raises(AppError, match=expected):
            client.predict(**arguments, api_name=endpoint)
    gallery, meta = client.predict(prompt=PROMPT, api_name="/text_to_image")
    assert meta["job"] == "text_to_image" and gallery


def uploaded(url: str, path) -> dict:
    """A file sent to the app's upload route, as the page sends it: its file data."""
    response = httpx.post(f"{url}gradio_api/upload", files={"files": (path.name, path.read_bytes(), "image/png")})
    response.raise_for_status()
    return {"path": response.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def as_the_page_does(url: str, elem_id: str, trigger: str, inputs: list) -> dict:
    """Fire an event of the widget `elem_id` as the page does (join the queue, read the stream): its last message."""
    config = httpx.get(f"{url}config").json()
    widget = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)
    event = next(d["id"] for d in config["dependencies"] if [widget, trigger] in d["targets"])
    session = uuid.uuid4().hex
    httpx.post(f"{url}gradio_api/queue/join", json={"data": inputs, "fn_index": event, "trigger_id": widget,
                                                    "session_hash": session, "event_data": None}).raise_for_status()  # fmt: skip
    with httpx.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}, timeout=60) as stream:
        for line in stream.iter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                return message
    raise AssertionError("the event never completed")


@pytest.mark.parametrize("elem_id,trigger", [("edit-editor", "upload"), ("inpaint-run", "click")])
def test_the_editor_checks_a_picture_before_decoding_it(server, client, uploads, elem_id, trigger):
    """The stock editor decoded a 25 Mpx PNG of a few KB into three 5000x5000 RGBA images before Depict saw it."""
    large, small = uploaded(server, uploads / "large.png"), uploaded(server, uploads / "picture.png")
    refused = as_the_page_does(server, elem_id, trigger, [{"background": large, "layers": [], "composite": large}])
    assert not refused["success"]
    assert re.search(r"`image` is 5000x5000, more than the .* pixels allowed", refused["output"]["error"]), refused
    assert as_the_page_does(server, elem_id, trigger, [{"background": small, "layers": [], "composite": small}])["success"]
    gallery, meta = client.predict(prompt=PROMPT, api_name="/text_to_image")
    assert meta["job"] == "text_to_image" and gallery


def test_a_prompts_file_with_a_stray_byte_skips_that_line(tiny_preset, tmp_path, capsys):
    """A byte that is not UTF-8 ended `python -m models generate` in a traceback; a BOM became part of a prompt."""
    prompts, out = tmp_path / "prompts.txt", tmp_path / "out"
    prompts.write_bytes(b"\xef\xbb\xbf" + PROMPT.encode() + b"\na caf\xe9 scene\na large blue circle in the center\n")
    assert main(["--preset", str(tiny_preset), "generate", "--prompts", str(prompts), "--out-dir", str(out)]) == 0
    assert f"prompts file {prompts} line 2 skipped: byte 0xe9 at character 6 is not UTF-8" in capsys.readouterr().err
    assert [read_metadata(path)["prompt"] for path in sorted(out.glob("*.png"))] == [
        PROMPT, "a large blue circle in the center"]  # fmt: skip


def test_a_prompts_file_that_cannot_be_read_ends_in_a_sentence(tiny_preset, tmp_path):
    with pytest.raises(SystemExit, match=r"error: prompts file .*nope.txt cannot be read \(No such file or directory\)"):
        main(["--preset", str(tiny_preset), "generate", "--prompts", str(tmp_path / "nope.txt"), "--out-dir",
              str(tmp_path / "out")])  # fmt: skip
