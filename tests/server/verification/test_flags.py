"""The flag rules on hand-made facts: each flag raised when it should be, and only then."""
from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from server.verification.flags import (
    FLAG_LABELS,
    CertificateFacts,
    CodeFacts,
    EvidenceFacts,
    InspectionFacts,
    MemberFacts,
    RecorderFacts,
    Sighting,
    TaskFacts,
    assess,
    inspection_day,
)

START = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)  # 09:00 in Beijing
END = START + timedelta(minutes=30)
ALICE, BOB, EVE = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
MEMBERS = (MemberFacts(ALICE, "张三", ("SC-001",)), MemberFacts(BOB, "李四", ("SC-002",)))
CERTIFICATES = {
    "SC-001": CertificateFacts("SC-001", ALICE, "张三", "valid"),
    "SC-002": CertificateFacts("SC-002", BOB, "李四", "valid"),
    "SC-999": CertificateFacts("SC-999", EVE, "王五", "valid"),
}


def photo(*texts: str, **changes) -> EvidenceFacts:  # type: ignore[no-untyped-def]
    base = EvidenceFacts(media_id=uuid.uuid4(), source="record", status="verified", kind="photo",
                         proves="certificate", sightings=tuple(Sighting(t, None, None) for t in texts))
    return replace(base, **changes)


def segment(offset_minutes: float, minutes: float, device: str = "BC01", **changes) -> EvidenceFacts:  # type: ignore[no-untyped-def]
    base = EvidenceFacts(media_id=uuid.uuid4(), source="bodycam", status="verified", kind="video",
                         start=START + timedelta(minutes=offset_minutes), duration=minutes * 60, device_id=device,
                         name=f"{device}_{offset_minutes}.MP4")
    return replace(base, **changes)


def facts(*evidence: EvidenceFacts, **changes) -> InspectionFacts:  # type: ignore[no-untyped-def]
    base = InspectionFacts(inspection_id=uuid.uuid4(), started_at=START, ended_at=END,
                           first_received_at=END + timedelta(hours=1), members=MEMBERS,
                           certificates=CERTIFICATES, coercive_measures=0, evidence=tuple(evidence))
    return replace(base, **changes)


def codes(found) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.code for f in found]


CLEAN = (photo("SC-001", "SC-002"), segment(0, 10), segment(10, 10), segment(20, 10))


def test_a_clean_inspection_has_no_flags() -> None:
    assert assess(facts(*CLEAN)) == []


def test_every_flag_has_a_chinese_label() -> None:
    assert all(label and not label.isascii() for label in FLAG_LABELS.values())


def test_a_member_whose_certificate_was_never_seen_is_flagged_by_name() -> None:
    found = assess(facts(photo("SC-001"), *CLEAN[1:]))
    assert codes(found) == ["certificate-missing"]
    assert found[0].details["user_id"] == str(BOB) and "李四" in found[0].message


def test_no_certificate_flag_while_evidence_is_still_being_verified() -> None:
    found = assess(facts(photo("SC-001"), photo(status="pending")))
    assert "certificate-missing" not in codes(found)


def test_an_unreadable_code_is_not_reported_as_missing() -> None:
    found = assess(facts(photo("SC-001"), photo(unreadable_code=True)))
    assert codes(found) == ["certificate-unreadable"]
    assert found[0].severity == "error"


def test_someone_elses_certificate_and_an_unknown_one_are_flagged() -> None:
    found = assess(facts(photo("SC-001", "SC-002", "SC-999", "XX-404")))
    assert codes(found) == ["certificate-not-own", "certificate-not-own"]
    assert {f.details["number"] for f in found} == {"SC-999", "XX-404"}
    assert any("王五" in f.message for f in found)


def test_a_certificate_not_valid_on_the_day_is_flagged_with_its_status() -> None:
    suspended = {**CERTIFICATES, "SC-002": CertificateFacts("SC-002", BOB, "李四", "suspended")}
    found = assess(facts(*CLEAN, certificates=suspended))
    assert codes(found) == ["certificate-invalid"]
    assert found[0].details["status"] == "suspended" and "暂扣" in found[0].message


def test_a_member_with_no_certificate_at_all_cannot_inspect() -> None:
    members = (*MEMBERS, MemberFacts(EVE, "王五", ()))
    found = assess(facts(*CLEAN, members=members))
    assert codes(found) == ["certificate-invalid"] and found[0].details["status"] == "none"


