"""Browser log-on for the review app: the API's accounts, password check and failure throttle,
with a server-side session that log-off and the idle timeout end."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from server.audit.service import record as audit
from server.auth import passwords
from server.auth.policy import Permission, Principal, can
from server.auth.throttle import FailureThrottle
from server.db_types import utcnow
from server.directory.models import User
from server.errors import Problem
from server.extensions import db
from server.review.models import ReviewSession

# last_seen_at is written at most this often: a page with a playing video makes many requests.
TOUCH_EVERY = timedelta(seconds=30)


class LogOnRefused(Exception):
    """Wrong credentials, too many failures, or an account that may not use the app."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Opened:
    user: User
    token: str  # goes into the signed session cookie; only its hash is stored


def principal_of(user: User) -> Principal:
    return Principal("user", str(user.id), user.role.value, user.department_id)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def log_on(username: str, password: str, client_address: str) -> Opened:
    """Check the password (sharing the API's failure throttle) and open a session."""
    throttle: FailureThrottle = current_app.extensions["inspect_once.login_throttle"]
    try:
        throttle.check("login", username, client_address)
    except Problem as refused:
        audit("review.login", object_type="user", object_id=username, outcome="denied",
              details={"address": client_address})
        raise LogOnRefused(refused.detail or "失败次数过多", 429) from None
    user = db.session.scalar(select(User).where(User.username == username))
    ok = passwords.verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.active:
        throttle.record_failure("login", username, client_address)
        audit("review.login", object_type="user", object_id=username, outcome="failed",
              details={"address": client_address})
        raise LogOnRefused("invalid-credentials", 401)
    if not can(principal_of(user), Permission.USE_REVIEW):
        audit("review.login", object_type="user", object_id=str(user.id), outcome="denied",
              details={"address": client_address, "role": user.role.value}, actor=principal_of(user))
        raise LogOnRefused("role-not-allowed", 403)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(ReviewSession(token_hash=_hash(token), user_id=user.id, client_address=client_address[:64],
                                 created_at=now, last_seen_at=now))
    db.session.flush()
    audit("review.login", object_type="user", object_id=str(user.id), details={"address": client_address},
          actor=principal_of(user))
    return Opened(user, token)


def resume(token: str, idle: timedelta) -> User | None:
    """The user of a live session, or None; a session idle too long is ended here."""
    stored = db.session.scalar(select(ReviewSession).where(ReviewSession.token_hash == _hash(token)))
    if stored is None or stored.ended_at is not None:
        return None
    now = utcnow()
    user = db.session.get(User, stored.user_id)
    reason = None
    if now - stored.last_seen_at > idle:
        reason = "idle"
    elif user is None or not user.active or not can(principal_of(user), Permission.USE_REVIEW):
        reason = "account-disabled"
    if reason:
        stored.ended_at, stored.end_reason = now, reason
        db.session.flush()
        audit("review.session_ended", object_type="review_session", object_id=str(stored.id),
              details={"reason": reason}, actor=principal_of(user) if user else None)
        return None
    if now - stored.last_seen_at >= TOUCH_EVERY:
        stored.last_seen_at = now
        db.session.flush()
    return user


def log_off(token: str) -> None:
    stored = db.session.scalar(select(ReviewSession).where(ReviewSession.token_hash == _hash(token)))
    if stored is None or stored.ended_at is not None:
        return
    stored.ended_at, stored.end_reason = utcnow(), "logout"
    db.session.flush()
    user = db.session.get(User, stored.user_id)
    audit("review.logout", object_type="review_session", object_id=str(stored.id),
          actor=principal_of(user) if user else None)
