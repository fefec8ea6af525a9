"""The request's single transaction, and the few things that must happen around its commit.

Services flush; the request commits once, after the view (``create_app``).
Some work belongs after that commit and only if it succeeded (deleting a
finished upload's partial bytes: before the commit they are still the only
copy the database knows of), some at the very end of the request whatever
happened (releasing an upload's lock, once the commit has made its new state
visible), and a few refusals must still keep what the service wrote (an
upload whose hash failed is recorded as quarantined although the answer is
460).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from flask import g, has_request_context

log = logging.getLogger(__name__)

_AFTER_COMMIT = "_inspect_once_after_commit"
_AT_END = "_inspect_once_at_request_end"
_KEEP = "_inspect_once_keep_writes"


def after_commit(fn: Callable[[], None]) -> None:
    """Run ``fn`` once the request's transaction has committed (never if it rolls back).

    Outside a request (operator commands) there is no request commit to wait
    for: the caller commits and runs its own follow-up.
    """
    if not has_request_context():
        raise RuntimeError("after_commit needs a request; commit and run the follow-up yourself")
    g.setdefault(_AFTER_COMMIT, []).append(fn)


def at_request_end(fn: Callable[[], None]) -> None:
    """Run ``fn`` when the request ends, after its commit or rollback, whatever happened."""
    if not has_request_context():
        raise RuntimeError("at_request_end needs a request")
    g.setdefault(_AT_END, []).append(fn)


def keep_writes_despite_error() -> None:
    """Commit what was flushed although the answer is an error (status >= 400)."""
    g.setdefault(_KEEP, True)


def writes_kept() -> bool:
    return bool(g.get(_KEEP))


def _run(callbacks: list[Callable[[], None]], what: str) -> None:
    for fn in callbacks:
        try:
            fn()
        except Exception:
            log.exception("%s callback failed", what)


def committed() -> None:
    """Called by the transaction boundary after a successful commit."""
    _run(g.pop(_AFTER_COMMIT, []), "after-commit")


def rolled_back() -> None:
    """Called by the transaction boundary after a rollback: the follow-ups no longer apply."""
    g.pop(_AFTER_COMMIT, None)


def request_ended() -> None:
    """Called at teardown of every request."""
    g.pop(_AFTER_COMMIT, None)
    g.pop(_KEEP, None)
    _run(g.pop(_AT_END, []), "request-end")
