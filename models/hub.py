"""The files each hub preset needs from each allow-listed repo, and their download (logged as it goes).

Only what `from_pretrained` reads: configs, tokenizer files and one safetensors file per weight, fp32 on CPU and the
`*.fp16.safetensors` variant on CUDA where the repo has one; never ONNX exports, `.bin` duplicates or single-file
checkpoints. `python -m models.hub [PRESET] [--fp16]` prints the `hf download` lines (the README lists them).
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from huggingface_hub import snapshot_download
from tqdm.auto import tqdm

from .presets import HUB_PRESETS, Preset

log = logging.getLogger(__name__)

_TOKENIZER = ("vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json")


def _pipeline(models: tuple[str, ...], encoders: tuple[str, ...], tokenizers: tuple[str, ...]) -> dict[str, str]:
    """A diffusers pipeline repo's files: path -> weight suffix to vary (`""` for files without variants)."""
    files = {"model_index.json": "", "scheduler/scheduler_config.json": ""}
    for folder in tokenizers:
        files.update({f"{folder}/{name}": "" for name in _TOKENIZER})
    for folder in models:
        files.update({f"{folder}/config.json": "", f"{folder}/diffusion_pytorch_model.safetensors": "weights"})
    for folder in encoders:
        files.update({f"{folder}/config.json": "", f"{folder}/model.safetensors": "weights"})
    return files


_SD = _pipeline(("unet", "vae"), ("text_encoder",), ("tokenizer",))
_AUTOENCODER_TINY = {"config.json": "", "diffusion_pytorch_model.safetensors": ""}
REPOS: dict[str, dict[str, str]] = {
    "stabilityai/sd-turbo": _SD,
    "stabilityai/sdxl-turbo": _pipeline(("unet", "vae"), ("text_encoder", "text_encoder_2"), ("tokenizer", "tokenizer_2")),
    "stable-diffusion-v1-5/stable-diffusion-v1-5": _SD,
    "timbrooks/instruct-pix2pix": _SD,
    "latent-consistency/lcm-lora-sdv1-5": {"pytorch_lora_weights.safetensors": ""},
    "madebyollin/taesd": _AUTOENCODER_TINY,
    "madebyollin/taesdxl": _AUTOENCODER_TINY,
    "florence-community/Florence-2-base": {name: "" for name in (
        "config.json", "generation_config.json", "model.safetensors", "processor_config.json", "tokenizer.json",
        "tokenizer_config.json")},  # fmt: skip
}
TINY_AUTOENCODERS = {"sd": "madebyollin/taesd", "sdxl": "madebyollin/taesdxl"}  # latent family -> its tiny decoder
FAMILIES = {"stabilityai/sd-turbo": "sd", "stabilityai/sdxl-turbo": "sdxl",
            "stable-diffusion-v1-5/stable-diffusion-v1-5": "sd"}  # fmt: skip
_SHARED_WITH_BASE = ("vae/", "text_encoder/", "tokenizer/")
FP16_VARIANTS = {"stabilityai/sd-turbo", "stabilityai/sdxl-turbo", "stable-diffusion-v1-5/stable-diffusion-v1-5"}


def variant(source: str, dtype: torch.dtype) -> str | None:
    """`"fp16"` for half-precision loads from a repo that ships `*.fp16.safetensors` (instruct-pix2pix does not)."""
    return "fp16" if dtype == torch.float16 and source in FP16_VARIANTS else None


def _with_variant(path: str, name: str | None) -> str:
    stem, dot, ext = path.rpartition(".")
    return f"{stem}.{name}.{ext}" if name else path


def reference_files(spec: str) -> list[str]:
    """An IP-Adapter's weight file and its image encoder (`repo:subfolder/weight.safetensors`)."""
    path = spec.partition(":")[2]
    subfolder = path.rpartition("/")[0]
    return [path, f"{subfolder}/image_encoder/config.json", f"{subfolder}/image_encoder/model.safetensors"]


