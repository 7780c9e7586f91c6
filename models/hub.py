"""The files each hub preset needs from each allow-listed repo, which of them the hub cache lacks, and their
download (logged as it goes).

Only what `from_pretrained` reads: configs, tokenizer files and one safetensors file per weight, fp32 on CPU and the
`*.fp16.safetensors` variant on CUDA where the repo has one; never ONNX exports, `.bin` duplicates or single-file
checkpoints. Each file is checked in the cache on its own, so a repo partly cached (by another preset, by the other
precision's `hf download` lines, by an interrupted download) gets the rest when the hub answers.
`python -m models.hub [PRESET] [--fp16]` prints the `hf download` lines (the README lists them).
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import torch
from huggingface_hub import get_cached_repo_tree, snapshot_download, try_to_load_from_cache
from huggingface_hub.errors import CachedRepoTreeNotFoundError
from tqdm.auto import tqdm

from .errors import PresetUnavailable
from .presets import HUB_PRESETS, Preset, hub_reachable

log = logging.getLogger(__name__)

_TOKENIZER = ("vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json")
WEIGHTS, OPTIONAL = "weights", "optional"  # a file's kind: varies with the precision; may be absent from the repo


def _pipeline(models: tuple[str, ...], encoders: tuple[str, ...], tokenizers: tuple[str, ...]) -> dict[str, str]:
    """A diffusers pipeline repo's files: path -> kind (`WEIGHTS` for the weights to vary, `""` for the rest)."""
    files = {"model_index.json": "", "scheduler/scheduler_config.json": ""}
    for folder in tokenizers:
        files.update({f"{folder}/{name}": "" for name in _TOKENIZER})
    for folder in models:
        files.update({f"{folder}/config.json": "", f"{folder}/diffusion_pytorch_model.safetensors": WEIGHTS})
    for folder in encoders:
        files.update({f"{folder}/config.json": "", f"{folder}/model.safetensors": WEIGHTS})
    return files


_SD = _pipeline(("unet", "vae"), ("text_encoder",), ("tokenizer",))
_ONE_MODEL = {"config.json": "", "diffusion_pytorch_model.safetensors": ""}  # one diffusers model: a ControlNet, TAESD
REPOS: dict[str, dict[str, str]] = {
    "stabilityai/sd-turbo": _SD,
    "stabilityai/sdxl-turbo": _pipeline(("unet", "vae"), ("text_encoder", "text_encoder_2"), ("tokenizer", "tokenizer_2")),
    "stable-diffusion-v1-5/stable-diffusion-v1-5": _SD,
    "timbrooks/instruct-pix2pix": _SD,
    "latent-consistency/lcm-lora-sdv1-5": {"pytorch_lora_weights.safetensors": ""},
    "stabilityai/stable-diffusion-x4-upscaler": {**_SD, "low_res_scheduler/scheduler_config.json": ""},
    "lllyasviel/control_v11p_sd15_canny": _ONE_MODEL,
    "diffusers/controlnet-canny-sdxl-1.0-small": _ONE_MODEL,
    "madebyollin/taesd": _ONE_MODEL,
    "madebyollin/taesdxl": _ONE_MODEL,
    # converted with transformers 4.56: the image processor in `preprocessor_config.json`; its tokenizer files may
    # include the BPE files and a special tokens map beside `tokenizer.json`
    "florence-community/Florence-2-base": {
        **dict.fromkeys(("config.json", "generation_config.json", "model.safetensors", "preprocessor_config.json",
                         "processor_config.json", "tokenizer.json", "tokenizer_config.json"), ""),
        **dict.fromkeys(("vocab.json", "merges.txt", "special_tokens_map.json"), OPTIONAL)},
}  # fmt: skip
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


def repo_files(repo: str, fp16: bool = False) -> list[str]:
    """Every file an allow-listed repo's model loads from (fp16 weights where the repo has them, when `fp16`)."""
    name = variant(repo, torch.float16 if fp16 else torch.float32)
    return [_with_variant(path, name) if kind == WEIGHTS else path for path, kind in REPOS[repo].items()]


