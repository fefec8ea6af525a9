"""Authorization as one mechanism: role grants a permission, department scopes it.

Every route declares the permission it needs with ``@requires``; every service
that loads an object by id checks it with ``authorize_object`` (or filters a
listing with ``scope_query``). Nothing else decides who may see what.
"""
from __future__ import annotations

import enum
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, g, request
from sqlalchemy import Select

from server.errors import Problem


class Permission(str, enum.Enum):
    READ_DIRECTORY = "directory:read"          # departments, check items, enterprises
    MANAGE_CHECK_ITEMS = "check_items:manage"
    MANAGE_ENTERPRISES = "enterprises:manage"
    READ_PEOPLE = "people:read"                # users and their certificates
    MANAGE_PEOPLE = "people:manage"
    CHANGE_CERTIFICATE_STATUS = "certificates:change_status"
    READ_DEVICES = "devices:read"
    MANAGE_DEVICES = "devices:manage"
    MANAGE_DEPARTMENTS = "departments:manage"
    UPLOAD_MEDIA = "media:upload"
    READ_MEDIA = "media:read"                  # stored evidence files and their verification
    READ_TASKS = "tasks:read"
    MANAGE_TASKS = "tasks:manage"
    SYNC = "sync"                              # push and pull as a tablet
    READ_CONFLICTS = "sync:read_conflicts"
    READ_PLANS = "plans:read"                  # spot-check plans, joint plans and draws of every department
    MANAGE_PLANS = "plans:manage"              # a department's own spot-check plans
    MANAGE_JOINT_PLANS = "joint_plans:manage"  # merge plans, as the lead department
    RUN_DRAWS = "draws:run"
    APPROVE_TASKS = "tasks:approve"            # a head approves dispatching a task for their department
    DECLARE_CONFLICTS = "conflicts_of_interest:declare"
    REQUEST_FREQUENCY_OVERRIDE = "frequency_overrides:request"
    APPROVE_FREQUENCY_OVERRIDE = "frequency_overrides:approve"
    MANAGE_FREQUENCY_RULE = "frequency_rule:manage"
    READ_AUDIT = "audit:read"                  # the audit log (own department's entries; admin all)
    USE_REVIEW = "review:use"                # the supervisors' web app under /review/
    DECIDE_REVIEW = "review:decide"          # approve an inspection record or return it
    LEGAL_SIGNOFF = "review:legal_signoff"   # 法制审核 of records that need it, and of major decisions
    READ_DECISIONS = "decisions:read"          # enforcement decisions of tasks one takes part in
    RECORD_DECISIONS = "decisions:record"      # record, edit, make and serve one's department's decisions
    MANAGE_DECISION_RULES = "decision_rules:manage"  # what makes a department's decisions major (§4)
    READ_COMMITMENTS = "commitments:read"      # notification-commitments (告知承诺) and their checks
    MANAGE_COMMITMENTS = "commitments:manage"
    PUBLISH_RESULTS = "publication:publish"    # publish, correct and withdraw a department's decision results
    # The enterprise's ratings and complaints of a visit (issue 18): the offices of the participating
    # departments, never the team; who complained and how to reach them: the legal affairs office only.
    READ_EVALUATIONS = "evaluations:read"
    READ_EVALUATION_CONTACTS = "evaluations:read_contacts"
    REPLY_COMPLAINTS = "complaints:reply"      # close a complaint's follow-up with the office's reply


ALL_USER_ROLES = frozenset({"inspector", "supervisor", "legal_reviewer", "head", "admin"})
OFFICE = frozenset({"supervisor", "legal_reviewer", "head", "admin"})

