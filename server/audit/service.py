"""Appending to the audit log, verifying its hash chain and reading it.

Every entry carries ``prev_hash``, the hash of the entry before it, and its own
``hash``: SHA-256 over a canonical encoding of its fields plus ``prev_hash``.
Editing, deleting or reordering entries breaks a link that ``verify_chain``
finds. Appends are serialised on the chain-head row, so the chain never forks.

``record`` writes in the request's transaction: an entry describes something
that happened, so it commits (or rolls back) with it. Entries about failures
and refusals ask the transaction boundary to commit although the answer is an
error (``keep_writes_despite_error``); record them before the request writes
anything else, or that would be kept too. The chain-head row stays locked until
the request commits: record at the end of the work, after its own row locks.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import g, has_request_context, request
from sqlalchemy import Select, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from server import transaction
from server.audit.models import ActorKind, AuditChainHead, AuditEntry, Outcome
from server.auth.policy import Permission, Principal, can
from server.db_types import utcnow
from server.errors import Problem
from server.extensions import db
from server.schemas import UNSTORABLE_TEXT

# Who acts when nobody has authenticated: failed log-ons, unauthenticated calls.
ANONYMOUS = Principal("anonymous", "", "anonymous", uuid.UUID(int=0))

GENESIS_HASH = "0" * 64
_HEAD_ID = 1
_DOMAIN = b"inspect-once/audit/v1\n"  # so an entry's hash cannot be mistaken for any other SHA-256 of ours
_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
# Keys whose values are never written to the log, at any depth of ``details``.
_SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|authori[sz]ation|cookie|credential|api[_-]?key", re.I)
_LONGEST_TEXT = 500
REDACTED = "[redacted]"


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int                   # entries whose links were checked
    first_broken_seq: int | None   # the first entry found edited, missing or out of place
    reason: str | None


# ---- what an entry is about ----------------------------------------------------------

# Which department owns an object the log names, by its type: capabilities teach the log their own
# types when the app is built (``register_object_model``, ``register_object_type``), so the log, low in the
# stack, never imports the capabilities that write to it.
_MODELS: dict[str, Any] = {}
_EXTRA_RESOLVERS: dict[str, Callable[[str], uuid.UUID | None]] = {}
_USER_TYPE = "user"


def register_object_model(object_type: str, model: Any) -> None:
    """Objects of ``object_type`` are rows of ``model`` keyed by id, owned by their ``department_id``
    (``user`` also names actors in entries)."""
    _MODELS[object_type] = model


def register_object_type(object_type: str, department_of: Callable[[str], uuid.UUID | None]) -> None:
    """Teach the log which department owns objects of ``object_type`` (given their id)."""
    _EXTRA_RESOLVERS[object_type] = department_of


def _row(model: Any, object_id: str) -> Any:
    key: Any = object_id
    if model.__mapper__.primary_key[0].type.python_type is uuid.UUID:
        try:
            key = uuid.UUID(object_id)
        except ValueError:
            return None
    return db.session.get(model, key)


def _object_department(object_type: str | None, object_id: str | None) -> uuid.UUID | None:
    if object_type is None or object_id is None:
        return None
    if object_type in _EXTRA_RESOLVERS:
        return _EXTRA_RESOLVERS[object_type](object_id)
    model = _MODELS.get(object_type)
    if model is None:
        return None
    return getattr(_row(model, object_id), "department_id", None)


def _actor_fields(actor: Principal) -> dict[str, Any]:
    if actor.kind == "user":
        model = _MODELS.get(_USER_TYPE)
        user = _row(model, str(actor.user_id)) if model is not None and actor.user_id else None
        return {"kind": ActorKind.USER, "id": actor.id, "username": getattr(user, "username", None),
                "department_id": actor.department_id}
    if actor.kind == "device":
        return {"kind": ActorKind.DEVICE, "id": actor.id, "username": None, "department_id": actor.department_id}
    if actor.kind == "system":
        return {"kind": ActorKind.SYSTEM, "id": actor.id, "username": "system", "department_id": None}
    return {"kind": ActorKind.ANONYMOUS, "id": None, "username": None, "department_id": None}


def _current_actor() -> Principal:
    principal = g.get("principal") if has_request_context() else None
    return principal if isinstance(principal, Principal) else ANONYMOUS


def clean_details(value: Any, depth: int = 0) -> Any:
    """``details`` as plain JSON that survives a round trip unchanged, without secrets."""
    if depth > 8:
        return "…"
    if isinstance(value, Mapping):
        return {str(k)[:100]: (REDACTED if _SECRET_KEY.search(str(k)) else clean_details(v, depth + 1))
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [clean_details(v, depth + 1) for v in value]
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "value") and isinstance(value.value, (str, int)):  # enums
        return value.value
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return UNSTORABLE_TEXT.sub("\ufffd", text)[:_LONGEST_TEXT]


# ---- the hash ------------------------------------------------------------------------

def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: Any) -> str | None:
    return None if value is None else str(value.value if hasattr(value, "value") else value)


def canonical_bytes(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash is computed over: every field but the hash, as sorted compact JSON."""
    fields = {
        "seq": int(entry["seq"]),
        "occurred_at": _iso(entry["occurred_at"]),
        "actor_kind": _text(entry["actor_kind"]),
        "actor_id": entry["actor_id"],
        "actor_username": entry["actor_username"],
        "actor_department_id": _text(entry["actor_department_id"]),
        "department_id": _text(entry["department_id"]),
        "action": entry["action"],
        "object_type": entry["object_type"],
        "object_id": entry["object_id"],
        "outcome": _text(entry["outcome"]),
        "details": entry["details"],
        "client_ip": entry["client_ip"],
        "prev_hash": entry["prev_hash"],
    }
    return _DOMAIN + json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                allow_nan=False).encode("utf-8")


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(entry)).hexdigest()


