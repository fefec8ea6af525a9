"""Deadlines per department, publishing, correcting (更新) and withdrawing (撤销), all audited."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.auth.policy import SYSTEM as SYSTEM_PRINCIPAL
from server.decisions.models import DecisionKind
from server.errors import Problem
from server.extensions import db
from server.publication import calendar, service
from server.publication.models import PublicationState
from server.review.sessions import principal_of
from tests.clock import office_today
from tests.conftest import World


def test_deadlines_are_due_soon_overdue_or_beyond_the_calendar(world: World, decide) -> None:
    today = office_today()  # 2026-03-10 by the suite's clock
    soon = decide(DecisionKind.PENALTY, date(2026, 3, 2))                 # 7 working days: 11 March
    overdue = decide(DecisionKind.PENALTY, date(2026, 2, 10))             # 7 working days across Spring Festival
    due = decide(DecisionKind.NO_IRREGULARITY, date(2026, 3, 9), department=world.ecology)  # 20 working days
    beyond = decide(DecisionKind.RECTIFY_ORDER, date(2026, 12, 24), department=world.ecology)
    rows = {r.decision.id: r for r in service.deadlines(principal_of(world.people["admin"]), today=today)}
    assert rows[soon.id].deadline == calendar.add_working_days(date(2026, 3, 2), 7) == date(2026, 3, 11)
    assert rows[soon.id].state == "soon" and rows[soon.id].days_left == 1
    assert rows[overdue.id].state == "overdue" and rows[overdue.id].deadline < today
    assert rows[overdue.id].deadline == calendar.add_working_days(date(2026, 2, 10), 7)
    assert rows[due.id].state == "due" and rows[due.id].days_left > 3
    assert rows[beyond.id].state == "unknown" and rows[beyond.id].deadline is None
    assert "2026" in rows[beyond.id].calendar_error
    # A department's supervisor sees their own department's decisions only.
    mine = service.deadlines(principal_of(world.people["m-sup"]), today=today)
    assert {r.decision.id for r in mine} == {soon.id, overdue.id}
    only = service.deadlines(principal_of(world.people["admin"]), "STHJ", today=today)
    assert {r.decision.id for r in only} == {due.id, beyond.id}
    with pytest.raises(Problem) as refused:
        service.deadlines(principal_of(world.people["admin"]), "NOPE", today=today)
    assert refused.value.code == 404


def test_publishing_takes_a_decision_off_the_deadlines_and_is_audited(world: World, decide) -> None:
    decision = decide(DecisionKind.PENALTY, date(2026, 3, 2), conclusion="责令改正并处罚款")
    supervisor = principal_of(world.people["m-sup"])
    publication = service.publish(supervisor, decision.id)
    db.session.commit()
    assert publication.version == 1 and publication.state is PublicationState.PUBLISHED
    assert publication.enforcement_body == "市场监管局" and publication.credit_code == world.enterprise.credit_code
    assert publication.decision_kind == "行政处罚" and publication.inspection_kind == "联合检查"
    assert publication.deadline == date(2026, 3, 11)
    assert service.deadlines(supervisor) == []
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "publication.publish"))
    assert entry.object_id == str(publication.id) and entry.details["conclusion"] == "责令改正并处罚款"
    assert entry.details["late"] is False
    with pytest.raises(Problem) as twice:
        service.publish(supervisor, decision.id)
    assert twice.value.slug == "already-published"


def test_another_department_cannot_publish_and_cannot_see_the_decision(world: World, decide) -> None:
    decision = decide(DecisionKind.NO_IRREGULARITY, date(2026, 3, 2))
    with pytest.raises(Problem) as refused:
        service.publish(principal_of(world.people["e-sup"]), decision.id)
    assert refused.value.code == 404
    with pytest.raises(Problem) as inspector:
        service.publish(principal_of(world.people["m-insp"]), decision.id)
    assert inspector.value.code == 403


def test_a_correction_is_a_new_version_and_a_withdrawal_is_final(world: World, decide) -> None:
    decision = decide(DecisionKind.RECTIFY_ORDER, date(2026, 3, 2), conclusion="责令于3月底前改正")
    head = principal_of(world.people["m-head"])
    first = service.publish(head, decision.id)
    with pytest.raises(Problem) as empty:
        service.correct(head, first.id, "  ")
    assert empty.value.code == 422 and "note" in empty.value.errors
    second = service.correct(head, first.id, "期限笔误", conclusion="责令于4月底前改正")
    db.session.commit()
    assert (first.state, second.state) == (PublicationState.CORRECTED, PublicationState.PUBLISHED)
    assert second.version == 2 and second.corrects_id == first.id and second.conclusion == "责令于4月底前改正"
    with pytest.raises(Problem) as stale:
        service.correct(head, first.id, "again")
    assert stale.value.slug == "publication-superseded"
    withdrawn = service.withdraw(head, second.id, "决定已被依法撤销")
    db.session.commit()
    assert withdrawn.state is PublicationState.WITHDRAWN and withdrawn.withdrawal_reason == "决定已被依法撤销"
    with pytest.raises(Problem) as again:
        service.withdraw(head, second.id, "again")
    assert again.value.slug == "publication-withdrawn"
    actions = list(db.session.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "publication")
                                      .order_by(AuditEntry.seq)))
    assert actions == ["publication.publish", "publication.correct", "publication.withdraw"]


def test_publication_due_lists_per_department_from_the_cli(world: World, decide, runner) -> None:
    decide(DecisionKind.PENALTY, date(2026, 2, 10))
    decide(DecisionKind.NO_IRREGULARITY, date(2026, 12, 24), department=world.ecology)
    result = runner.invoke(args=["publication-due"])
    assert result.exit_code == 0, result.output
    assert "SCJG\tOVERDUE" in result.output and "STHJ\tCALENDAR OUT OF RANGE" in result.output
    assert "2 to publish: 1 overdue" in result.output
    only = runner.invoke(args=["publication-due", "--department", "STHJ"])
    assert "SCJG" not in only.output and "STHJ" in only.output
    unknown = runner.invoke(args=["publication-due", "--department", "NOPE"])
    assert unknown.exit_code != 0 and "NOPE" in unknown.output


def test_a_correction_and_a_withdrawal_at_once_are_taken_one_after_the_other(app, database_url: str, world: World,
                                                                            decide) -> None:
    import threading

    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time; the race needs concurrent transactions")
    entry = service.publish(SYSTEM_PRINCIPAL, decide(DecisionKind.PENALTY, date(2026, 3, 2)).id)
    db.session.commit()
    entry_id = entry.id
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def act(name: str) -> None:
        with app.app_context():
            start.wait()
            try:
                if name == "correct":
                    service.correct(SYSTEM_PRINCIPAL, entry_id, "更正")
                else:
                    service.withdraw(SYSTEM_PRINCIPAL, entry_id, "撤销")
                db.session.commit()
                outcomes[name] = "done"
            except Problem as refused:
                db.session.rollback()
                outcomes[name] = refused.slug
            finally:
                db.session.remove()

    threads = [threading.Thread(target=act, args=(name,)) for name in ("correct", "withdraw")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    expected = (["done", "publication-superseded"], ["done", "publication-withdrawn"])
    assert sorted(outcomes.values()) in expected, outcomes
    db.session.expire_all()
    versions = service.publications_of(entry.decision_id)
    if outcomes["correct"] == "done":
        assert [v.state for v in versions] == [PublicationState.CORRECTED, PublicationState.PUBLISHED]
    else:
        assert [v.state for v in versions] == [PublicationState.WITHDRAWN]
