"""Decisions: approve, return with comments, legal sign-off first where measures were coercive;
heads approve or reject dispatch. Each is stored and on the audit record."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from server.audit.models import AuditEntry
from server.errors import Problem
from server.extensions import db
from server.review import service
from server.review.models import DecisionKind, ReviewDecision
from server.review.sessions import principal_of
from server.tasks.models import InspectionTask, TaskStatus
from server.tasks.service import create_task
from tests.server.review.conftest import Scene, other_enterprise, post_form


def _decide(client, inspection_id, **form):  # type: ignore[no-untyped-def]
    return post_form(client, f"/review/inspections/{inspection_id}/decisions", form,
                     f"/review/inspections/{inspection_id}")


def _decisions() -> list[tuple[str, str | None]]:
    return [(d.kind.value, d.comment)
            for d in db.session.scalars(select(ReviewDecision).order_by(ReviewDecision.decided_at))]


def test_a_supervisor_approves_and_the_page_shows_it(review_as, scene: Scene) -> None:
    client = review_as("m-sup")
    response = _decide(client, scene.joint.id, kind="approve", comment="证据完整")
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "已批准" in page and "证据完整" in page
    assert 'data-testid="decision-form"' not in page  # nothing left to decide
    assert _decisions() == [("approve", "证据完整")]
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "review.approve"))
    assert entry.object_id == str(scene.joint.id) and entry.department_id == scene.world.market.id
    assert 'data-action="review.approve"' in page  # the audit entries are on the page
    assert "审核" in page and _queue_ids(client) == [str(scene.coercive.id)]


def _queue_ids(client) -> list[str]:  # type: ignore[no-untyped-def]
    import re
    return re.findall(r'href="/review/inspections/([0-9a-f-]+)"', client.get("/review/").get_data(as_text=True))


def test_approving_twice_is_refused(review_as, scene: Scene) -> None:
    client = review_as("m-sup")
    _decide(client, scene.joint.id, kind="approve")
    again = _decide(client, scene.joint.id, kind="approve")
    assert again.status_code == 409
    assert _decisions() == [("approve", None)]


def test_returning_needs_comments(review_as, scene: Scene) -> None:
    client = review_as("m-sup")
    refused = _decide(client, scene.joint.id, kind="return", comment="  ")
    assert refused.status_code == 422 and "意见" in refused.get_data(as_text=True)
    assert _decide(client, scene.joint.id, kind="return", comment="补充亮证视频").status_code == 303
    assert _decisions() == [("return", "补充亮证视频")]
    assert db.session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "review.return")) == 1


def test_coercive_measures_need_a_legal_sign_off_before_approval(review_as, scene: Scene, make_user) -> None:
    make_user("m-legal", "legal_reviewer", scene.world.market)
    supervisor = review_as("m-sup")
    refused = _decide(supervisor, scene.coercive.id, kind="approve")
    assert refused.status_code == 409 and "法制审核" in refused.get_data(as_text=True)
    assert review_as("m-sup").get(f"/review/inspections/{scene.coercive.id}").status_code == 200
    legal = review_as("m-legal")
    assert _decide(legal, scene.coercive.id, kind="approve").status_code == 403  # a legal reviewer does not approve
    assert _decide(legal, scene.coercive.id, kind="legal_signoff", comment="程序合法").status_code == 303
    assert _decide(legal, scene.coercive.id, kind="legal_signoff").status_code == 409
    assert _decide(review_as("m-sup"), scene.coercive.id, kind="approve").status_code == 303
    assert _decisions() == [("legal_signoff", "程序合法"), ("approve", None)]


def test_a_return_undoes_the_legal_sign_off(scene: Scene) -> None:
    people = scene.world.people
    sup = principal_of(people["m-sup"])
    from tests.conftest import new_user
    legal = principal_of(new_user("m-legal", "legal_reviewer", scene.world.market))
    service.decide(legal, scene.coercive.id, DecisionKind.LEGAL_SIGNOFF, None)
    service.decide(sup, scene.coercive.id, DecisionKind.RETURN, "视频缺失，补传后再审")
    with pytest.raises(Problem) as refused:
        service.decide(sup, scene.coercive.id, DecisionKind.APPROVE, None)
    assert refused.value.code == 409
    service.decide(legal, scene.coercive.id, DecisionKind.LEGAL_SIGNOFF, None)
    service.decide(sup, scene.coercive.id, DecisionKind.APPROVE, None)


def test_legal_sign_off_where_none_is_needed_is_refused(scene: Scene) -> None:
    from tests.conftest import new_user
    legal = principal_of(new_user("m-legal", "legal_reviewer", scene.world.market))
    with pytest.raises(Problem) as refused:
        service.decide(legal, scene.joint.id, DecisionKind.LEGAL_SIGNOFF, None)
    assert refused.value.code == 409


def test_only_the_recording_department_decides_on_its_record(review_as, scene: Scene) -> None:
    # Ecology took part in the joint inspection and sees it, but market regulation led and recorded it.
    response = _decide(review_as("e-sup"), scene.joint.id, kind="approve")
    assert response.status_code == 403
    # A record ecology may not see at all: 404, as for the page.
    assert _decide(review_as("e-sup"), scene.coercive.id, kind="approve").status_code == 404
    assert _decisions() == []


def test_an_unknown_decision_is_refused(review_as, scene: Scene) -> None:
    assert _decide(review_as("m-sup"), scene.joint.id, kind="delete").status_code == 400
    assert _decide(review_as("m-sup"), scene.joint.id, kind="approve", comment="长" * 4001).status_code == 422
    assert _decisions() == []


def _pending_task(scene: Scene, n: int = 0) -> InspectionTask:
    world = scene.world
    suffix = f" {n + 1}" if n else ""
    task = create_task(principal_of(world.people["m-sup"]), {
        "title": f"双随机抽查：祁阳米业{suffix}",
        "enterprise_id": other_enterprise(f"PL99{n + 3:04d}", f"祁阳米业有限公司{suffix}", world).id,
        "window_start": scene.start + timedelta(days=3), "window_end": scene.start + timedelta(days=3, hours=4),
        "member_ids": [world.people["m-insp"].id], "check_item_ids": [world.check_items["m-licence"].id]})
    db.session.commit()
    assert task.status == TaskStatus.PENDING_APPROVAL
    return task


def test_a_head_approves_dispatch_from_the_queue(review_as, scene: Scene) -> None:
    task = _pending_task(scene)
    client = review_as("m-head")
    page = client.get("/review/approvals").get_data(as_text=True)
    assert "双随机抽查：祁阳米业" in page
    response = post_form(client, f"/review/approvals/{task.id}", {"action": "approve"}, "/review/approvals")
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(InspectionTask, task.id).status == TaskStatus.DISPATCHED
    assert _decisions() == [("dispatch_approve", None)]
    assert db.session.scalar(
        select(AuditEntry.object_id).where(AuditEntry.action == "review.dispatch_approve")) == str(task.id)
    assert "双随机抽查：祁阳米业" not in client.get("/review/approvals").get_data(as_text=True)


def test_a_head_rejects_dispatch_with_a_reason(review_as, scene: Scene) -> None:
    task = _pending_task(scene)
    client = review_as("m-head")
    assert post_form(client, f"/review/approvals/{task.id}", {"action": "reject"},
                     "/review/approvals").status_code == 422
    response = post_form(client, f"/review/approvals/{task.id}", {"action": "reject", "reason": "本月已检查"},
                         "/review/approvals")
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(InspectionTask, task.id).status == TaskStatus.REJECTED
    assert _decisions() == [("dispatch_reject", "本月已检查")]


def test_only_heads_reach_dispatch_approval(review_as, scene: Scene) -> None:
    task = _pending_task(scene)
    client = review_as("m-sup")
    assert client.get("/review/approvals").status_code == 403
    assert post_form(client, f"/review/approvals/{task.id}", {"action": "approve"}).status_code == 403
    other = review_as("e-head")
    assert post_form(other, f"/review/approvals/{task.id}", {"action": "approve"},
                     "/review/approvals").status_code in (403, 404)
    db.session.expire_all()
    assert db.session.get(InspectionTask, task.id).status == TaskStatus.PENDING_APPROVAL


def test_an_empty_return_shows_the_page_again_with_a_message_at_the_comment_box(review_as, scene: Scene) -> None:
    client = review_as("m-sup")
    refused = _decide(client, scene.joint.id, kind="return", comment="  \n ")
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert 'data-testid="inspection"' in page and "厂区一号车间" in page  # the record, not a bare error page
    form = page.split('data-testid="decision-form"')[1].split("</form>")[0]
    assert 'data-testid="comment-error"' in form and "退回时必须填写意见" in form
    assert 'aria-invalid="true"' in form and "aria-describedby=\"comment-error\"" in form
    # Switching the language from there comes back to the record's page, not to the form's address.
    assert f'name="next" value="/review/inspections/{scene.joint.id}"' in page
    assert _decisions() == []
    returns = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "review.return")
    assert db.session.scalar(returns) == 0


def test_a_refused_decision_keeps_what_was_typed(review_as, scene: Scene) -> None:
    client = review_as("m-sup")
    refused = _decide(client, scene.coercive.id, kind="approve", comment="同意<script>")
    assert refused.status_code == 409
    form = refused.get_data(as_text=True).split('data-testid="decision-form"')[1].split("</form>")[0]
    assert "法制审核" in form and "同意&lt;script&gt;</textarea>" in form
    assert _decisions() == []


def test_the_head_is_warned_at_dispatch_of_the_last_visit_the_cap_allows(review_as, scene: Scene) -> None:
    first = _pending_task(scene)
    second = create_task(principal_of(scene.world.people["m-sup"]), {
        "title": "复查：祁阳米业", "enterprise_id": first.enterprise_id,
        "window_start": scene.start + timedelta(days=40), "window_end": scene.start + timedelta(days=40, hours=4),
        "member_ids": [scene.world.people["m-insp"].id], "check_item_ids": []})
    db.session.commit()
    page = review_as("m-head").get("/review/approvals").get_data(as_text=True)
    counts = re.findall(r'data-testid="visit-count"[^>]*>\s*([^<]+)', page)
    assert [c.strip() for c in counts] == ["近 365 天内第 1 次（上限 2 次）", "近 365 天内第 2 次（上限 2 次）"]
    assert page.count("已达频次上限") == 1 and second.title in page
