"""Log-in, refresh-token rotation, device tokens and token verification."""
from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from server.audit import service as audit
from server.auth import passwords, tokens
from server.auth.models import RefreshToken
from server.auth.policy import Principal, install_principal_loader
from server.auth.throttle import FailureThrottle
from server.config import Settings
from server.db_types import utcnow
from server.directory.models import Device, DeviceKind, User
from server.errors import Problem
from server.extensions import db


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


@dataclass(frozen=True)
class DeviceAccess:
    access_token: str
    expires_in: int
    token_type: str = "Bearer"


def _throttle() -> FailureThrottle:
    return current_app.extensions["inspect_once.login_throttle"]


def _as_principal(user: User, device_id: str | None = None) -> Principal:
    return Principal("user", str(user.id), user.role.value, user.department_id, device_id)


def _user_claims(user: User, device: Device | None) -> dict[str, str]:
    claims = {"role": user.role.value, "dept": str(user.department_id), "name": user.username}
    if device is not None:
        # ``dev``: the enrolled tablet this log-in is bound to; ``dkey``: which of its secrets it was made with.
        claims.update(dev=device.id, dkey=passwords.device_key(device.secret_hash))
    return claims


def _issue_pair(settings: Settings, user: User, family_id: uuid.UUID, now: datetime,
                device: Device | None = None) -> TokenPair:
    access = tokens.issue(settings.jwt_signing_key, str(user.id), tokens.USER_ACCESS,
                          settings.access_token_seconds, _user_claims(user, device), now)
    raw_refresh = secrets.token_urlsafe(32)
    db.session.add(RefreshToken(
        token_hash=passwords.hash_refresh_token(raw_refresh), family_id=family_id, user_id=user.id,
        issued_at=now, expires_at=now + timedelta(days=settings.refresh_token_days),
        device_id=device.id if device else None,
        device_key=passwords.device_key(device.secret_hash) if device else None))
    db.session.flush()
    return TokenPair(access.token, raw_refresh, access.expires_in)


_DEVICE_UNKNOWN_CHALLENGE = 'Bearer error="invalid_token", error_description="device-unknown"'


def usable_tablet(device: Device | None) -> bool:
    """An active, not retired tablet: the only device a person may log in on.

    Its secret comes from spending an enrolment code (or, for tablets provisioned by script, from
    ``create-device``); a tablet registered by issuing a code has a secret nobody knows until then.
    """
    return device is not None and device.kind is DeviceKind.TABLET and device.active and device.retired_at is None


def _device_unknown() -> Problem:
    return Problem(401, "device-unknown", "本平板未登记、已停用或设备密钥不正确，请联系管理员重新登记",
                   errors={"device_id": ["本平板未登记、已停用或设备密钥不正确"]})


def _bound_tablet(user: User, device_id: str, device_secret: str, username: str, client_address: str) -> Device:
    """The tablet a log-in binds to, checked: enrolled and active, right secret, the inspector's department."""
    throttle = _throttle()
    throttle.check("device", device_id, client_address)
    device = db.session.get(Device, device_id)
    if not usable_tablet(device) or not passwords.verify_device_secret(device.secret_hash, device_secret):
        throttle.record_failure("device", device_id, client_address)
        audit.record("auth.login_failed", object_type="device", object_id=device_id, outcome="failed",
                     details={"username": username, "reason": "device-unknown"}, actor=audit.ANONYMOUS)
        raise _device_unknown()
    assert device is not None
    if device.department_id != user.department_id:
        audit.record("auth.login_failed", object_type="device", object_id=device.id, outcome="failed",
                     details={"username": username, "reason": "device-not-allowed"}, actor=_as_principal(user))
        raise Problem(403, "device-not-allowed", "这台平板属于其他部门，不能用您的账号登录",
                      errors={"device_id": ["这台平板属于其他部门"]})
    return device


def login(settings: Settings, username: str, password: str, client_address: str, *,
          device_id: str | None = None, device_secret: str | None = None) -> TokenPair:
    """Check a password and open a new refresh-token family, bound to an enrolled tablet when one is named.

    The password is checked first: only someone who knows it learns whether a tablet is accepted.
    """
    throttle = _throttle()
    throttle.check("login", username, client_address)
    user = db.session.scalar(select(User).where(User.username == username))
    ok = passwords.verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.active:
        throttle.record_failure("login", username, client_address)
        audit.record("auth.login_failed", object_type="user", object_id=str(user.id) if user else None,
                     outcome="failed", details={"username": username}, actor=audit.ANONYMOUS)
        raise Problem(401, "invalid-credentials", "用户名或密码错误")
    device = None
    if device_id is not None:
        device = _bound_tablet(user, device_id, device_secret or "", username, client_address)
    audit.record("auth.login", object_type="user", object_id=str(user.id),
                 actor=_as_principal(user, device.id if device else None),
                 details={"device_id": device.id} if device else None)
    return _issue_pair(settings, user, uuid.uuid4(), utcnow(), device)


def _binding_holds(device: Device | None, user: User, key: str | None) -> bool:
    """A log-in bound to a tablet lives while the tablet is usable, the user's, and has the same secret."""
    return (usable_tablet(device) and device is not None and device.department_id == user.department_id
            and key is not None and passwords.device_key(device.secret_hash) == key)


def _revoke_family(family_id: uuid.UUID, reason: str, now: datetime) -> None:
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason))


