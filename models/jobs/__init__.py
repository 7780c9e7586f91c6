"""One module per job; each takes a frozen params dataclass and returns a `Result`."""

from .base import SamplingParams
from .describe import Describe, DescribeParams
from .inpaint import Inpaint, InpaintParams
from .instruct_edit import InstructEdit, InstructEditParams
from .regenerate import Regenerate, RegenerateParams
from .style_transfer import StyleTransfer, StyleTransferParams
from .text_to_image import TextToImage, TextToImageParams
from .upscale import SCALES, Upscale, UpscaleParams

__all__ = [
    "Describe", "DescribeParams", "Inpaint", "InpaintParams", "InstructEdit", "InstructEditParams",
    "Regenerate", "RegenerateParams", "SamplingParams", "StyleTransfer", "StyleTransferParams", "TextToImage", "TextToImageParams",
    "SCALES", "Upscale", "UpscaleParams",
]  # fmt: skip
