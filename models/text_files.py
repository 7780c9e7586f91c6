"""Text files people bring (style presets, prompt lists), as spreadsheets and editors of any locale save them: a
UTF-8 byte-order mark is read past, and a byte that is not UTF-8 spoils only the line that holds it."""

from __future__ import annotations

import re

_UNDECODED = re.compile("[\udc80-\udcff]")  # where `surrogateescape` keeps a byte that is not UTF-8


def decode(data: bytes) -> str:
    """The file's text, its byte-order mark dropped; each byte that is not UTF-8 kept for `undecodable` to find."""
    return data.decode("utf-8-sig", errors="surrogateescape")


def undecodable(text: str) -> str | None:
    """Why a line of `decode`'s text is not text, in a few words, or None when it is."""
    found = _UNDECODED.search(text)
    if found is None:
        return None
    return f"byte 0x{ord(found.group()) - 0xDC00:02x} at character {found.start() + 1} is not UTF-8 (save the file as UTF-8)"
