"""Operator commands: ``flask --app server <command>``.

Each command runs the same service functions as the API, as the system
operator, and commits once at the end; on any refusal nothing is stored and
the command exits non-zero with the reason.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date
from typing import Any

import click
from flask import Flask, current_app
from flask_migrate import upgrade

from server.auth.policy import SYSTEM
from server.db_types import office_day, utcnow
from server.directory import service as directory
from server.directory.models import CertificateStatus, DeviceKind, Role
from server.errors import Problem
from server.extensions import db


def _operator_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Commit on success; on a refusal roll back and exit 1 with a one-line reason."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
            db.session.commit()
            return result
        except Problem as problem:
            db.session.rollback()
            detail = problem.detail or problem.title
            # Field messages that only repeat the detail would print the reason twice.
            fields = "; ".join(f"{k}: {', '.join(v)}" for k, v in (problem.errors or {}).items()
                               if any(m not in detail for m in v))
            raise click.ClickException(detail + (f" ({fields})" if fields else "")) from None
        except BaseException:
            db.session.rollback()
            raise

    return wrapper


def _parse_day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=name) from None


@click.command("init-db")
def init_db_command() -> None:
    """Create or upgrade the database schema to the newest migration."""
    upgrade(directory=current_app.extensions["migrate"].directory, revision="heads")
    click.echo("database schema is up to date")


@click.command("seed-demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when departments already exist.")
@_operator_command
def seed_demo_command(if_empty: bool) -> None:
    """Fill an empty database with a believable demo city."""
    from server.seed import DEMO_PASSWORD, seed_demo_city

    summary = seed_demo_city(if_empty=if_empty)
    if summary is None:
        click.echo("demo data already present; nothing added")
        return
    click.echo(f"seeded: {summary}")
    click.echo(f"demo accounts (password for all: {DEMO_PASSWORD}):")
    for line in summary.accounts:
        click.echo(f"  {line}")


@click.command("create-department")
@click.option("--code", required=True)
@click.option("--name", required=True)
@_operator_command
def create_department_command(code: str, name: str) -> None:
    """Create an enforcement department."""
    from server.directory.schemas import DepartmentCreate
    data = _validate(DepartmentCreate, {"code": code, "name": name})
    department = directory.create_department(SYSTEM, data["code"], data["name"])
    click.echo(f"created department {department.code} {department.name} ({department.id})")


def _validate(schema_cls: Any, data: dict[str, Any]) -> dict[str, Any]:
    import marshmallow as ma
    try:
        return schema_cls().load(data)  # type: ignore[no-any-return]
    except ma.ValidationError as exc:
        from server.errors import flatten_messages
        flat = flatten_messages(exc.messages)
        raise click.ClickException("; ".join(f"{k}: {', '.join(v)}" for k, v in flat.items())) from None


@click.command("create-user")
@click.option("--username", required=True)
@click.option("--password", required=True)
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--department", "department_code", required=True, help="Department code")
@click.option("--full-name", default=None, help="Defaults to the username")
@click.option("--certificate", default=None, help="Enforcement certificate number")
@click.option("--valid-from", default=None, help="YYYY-MM-DD, default today")
@click.option("--valid-until", default=None, help="YYYY-MM-DD, required with --certificate")
@_operator_command
def create_user_command(username: str, password: str, role: str, department_code: str, full_name: str | None,
                        certificate: str | None, valid_from: str | None, valid_until: str | None) -> None:
    """Create an account, optionally with its enforcement certificate."""
    from server.directory.schemas import UserCreate
    if certificate and not valid_until:
        raise click.BadParameter("--valid-until is required with --certificate", param_hint="--valid-until")
    if not certificate and (valid_until or valid_from):
        raise click.BadParameter("--valid-from/--valid-until need --certificate", param_hint="--certificate")
    department = directory.department_by_code(department_code)
    payload: dict[str, Any] = {"username": username, "password": password, "role": role,
                               "full_name": full_name or username, "department_id": str(department.id)}
    if certificate:
        today = office_day(utcnow())  # the offices' day: the machine's date.today() is another from 16:00 UTC
        payload["certificate"] = {"number": certificate,
                                  "valid_from": (_parse_day(valid_from, "--valid-from") or today).isoformat(),
                                  "valid_until": (_parse_day(valid_until, "--valid-until") or today).isoformat()}
    user = directory.create_user(SYSTEM, _validate(UserCreate, payload))
    click.echo(f"created user {user.username} ({user.role.value}, {department.code})")


@click.command("create-device")
@click.option("--id", "device_id", required=True)
@click.option("--kind", required=True, type=click.Choice([k.value for k in DeviceKind]))
@click.option("--department", "department_code", required=True)
@click.option("--inspector", default=None, help="Username of the inspector the device is assigned to")
@click.option("--label", default=None)
@_operator_command
def create_device_command(device_id: str, kind: str, department_code: str, inspector: str | None,
                          label: str | None) -> None:
    """Register a device; prints its secret once, alone on the last line."""
    from sqlalchemy import select

    from server.directory.models import User
    from server.directory.schemas import DeviceCreate
    department = directory.department_by_code(department_code)
    inspector_id = None
    if inspector:
        inspector_id = db.session.scalar(select(User.id).where(User.username == inspector))
        if inspector_id is None:
            raise click.BadParameter(f"no user named {inspector!r}", param_hint="--inspector")
    data = _validate(DeviceCreate, {"id": device_id, "kind": kind, "department_id": str(department.id),
                                    "inspector_id": str(inspector_id) if inspector_id else None, "label": label})
    created = directory.create_device(SYSTEM, data)
    click.echo(f"created device {created.device.id} ({kind}, {department.code}); its secret is shown once:")
    click.echo(created.secret)


@click.command("enrol-tablet")
@click.option("--department", "department_code", required=True, help="Department code")
@click.option("--id", "device_id", default=None, help="Tablet id (new or existing); default: the next <CODE>-TABnn")
@click.option("--label", default=None, help="A name for the tablet (e.g. 一中队 1 号平板)")
@_operator_command
def enrol_tablet_command(department_code: str, device_id: str | None, label: str | None) -> None:
    """Issue a one-time enrolment code for a tablet (registering it if new); prints the code alone on the last line.

    Re-enrolling an existing tablet revokes its unused codes; spending the new code replaces its secret.
    """
    from server.directory import enrolment
    from server.directory.schemas import DEVICE_ID

    if device_id is not None and not DEVICE_ID.match(device_id):
        raise click.BadParameter("1-64 letters, digits or hyphens", param_hint="--id")
    department = directory.department_by_code(department_code)
    issued = enrolment.issue_code(SYSTEM, department.id, device_id, label)
    what = "registered tablet" if issued.created else "re-enrolling tablet"
    click.echo(f"{what} {issued.device.id} ({department.code}); one-time enrolment code, valid until "
               f"{issued.expires_at.isoformat(timespec='minutes')} (24 h), usable once; "
               f"on the tablet open <server>/field/#enrol=<code> or run: fieldsync enrol --server URL <code>")
    click.echo(issued.code)


@click.command("set-certificate-status")
@click.argument("number")
@click.argument("status", type=click.Choice([s.value for s in CertificateStatus]))
@click.option("--reason", default=None)
@_operator_command
def set_certificate_status_command(number: str, status: str, reason: str | None) -> None:
    """Suspend, revoke or reinstate a certificate (kept in its history)."""
    certificate = directory.certificate_by_number(number)
    directory.change_certificate_status(SYSTEM, certificate, CertificateStatus(status), reason)
    click.echo(f"certificate {number} is now {status}")


@click.command("serve")
def serve_command() -> None:
    """Serve in production with gunicorn on INSPECT_ONCE_HOST:INSPECT_ONCE_PORT."""
    import os
    import shutil
    import sys

    settings = current_app.config["SETTINGS"]  # validated already: a bad setting stops us here
    _require_provided_keys(settings)
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or shutil.which("gunicorn")
    if gunicorn is None:
        raise click.ClickException("gunicorn is not installed in this environment")
    click.echo(f"Inspect Once serving on http://{settings.host}:{settings.port}/ (API docs: /api/v1/docs)", err=True)
    sys.stdout.flush()
    os.execv(gunicorn, [gunicorn, "--config", "python:server.gunicorn_conf", "server:create_app()"])


@click.command("worker")
@click.option("--workers", default=2, show_default=True, help="Jobs run at once (threads).")
@click.option("--once", is_flag=True, help="Run what is queued now, then exit.")
def worker_command(workers: int, once: bool) -> None:
    """Run background jobs (evidence verification) until stopped."""
    from server.jobs.queue import current_queue

    _require_provided_keys(current_app.config["SETTINGS"])
    queue = current_queue(current_app)
    if once:
        click.echo(f"ran {queue.run_pending()} job(s)")
        return
    settings = current_app.config["SETTINGS"]
    click.echo(f"worker started ({workers} threads, queue on {'Redis' if settings.redis_url else 'SQLite'})", err=True)
    queue.run_worker(workers)


def _require_provided_keys(settings: Any) -> None:
    """With INSPECT_ONCE_KEYS=provided, a server or worker missing a key file does not start."""
    from server import keyfiles

    missing = keyfiles.missing_keys(settings.var_dir) if settings.keys == "provided" else []
    if missing:
        raise click.ClickException(keyfiles.refusal(missing))


@click.command("make-keys")
def make_keys_command() -> None:
    """Make the installation's signing keys under INSPECT_ONCE_VAR (once), and print their fingerprints."""
    from server import keyfiles

    var_dir = current_app.config["SETTINGS"].var_dir
    for purpose, name in keyfiles.KEY_FILES.items():
        path = var_dir / name
        existed = path.exists()
        keyfiles.private_key(path, create=True)
        click.echo(f"{path}: {'kept' if existed else 'made'} ({purpose}), {keyfiles.fingerprint(path)}")
    click.echo("Copy these files (mode 600) into every app server's and worker's INSPECT_ONCE_VAR; "
               "their fingerprints must match on every machine.")


@click.command("check-system")
def check_system_command() -> None:
    """Say which system packages this server still needs (make run calls it); exit 0 either way."""
    from server.joint.report import CJK_FONT_FAMILY, missing_cjk_font

    package = missing_cjk_font()
    if package is None:
        click.echo(f"system packages: ok ({CJK_FONT_FAMILY} for the PDF report)")
    else:
        click.echo(f"WARNING: the joint report's PDF needs the font {CJK_FONT_FAMILY}: "
                   f"sudo apt-get install {package}  (until then the PDF is refused; the HTML report works)")


def init_app(app: Flask) -> None:
    for command in (check_system_command, make_keys_command, init_db_command, seed_demo_command,
                    create_department_command, create_user_command, create_device_command, enrol_tablet_command,
                    set_certificate_status_command, serve_command, worker_command):
        app.cli.add_command(command)
