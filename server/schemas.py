"""Schema helpers shared by capabilities."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import marshmallow as ma

# Text no database column can hold: NUL (PostgreSQL refuses it) and lone UTF-16
# surrogates (JSON "\ud800" escapes; they cannot be encoded as UTF-8).
UNSTORABLE_TEXT = re.compile(r"[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "不能包含空字符（NUL）或无效的 Unicode 字符"


def has_unstorable_text(value: Any) -> bool:
    if isinstance(value, str):
        return UNSTORABLE_TEXT.search(value) is not None
    return isinstance(value, (list, tuple)) and any(has_unstorable_text(v) for v in value)


class StrictSchema(ma.Schema):
    """Unknown fields are an error, not silently dropped; text must be storable."""

    class Meta:
        unknown = ma.RAISE
        ordered = True

    @ma.pre_load
    def _refuse_unstorable_text(self, data: Any, **_: Any) -> Any:
        # Nested StrictSchemas check their own fields. The key is echoed in the
        # answer, so it is escaped to something that can be encoded.
        if isinstance(data, Mapping):
            errors = {str(key).encode("utf-8", "backslashreplace").decode(): [UNSTORABLE_MESSAGE]
                      for key, value in data.items() if has_unstorable_text(key) or has_unstorable_text(value)}
            if errors:
                raise ma.ValidationError(errors)
        return data


class PageQuery(StrictSchema):
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=200))
    after = ma.fields.String(load_default=None, validate=ma.validate.Length(max=200),
                             metadata={"description": "Opaque cursor from the previous page's next_after"})


class PageMeta(ma.Schema):
    next_after = ma.fields.String(allow_none=True)
