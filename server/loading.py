"""Loading one object by id for a caller: the one place that answers "no such thing" or "not yours".

Every service that takes an id from a request loads it through :func:`load_authorized`, so the order of
the answers is the same everywhere (the request lifecycle of STYLE.md: load, then check access).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from server.auth.policy import Permission, Principal, authorize_object, can
from server.errors import Problem
from server.extensions import db

T = TypeVar("T")


def load_authorized(principal: Principal, model: type[T], object_id: Any, permission: Permission, *,
                    not_found: str, visible: Permission | None = None, sees: Callable[[T], bool] | None = None,
                    also_allowed: Callable[[T], bool] | None = None,
                    on_refused: Callable[[T], None] | None = None) -> T:
    """The ``model`` row with primary key ``object_id``, if ``principal`` may apply ``permission`` to it.

    In this order:

    1. Load the row. None: 404 ``not-found`` with ``not_found`` as its detail.
    2. Authorize, by the policy: ``authorize_object(principal, permission, row, visible=visible)``, which
       answers 404 for a row outside what the caller may even see (another department's, so its id cannot
       be probed) and 403 for one they may see (under ``visible``) but not change. ``also_allowed(row)``,
       when given, lets in a row the policy refuses (a grant the policy cannot state, such as evidence of
       a task whose team the caller is on); the refusal is still the policy's.
    3. Or, with ``sees``, by the caller's own rule instead of the policy's department scope (a task's team,
       the evidence of inspections the caller may review): the role must hold ``permission`` and
       ``sees(row)`` must be true, else the same 404 as a missing row, so a hidden id looks unknown.

    ``on_refused(row)`` runs just before a refusal of a row that exists (for instance to audit it).
    """
    if sees is not None and (also_allowed is not None or visible is not None):
        raise TypeError("sees replaces the policy's check: visible and also_allowed belong to the policy")
    found = db.session.get(model, object_id)
    if found is None:
        raise Problem(404, "not-found", not_found)
    if sees is not None:
        if can(principal, permission) and sees(found):
            return found
        if on_refused is not None:
            on_refused(found)
        raise Problem(404, "not-found", not_found)
    try:
        authorize_object(principal, permission, found, visible=visible)
    except Problem:
        if also_allowed is not None and also_allowed(found):
            return found
        if on_refused is not None:
            on_refused(found)
        raise
    return found