def test_a_failed_file_does_not_count_as_certificate_proof() -> None:
    found = assess(facts(photo("SC-001"), photo("SC-002", status="failed", reason_codes=("truncated",))))
    assert sorted(codes(found)) == ["certificate-missing", "media-failed"]


def test_coercive_measures_without_footage_are_flagged() -> None:
    assert codes(assess(facts(photo("SC-001", "SC-002"), coercive_measures=1))) == ["footage-missing"]
    assert assess(facts(*CLEAN, coercive_measures=1)) == []


def test_footage_outside_the_inspection_window_does_not_count() -> None:
    yesterday = segment(-24 * 60, 30)
    assert codes(assess(facts(photo("SC-001", "SC-002"), yesterday, coercive_measures=2))) == ["footage-missing"]


def test_a_missing_middle_segment_is_a_gap_with_its_times() -> None:
    found = assess(facts(CLEAN[0], CLEAN[1], CLEAN[3]))
    assert codes(found) == ["recording-gap"]
    gap = found[0].details["gaps"][0]
    assert gap["seconds"] == 600.0
    assert gap["start"] == (START + timedelta(minutes=10)).isoformat()
    assert gap["end"] == (START + timedelta(minutes=20)).isoformat()


def test_small_clock_jitter_between_segments_is_not_a_gap() -> None:
    jittery = (CLEAN[0], CLEAN[1], segment(10 + 1 / 60, 10), segment(20 + 1 / 60, 10))
    assert assess(facts(*jittery)) == []


def test_recording_that_stops_before_the_end_is_a_gap() -> None:
    found = assess(facts(CLEAN[0], CLEAN[1]))
    assert codes(found) == ["recording-gap"] and found[0].details["gaps"][0]["before"] is None


def test_a_covered_lens_is_flagged_with_absolute_times() -> None:
    covered = segment(10, 10, covered=((60.0, 120.0),))
    found = assess(facts(CLEAN[0], CLEAN[1], covered, CLEAN[3]))
    assert codes(found) == ["lens-covered"]
    interval = found[0].details["intervals"][0]
    assert interval["start"] == (START + timedelta(minutes=11)).isoformat()
    assert found[0].media_id == covered.media_id


def test_hash_mismatch_and_quarantine_are_flagged() -> None:
    mismatched = photo(status="failed", reason_codes=("hash-mismatch",))
    quarantined = photo(media_id=None, status="quarantined", name="IMG_1.jpg")
    found = assess(facts(*CLEAN, mismatched, quarantined))
    assert codes(found) == ["hash-mismatch", "hash-mismatch"]


def test_a_damaged_file_names_its_reasons() -> None:
    found = assess(facts(*CLEAN, segment(0, 1, device="BC02", status="failed", reason_codes=("decode-errors",))))
    assert codes(found) == ["media-failed"] and found[0].details["reasons"] == ["decode-errors"]


def test_a_synced_record_whose_file_never_arrived_is_a_warning() -> None:
    found = assess(facts(*CLEAN, photo(media_id=None, status="missing", name="IMG_2.jpg")))
    assert codes(found) == ["evidence-missing"] and found[0].severity == "warning"


def test_a_record_synced_days_after_the_visit_is_late() -> None:
    found = assess(facts(*CLEAN, first_received_at=END + timedelta(days=5)))
    assert codes(found) == ["late-sync"] and found[0].details["hours"] == 120.0
    assert assess(facts(*CLEAN, first_received_at=END + timedelta(hours=47))) == []


def test_merge_conflicts_are_flagged() -> None:
    assert codes(assess(facts(*CLEAN, conflicts=2))) == ["merge-conflict"]


def test_errors_come_before_warnings() -> None:
    found = assess(facts(photo("SC-001"), CLEAN[1], conflicts=1, coercive_measures=1))
    severities = [f.severity for f in found]
    assert severities == sorted(severities, key=lambda s: s != "error") and "warning" in severities


def test_the_inspection_day_is_the_day_in_beijing() -> None:
    late_evening_utc = datetime(2026, 11, 19, 17, 30, tzinfo=UTC)
    assert str(inspection_day(late_evening_utc)) == "2026-11-20"


# ---- the inspection code, the window, the team (issue 18) ------------------------------------------

TASK = TaskFacts(window_start=START - timedelta(hours=1), window_end=START + timedelta(hours=8),
                 dispatched_at=START - timedelta(hours=2))
CODE = CodeFacts("valid", window_start=TASK.window_start, window_end=TASK.window_end)


def coded(*evidence: EvidenceFacts, **changes) -> InspectionFacts:  # type: ignore[no-untyped-def]
    return facts(*(evidence or CLEAN), **{"task": TASK, "code": CODE, **changes})


def test_a_visit_with_its_own_valid_code_in_its_window_by_its_team_has_no_flags() -> None:
    recorders = (RecorderFacts(ALICE, "张三", ("finding", "inspection"), 3), RecorderFacts(BOB, "李四", ("media",), 1))
    assert assess(coded(recorders=recorders)) == []


def test_a_visit_without_a_valid_code_of_its_own_is_an_error_saying_why() -> None:
    for code, reason in ((CodeFacts("absent"), "absent"), (CodeFacts("not-ours", "bad-signature"), "not-ours"),
                         (CodeFacts("other-task"), "other-task")):
        [flag] = assess(coded(code=code))
        assert (flag.code, flag.severity, flag.details["reasons"]) == ("code-missing", "error", [reason])
    assert "bad-signature" in assess(coded(code=CodeFacts("not-ours", "bad-signature")))[0].message


def test_a_visit_begun_before_its_code_existed_is_code_missing_unless_registered_late() -> None:
    early = replace(TASK, dispatched_at=START + timedelta(minutes=30))
    [flag] = assess(coded(task=early))
    assert flag.code == "code-missing" and flag.details["reasons"] == ["before-issue"]
    assert "尚未签发" in flag.message
    # A few minutes of the tablet's clock running ahead are not a visit before its code.
    assert assess(coded(task=replace(TASK, dispatched_at=START + timedelta(minutes=4)))) == []
    late = replace(early, late_registration_reason="群众举报，现场紧急处置")
    [flag] = assess(coded(task=late))
    assert (flag.code, flag.severity) == ("late-registration", "warning")
    assert "群众举报，现场紧急处置" in flag.message and flag.details["started_before_code"] is True


def test_a_visit_begun_outside_its_window_is_an_error_with_a_few_minutes_of_clock_drift_allowed() -> None:
    def window(start: datetime, end: datetime) -> TaskFacts:
        return replace(TASK, window_start=start, window_end=end)

    before = assess(coded(task=window(START + timedelta(minutes=10), END + timedelta(hours=1)), code=CodeFacts(
        "valid", window_start=START + timedelta(minutes=10), window_end=END + timedelta(hours=1))))
    assert [(f.code, f.severity) for f in before] == [("outside-window", "error")]
    assert "之前" in before[0].message and "09:00" in before[0].message  # office time
    after = assess(coded(task=window(START - timedelta(hours=3), START - timedelta(minutes=10)),
                         code=CodeFacts("absent")))
    assert codes(after) == ["code-missing", "outside-window"] and after[1].details["window_of"] == "task"
    assert assess(coded(task=window(START + timedelta(minutes=4), END))) == []
    # The code the team held names the window it was approved for: it decides, when valid.
    held = CodeFacts("valid", window_start=START + timedelta(hours=1), window_end=END + timedelta(hours=2))
    assert codes(assess(coded(code=held))) == ["outside-window"]


def test_records_made_by_someone_not_on_the_team_are_an_error_naming_them() -> None:
    recorders = (RecorderFacts(ALICE, "张三", ("inspection",), 1), RecorderFacts(EVE, "王五", ("finding", "media"), 2))
    [flag] = assess(coded(recorders=recorders))
    assert (flag.code, flag.severity, flag.details["user_id"]) == ("not-on-team", "error", str(EVE))
    assert "王五" in flag.message and "检查结论" in flag.message


def test_a_file_whose_capture_signature_is_in_doubt_is_flagged() -> None:
    forged = photo("SC-001", "SC-002", name="IMG_7.jpg", status="failed",
                   provenance=(("bad-signature", "采集签名清单的签名无效"),))
    gap = segment(0, 30, provenance=(("chain-gap", "采集链不完整：终端 BC01 第 3 号采集未送达"),))
    found = [f for f in assess(facts(forged, gap)) if f.code == "capture-provenance"]
    assert [(f.severity, f.media_id) for f in found] == [("error", forged.media_id), ("warning", gap.media_id)]
    assert found[1].message == "BC01_0.MP4 的采集签名存疑：采集链不完整：终端 BC01 第 3 号采集未送达"
    assert found[0].details["reasons"] == ["bad-signature"] and "capture-provenance" in FLAG_LABELS
    assert not [f for f in assess(facts(*CLEAN)) if f.code == "capture-provenance"]