def files(preset: Preset, fp16: bool = False) -> dict[str, list[str]]:
    """Repo -> the exact files `preset` loads from it (fp16 weights where the repo has them, when `fp16`)."""
    needed: dict[str, list[str]] = {}
    tiny = TINY_AUTOENCODERS.get(FAMILIES.get(preset.text_to_image))  # the speed policy's decoder for its family
    sources = [*preset.sources().values(), tiny, (preset.speed_adapter or "").partition(":")[0]]
    for source in filter(lambda source: source in REPOS, sources):  # hub ids; a local preset's folders need nothing
        name = variant(source, torch.float16 if fp16 else torch.float32)
        paths = [_with_variant(path, name) if kind else path for path, kind in REPOS[source].items()]
        if source == preset.instruct_edit and preset.instruct_shares_components:  # its VAE and text encoder: the base's
            paths = [path for path in paths if not path.startswith(_SHARED_WITH_BASE)]
        needed[source] = paths
    if preset.reference_adapter:
        repo = preset.reference_adapter.partition(":")[0]
        needed[repo] = reference_files(preset.reference_adapter)
    return needed


def commands(preset: Preset, fp16: bool = False) -> list[str]:
    """One `hf download` line per repo (older huggingface_hub: `huggingface-cli download`, same arguments)."""
    return [f"hf download {repo} {' '.join(paths)}" for repo, paths in files(preset, fp16).items()]


_listener: ContextVar[Callable[[str], None] | None] = ContextVar("download_listener", default=None)


@contextmanager
def downloads_reported_to(report: Callable[[str], None] | None) -> Iterator[None]:
    """Within the block (this thread or task), download progress messages also go to `report` (a job's progress)."""
    token = _listener.set(report)
    try:
        yield
    finally:
        _listener.reset(token)


def _announce(message: str, report: Callable[[str], None] | None) -> None:
    """A download message to the log and to the running job."""
    log.info(message)
    if report is not None:
        report(message)


def progress_message(repo: str, done: float, total: float) -> str:
    return (f"Downloading {repo}: {done / 2**20:.1f} of {total / 2**20:.1f} MB ({100 * done / total:.0f}%), once: "
            "later starts read the hub cache.")  # fmt: skip


def _progress_class(repo: str, report: Callable[[str], None] | None, expected: int) -> type[tqdm]:
    """huggingface_hub's byte progress bars, reported to the log and to `report` every tenth of `expected` bytes.

    huggingface_hub 2.4 feeds every file's bytes to two shared bars: "Downloading bytes" (network transfer) and the
    one that counts bytes written, whose total grows as each file starts, so a small file finished before a large one
    starts reads as 100%; hence the total known before the download (`expected`; the bar's own if 0)."""

    class Progress(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)
            self._reported = -1
            self._report_lock = threading.Lock()  # files download in parallel threads, all updating this bar

        def update(self, n=1):
            done = super().update(n)
            total = expected or self.total
            if total and self.unit == "B" and not str(self.desc).startswith("Downloading bytes"):  # not the transfer
                with self._report_lock:  # bar, which counts the same bytes again
                    tenth = min(10, int(10 * self.n / total))
                    if tenth <= self._reported:
                        return done
                    self._reported = tenth
                _announce(progress_message(repo, min(self.n, total), total), report)
            return done

    return Progress


def download(repo: str, paths: list[str]) -> str:
    """Fetch `paths` of `repo` into the hub cache (`HF_HUB_CACHE`/`HF_HOME`), reporting progress to the log and to
    the running job (`downloads_reported_to`); the snapshot path."""
    pending = [f for f in snapshot_download(repo, allow_patterns=paths, dry_run=True) if f.will_download]
    expected = sum(f.file_size or 0 for f in pending)  # what is not cached yet: the messages' total
    report = _listener.get()
    _announce(f"Downloading {repo} ({len(pending)} files) into the hub cache: the first use of this preset waits for "
              "it.", report)  # fmt: skip
    return snapshot_download(repo, allow_patterns=paths, tqdm_class=_progress_class(repo, report, expected))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the `hf download` lines of a hub preset.")
    parser.add_argument("presets", nargs="*", default=list(HUB_PRESETS), help="default: every hub preset")
    parser.add_argument("--fp16", action="store_true", help="the fp16 weights a CUDA GPU loads")
    args = parser.parse_args(argv)
    for name in args.presets:
        print(f"# {name}")
        print("\n".join(commands(HUB_PRESETS[name], args.fp16)))


if __name__ == "__main__":
    main()
