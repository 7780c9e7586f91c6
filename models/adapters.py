"""LoRA adapters: a catalog of safetensors files, each loaded into a pipeline once and switched by name.

A file may also carry a LoRA for the autoencoder's decoder (`vae.*` keys, as the bundled style adapters do): it
goes into a private copy of the VAE that decodes only the requests using that adapter, so jobs sharing the
pipeline's own VAE (the instruct-edit pipeline) never see it.
"""

from __future__ import annotations

import copy
import logging
import math
import re
import time
from pathlib import Path

from safetensors import safe_open

from . import hub
from .settings import LIMITS

log = logging.getLogger(__name__)
DECODER_PREFIX = "vae."


class AdapterCatalog:
    """LoRA files (`*.safetensors`) in a list of folders, addressed by file stem; earlier folders win."""

    def __init__(self, folders: list[Path]):
        self.folders = [Path(f) for f in folders]

    def files(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for folder in self.folders:
            if not folder.is_dir():
                continue
            root = folder.resolve()
            for path in sorted(folder.glob("*.safetensors")):
                if path.is_file() and path.resolve().is_relative_to(root):
                    found.setdefault(path.stem, path)
        return found

    def names(self) -> list[str]:
        return sorted(self.files())

    def check(self, adapters: dict[str, float]) -> None:
        """`ValueError` unless every name is in the catalog and every weight finite and in bounds."""
        if not isinstance(adapters, dict):
            raise ValueError(f"`adapters` must map adapter names to weights, got {type(adapters).__name__}.")
        known = self.files()
        cap = LIMITS.max_adapter_weight
        for name, weight in adapters.items():
            if name not in known:
                listed = ", ".join(sorted(known)) or "none"
                raise ValueError(f"`adapters` names an unknown adapter {name!r}; available: {listed}.")
            if not isinstance(weight, (int, float)) or not math.isfinite(weight) or abs(weight) > cap:
                raise ValueError(f"`adapters` weight of {name!r} must be a number in [-{cap}, {cap}], got {weight!r}.")


def parse_adapters(text: str | None) -> dict[str, float]:
    """`"warm:0.8, cool"` -> {"warm": 0.8, "cool": 1.0} (A1111-like: items split on commas or new lines; a bare name
    means weight 1). The UI's adapter box and the command line's `--adapter` read through it."""
    adapters = {}
    for item in filter(None, (part.strip() for part in re.split(r"[,\n]", text or ""))):
        name, _, weight = item.rpartition(":") if ":" in item else (item, "", "1")
        try:
            adapters[name.strip()] = float(weight)
        except ValueError:
            raise ValueError(f"`adapters` weight of {name.strip()!r} must be a number, got {weight!r}.") from None
    return adapters


def peft_name(name: str) -> str:
    """peft adapter names become module attribute keys: keep them to word characters."""
    return "lora_" + re.sub(r"\W", "_", name)


class AdapterState:
    """The adapters loaded into one pipeline's modules; applies a request's set without touching the disk."""

    def __init__(self, catalog: AdapterCatalog):
        self.catalog = catalog
        self.fused: dict[str, float] = {}  # always-on adapters (a preset's speed LoRA) merged into the weights
        self.loaded: dict[str, str] = {}  # catalog name -> peft name
        self.active: dict[str, float] | None = None
        self.decoder = None  # the VAE copy holding adapters' decoder LoRAs, made for the first such file
        self.with_decoder: set[str] = set()  # catalog names whose file carries a decoder LoRA

    def _load(self, pipeline, name: str, source: str | Path, weight_name: str | None = None) -> None:
        started = time.perf_counter()
        try:
            pipeline.load_lora_weights(str(source), weight_name=weight_name, adapter_name=peft_name(name))
            if weight_name and Path(source, weight_name).is_file():
                self._load_decoder(pipeline, name, Path(source, weight_name))
        except Exception as error:  # any failure to read or inject is the file's fault, named for the user
            for owner in (pipeline, self.decoder):
                try:
                    owner.delete_adapters(peft_name(name))
                except Exception:  # nothing was injected there: nothing to clean up
                    pass
            raise ValueError(
                f"Adapter {name!r} could not be loaded: it is not a LoRA for this model in safetensors format "
                f"({type(error).__name__}: {str(error)[:200]})."
            ) from error
        self.loaded[name] = peft_name(name)
        log.info("loaded adapter %s in %.2fs", name, time.perf_counter() - started)

    def _load_decoder(self, pipeline, name: str, path: Path) -> None:
        with safe_open(path, "pt") as stored:  # only the decoder's tensors: the UNet's were read by diffusers
            part = {key: stored.get_tensor(key) for key in stored.keys() if key.startswith(DECODER_PREFIX)}
        if not part:
            return
        if self.decoder is None:
            self.decoder = copy.deepcopy(pipeline.vae)
        self.decoder.load_lora_adapter(part, prefix=DECODER_PREFIX.rstrip("."), adapter_name=peft_name(name))
        self.with_decoder.add(name)

    def fuse_fixed(self, pipeline, sources: dict[str, tuple[str, str | None]]) -> None:
        """Merge the preset's always-on adapters (name -> (repo or folder, weight file)) into the base weights.

        Fused, they cost nothing per step; their LoRA layers are then unloaded, so switching or disabling the
        request's adapters never touches them. A hub repo's file is fetched into the hub cache first when missing.
        """
        for name, (source, weight_name) in sources.items():
            folder = source if Path(source).is_dir() else hub.snapshot_folder(source, [weight_name])
            self._load(pipeline, name, folder, weight_name)
        names = [self.loaded.pop(name) for name in sources]
        pipeline.set_adapters(names, adapter_weights=[1.0] * len(names))
        pipeline.fuse_lora(adapter_names=names, lora_scale=1.0)
        pipeline.unload_lora_weights()
        self.fused.update({name: 1.0 for name in sources})

    def apply(self, pipeline, adapters: dict[str, float]):
        """Make exactly `adapters` active at their weights (beside the fused ones); load files seen for the first time.

        Returns the VAE to decode this request with when an active adapter has a decoder LoRA, else None.
        """
        wanted = dict(adapters)
        new = [name for name in wanted if name not in self.loaded]
        files = self.catalog.files() if new else {}  # the folders are read only when something is new to load
        for name in new:
            path = files[name]
            self._load(pipeline, name, path.parent, path.name)
        decoding = {name: weight for name, weight in wanted.items() if name in self.with_decoder}
        if wanted != self.active:
            if not wanted:
                if self.loaded:
                    pipeline.disable_lora()
            else:
                pipeline.enable_lora()
                pipeline.set_adapters([self.loaded[n] for n in wanted], adapter_weights=list(wanted.values()))
            if decoding:
                self.decoder.set_adapters([self.loaded[n] for n in decoding], weights=list(decoding.values()))
            self.active = wanted
        return self.decoder if decoding else None

    def reset(self) -> None:
        """Forget what is active, so the next `apply` sets it again (after a failed job)."""
        self.active = None
