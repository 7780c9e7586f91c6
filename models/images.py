"""Input images and masks: size-checked before decoding, normalised to RGB (or L for masks)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .settings import LIMITS

MIN_WORKING_SIDE = 64
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16-bit greyscale as PIL opens it (I: older readers)


def _open(source, name: str) -> Image.Image:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"`{name}` file {path.name!r} does not exist.")
        size = path.stat().st_size
        if size > LIMITS.max_upload_bytes:
            raise ValueError(f"`{name}` must be at most {LIMITS.max_upload_bytes // 2**20} MB, got {size / 2**20:.1f} MB.")
        source = path.read_bytes()
    if isinstance(source, (bytes, bytearray)):
        if len(source) > LIMITS.max_upload_bytes:
            raise ValueError(f"`{name}` must be at most {LIMITS.max_upload_bytes // 2**20} MB.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                return Image.open(io.BytesIO(source))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ValueError(f"`{name}` declares more than the {LIMITS.max_image_pixels:,} pixels allowed ({error}).") from error
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"`{name}` is not a readable image file ({type(error).__name__}).") from error
    if isinstance(source, np.ndarray):
        return Image.fromarray(source)
    if isinstance(source, Image.Image):
        return source
    raise ValueError(f"`{name}` must be an image, got {type(source).__name__}.")


def _check_pixels(image: Image.Image, name: str) -> None:
    width, height = image.size
    if width * height > LIMITS.max_image_pixels:
        raise ValueError(
            f"`{name}` is {width}x{height}, more than the {LIMITS.max_image_pixels:,} pixels allowed; upload a smaller image."
        )
    if width < 1 or height < 1:
        raise ValueError(f"`{name}` has no pixels ({width}x{height}).")


def check_upload(source, name: str = "image") -> Image.Image:
    """An upload (path, bytes, array or PIL image) opened but not decoded, once its bytes and the pixel count its
    header declares are within the limits; raises `ValueError` naming what is wrong."""
    if source is None:
        raise ValueError(f"`{name}` is required: upload an image.")
    image = _open(source, name)
    _check_pixels(image, name)  # from the header: nothing is decoded yet
    return image


def _decode(source, name: str) -> Image.Image:
    image = check_upload(source, name)
    try:
        image.seek(0)  # animated images: the first frame
        image = ImageOps.exif_transpose(image)
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"`{name}` is truncated or corrupt ({type(error).__name__}: {error}).") from error
    return _to_8_bit(image)


def _to_8_bit(image: Image.Image) -> Image.Image:
    """16-bit greyscale scaled by its bit depth (65535 -> 255: a flat picture stays flat, not stretched), LAB turned
    into sRGB by a colour transform; other modes as they are (PIL converts them)."""
    if image.mode in _SIXTEEN_BIT:
        array = np.clip(np.asarray(image, dtype=np.float64), 0, 65535) / 257
        return Image.fromarray(array.round().astype(np.uint8))
    if image.mode == "LAB":
        lab_to_srgb = ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
        return ImageCms.applyTransform(image, lab_to_srgb)
    return image


def load_image(source, name: str = "image") -> Image.Image:
    """An RGB image from a path, bytes, array or PIL image; transparency is composited on white."""
    image = _decode(source, name)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, image)
    return image.convert("RGB")


def load_mask(source, size: tuple[int, int], name: str = "mask") -> Image.Image:
    """A binary L mask (255 = repaint) of exactly `size`; its alpha if it has one."""
    image = _decode(source, name)
    if image.size != size:
        raise ValueError(f"`{name}` must be the size of the image ({size[0]}x{size[1]}), got {image.size[0]}x{image.size[1]}.")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        mask = image.convert("RGBA").getchannel("A")
    else:
        mask = image.convert("L")
    mask = mask.point(lambda v: 255 if v >= 128 else 0)
    if mask.getbbox() is None:
        raise ValueError(f"`{name}` is empty: paint over the region to change.")
    return mask


def fit_size(size: tuple[int, int], target: int) -> tuple[int, int]:
    """Scale so the longer side is `target`, keeping the aspect ratio, each side a multiple of 8 (at least 64)."""
    width, height = size
    scale = target / max(width, height)
    return tuple(max(MIN_WORKING_SIDE, int(round(side * scale / 8)) * 8) for side in (width, height))
