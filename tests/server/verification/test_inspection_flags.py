"""Inspections assessed from real evidence: a tablet syncs the record and photos, a docked bodycam
uploads its segments, the workers verify every file, and the inspection carries the right flags."""
from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.auth.policy import SYSTEM
from server.directory.models import Certificate, CertificateStatus
from server.directory.service import change_certificate_status
from server.extensions import db
from server.jobs.queue import current_queue
from server.sync.entities import inspection_id_for
from tests.conftest import World, assert_problem, inspection_code
from tests.media.conftest import MediaFactory, media  # noqa: F401 - the generated-media fixture
from tests.server.uploads.conftest import create, device_headers, metadata, sha256

_ticks = iter(range(1, 1 << 30))


def _hlc(device: str) -> str:
    return f"{int(time.time() * 1000):013d}-{next(_ticks) % 65536:04x}-{device}"


class Visit:
    """One inspection as the team's tablets and the bodycam report it."""

    def __init__(self, client, auth, world: World, start: datetime, seconds: float, *,  # type: ignore[no-untyped-def]
                 task: Any = None, **fields: Any) -> None:
        self.client, self.auth, self.world = client, auth, world
        self.task = task or world.task
        self.start, self.end = start, start + timedelta(seconds=seconds)
        self.id = str(inspection_id_for(self.task.id))  # one joint record per task
        # The tablet records the code it held when the visit began (``fields`` may replace it).
        self._push([self._mutation("inspection", self.id, {
            "task_id": str(self.task.id), "started_at": self.start.isoformat(), "ended_at": self.end.isoformat(),
            "place": "生产车间", "status": "finished", "inspection_code": inspection_code(self.task), **fields})])

    def _mutation(self, entity: str, entity_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "entity": entity, "entity_id": entity_id, "op": "upsert", "base_version": 0,
                "hlc": _hlc("SCJG-TAB1"), "fields": fields}

    def _push(self, mutations: list[dict[str, Any]]) -> None:
        answer = self.client.post("/api/v1/sync/push", json={"device_id": "SCJG-TAB1", "mutations": mutations},
                                  headers=self.auth.headers("m-insp"))
        assert answer.status_code == 200, answer.get_json()
        assert {r["status"] for r in answer.get_json()["results"]} == {"applied"}, answer.get_json()

    def coercive_measure(self) -> None:
        self._push([{**self._mutation("inspection", self.id, {
            "coercive_measures": [{"kind": "seizure", "description": "查封过期原料一批"}]}), "base_version": 1}])

    def photo(self, path: Path, *, declared_sha256: str | None = None) -> str:
        """The tablet syncs a photo's record, then uploads it."""
        data, media_id = path.read_bytes(), str(uuid.uuid4())
        self._push([self._mutation("media", media_id, {
            "inspection_id": self.id, "sha256": declared_sha256 or sha256(data), "size": len(data),
            "proves": "certificate", "content_type": "image/jpeg", "file_name": path.name,
            "capture_start": self.start.isoformat()})])
        answer = create(self.client, self.auth.headers("m-insp"), len(data),
                        metadata(sha256=declared_sha256 or sha256(data), filename=path.name, filetype="image/jpeg",
                                 media_id=media_id),
                        data=data, content_type="application/offset+octet-stream")
        assert answer.status_code in (201, 460), answer.get_data(as_text=True)
        return media_id

    def segment(self, path: Path, offset_seconds: float) -> None:
        """The docking station uploads a bodycam segment that began ``offset_seconds`` into the visit."""
        data = path.read_bytes()
        begins = self.start + timedelta(seconds=offset_seconds)
        name = f"SCJG-BC01_{begins:%Y%m%d%H%M%S}_{int(offset_seconds):04d}.MP4"
        answer = create(self.client, device_headers(self.client, self.world, "m-cam"), len(data),
                        metadata(sha256=sha256(data), filename=name, filetype="video/mp4", device_id="SCJG-BC01",
                                 capture_start=begins.isoformat()),
                        data=data, content_type="application/offset+octet-stream")
        assert answer.status_code == 201, answer.get_data(as_text=True)

    def assessment(self, app, user: str = "m-sup") -> dict[str, Any]:  # type: ignore[no-untyped-def]
        queue = current_queue(app)
        while queue.run_pending():  # verification jobs enqueue assessments; run until quiet
            pass
        answer = self.client.get(f"/api/v1/inspections/{self.id}/assessment", headers=self.auth.headers(user))
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()  # type: ignore[no-any-return]


