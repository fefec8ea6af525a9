"""Turning report dataclasses into JSON-ready values.

Reports are plain frozen dataclasses; this module is the one place that knows how their field
types (datetimes, enums, paths, tuples, non-finite floats) look in JSON.
"""
from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime
from enum import Enum
from pathlib import PurePath
from typing import Any


def to_jsonable(value: Any) -> Any:
    """Return ``value`` as nested dicts, lists and JSON scalars."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float):
        # JSON has no NaN or infinity; an unknown measurement is null.
        return value if math.isfinite(value) else None
    if isinstance(value, (bytes, bytearray)):
        raise TypeError("binary data does not belong in a JSON report")
    return value


class JsonReport:
    """Mixin for report dataclasses: ``to_dict()`` and ``to_json()``."""

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready nested dicts and lists."""
        result = to_jsonable(self)
        assert isinstance(result, dict)
        return result

    def to_json(self, *, indent: int | None = None) -> str:
        """The report as a JSON document (UTF-8 text, Chinese left readable)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent, sort_keys=False)
