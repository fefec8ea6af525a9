"""Schema helpers shared by capabilities."""
from __future__ import annotations

import marshmallow as ma


class StrictSchema(ma.Schema):
    """Unknown fields are an error, not silently dropped."""

    class Meta:
        unknown = ma.RAISE
        ordered = True


class PageQuery(StrictSchema):
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=200))
    after = ma.fields.String(load_default=None, validate=ma.validate.Length(max=200),
                             metadata={"description": "Opaque cursor from the previous page's next_after"})


class PageMeta(ma.Schema):
    next_after = ma.fields.String(allow_none=True)
