"""The pipeline cache: one `LoadedPreset` per preset, least recently used evicted first.

Keyed by the frozen tuple (preset, role, device, dtype) inside each loaded preset; a preset with a `base` is loaded
beside its base, whose modules it shares.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from .devices import DevicePolicy, empty_device_cache
from .graphs import request_running
from .loaded_preset import LoadedPreset
from .presets import Preset
from .settings import max_loaded_presets

log = logging.getLogger(__name__)


class PipelineCache:
    """Loaded presets, least recently used evicted first once more than `max_loaded_presets()` are held.

    A preset with a `base` is loaded beside its base (which loads first and is never evicted before it)."""

    def __init__(self, policy: DevicePolicy, registry: dict[str, Preset] | None = None):
        self.policy = policy
        self.registry = registry or {}
        self._loaded: OrderedDict[str, LoadedPreset] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, preset: Preset) -> LoadedPreset:
        with self._lock:
            if preset.name in self._loaded:
                self._loaded.move_to_end(preset.name)
                return self._loaded[preset.name]
            loading = self._loading.setdefault(preset.name, threading.Lock())
        shared = self.get(self.registry[preset.base]) if preset.base else None
        with loading:  # one loader per preset; others wait for it
            with self._lock:
                if preset.name in self._loaded:
                    return self._loaded[preset.name]
            with request_running():  # loading is heavy work too: no build starts until the CPU has been quiet after it
                entry = LoadedPreset(preset, shared.policy if shared else self.policy, shared)
            with self._lock:
                self._loaded[preset.name] = entry
                self._evict()
            return entry

    def _evict(self) -> None:
        """Drop least recently used presets (call under `_lock`), never one that a loaded preset shares."""
        shared = {entry.preset.base for entry in self._loaded.values()}
        for name in list(self._loaded)[:-1]:  # never the one just loaded
            if len(self._loaded) <= max(1, max_loaded_presets()):
                break
            if name not in shared:
                del self._loaded[name]
                log.info("evicted preset %s", name)
                empty_device_cache()