def codes(assessment: dict[str, Any]) -> list[str]:
    return sorted(flag["code"] for flag in assessment["flags"])


@pytest.fixture
def visit(client, auth, world: World) -> Visit:  # type: ignore[no-untyped-def]
    return Visit(client, auth, world, datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1), 15)


def team_photo(media: MediaFactory) -> Path:  # noqa: F811
    return media.photo("team.jpg", certificates=["CERT-M-001", "CERT-E-001"])


def clean_recording(visit: Visit, media: MediaFactory) -> None:  # noqa: F811
    visit.segment(media.certificate_video("CERT-M-001"), 0)   # 6 s, certificate shown at 1–3 s
    visit.segment(media.plain_video(), 6)                      # 5 s
    visit.segment(media.clean_video(), 11)                     # 4 s


def test_a_clean_three_segment_recording_with_certificates_shown_has_no_flags(app, visit, media) -> None:  # noqa: F811
    visit.photo(team_photo(media))
    clean_recording(visit, media)
    assessment = visit.assessment(app)
    assert assessment["assessed_at"] and assessment["pending_media"] == 0
    assert assessment["flags"] == [], assessment["flags"]
    assert [e["source"] for e in assessment["evidence"]].count("bodycam") == 3
    assert all(e["media"]["verification"]["status"] == "verified" for e in assessment["evidence"])
    certificate = [e["media"] for e in assessment["evidence"] if e["source"] == "record"][0]
    assert {d["text"] for d in certificate["verification"]["detections"]} == {"CERT-M-001", "CERT-E-001"}


def test_a_missing_middle_segment_is_a_gap(app, visit, media) -> None:  # noqa: F811
    visit.photo(team_photo(media))
    visit.segment(media.certificate_video("CERT-M-001"), 0)
    visit.segment(media.clean_video(), 11)
    assessment = visit.assessment(app)
    assert codes(assessment) == ["recording-gap"]
    gap = assessment["flags"][0]["details"]["gaps"][0]
    assert gap["seconds"] == pytest.approx(5, abs=0.5)
    assert datetime.fromisoformat(gap["start"]) == pytest.approx(visit.start + timedelta(seconds=6),
                                                                 abs=timedelta(seconds=1))


def test_a_covered_lens_is_flagged_with_its_times(app, client, auth, world, media) -> None:  # noqa: F811
    visit = Visit(client, auth, world, datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1), 20)
    visit.photo(team_photo(media))
    visit.segment(media.certificate_video("CERT-M-001"), 0)
    visit.segment(media.covered_video(), 6)  # 10 s, covered from 2 s
    visit.segment(media.clean_video(), 16)
    assessment = visit.assessment(app)
    assert codes(assessment) == ["lens-covered"]
    first = assessment["flags"][0]["details"]["intervals"][0]
    assert datetime.fromisoformat(first["start"]) == pytest.approx(visit.start + timedelta(seconds=8),
                                                                     abs=timedelta(seconds=1.5))


def test_another_inspectors_certificate_is_not_proof(app, visit, media) -> None:  # noqa: F811
    visit.photo(media.photo("other.jpg", certificates=["CERT-M-001", "CERT-E-002"]))  # e-insp2 is not on the team
    clean_recording(visit, media)
    assessment = visit.assessment(app)
    assert codes(assessment) == ["certificate-missing", "certificate-not-own"]
    by_code = {f["code"]: f for f in assessment["flags"]}
    assert by_code["certificate-not-own"]["details"]["number"] == "CERT-E-002"
    assert by_code["certificate-missing"]["details"]["user_id"] == str(visit.world.people["e-insp"].id)


def test_no_certificate_shown_at_all(app, visit, media) -> None:  # noqa: F811
    visit.photo(media.photo("no-certificate.jpg"))
    visit.segment(media.plain_video(), 0)
    visit.segment(media.clean_video(), 5)
    visit.segment(media.silent_mkv(), 9)
    assessment = visit.assessment(app)
    assert codes(assessment).count("certificate-missing") == 2


# The visit (the ``visit`` fixture) began an hour before the certificate is suspended, and the suspension is now:
# at these instants both fall on one office day (UTC+8; office midnight is 16:00 UTC) ...
HOUR_BEFORE_ON_THE_SAME_OFFICE_DAY = {
    "office-23h59m59": datetime(2026, 3, 10, 15, 59, 59, tzinfo=UTC),
    "office-01h00m01": datetime(2026, 3, 10, 17, 0, 1, tzinfo=UTC),
    "office-new-year-01h30": datetime(2026, 12, 31, 17, 30, tzinfo=UTC),  # 2026-12-31 in UTC
}
# ... and at these (00:00-01:00 office time) the visit was on the office day before.
HOUR_BEFORE_ON_THE_OFFICE_DAY_BEFORE = {
    "office-00h00m01": datetime(2026, 3, 10, 16, 0, 1, tzinfo=UTC),
    "office-00h14": datetime(2026, 12, 2, 16, 14, tzinfo=UTC),  # where CI once failed
    "office-new-year-00h30": datetime(2026, 12, 31, 16, 30, tzinfo=UTC),
}


def _suspend(number: str) -> None:
    certificate = db.session.query(Certificate).filter_by(number=number).one()
    change_certificate_status(SYSTEM, certificate, CertificateStatus.SUSPENDED, "调查中")
    db.session.commit()


@pytest.mark.parametrize("clock", HOUR_BEFORE_ON_THE_SAME_OFFICE_DAY.values(),
                         ids=HOUR_BEFORE_ON_THE_SAME_OFFICE_DAY.keys(), indirect=True)
def test_a_suspended_certificate_is_invalid_on_the_day(app, visit, media) -> None:  # noqa: F811
    _suspend("CERT-E-001")
    visit.photo(team_photo(media))
    clean_recording(visit, media)
    assessment = visit.assessment(app)
    assert codes(assessment) == ["certificate-invalid"]
    assert assessment["flags"][0]["details"]["status"] == "suspended"


@pytest.mark.parametrize("clock", HOUR_BEFORE_ON_THE_OFFICE_DAY_BEFORE.values(),
                         ids=HOUR_BEFORE_ON_THE_OFFICE_DAY_BEFORE.keys(), indirect=True)
def test_a_certificate_suspended_the_office_day_after_the_visit_was_valid_then(app, visit, media) -> None:  # noqa: F811
    _suspend("CERT-E-001")
    visit.photo(team_photo(media))
    clean_recording(visit, media)
    assessment = visit.assessment(app)
    assert assessment["assessed_at"] and assessment["pending_media"] == 0
    assert assessment["flags"] == [], assessment["flags"]
    certificate = [e["media"] for e in assessment["evidence"] if e["source"] == "record"][0]
    assert {d["text"] for d in certificate["verification"]["detections"]} == {"CERT-M-001", "CERT-E-001"}


@pytest.mark.parametrize("damage, reason", [
    ("truncated_mid_mdat", "truncated"), ("corrupted_video", "decode-errors"), ("text_named_mp4", "not-media")])
def test_a_damaged_segment_fails_and_is_flagged(app, visit, media, damage: str, reason: str) -> None:  # noqa: F811
    visit.photo(team_photo(media))
    visit.segment(media.certificate_video("CERT-M-001"), 0)
    visit.segment(getattr(media, damage)(), 6)
    visit.segment(media.clean_video(), 11)
    assessment = visit.assessment(app)
    failed = [f for f in assessment["flags"] if f["code"] == "media-failed"]
    assert len(failed) == 1 and reason in failed[0]["details"]["reasons"], assessment["flags"]
    bad = [e["media"] for e in assessment["evidence"] if e["media"]["id"] == failed[0]["media_id"]][0]
    assert bad["verification"]["status"] == "failed"


def test_a_photo_whose_content_differs_from_its_capture_hash_is_flagged(app, visit, media) -> None:  # noqa: F811
    visit.photo(team_photo(media))
    clean_recording(visit, media)
    visit.photo(media.photo("tampered.jpg"), declared_sha256="0" * 64)  # refused and quarantined
    assessment = visit.assessment(app)
    assert codes(assessment) == ["hash-mismatch"]


def test_coercive_measures_without_footage(app, visit, media) -> None:  # noqa: F811
    visit.photo(team_photo(media))
    visit.coercive_measure()
    assert codes(visit.assessment(app)) == ["footage-missing"]


@pytest.mark.around_office_midnight
def test_a_visit_synced_days_later_is_flagged_late(app, client, auth, world, media, clock) -> None:  # noqa: F811
    visited = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)  # in the task's window
    clock.shift(timedelta(days=4))  # the tablet reaches the network four days later
    visit = Visit(client, auth, world, visited, 15)
    visit.photo(team_photo(media))
    assert codes(visit.assessment(app)) == ["late-sync"]


def test_segments_of_another_time_are_not_attached(app, visit, media) -> None:  # noqa: F811
    visit.photo(team_photo(media))
    clean_recording(visit, media)
    visit.segment(media.faststart_video(), 3 * 3600)  # the afternoon: another visit
    assessment = visit.assessment(app)
    assert [e["source"] for e in assessment["evidence"]].count("bodycam") == 3


def test_assessments_are_listed_by_flag_for_the_departments_of_the_team(app, client, auth, visit, media) -> None:  # noqa: F811
    visit.photo(media.photo("no-certificate.jpg"))
    visit.assessment(app)
    listed = client.get("/api/v1/inspections/?flag=certificate-missing", headers=auth.headers("e-sup")).get_json()
    assert [item["inspection_id"] for item in listed["items"]] == [visit.id]
    assert {f["code"] for f in listed["items"][0]["flags"]} >= {"certificate-missing"}
    assert listed["items"][0]["flags"][0]["label"]
    none = client.get("/api/v1/inspections/?flag=lens-covered", headers=auth.headers("e-sup")).get_json()
    assert none["items"] == []
    assert_problem(client.get("/api/v1/inspections/?flag=bogus", headers=auth.headers("e-sup")), 422)


def test_an_inspection_outside_your_departments_is_not_found(app, client, auth, visit) -> None:
    from tests.conftest import new_department, new_user

    outsider = new_department("ZJ", "住建局")
    new_user("z-sup", "supervisor", outsider)
    db.session.commit()
    assert_problem(client.get(f"/api/v1/inspections/{visit.id}/assessment", headers=auth.headers("z-sup")), 404)
    assert client.get("/api/v1/inspections/", headers=auth.headers("z-sup")).get_json()["items"] == []
    assert_problem(client.get(f"/api/v1/inspections/{uuid.uuid4()}/assessment", headers=auth.headers("m-sup")), 404)


@pytest.mark.parametrize("clock", [datetime(2026, 3, 10, 15, 59, 59, tzinfo=UTC),
                                   datetime(2026, 3, 10, 16, 1, 1, tzinfo=UTC),
                                   datetime(2026, 12, 31, 16, 30, tzinfo=UTC)],
                         ids=["office-23h59m59", "office-00h01m01", "office-new-year-00h30"], indirect=True)
def test_suspending_a_certificate_today_re_assesses_todays_inspections(app, client, auth, world, media) -> None:  # noqa: F811
    # A visit that began a minute ago: on today's office day at each of these instants, midnight on either side.
    visit = Visit(client, auth, world, datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60), 15)
    visit.photo(team_photo(media))
    clean_recording(visit, media)
    assert visit.assessment(app)["flags"] == []
    certificate = db.session.query(Certificate).filter_by(number="CERT-E-001").one()
    answer = client.post(f"/api/v1/certificates/{certificate.id}/status",
                         json={"status": "suspended", "reason": "调查"}, headers=auth.headers("e-head"))
    assert answer.status_code == 200, answer.get_json()
    assessment = visit.assessment(app)
    assert codes(assessment) == ["certificate-invalid"]
