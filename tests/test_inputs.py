"""Uploads of every awkward kind: decoded safely into RGB, or refused with a message naming what is wrong."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from models.images import fit_size, load_image, load_mask


def png_bytes(image: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=save.pop("format", "PNG"), **save)
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares huge dimensions."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def exif_rotated() -> bytes:
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    return png_bytes(image, format="JPEG", exif=exif.tobytes())


def animated_gif() -> bytes:
    frames = [Image.new("P", (16, 16), i) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


ACCEPTED = [
    ("rgb", lambda: png_bytes(Image.new("RGB", (64, 64), (1, 2, 3))), (64, 64)),
    ("1x1", lambda: png_bytes(Image.new("RGB", (1, 1))), (1, 1)),
    ("extreme aspect", lambda: png_bytes(Image.new("RGB", (4000, 2))), (4000, 2)),
    ("16-bit grey", lambda: png_bytes(Image.fromarray(np.arange(256, dtype=np.uint16).reshape(16, 16) * 256)), (16, 16)),
    ("cmyk jpeg", lambda: png_bytes(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), format="JPEG"), (8, 8)),
    ("palette", lambda: png_bytes(Image.new("P", (8, 8), 3)), (8, 8)),
    ("alpha", lambda: png_bytes(Image.new("RGBA", (8, 8), (255, 0, 0, 0))), (8, 8)),
    ("animated gif", animated_gif, (16, 16)),
    ("exif rotation honoured", exif_rotated, (20, 40)),
    ("pil image", lambda: Image.new("L", (5, 7)), (5, 7)),
    ("numpy array", lambda: np.zeros((6, 4, 3), np.uint8), (4, 6)),
]


@pytest.mark.parametrize("name,make,size", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_awkward_images_become_rgb(name, make, size):
    image = load_image(make())
    assert image.mode == "RGB" and image.size == size


def lab_tiff(lab: tuple[int, int, int]) -> bytes:
    """A TIFF in CIELAB (PIL's LAB: L 0-255 for 0-100, a and b offset by 128)."""
    return png_bytes(Image.new("LAB", (8, 8), lab), format="TIFF")


COLOURS = [  # an upload -> its colour once loaded, within 3 levels
    ("flat 16-bit grey", lambda: png_bytes(Image.new("I;16", (8, 8), 40000)), (156, 156, 156)),
    ("16-bit white", lambda: png_bytes(Image.new("I;16", (8, 8), 65535)), (255, 255, 255)),
    ("16-bit black", lambda: png_bytes(Image.new("I;16", (8, 8), 0)), (0, 0, 0)),
    ("16-bit big-endian", lambda: Image.frombytes("I;16B", (2, 2), (40000).to_bytes(2, "big") * 4), (156, 156, 156)),
    ("16-bit tiff", lambda: png_bytes(Image.new("I;16", (8, 8), 20000), format="TIFF"), (78, 78, 78)),
    ("32-bit int holding 16-bit", lambda: Image.new("I", (8, 8), 40000), (156, 156, 156)),
    ("lab red", lambda: lab_tiff((136, 208, 195)), (250, 3, 11)),
    ("lab white", lambda: lab_tiff((255, 128, 128)), (255, 255, 255)),
    ("lab mid grey", lambda: lab_tiff((128, 128, 128)), (119, 119, 119)),
]


@pytest.mark.parametrize("name,make,colour", COLOURS, ids=[c[0] for c in COLOURS])
def test_deep_and_lab_images_keep_their_colours(name, make, colour):
    image = load_image(make())
    assert image.mode == "RGB"
    assert np.abs(np.asarray(image, dtype=int) - colour).max() <= 3, image.getpixel((0, 0))


def test_16_bit_grey_keeps_its_shades():
    ramp = np.linspace(0, 65535, 16 * 16).astype(np.uint16).reshape(16, 16)
    grey = np.asarray(load_image(png_bytes(Image.fromarray(ramp))))[..., 0]
    assert np.abs(grey.astype(int) - (ramp / 257).round()).max() <= 1


@pytest.mark.parametrize("mask", [Image.new("I;16", (8, 8), 40000), Image.new("LAB", (8, 8), (255, 128, 128))],
                         ids=["16-bit", "lab"])  # fmt: skip
def test_16_bit_and_lab_masks_are_read(mask):
    assert load_mask(png_bytes(mask, format="TIFF"), (8, 8)).getextrema() == (255, 255)


def test_transparent_pixels_become_white():
    assert load_image(png_bytes(Image.new("RGBA", (4, 4), (255, 0, 0, 0)))).getpixel((0, 0)) == (255, 255, 255)


REFUSED = [
    ("none", lambda: None, "`image` is required"),
    ("text renamed .png", lambda: b"hello, I am text", "not a readable image"),
    ("truncated png", lambda: png_bytes(Image.new("RGB", (64, 64), (9, 9, 9)))[:60], "truncated|not a readable"),
    ("decompression bomb", lambda: bomb_png(100_000, 100_000), "more than the .* pixels allowed|not a readable"),
    ("huge declared size", lambda: bomb_png(5000, 5000), "more than the .* pixels allowed"),
    ("too many bytes", lambda: b"\x89PNG" + b"\0" * (21 * 2**20), "must be at most 20 MB"),
    ("wrong type", lambda: 42, "must be an image"),
]


@pytest.mark.parametrize("name,make,message", REFUSED, ids=[c[0] for c in REFUSED])
def test_bad_uploads_are_refused_clearly(name, make, message):
    with pytest.raises(ValueError, match=message):
        load_image(make())


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="'nope.png' does not exist"):
        load_image(tmp_path / "nope.png")


def test_masks_from_alpha_or_grey_must_match_and_not_be_empty():
    painted = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    painted.putpixel((2, 2), (255, 255, 255, 255))
    assert np.asarray(load_mask(painted, (8, 8))).sum() == 255
    assert load_mask(Image.new("L", (8, 8), 200), (8, 8)).getextrema() == (255, 255)
    with pytest.raises(ValueError, match="`mask` is empty"):
        load_mask(Image.new("L", (8, 8), 0), (8, 8))
    with pytest.raises(ValueError, match=r"`mask` must be the size of the image \(8x8\), got 4x4"):
        load_mask(Image.new("L", (4, 4), 255), (8, 8))


@pytest.mark.parametrize("size,target,expected", [((64, 64), 64, (64, 64)), ((1000, 500), 512, (512, 256)),
                                                  ((4000, 2), 512, (512, 64)), ((1, 1), 512, (512, 512))])
def test_working_size_keeps_aspect_in_multiples_of_8(size, target, expected):
    assert fit_size(size, target) == expected