def _refresh_refused(slug: str, message: str, user_id: uuid.UUID | None) -> Problem:
    """A refused refresh: recorded in the audit log (never the token itself), answered 401."""
    audit.record("auth.refresh_failed", object_type="user", object_id=str(user_id) if user_id else None,
                 outcome="failed", details={"reason": slug}, actor=audit.ANONYMOUS)
    return Problem(401, slug, message)


def refresh(settings: Settings, raw_refresh: str) -> TokenPair:
    """Rotate a refresh token. Presenting an already-used one revokes its family."""
    now = utcnow()
    stored = db.session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == passwords.hash_refresh_token(raw_refresh))
        .with_for_update())
    if stored is None:
        raise _refresh_refused("refresh-invalid", "刷新令牌无效", None)
    if stored.revoked_at is not None:
        raise _refresh_refused("refresh-revoked", "刷新令牌已被吊销，请重新登录", stored.user_id)
    if stored.used_at is not None:
        # Someone holds a copy of a token that was already rotated: either the
        # thief or the owner is replaying it. Cut off every token of the family.
        _revoke_family(stored.family_id, "reuse-detected", now)
        db.session.commit()  # the revocation must persist although the request fails
        raise _refresh_refused("refresh-reused", "刷新令牌已被使用过；为安全起见，该登录会话已全部注销，请重新登录",
                               stored.user_id)
    if stored.expires_at <= now:
        raise _refresh_refused("refresh-expired", "刷新令牌已过期，请重新登录", stored.user_id)
    user = db.session.get(User, stored.user_id)
    if user is None or not user.active:
        raise _refresh_refused("refresh-invalid", "账号已停用", stored.user_id)
    device = None
    if stored.device_id is not None:
        device = db.session.get(Device, stored.device_id)
        if not _binding_holds(device, user, stored.device_key):
            # The tablet was retired or re-enrolled: this session is over for good.
            _revoke_family(stored.family_id, "device-unknown", now)
            db.session.commit()
            raise _refresh_refused("device-unknown", "本平板已停用或已重新登记，请在已登记的平板上重新登录",
                                   stored.user_id)
    stored.used_at = now
    audit.record("auth.refresh", object_type="user", object_id=str(user.id),
                 actor=_as_principal(user, stored.device_id))
    return _issue_pair(settings, user, stored.family_id, now, device)


def logout(raw_refresh: str) -> None:
    stored = db.session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == passwords.hash_refresh_token(raw_refresh)))
    if stored is None:
        raise Problem(401, "refresh-invalid", "刷新令牌无效")
    _revoke_family(stored.family_id, "logout", utcnow())
    audit.record("auth.logout", object_type="user", object_id=str(stored.user_id),
                 actor=_as_principal(db.session.get(User, stored.user_id)))


def device_token(settings: Settings, device_id: str, device_secret: str, client_address: str) -> DeviceAccess:
    throttle = _throttle()
    throttle.check("device", device_id, client_address)
    device = db.session.get(Device, device_id)
    if device is None or not device.active or not passwords.verify_device_secret(device.secret_hash, device_secret):
        throttle.record_failure("device", device_id, client_address)
        audit.record("auth.device_token_failed", object_type="device", object_id=device_id, outcome="failed",
                     details={"device_id": device_id}, actor=audit.ANONYMOUS)
        raise Problem(401, "invalid-credentials", "设备编号或设备密钥错误")
    audit.record("auth.device_token", object_type="device", object_id=device.id,
                 actor=Principal("device", device.id, "device", device.department_id))
    issued = tokens.issue(settings.jwt_signing_key, device.id, tokens.DEVICE_ACCESS, settings.device_token_seconds,
                          {"role": "device", "dept": str(device.department_id), "kind": device.kind.value})
    return DeviceAccess(issued.token, issued.expires_in)


def principal_from_token(settings: Settings, raw: str, *, allow_device: bool) -> Principal:
    """Verify a bearer token and load who it speaks for, as the database knows them now."""
    allowed = (tokens.USER_ACCESS, tokens.DEVICE_ACCESS) if allow_device else (tokens.USER_ACCESS,)
    claims = tokens.decode(settings.jwt_signing_key, raw, allowed)
    subject = str(claims["sub"])
    if claims["typ"] == tokens.DEVICE_ACCESS:
        device = db.session.get(Device, subject)
        if device is None or not device.active:
            raise Problem(401, "token-invalid", "设备已停用或不存在")
        return Principal("device", device.id, "device", device.department_id)
    try:
        user_id = uuid.UUID(subject)
    except ValueError:
        raise Problem(401, "token-invalid", "访问令牌无效") from None
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        raise Problem(401, "token-invalid", "账号已停用或不存在")
    device_id = claims.get("dev")
    if device_id is not None:
        device = db.session.get(Device, str(device_id))
        if not _binding_holds(device, user, claims.get("dkey")):
            raise Problem(401, "device-unknown", "本平板已停用或已重新登记，请在已登记的平板上重新登录",
                          headers={"WWW-Authenticate": _DEVICE_UNKNOWN_CHALLENGE})
        device_id = str(device_id)
    return Principal("user", str(user.id), user.role.value, user.department_id, device_id)


def init_app(app) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = app.config["SETTINGS"]
    install_principal_loader(app, lambda settings, raw, allow_device: principal_from_token(
        settings, raw, allow_device=allow_device))
    app.extensions["inspect_once.login_throttle"] = FailureThrottle(
        settings.ratelimit_storage_uri, settings.login_rate_limit, settings.login_address_rate_limit)
