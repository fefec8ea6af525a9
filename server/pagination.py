"""Keyset pagination: the cost of a page does not grow with how far in it is."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select

from server.errors import Problem
from server.extensions import db

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_after: str | None


def keyset_page(query: Select[Any], id_column: Any, limit: int, after: str | None, *,
                uuid_keys: bool = True) -> Page[Any]:
    if after:
        key: Any = after
        if uuid_keys:
            try:
                key = uuid.UUID(after)
            except ValueError:
                raise Problem(422, "validation-failed", "分页游标无效",
                              errors={"query.after": ["Not a cursor returned by this listing."]}) from None
        query = query.where(id_column > key)
    rows = list(db.session.scalars(query.order_by(id_column).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, str(getattr(rows[-1], id_column.key)) if more and rows else None)