GRANTS: dict[Permission, frozenset[str]] = {
    Permission.READ_DIRECTORY: ALL_USER_ROLES,
    Permission.MANAGE_CHECK_ITEMS: frozenset({"head", "admin"}),
    Permission.MANAGE_ENTERPRISES: frozenset({"supervisor", "head", "admin"}),
    Permission.READ_PEOPLE: ALL_USER_ROLES,
    Permission.MANAGE_PEOPLE: frozenset({"head", "admin"}),
    Permission.CHANGE_CERTIFICATE_STATUS: frozenset({"head", "admin"}),
    Permission.READ_DEVICES: ALL_USER_ROLES,
    Permission.MANAGE_DEVICES: frozenset({"head", "admin"}),
    Permission.MANAGE_DEPARTMENTS: frozenset({"admin"}),
    Permission.UPLOAD_MEDIA: frozenset({"inspector", "device"}),
    Permission.READ_MEDIA: ALL_USER_ROLES | {"device"},
    Permission.READ_TASKS: ALL_USER_ROLES,
    Permission.MANAGE_TASKS: frozenset({"supervisor", "head", "admin"}),
    Permission.SYNC: frozenset({"inspector"}),
    Permission.READ_CONFLICTS: OFFICE,
    Permission.READ_PLANS: OFFICE,
    Permission.MANAGE_PLANS: frozenset({"supervisor", "head", "admin"}),
    Permission.MANAGE_JOINT_PLANS: frozenset({"supervisor", "head", "admin"}),
    Permission.RUN_DRAWS: frozenset({"supervisor", "head", "admin"}),
    # Heads only: dispatch needs the head of every participating department, not an administrator.
    Permission.APPROVE_TASKS: frozenset({"head"}),
    Permission.DECLARE_CONFLICTS: ALL_USER_ROLES,
    Permission.REQUEST_FREQUENCY_OVERRIDE: frozenset({"supervisor", "head", "admin"}),
    Permission.APPROVE_FREQUENCY_OVERRIDE: frozenset({"head"}),
    Permission.MANAGE_FREQUENCY_RULE: frozenset({"admin"}),
    Permission.READ_AUDIT: OFFICE,
    Permission.USE_REVIEW: OFFICE,
    Permission.DECIDE_REVIEW: frozenset({"supervisor", "head", "admin"}),
    Permission.LEGAL_SIGNOFF: frozenset({"legal_reviewer", "admin"}),
    Permission.PUBLISH_RESULTS: frozenset({"supervisor", "head", "admin"}),
    Permission.READ_DECISIONS: ALL_USER_ROLES,
    Permission.RECORD_DECISIONS: frozenset({"supervisor", "head", "admin"}),
    Permission.MANAGE_DECISION_RULES: frozenset({"head", "admin"}),
    Permission.READ_COMMITMENTS: OFFICE,
    Permission.MANAGE_COMMITMENTS: frozenset({"supervisor", "head", "admin"}),
    Permission.READ_EVALUATIONS: OFFICE,
    Permission.READ_EVALUATION_CONTACTS: frozenset({"legal_reviewer", "admin"}),
    Permission.REPLY_COMPLAINTS: frozenset({"legal_reviewer", "head", "admin"}),
}

# Permissions whose objects belong to a department: a non-admin only reaches
# objects of their own department. The cross-department directory is shared.
DEPARTMENT_SCOPED = frozenset({
    Permission.MANAGE_CHECK_ITEMS, Permission.READ_PEOPLE, Permission.MANAGE_PEOPLE,
    Permission.CHANGE_CERTIFICATE_STATUS, Permission.READ_DEVICES, Permission.MANAGE_DEVICES,
    Permission.UPLOAD_MEDIA, Permission.READ_MEDIA, Permission.SYNC,
    # Plans are read across departments (to merge them); each is written and overridden by its own.
    Permission.MANAGE_PLANS, Permission.REQUEST_FREQUENCY_OVERRIDE, Permission.APPROVE_FREQUENCY_OVERRIDE,
    # A department's commitments and its own rule for major decisions.
    Permission.READ_COMMITMENTS, Permission.MANAGE_COMMITMENTS, Permission.MANAGE_DECISION_RULES,
    Permission.PUBLISH_RESULTS,  # a department publishes its own decisions
})

