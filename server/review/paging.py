"""Bounded lists for the review pages: one page of a query, or the first few of a list, with the total.

Every list a review page shows goes through here, so no record, however large, makes a page (or
its rendering time) grow without bound: a page shows at most ``size`` items and says how many
there are in all.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select

from server.extensions import db

T = TypeVar("T")

#: Page numbers beyond this are refused as malformed rather than computed into an offset.
MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class Slice(Generic[T]):
    """Items ``(page - 1) * size`` … of a list of ``total``."""

    items: list[T]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def first(self) -> int:
        """The 1-based position of the first item shown (0 when there is none)."""
        return (self.page - 1) * self.size + 1 if self.items else 0

    @property
    def last(self) -> int:
        return self.first + len(self.items) - 1 if self.items else 0

    @property
    def not_shown(self) -> int:
        """How many of the list this slice leaves out (before and after it)."""
        return self.total - len(self.items)


def _clamped(page: int, total: int, size: int) -> int:
    # A page past the end (a list that shrank since the link was made) shows the last one.
    return min(max(page, 1), max(1, math.ceil(total / size)))


def page_of(query: Select[Any], page: int, size: int, *, scalars: bool = True) -> Slice[Any]:
    """One page of ``query`` (which must be ordered, the order total), with the count of all its rows."""
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    page = _clamped(page, total, size)
    limited = query.offset((page - 1) * size).limit(size)
    items = list(db.session.scalars(limited)) if scalars else list(db.session.execute(limited).all())
    return Slice(items, total, page, size)


def first_of(items: Sequence[T], size: int, page: int = 1) -> Slice[T]:
    """A page of a list already in memory (one that a service of another capability hands over whole)."""
    page = _clamped(page, len(items), size)
    return Slice(list(items[(page - 1) * size:page * size]), len(items), page, size)