# ---- appending -----------------------------------------------------------------------

def _insert_ignoring_conflict(values: dict[str, Any]) -> Any:
    dialect = db.session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    return module.insert(AuditChainHead).values(**values).on_conflict_do_nothing(index_elements=["id"])


def _take_next_seq() -> tuple[int, str]:
    """Lock the chain head and move it on: the new entry's number and the hash it links to.

    The UPDATE comes first so the lock is taken before anything is read: a row
    lock on PostgreSQL (held until commit), the database's write lock on SQLite.
    """
    advance = (update(AuditChainHead).where(AuditChainHead.id == _HEAD_ID)
               .values(seq=AuditChainHead.seq + 1).returning(AuditChainHead.seq, AuditChainHead.hash))
    row = db.session.execute(advance).first()
    if row is None:
        # A new log (or one whose head was lost): start from the newest entry, if any.
        last = db.session.execute(
            select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)).first()
        db.session.execute(_insert_ignoring_conflict(
            {"id": _HEAD_ID, "seq": last.seq if last else 0, "hash": last.hash if last else GENESIS_HASH}))
        row = db.session.execute(advance).one()
    return int(row.seq), str(row.hash)


def record(action: str, *, object_type: str | None = None, object_id: str | None = None, outcome: str = "success",
           details: dict | None = None, actor: Principal | None = None) -> AuditEntry:  # type: ignore[type-arg]
    """Append an entry to the audit log (in the current transaction) and return it.

    ``actor`` defaults to the request's principal, else anonymous; the client
    address is taken from the request when there is one. ``details`` must not
    carry secrets; keys that look like passwords or tokens are redacted anyway.
    """
    if not _ACTION.match(action):
        raise ValueError(f"audit action {action!r} is not a dotted lower-case name")
    result = Outcome(outcome)
    who = _actor_fields(actor if actor is not None else _current_actor())
    values: dict[str, Any] = {
        "occurred_at": utcnow(),
        "actor_kind": who["kind"], "actor_id": who["id"], "actor_username": who["username"],
        "actor_department_id": who["department_id"],
        "department_id": _object_department(object_type, object_id),
        "action": action, "object_type": object_type, "object_id": None if object_id is None else str(object_id)[:64],
        "outcome": result, "details": clean_details(details or {}),
        "client_ip": (request.remote_addr or None) if has_request_context() else None,
    }
    if values["department_id"] is None:
        values["department_id"] = who["department_id"]
    if result is not Outcome.SUCCESS and has_request_context():
        transaction.keep_writes_despite_error()
    seq, prev_hash = _take_next_seq()
    values.update(seq=seq, prev_hash=prev_hash)
    values["hash"] = entry_hash(values)
    entry = AuditEntry(**values)
    db.session.add(entry)
    db.session.flush()
    db.session.execute(update(AuditChainHead).where(AuditChainHead.id == _HEAD_ID).values(hash=values["hash"]))
    return entry


