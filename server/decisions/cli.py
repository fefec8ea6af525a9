"""``flask --app server decisions-list``: the operator's view of enforcement decisions and what awaits review."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import select

from server.auth.policy import SYSTEM
from server.decisions import service
from server.decisions.models import DecisionStatus
from server.directory.models import Department, Enterprise
from server.extensions import db


@click.command("decisions-list")
@click.option("--status", type=click.Choice([s.value for s in DecisionStatus]), default=None)
@click.option("--awaiting-review", is_flag=True, help="Only major drafts waiting for a legal reviewer's sign-off.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@with_appcontext
def decisions_list_command(status: str | None, awaiting_review: bool, limit: int) -> None:
    """One line per decision: department, enterprise, kind, status, dates, major and why."""
    page = service.list_decisions(SYSTEM, status=status, awaiting_review=awaiting_review, limit=limit)
    names = {row.id: row.code for row in db.session.execute(select(Department.id, Department.code))}
    for decision in page.items:
        enterprise = db.session.get(Enterprise, decision.enterprise_id)
        click.echo("\t".join([
            str(decision.id), names.get(decision.department_id, "?"),
            enterprise.credit_code if enterprise else "?", decision.kind.value, decision.status.value,
            decision.decided_on.isoformat() if decision.decided_on else "-",
            decision.served_on.isoformat() if decision.served_on else "-",
            ("major:" + ",".join(decision.major_reasons)) if decision.major else "ordinary",
            "signed-off" if service.signed_off(decision) else "-"]))
    click.echo(f"{len(page.items)} decision(s)", err=True)


def init_app(app: Flask) -> None:
    app.cli.add_command(decisions_list_command)


