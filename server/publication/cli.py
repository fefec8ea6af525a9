"""``flask --app server publication-due [--department CODE]``: decisions still to publish, by deadline."""
from __future__ import annotations

import click

from server.auth.policy import SYSTEM
from server.errors import Problem
from server.publication.service import DECISION_KIND_TEXT, deadlines

STATE_TEXT = {"overdue": "OVERDUE", "soon": "due soon", "due": "due", "unknown": "CALENDAR OUT OF RANGE"}


@click.command("publication-due")
@click.option("--department", "department", metavar="CODE", help="Only this department (e.g. SCJG).")
def publication_due_command(department: str | None) -> None:
    """List made decisions not yet published: overdue, due within three working days, due."""
    try:
        rows = deadlines(SYSTEM, department)
    except Problem as problem:
        raise click.ClickException(problem.detail or problem.title) from None
    if not rows:
        click.echo("nothing to publish")
        return
    for row in rows:
        decision = row.decision
        when = row.deadline.isoformat() if row.deadline else "unknown"
        left = f"{row.days_left} working days left" if row.days_left is not None and row.days_left >= 0 else (
            f"{-row.days_left} working days late" if row.days_left is not None else row.calendar_error)
        click.echo(f"{row.department.code}\t{STATE_TEXT[row.state]}\tdeadline {when}\t({left})\t"
                   f"decided {decision.decided_on}\t{DECISION_KIND_TEXT[decision.kind.value]}\t"
                   f"{row.enterprise.name}\tdecision {decision.id}")
    counts = {state: sum(r.state == state for r in rows) for state in STATE_TEXT}
    click.echo(f"{len(rows)} to publish: {counts['overdue']} overdue, {counts['soon']} due within 3 working days, "
               f"{counts['due']} due later, {counts['unknown']} beyond the calendar")
