"""``flask --app server verify-draw DRAW_ID``: re-run a recorded draw and say whether it holds."""
from __future__ import annotations

import uuid

import click

from server.errors import Problem
from server.planning.draws import verify_draw


@click.command("verify-draw")
@click.argument("draw_id")
def verify_draw_command(draw_id: str) -> None:
    """Re-run a draw from its stored seed and inputs; exit 1 unless it reproduces and its record is intact."""
    try:
        parsed = uuid.UUID(draw_id)
    except ValueError:
        raise click.BadParameter(f"{draw_id!r} is not a draw id (UUID)", param_hint="DRAW_ID") from None
    try:
        report = verify_draw(parsed)
    except Problem as problem:
        raise click.ClickException(problem.detail or problem.title) from None
    click.echo(f"draw {report.draw_id}")
    click.echo(f"input hash: stored {report.stored_input_hash}, recomputed {report.recomputed_input_hash}"
               f" ({'match' if report.input_hash_matches else 'MISMATCH'})")
    click.echo(f"result: {'reproduced' if report.result_matches else 'NOT reproduced'}")
    click.echo(f"audit log: {'agrees' if report.matches_audit_log else 'DISAGREES'}")
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    if not report.reproduced:
        raise click.ClickException("draw record does not verify: it was altered or cannot be reproduced")
    click.echo("verified: the draw reproduces from its record")
