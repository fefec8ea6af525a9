"""Domain events: a capability announces what happened, whoever cares subscribes.

Data flows one way. A capability low in the stack (directory, sync, uploads)
never calls up into one that builds on it (verification); it emits an event,
and the higher capability subscribes to it in its own ``init_app``.

An event emitted inside a transaction is delivered only once that transaction
commits, and dropped if it rolls back: a subscriber never hears of a write that
did not happen, and never looks for a row that is not committed yet. Delivery
happens after the commit, when the session can no longer run SQL in that
transaction, so a subscriber's work is to ask for more work (enqueue a job),
not to read or write the database itself.
"""
from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from server.extensions import db

log = logging.getLogger(__name__)

_EXTENSION = "inspect_once.events"
_PENDING = "events_after_commit"


class Event(enum.StrEnum):
    """What a capability may announce. Each carries the keyword payload named beside it."""

    MEDIA_STORED = "media-stored"  # media_id: a file was stored and its media record made
    INSPECTIONS_CHANGED = "inspections-changed"  # inspection_ids: records of these inspections were synced
    CERTIFICATE_CHANGED = "certificate-changed"  # holder_id, changed_at: a certificate's status changed


Handler = Callable[..., None]


@dataclass
class _Subscribers:
    by_event: dict[Event, list[Handler]] = field(default_factory=dict)


def init_app(app: Flask) -> None:
    """Give the app its (empty) table of subscribers; capabilities add theirs in their own ``init_app``."""
    app.extensions[_EXTENSION] = _Subscribers()


def subscribe(app: Flask, name: Event, handler: Handler) -> None:
    """Call ``handler(**payload)`` for every ``name`` event of a committed transaction."""
    app.extensions[_EXTENSION].by_event.setdefault(name, []).append(handler)


def emit(name: Event, **payload: Any) -> None:
    """Announce ``name``; subscribers hear of it once the current transaction commits."""
    db.session.info.setdefault(_PENDING, []).append((name, payload))


def _deliver(events: list[tuple[Event, dict[str, Any]]]) -> None:
    if not has_app_context():
        log.error("%d event(s) committed outside an app context were not delivered", len(events))
        return
    subscribers: _Subscribers | None = current_app.extensions.get(_EXTENSION)
    if subscribers is None:
        return
    for name, payload in events:
        for handler in subscribers.by_event.get(name, []):
            try:
                handler(**payload)
            except Exception:
                log.exception("subscriber %s of %s failed", getattr(handler, "__name__", handler), name.value)


@event.listens_for(Session, "after_commit")
def _deliver_committed(session: Session) -> None:
    events = session.info.pop(_PENDING, None)
    if events:
        _deliver(events)


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)
