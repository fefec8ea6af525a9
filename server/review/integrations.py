"""The pieces of other capabilities the review app uses, looked up when first needed.

The audit log, range streaming, inspection flags, the joint record and dispatch approval are
built by their own packages. Each is imported here, in one place, so the app states plainly
which of them are present; none of them is re-implemented here.
"""
from __future__ import annotations

import importlib
import logging
from typing import Any

log = logging.getLogger(__name__)


def optional(module: str, name: str) -> Any | None:
    """``module.name`` if that capability is installed, else None."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def audit(action: str, *, object_type: str | None = None, object_id: Any = None, outcome: str = "success",
          details: dict[str, Any] | None = None, actor: Any = None) -> None:
    """Record an entry in the server's audit log (server.audit)."""
    record = optional("server.audit.service", "record")
    if record is None:  # pragma: no cover - only while the audit package is missing
        log.warning("audit log unavailable; not recorded: %s %s %s", action, object_type, object_id)
        return
    record(action, object_type=object_type, object_id=None if object_id is None else str(object_id),
           outcome=outcome, details=details, actor=actor)


def flag_model() -> Any | None:
    return optional("server.verification.models", "InspectionFlag")


def flag_labels() -> dict[str, str]:
    return dict(optional("server.verification.flags", "FLAG_LABELS") or {})


def media_response() -> Any | None:
    return optional("server.uploads.streaming", "media_response")


def joint_record() -> Any | None:
    """``joint_record_for(principal, task_id)``: the merged record of a task the caller takes part in."""
    return optional("server.joint.service", "joint_record_for")


def planning() -> Any | None:
    """The planning service module when it offers dispatch approval."""
    try:
        module = importlib.import_module("server.planning.service")
    except ImportError:
        return None
    needed = ("pending_approvals", "approve_dispatch", "reject_dispatch")
    return module if all(hasattr(module, n) for n in needed) else None
