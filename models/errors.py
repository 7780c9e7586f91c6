"""The engine's exceptions. Messages are sentences a person can act on."""


class PresetUnavailable(RuntimeError):
    """A preset's weights cannot be loaded here (not downloaded and no connection, or a missing folder)."""


class JobCancelled(RuntimeError):
    """The user stopped a running job."""


class OutOfMemory(RuntimeError):
    """The device ran out of memory; the caches were emptied and a smaller request may work."""