# Device tokens are accepted only where a device has business: uploading its
# recordings and checking that the server holds them before deleting its copy.
DEVICE_PERMISSIONS = frozenset({Permission.UPLOAD_MEDIA, Permission.READ_MEDIA})


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (with a role) or a device (role ``device``).

    ``device_id`` is the enrolled tablet a user's log-in is bound to (None: not bound to a device).
    """

    kind: str  # "user" | "device" | "system" (operator CLI)
    id: str
    role: str
    department_id: uuid.UUID
    device_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind in ("user", "system") and self.role == "admin"

    @functools.cached_property
    def user_id(self) -> uuid.UUID | None:
        return uuid.UUID(self.id) if self.kind == "user" else None


# The operator at the server's command line (flask --app server ...).
SYSTEM = Principal("system", "system", "admin", uuid.UUID(int=0))


def can(principal: Principal, permission: Permission) -> bool:
    return principal.role in GRANTS[permission]


def in_scope(principal: Principal, permission: Permission, department_id: uuid.UUID | None) -> bool:
    if not can(principal, permission):
        return False
    if permission not in DEPARTMENT_SCOPED or principal.is_admin:
        return True
    return department_id == principal.department_id


def authorize_object(principal: Principal, permission: Permission, obj: Any, *,
                     visible: Permission | None = None) -> None:
    """Raise unless ``principal`` may apply ``permission`` to ``obj``.

    An object outside what the caller may even see answers 404, so ids of
    other departments' objects cannot be probed; one the caller may see but
    not change answers 403.
    """
    department_id = getattr(obj, "department_id", None)
    if in_scope(principal, permission, department_id):
        return
    if obj is None:  # a collection-level action: nothing to hide
        raise Problem(403, "forbidden", "您的角色无权执行此操作")
    if visible is not None and in_scope(principal, visible, department_id):
        raise Problem(403, "forbidden", "您的角色无权执行此操作")
    raise Problem(404, "not-found", "资源不存在")


def scope_query(principal: Principal, permission: Permission, query: Select[Any],
                department_column: Any) -> Select[Any]:
    """Restrict a listing to what ``principal`` may see under ``permission``."""
    if not can(principal, permission):
        raise Problem(403, "forbidden", "您的角色无权执行此操作")
    if permission in DEPARTMENT_SCOPED and not principal.is_admin:
        query = query.where(department_column == principal.department_id)
    return query


F = TypeVar("F", bound=Callable[..., Any])


def current_principal() -> Principal:
    principal = g.get("principal")
    if principal is None:  # a route forgot @requires: fail closed
        raise Problem(401, "unauthenticated", "需要登录")
    return principal


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "unauthenticated", "缺少访问令牌（Authorization: Bearer …）",
                      headers={"WWW-Authenticate": 'Bearer realm="inspect-once"'})
    return token.strip()


# Who a bearer token speaks for: ``auth.service`` knows (tokens and the accounts in the database) and
# installs itself here when the app is built, so the policy stays below the services that use it.
PrincipalLoader = Callable[[Any, str, bool], Principal]
_LOADER = "inspect_once.principal_loader"


def install_principal_loader(app: Any, loader: PrincipalLoader) -> None:
    """``loader(settings, raw_token, allow_device)`` authenticates the bearer tokens of ``@requires`` routes."""
    app.extensions[_LOADER] = loader


def requires(permission: Permission) -> Callable[[F], F]:
    """Route decorator: authenticate the bearer token, then check the role grant."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            load: PrincipalLoader = current_app.extensions[_LOADER]
            principal = load(current_app.config["SETTINGS"], _bearer_token(), permission in DEVICE_PERMISSIONS)
            if not can(principal, permission):
                raise Problem(403, "forbidden", "您的角色无权执行此操作")
            g.principal = principal
            return view(*args, **kwargs)

        wrapper._required_permission = permission  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator
