"""Retention follows the case's enforcement decisions; a hold covers uploads still arriving; the rules are
configurable and a wrong rule stops the server."""
from __future__ import annotations

import io
import json
import zipfile
from datetime import date

import pytest

from server.archive import retention
from server.config import ConfigError
from server.decisions.models import DecisionKind as EnforcementKind
from server.decisions.models import DecisionStatus, EnforcementDecision, LegalReview, ReviewOutcome
from server.extensions import db
from server.uploads.models import Upload, UploadStatus
from server.uploads.service import uploads
from tests.conftest import assert_problem
from tests.server.archive.conftest import Case

SERVED = date(2026, 11, 20)


def _decide(case: Case, department, kind: EnforcementKind, reviewer=None) -> EnforcementDecision:  # type: ignore[no-untyped-def]
    decision = EnforcementDecision(
        inspection_id=case.inspection.id, task_id=case.world.task.id, department_id=department.id,
        enterprise_id=case.world.enterprise.id, kind=kind, conclusion="结论", legal_basis="《条例》第一条",
        circumstances=[], major=kind is not EnforcementKind.NO_IRREGULARITY, major_reasons=[],
        decided_on=date(2026, 11, 18), served_on=SERVED, status=DecisionStatus.SERVED)
    db.session.add(decision)
    db.session.flush()
    if reviewer is not None:
        review = LegalReview(decision_id=decision.id, reviewer_id=reviewer.id, opinion="同意",
                             outcome=ReviewOutcome.APPROVED, reviewed_on=date(2026, 11, 17))
        db.session.add(review)
        db.session.flush()
        decision.legal_review_id = review.id
    db.session.commit()
    return decision


def _bag(client, auth, case: Case) -> tuple[dict[str, str], dict]:  # type: ignore[no-untyped-def,type-arg]
    data = client.get(f"/api/v1/inspections/{case.inspection.id}/case-file", headers=auth.headers("m-sup")).get_data()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        top = f"case-{case.inspection.id}"
        info = dict(line.split(": ", 1) for line in archive.read(f"{top}/bag-info.txt").decode().splitlines())
        decisions = json.loads(archive.read(f"{top}/data/decisions.json"))
    return info, decisions


def test_the_case_takes_the_longest_class_of_its_decisions(client, auth, case: Case) -> None:
    _decide(case, case.world.market, EnforcementKind.NO_IRREGULARITY)
    info, _ = _bag(client, auth, case)
    assert (info["Retention-Class"], info["Retain-Until"]) == ("ordinary", "2036-11-20")
    _decide(case, case.world.ecology, EnforcementKind.PENALTY, reviewer=case.world.people["e-head"])
    info, decisions = _bag(client, auth, case)
    assert (info["Retention-Class"], info["Retain-Until"]) == ("long_term", "2056-11-20")
    assert info["Decisions-Served"] == "2 of 2"
    penalty = next(d for d in decisions["decisions"] if d["kind"] == "penalty")
    assert penalty["served_on"] == "2026-11-20"
    assert [(r["reviewer"], r["opinion"], r["is_sign_off"]) for r in penalty["legal_reviews"]] == [
        ("e-head", "同意", True)]
    # Its evidence inherits the class: refused until 2056.
    body = assert_problem(client.post(f"/api/v1/media/{case.video.id}/deletion", headers=auth.headers("m-head"),
                                      json={"reason": "清理"}), 409, "under-retention")
    assert "2056-11-20" in body["detail"]


def test_a_transfer_to_the_judicial_authorities_is_kept_for_ever(client, auth, case: Case) -> None:
    _decide(case, case.world.market, EnforcementKind.TRANSFER_JUDICIAL)
    info, _ = _bag(client, auth, case)
    assert (info["Retention-Class"], info["Retain-Until"]) == ("permanent", "permanent")
    assert_problem(client.post(f"/api/v1/media/{case.photo.id}/deletion", headers=auth.headers("e-head"),
                               json={"reason": "清理"}), 409, "under-retention")


def test_the_class_of_a_kind_is_configurable(app, case: Case, monkeypatch) -> None:
    monkeypatch.setenv("INSPECT_ONCE_RETENTION_BY_DECISION_KIND", "no_irregularity=permanent")
    retention.init_app(app)
    _decide(case, case.world.market, EnforcementKind.NO_IRREGULARITY)
    found = retention.case_retention(case.world.task.id)
    assert found is not None and found.retention_class is retention.RetentionClass.PERMANENT and found.until is None


@pytest.mark.parametrize("value", ["penalty=forever", "parking=permanent", "penalty"])
def test_a_wrong_rule_stops_the_server(app, monkeypatch, value: str) -> None:
    monkeypatch.setenv("INSPECT_ONCE_RETENTION_BY_DECISION_KIND", value)
    with pytest.raises(ConfigError, match="INSPECT_ONCE_RETENTION_BY_DECISION_KIND"):
        retention.init_app(app)


def test_the_sender_cannot_terminate_an_upload_of_a_held_case(client, auth, case: Case) -> None:
    from sqlalchemy import select

    from server.audit.models import AuditEntry

    part = uploads().store.create_partial(100)
    upload = Upload(status=UploadStatus.ACTIVE, length=100, sha256="0" * 64, storage_backend="local",
                    storage_key=part.key, department_id=case.world.market.id, media_department_id=case.world.market.id,
                    task_id=case.world.task.id, uploaded_by_user_id=case.world.people["m-insp"].id)
    db.session.add(upload)
    db.session.commit()
    assert client.post("/api/v1/legal-holds", headers=auth.headers("m-head"), json={
        "object_type": "inspection", "object_id": str(case.inspection.id), "reason": "诉讼"}).status_code == 201
    answer = client.delete(f"/api/v1/uploads/{upload.id}", headers={**auth.headers("m-insp"), "Tus-Resumable": "1.0.0"})
    assert_problem(answer, 409, "under-legal-hold")
    assert db.session.get(Upload, upload.id).status == UploadStatus.ACTIVE
    assert uploads().store.partial(part.key).length == 100
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "upload.delete"))
    assert entry is not None and entry.outcome.value == "denied" and entry.actor_username == "m-insp"
