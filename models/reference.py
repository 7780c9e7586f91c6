"""Style from a reference image: an IP-Adapter (`h94/IP-Adapter`) with InstantStyle's style-only block scales.

The adapter is loaded once into the preset's shared UNet and switched on only for the requests that bring a
reference image (under the pipeline's lock), so text-to-image, inpainting and other style requests never see it.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path

from . import hub

log = logging.getLogger(__name__)

# InstantStyle: only the attention layers that carry style take the reference (the rest at 0); SD 2.x has no weights
STYLE_ONLY_BLOCKS = {"sdxl": ("block_0", [0.0, 1.0, 0.0]), "sd": ("block_1", 1.0)}


def style_only_scale(pipeline, weight: float) -> dict:
    """`set_ip_adapter_scale`'s argument: the style blocks of this architecture at `weight`, every other block at 0."""
    block, scales = STYLE_ONLY_BLOCKS["sdxl" if "XL" in type(pipeline).__name__ else "sd"]
    scaled = [weight * s for s in scales] if isinstance(scales, list) else weight * scales
    return {"up": {block: scaled}}


class ReferenceAdapter:
    """An IP-Adapter named `repo:subfolder/weight.safetensors`, with its image encoder from `subfolder/image_encoder`;
    a hub repo's files are fetched into the hub cache (`hub.snapshot_folder`) the first time a reference is used."""

    def __init__(self, spec: str):
        self.spec = spec
        self.source, _, path = spec.partition(":")
        self.subfolder, _, self.weight_name = path.rpartition("/")
        self._states = None  # (plain attention processors, the adapter's processors, the image projection)

    def _load(self, pipeline) -> None:
        started = time.perf_counter()
        unet = pipeline.unet
        plain = dict(unet.attn_processors)
        local = Path(self.source).is_dir()
        folder = self.source if local else hub.snapshot_folder(self.source, hub.reference_files(self.spec))
        pipeline.load_ip_adapter(folder, subfolder=self.subfolder, weight_name=self.weight_name)
        self._states = (plain, dict(unet.attn_processors), unet.encoder_hid_proj)
        log.info("loaded IP-Adapter %s/%s in %.2fs", self.source, self.weight_name, time.perf_counter() - started)

    @contextmanager
    def active(self, pipeline, weight: float):
        """The adapter on, style blocks at `weight`, for the body of the `with` (call under the pipeline's lock)."""
        unet = pipeline.unet
        try:
            if self._states is None:
                self._load(pipeline)
            plain, adapter, projection = self._states
            unet.set_attn_processor(dict(adapter))  # it pops what it sets: hand it a copy
            unet.encoder_hid_proj = projection
            unet.config.encoder_hid_dim_type = "ip_image_proj"
            pipeline.set_ip_adapter_scale(style_only_scale(pipeline, weight))
            yield
        finally:
            if self._states is not None:
                unet.set_attn_processor(dict(self._states[0]))
            unet.encoder_hid_proj = None
            unet.config.encoder_hid_dim_type = None