# ---- verifying -----------------------------------------------------------------------

_COLUMNS = AuditEntry.__table__.c


def _entries(page_size: int) -> Iterator[Mapping[str, Any]]:
    """Every entry in sequence order, a page at a time (memory stays flat however long the log)."""
    after = None
    while True:
        query = select(AuditEntry.__table__).order_by(_COLUMNS.seq).limit(page_size)
        if after is not None:
            query = query.where(_COLUMNS.seq > after)
        rows = db.session.execute(query).mappings().all()
        yield from rows
        if len(rows) < page_size:
            return
        after = rows[-1]["seq"]


def verify_chain(page_size: int = 1000) -> VerifyResult:
    """Walk the whole log and report the first entry that is edited, missing or out of place."""
    head = db.session.execute(select(AuditChainHead.seq, AuditChainHead.hash)
                              .where(AuditChainHead.id == _HEAD_ID)).first()
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    for row in _entries(page_size):
        seq = row["seq"]
        if seq != expected_seq:
            return VerifyResult(False, checked, expected_seq,
                                f"entry {expected_seq} is missing: the sequence jumps from {expected_seq - 1} to {seq}")
        if row["prev_hash"] != prev_hash:
            return VerifyResult(False, checked, seq,
                                f"entry {seq} does not link to entry {seq - 1}: prev_hash differs from its hash "
                                "(an entry before it was removed, replaced or reordered)")
        if entry_hash(row) != row["hash"]:
            return VerifyResult(False, checked, seq, f"entry {seq} was altered: its content does not match its hash")
        if head is not None and seq == head.seq and row["hash"] != head.hash:
            return VerifyResult(False, checked, seq, f"entry {seq} differs from the chain head's record of it")
        checked += 1
        expected_seq, prev_hash = seq + 1, row["hash"]
    last = expected_seq - 1
    if head is None and last > 0:
        return VerifyResult(False, checked, None, "the chain head record is missing")
    if head is not None and head.seq > last:
        return VerifyResult(False, checked, last + 1,
                            f"entries {last + 1} to {head.seq} are missing: the log was cut short after entry {last}")
    return VerifyResult(True, checked, None, None)


# ---- reading -------------------------------------------------------------------------

def _visible(principal: Principal, query: Select[Any]) -> Select[Any]:
    # Not ``scope_query``: an entry concerns two departments, the actor's and the object's.
    if not can(principal, Permission.READ_AUDIT):
        raise Problem(403, "forbidden", "您的角色无权查看审计日志")
    if principal.is_admin:
        return query
    mine = principal.department_id
    return query.where(or_(AuditEntry.actor_department_id == mine, AuditEntry.department_id == mine))


@dataclass(frozen=True)
class EntryPage:
    items: list[AuditEntry]
    next_after: str | None


def list_entries(principal: Principal, filters: Mapping[str, Any], limit: int, after: int | None) -> EntryPage:
    """Entries the caller may read, newest first; ``after`` is the previous page's ``next_after``."""
    query = _visible(principal, select(AuditEntry))
    for name in ("action", "object_type", "object_id"):
        if filters.get(name) is not None:
            query = query.where(getattr(AuditEntry, name) == filters[name])
    if filters.get("object_ids") is not None:  # several objects at once (a record's evidence files)
        query = query.where(AuditEntry.object_id.in_(list(filters["object_ids"])))
    if filters.get("outcome") is not None:
        query = query.where(AuditEntry.outcome == Outcome(filters["outcome"]))
    if filters.get("actor") is not None:
        query = query.where(or_(AuditEntry.actor_username == filters["actor"], AuditEntry.actor_id == filters["actor"]))
    if filters.get("since") is not None:
        query = query.where(AuditEntry.occurred_at >= filters["since"])
    if filters.get("until") is not None:
        query = query.where(AuditEntry.occurred_at < filters["until"])
    if after is not None:
        query = query.where(AuditEntry.seq < after)
    rows = list(db.session.scalars(query.order_by(AuditEntry.seq.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return EntryPage(rows, str(rows[-1].seq) if more and rows else None)
