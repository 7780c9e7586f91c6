"""What each field of a job's params means, read from the comment beside it: the one place a field is documented,
shown to API and MCP callers as well as to readers of the code."""

from __future__ import annotations

import inspect
import re
from dataclasses import fields, is_dataclass

_FIELD = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+?)\s*$")


def field_docs(params: type) -> dict[str, str]:
    """Field name -> its comment, for every field of the params dataclass `params` (base classes included)."""
    docs: dict[str, str] = {}
    for cls in reversed(params.__mro__):
        if is_dataclass(cls) and cls is not object:
            for line in inspect.getsource(cls).splitlines():
                if match := _FIELD.match(line):
                    docs[match[1]] = match[2]
    return {f.name: docs.get(f.name, "") for f in fields(params)}
