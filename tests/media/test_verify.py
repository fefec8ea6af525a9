"""verify_file: the verdict the server's workers store for every arrived file."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from media import ANALYSER_VERSION, MediaReport, Status, VerifyOptions, verify_file

from .conftest import CERTIFICATE, MediaFactory, damaged_qr_image, paste, scene

ROOT = Path(__file__).resolve().parents[2]


def codes(report: MediaReport) -> list[str]:
    return [r.code for r in report.reasons]


def test_clean_footage_with_the_certificate_shown(media: MediaFactory) -> None:
    path = media.certificate_video()

    report = verify_file(path)

    assert report.status is Status.VERIFIED and report.reasons == ()
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert report.certificate_texts == [CERTIFICATE]
    (shown,) = report.detections
    assert shown.kind == "certificate" and 1.0 <= shown.start < 1.5  # type: ignore[operator]
    m = report.measurements
    assert (m["kind"], m["width"], m["height"], m["declared_frames"], m["decoded_frames"]) == (
        "video", 480, 360, 60, 60)
    assert m["duration"] == pytest.approx(6.0, abs=0.1) and m["decode_errors"] == 0
    assert {"hash", "probe", "decode", "badges", "lens"} <= set(report.timings)


def test_report_is_json(media: MediaFactory) -> None:
    document = json.loads(verify_file(media.covered_video()).to_json())

    assert document["status"] == "needs_review"
    assert document["reasons"][0]["code"] == "lens-covered"
    assert document["reasons"][0]["severity"] == "warning"
    assert "遮挡" in document["reasons"][0]["message"]
    assert document["analyser"] == ANALYSER_VERSION
    assert [d["kind"] for d in document["detections"]] == ["lens-covered", "lens-covered"]


def test_expected_hash_is_checked(media: MediaFactory) -> None:
    path = media.clean_video()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    assert verify_file(path, expected_sha256=digest).status is Status.VERIFIED
    assert verify_file(path, expected_sha256="SHA256:" + digest.upper()).status is Status.VERIFIED
    wrong = verify_file(path, expected_sha256="0" * 64)
    assert wrong.status is Status.FAILED and codes(wrong) == ["hash-mismatch"]
    assert wrong.reasons[0].details == {"expected": "0" * 64, "actual": digest}
    with pytest.raises(ValueError):
        verify_file(path, expected_sha256="not-a-hash")


@pytest.mark.parametrize(("name", "code"), [
    ("truncated_moov_missing", "index-missing"),
    ("truncated_mid_mdat", "truncated"),
    ("corrupted_video", "decode-errors"),
    ("text_named_mp4", "not-media"),
])
def test_broken_files_fail_with_a_reason(media: MediaFactory, name: str, code: str) -> None:
    report = verify_file(getattr(media, name)())

    assert report.status is Status.FAILED and report.failed
    assert code in codes(report)
    reason = report.reasons[codes(report).index(code)]
    assert reason.severity.value == "error" and reason.message  # Chinese text for supervisors


def test_covered_lens_needs_review(media: MediaFactory) -> None:
    report = verify_file(media.covered_video())

    assert report.status is Status.NEEDS_REVIEW and codes(report) == ["lens-covered"]
    assert report.reasons[0].details["intervals"][0][0] == pytest.approx(2.0, abs=0.5)
    assert report.measurements["lens_covered_seconds"] > 6


def test_detectors_can_be_switched_off(media: MediaFactory) -> None:
    report = verify_file(media.covered_video(), options=VerifyOptions(lens=False, certificates=False))

    assert report.status is Status.VERIFIED and report.lens is None and report.badges is None


def test_photos_with_and_without_a_certificate(media: MediaFactory) -> None:
    shown = verify_file(media.photo("verify-certificate.jpg", certificates=[CERTIFICATE]))
    absent = verify_file(media.photo("verify-plain.jpg"))

    assert shown.status is absent.status is Status.VERIFIED
    assert shown.certificate_texts == [CERTIFICATE] and absent.certificate_texts == []
    assert shown.measurements["kind"] == "photo" and shown.measurements["width"] == 800


def test_unreadable_certificate_is_a_detection_not_a_failure(media: MediaFactory) -> None:
    picture = paste(scene(800, 600, 4), damaged_qr_image(CERTIFICATE), 250, 150)

    report = verify_file(media.photo("verify-worn.png", picture=picture))

    assert report.status is Status.VERIFIED and report.certificate_texts == []
    assert [d.kind for d in report.detections] == ["unreadable-code"]


def test_audio_recording_is_verified_without_picture_detectors(media: MediaFactory) -> None:
    report = verify_file(media.audio_only())

    assert report.status is Status.VERIFIED and report.badges is None and report.lens is None


def test_wrong_extension_needs_review(media: MediaFactory) -> None:
    video_as_photo = media.copy(media.clean_video(), "clip.jpg")
    png_as_jpeg = media.copy(media.photo("real.png"), "real-png.jpg")

    report = verify_file(video_as_photo)
    assert report.status is Status.NEEDS_REVIEW and codes(report) == ["extension-mismatch"]
    assert report.reasons[0].details == {"extension": "jpg", "content": "mp4"}
    assert codes(verify_file(png_as_jpeg)) == ["extension-mismatch"]


def test_extension_is_judged_on_the_uploaded_name(media: MediaFactory) -> None:
    stored = media.copy(media.clean_video(), "0f3a9c")  # storage keys carry no extension

    assert verify_file(stored).status is Status.VERIFIED
    assert codes(verify_file(stored, filename="IMG_0001.JPG")) == ["extension-mismatch"]
    assert verify_file(stored, filename="REC_0001.MP4").status is Status.VERIFIED


def test_missing_and_empty_files(media: MediaFactory) -> None:
    empty = media.root / "empty-verify.mp4"
    empty.write_bytes(b"")

    assert codes(verify_file(media.root / "absent.mp4")) == ["file-missing"]
    assert codes(verify_file(empty)) == ["empty-file"]
    assert verify_file(empty).sha256 is None


def test_media_package_stays_free_of_the_web_stack() -> None:
    code = (
        "import sys, media, media.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'flask', 'sqlalchemy', 'server',"
        " 'flask_sqlalchemy', 'marshmallow', 'werkzeug'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)
    for source in (ROOT / "media").glob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert "import flask" not in text.lower() and "from server" not in text, source
