"""Operator commands: verify a case file offline, export one, place and lift legal holds, delete evidence.

``case-file-verify`` needs no database: the archive office runs it on a copy of the server's code with the
published public key (``--public-key``); on the server itself it defaults to the installation's key.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from server.archive import keys
from server.archive.models import HeldObject
from server.auth.policy import SYSTEM
from server.errors import Problem
from server.extensions import db


def _fail(problem: Problem) -> click.ClickException:
    return click.ClickException(problem.detail or problem.title)


@click.command("case-file-verify")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option("--public-key", "public_key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The archive's public key (PEM, from GET /api/v1/archive-key); default: this server's key")
def case_file_verify_command(file: Path, public_key: Path | None) -> None:
    """Check a case file (zip or unpacked bag): every payload hash and the archive signature. Exit 1 if wrong."""
    from server.archive.verify import verify_case_file

    source = str(public_key) if public_key else "this server's archive key"
    try:
        if public_key is not None:
            key = keys.load_public_pem(public_key.read_bytes())
        else:
            var_dir = current_app.config["SETTINGS"].var_dir
            if not (var_dir / keys.KEY_FILE).exists():
                raise click.ClickException("this server has no archive key yet: give --public-key")
            key = keys.private_key(var_dir).public_key()
    except ValueError as exc:
        raise click.ClickException(f"{source}: {exc}") from None
    verdict = verify_case_file(file, key)
    click.echo(f"{file}: {verdict.payload_files} payload file(s), {verdict.payload_bytes} bytes; "
               f"key {keys.fingerprint(key)} ({source})")
    for problem in verdict.problems:
        click.echo(f"FAILED {problem}", err=True)
    if not verdict.ok:
        raise SystemExit(1)
    click.echo("OK: every payload hash matches and the archive signature verifies")


@click.command("case-file-export")
@click.argument("inspection_id", type=click.UUID)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@with_appcontext
def case_file_export_command(inspection_id: uuid.UUID, output: Path) -> None:
    """Write an inspection's case file (zip) to OUTPUT, as the download would; audited."""
    from server.archive import casefile

    try:
        case = casefile.assemble(SYSTEM, inspection_id, current_app.config["SETTINGS"].var_dir)
    except Problem as exc:
        raise _fail(exc) from None
    db.session.commit()  # the download's audit entry, before the bytes go out
    with output.open("wb") as out:
        for chunk in casefile.stream_zip(case):
            out.write(chunk)
    click.echo(f"{output}: {len(case.payload)} payload file(s), {case.size_of_payload} bytes")


@click.group("legal-hold")
def legal_hold_group() -> None:
    """Place, lift and list legal holds (as the operator; audited)."""


@legal_hold_group.command("place")
@click.argument("object_type", type=click.Choice([h.value for h in HeldObject]))
@click.argument("object_id", type=click.UUID)
@click.option("--reason", required=True)
@with_appcontext
def place_command(object_type: str, object_id: uuid.UUID, reason: str) -> None:
    from server.archive import retention

    try:
        hold = retention.place_hold(SYSTEM, HeldObject(object_type), object_id, reason)
    except Problem as exc:
        raise _fail(exc) from None
    db.session.commit()
    click.echo(f"hold {hold.id} placed on {object_type} {object_id}")


@legal_hold_group.command("lift")
@click.argument("hold_id", type=click.UUID)
@click.option("--reason", required=True)
@with_appcontext
def lift_command(hold_id: uuid.UUID, reason: str) -> None:
    from server.archive import retention

    try:
        hold = retention.lift_hold(SYSTEM, hold_id, reason)
    except Problem as exc:
        raise _fail(exc) from None
    db.session.commit()
    click.echo(f"hold {hold.id} lifted")


@legal_hold_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Lifted holds too")
@with_appcontext
def list_command(show_all: bool) -> None:
    from server.archive import retention

    for hold in retention.list_holds(SYSTEM, object_id=None, active=None if show_all else True, limit=500):
        state = "active" if hold.active else f"lifted {hold.lifted_at:%Y-%m-%d} by {hold.lifted_by}"
        click.echo(f"{hold.id}  {hold.object_type.value} {hold.object_id}  {state}  "
                   f"placed {hold.placed_at:%Y-%m-%d} by {hold.placed_by}: {hold.reason}")


@click.command("delete-evidence")
@click.argument("media_id", type=click.UUID)
@click.option("--reason", required=True)
@with_appcontext
def delete_evidence_command(media_id: uuid.UUID, reason: str) -> None:
    """Delete an evidence file whose retention has run out and which no legal hold covers; audited."""
    from server.uploads import deletion

    try:
        deletion.delete_media(SYSTEM, media_id, reason, path="cli")
    except Problem as exc:
        db.session.commit()  # the refusal's audit entry
        raise _fail(exc) from None
    db.session.commit()
    click.echo(f"evidence {media_id} deleted")


def init_app(app: Flask) -> None:
    for command in (case_file_verify_command, case_file_export_command, legal_hold_group, delete_evidence_command):
        app.cli.add_command(command)
