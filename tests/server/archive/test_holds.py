"""Legal holds and retention: nothing held or under retention is deleted by any path, and every attempt
is refused and audited."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from server.archive import retention
from server.audit.models import AuditEntry, Outcome
from server.extensions import db
from server.uploads import service as upload_service
from server.uploads.expiry import expire_abandoned
from server.uploads.models import Media, Upload, UploadStatus
from server.uploads.service import uploads
from tests.conftest import assert_problem
from tests.server.archive.conftest import Case


def _hold(client, auth, case: Case, username: str = "m-head", **body):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/legal-holds", headers=auth.headers(username),
                       json={"object_type": "inspection", "object_id": str(case.inspection.id),
                             "reason": "当事人已提起行政诉讼，证据保全", **body})


def _delete(client, auth, media: Media, username: str = "m-head"):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/media/{media.id}/deletion", headers=auth.headers(username),
                       json={"reason": "清理"})


def _refusals(action: str = "media.delete") -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action,
                                                            AuditEntry.outcome == Outcome.DENIED)
                                   .order_by(AuditEntry.seq)))


def _no_retention(app) -> None:  # type: ignore[no-untyped-def]
    rules = app.extensions["inspect_once.retention"]
    app.extensions["inspect_once.retention"] = retention.RetentionRules(
        rules.by_decision_kind, {**rules.years, retention.RetentionClass.ORDINARY: 0})


def test_held_evidence_is_refused_by_every_path(client, auth, case: Case, runner, app, monkeypatch) -> None:
    _no_retention(app)  # only the hold stands in the way
    placed = _hold(client, auth, case)
    assert placed.status_code == 201, placed.get_json()
    hold = placed.get_json()
    assert hold["active"] and hold["placed_by"] == "m-head"

    # API
    body = assert_problem(_delete(client, auth, case.video), 409, "under-legal-hold")
    assert "法律保全" in body["detail"]
    # CLI
    result = runner.invoke(args=["delete-evidence", str(case.video.id), "--reason", "清理"])
    assert result.exit_code != 0 and "法律保全" in result.output
    assert [e.details["path"] for e in _refusals()] == ["api", "cli"]
    assert all(e.details["refused"] == "under-legal-hold" for e in _refusals())
    assert db.session.get(Media, case.video.id) is not None
    assert uploads().store.stat(uploads().store.object_key(case.video.sha256)) is not None

    # Upload expiry: an abandoned upload of the held case keeps its bytes.
    part = uploads().store.create_partial(100)
    upload = Upload(status=UploadStatus.ACTIVE, length=100, sha256="0" * 64, storage_backend="local",
                    storage_key=part.key, department_id=case.world.market.id, media_department_id=case.world.market.id,
                    task_id=case.world.task.id, media_id=None)
    db.session.add(upload)
    db.session.flush()
    upload.created_at = upload.created_at - timedelta(days=30)
    db.session.commit()
    said: list[str] = []
    # Found expired as the store's write times would say after a month (tested in tests/server/uploads).
    monkeypatch.setattr(upload_service, "find_expired", lambda now: [upload_service.ExpiredUpload(
        upload.id, upload.storage_key, 0, 100, upload.created_at)])
    expire_abandoned(said.append)
    assert any("kept upload" in line and "under-legal-hold" in line for line in said), said
    assert db.session.get(Upload, upload.id).status == UploadStatus.ACTIVE
    assert uploads().store.partial(part.key).length == 100
    assert [e.details["path"] for e in _refusals("upload.delete")] == ["upload-expiry"]

    # Lifted (with a reason), the hold stays on record and the file may go.
    lifted = client.post(f"/api/v1/legal-holds/{hold['id']}/lift", headers=auth.headers("m-head"),
                         json={"reason": "判决已生效"})
    assert lifted.status_code == 200 and lifted.get_json()["lifted_by"] == "m-head"
    assert_problem(client.post(f"/api/v1/legal-holds/{hold['id']}/lift", headers=auth.headers("m-head"),
                               json={"reason": "再次"}), 409, "hold-already-lifted")
    assert _delete(client, auth, case.video).status_code == 204
    assert db.session.get(Media, case.video.id) is None
    actions = [e.action for e in db.session.scalars(select(AuditEntry).where(
        AuditEntry.object_id.in_([str(case.inspection.id), str(case.video.id)])).order_by(AuditEntry.seq))]
    assert actions[:2] == ["legal_hold.place", "media.delete"] and "legal_hold.lift" in actions
    assert actions[-1] == "media.delete"


def test_evidence_under_retention_is_refused_and_audited(client, auth, case: Case) -> None:
    body = assert_problem(_delete(client, auth, case.photo, "e-head"), 409, "under-retention")
    assert "保管期限" in body["detail"]
    (entry,) = _refusals()
    assert entry.details["retention"]["class"] == "ordinary" and entry.details["path"] == "api"
    assert db.session.get(Media, case.photo.id) is not None


def test_a_hold_on_one_file_covers_that_file(client, auth, case: Case, app) -> None:
    _no_retention(app)
    placed = client.post("/api/v1/legal-holds", headers=auth.headers("e-head"),
                         json={"object_type": "media", "object_id": str(case.photo.id), "reason": "鉴定中"})
    assert placed.status_code == 201
    assert_problem(_delete(client, auth, case.photo, "e-head"), 409, "under-legal-hold")
    assert _delete(client, auth, case.video).status_code == 204  # the case itself is not held


def test_who_places_and_lifts_holds(client, auth, case: Case, runner) -> None:
    assert_problem(_hold(client, auth, case, "m-sup"), 403)
    assert_problem(_hold(client, auth, case, "m-insp"), 403)
    assert_problem(client.post("/api/v1/legal-holds", json={}), 401)
    body = assert_problem(_hold(client, auth, case, reason=""), 422)
    assert "reason" in body["errors"]
    assert_problem(_hold(client, auth, case, object_type="planet"), 422)
    assert_problem(client.post("/api/v1/legal-holds", headers=auth.headers("m-head"),
                               json={"object_type": "media", "object_id": str(case.inspection.id), "reason": "x"}),
                   404)
    # The operator, from the command line.
    result = runner.invoke(args=["legal-hold", "place", "inspection", str(case.inspection.id), "--reason", "检察建议"])
    assert result.exit_code == 0, result.output
    hold_id = result.output.split()[1]
    listed = client.get("/api/v1/legal-holds?active=true", headers=auth.headers("m-sup")).get_json()["items"]
    assert [h["id"] for h in listed] == [hold_id] and listed[0]["placed_by"] == "system"
    assert client.get("/api/v1/legal-holds", headers=auth.headers("e-sup")).get_json()["items"] == []
    assert_problem(client.post(f"/api/v1/legal-holds/{hold_id}/lift", headers=auth.headers("m-head"),
                               json={}), 422)
    result = runner.invoke(args=["legal-hold", "lift", hold_id, "--reason", "撤销"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["legal-hold", "list", "--all"])
    assert hold_id in result.output and "lifted" in result.output


def test_a_held_case_says_so_in_its_case_file(client, auth, case: Case, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io
    import zipfile

    assert _hold(client, auth, case).status_code == 201
    data = client.get(f"/api/v1/inspections/{case.inspection.id}/case-file", headers=auth.headers("m-sup")).get_data()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.read(f"case-{case.inspection.id}/bag-info.txt").decode()
    assert "Legal-Hold: active" in info


def test_unstorable_or_unknown_input_is_a_validation_error(client, auth, case: Case) -> None:
    body = assert_problem(_hold(client, auth, case, reason="诉讼\x00"), 422, "validation-failed")
    assert "reason" in body["errors"]
    assert "colour" in assert_problem(_hold(client, auth, case, colour="red"), 422)["errors"]
    assert_problem(_hold(client, auth, case, reason="   "), 422)
    assert_problem(client.post(f"/api/v1/media/{case.video.id}/deletion", headers=auth.headers("m-head"),
                               json={"reason": "\x00"}), 422)
    assert_problem(client.get("/api/v1/legal-holds?actve=1", headers=auth.headers("m-head")), 422)


def test_the_operator_exports_and_verifies_with_the_servers_own_key(runner, case: Case, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import uuid

    out = tmp_path / "case.zip"
    result = runner.invoke(args=["case-file-export", str(case.inspection.id), "-o", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["case-file-verify", str(out)])
    assert result.exit_code == 0 and "OK" in result.output, result.output
    result = runner.invoke(args=["case-file-export", str(uuid.uuid4()), "-o", str(tmp_path / "none.zip")])
    assert result.exit_code != 0 and "检查记录不存在" in result.output
    result = runner.invoke(args=["legal-hold", "place", "media", str(uuid.uuid4()), "--reason", "x"])
    assert result.exit_code != 0 and "证据文件不存在" in result.output
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "case_file.download")).actor_kind.value \
        == "system"