def files(preset: Preset, fp16: bool = False) -> dict[str, list[str]]:
    """Repo -> the exact files `preset` loads from it (fp16 weights where the repo has them, when `fp16`)."""
    needed: dict[str, list[str]] = {}
    tiny = TINY_AUTOENCODERS.get(FAMILIES.get(preset.text_to_image))  # the speed policy's decoder for its family
    sources = [*preset.sources().values(), tiny, (preset.speed_adapter or "").partition(":")[0]]
    for source in filter(lambda source: source in REPOS, sources):  # hub ids; a local preset's folders need nothing
        paths = repo_files(source, fp16)
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
                with self._report_lock:  # bar, which counts the same bytes again; announced under the lock, so
                    tenth = min(10, int(10 * self.n / total))  # a thread's 90% never lands after another's 100%
                    if tenth > self._reported:
                        self._reported = tenth
                        _announce(progress_message(repo, min(self.n, total), total), report)
            return done

    return Progress


def optional(repo: str, path: str) -> bool:
    """Whether `path` may be absent from `repo` (a file some conversions write and others do not)."""
    return REPOS.get(repo, {}).get(path) == OPTIONAL


def _listed(repo: str) -> set[str] | None:
    """The repo's file names as huggingface_hub cached them with its last snapshot download; None if not cached."""
    try:
        return {file.path for file in get_cached_repo_tree(repo)}
    except CachedRepoTreeNotFoundError:
        return None


def missing(repo: str, paths: list[str]) -> list[str]:
    """The `paths` of `repo` that the hub cache lacks, each checked on its own. An optional file is missing only
    while the repo may hold it: not once huggingface_hub's cached listing of the repo, or its record of a file the
    hub said it lacks, shows it is absent."""
    found = {path: try_to_load_from_cache(repo, path) for path in paths}  # a path, `.no_exist/`'s marker or None
    absent = [path for path, hit in found.items() if not isinstance(hit, str)]
    if any(optional(repo, path) for path in absent):
        listed = _listed(repo)
        absent = [path for path in absent
                  if not optional(repo, path) or (found[path] is None and (listed is None or path in listed))]  # fmt: skip
    return absent


def fetch_missing(repo: str, paths: list[str]) -> list[str]:
    """Download `paths` of `repo` when the hub cache lacks some and the hub answers; the required files still
    missing (empty: everything loads from the cache)."""
    if not missing(repo, paths):
        return []
    if hub_reachable():
        download(repo, paths)
        return []
    return missing(repo, [path for path in paths if not optional(repo, path)])


def snapshot_folder(repo: str, paths: list[str]) -> str:
    """The hub cache's folder holding `paths` of `repo` (fetched first if some are missing), for loaders that read a
    local folder; `PresetUnavailable` naming the missing files when the hub cannot be reached."""
    absent = fetch_missing(repo, paths)
    if absent:
        raise PresetUnavailable(
            f"{repo} is not fully downloaded ({', '.join(absent)} missing) and the Hugging Face hub cannot be "
            f"reached. Connect to the internet or run `hf download {repo} {' '.join(paths)}`."
        )
    first = paths[0]
    return str(Path(try_to_load_from_cache(repo, first)).parents[first.count("/")])


def _check_listing(repo: str, paths: list[str], listing: list) -> None:
    """`PresetUnavailable` naming the required files of `paths` that the repo's listing (a dry run's) lacks."""
    listed = {file.filename for file in listing}
    gone = [path for path in paths if path not in listed and not optional(repo, path)]
    if gone:
        raise PresetUnavailable(f"The hub repo {repo} no longer holds {', '.join(gone)}, which Depict loads: the repo "
                                "has changed; update Depict or use another preset.")  # fmt: skip


def download(repo: str, paths: list[str]) -> str:
    """Fetch `paths` of `repo` into the hub cache (`HF_HUB_CACHE`/`HF_HOME`), reporting progress to the log and to
    the running job (`downloads_reported_to`); the snapshot path. Optional names the repo lacks are skipped; a
    required one it lacks is a `PresetUnavailable` naming it, before any byte is fetched."""
    listing = snapshot_download(repo, allow_patterns=paths, dry_run=True)
    _check_listing(repo, paths, listing)
    pending = [f for f in listing if f.will_download]
    expected = sum(f.file_size or 0 for f in pending)  # what is not cached yet: the messages' total
    report = _listener.get()
    if pending:  # else only huggingface_hub's listing of the repo is new: it records which optional files it lacks
        _announce(f"Downloading {repo} ({len(pending)} files) into the hub cache: the first use of this preset waits "
                  "for it.", report)  # fmt: skip
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
