"""``python -m media``: JSON on standard output, exit status for scripts."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from media.cli import main

from .conftest import CERTIFICATE, MediaFactory

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str, stdin: str = "") -> tuple[int, list[dict]]:
    out = io.StringIO()
    status = main(list(argv), stdin=io.StringIO(stdin), stdout=out)
    return status, [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_verify_prints_one_report_per_file_and_exits_zero_when_all_pass(media: MediaFactory) -> None:
    status, reports = run("verify", str(media.certificate_video()), str(media.covered_video()))

    assert status == 0
    assert [r["status"] for r in reports] == ["verified", "needs_review"]
    assert reports[0]["detections"][0]["text"] == CERTIFICATE
    assert {"probe", "integrity", "badges", "lens", "measurements", "sha256"} <= set(reports[0])


def test_verify_exits_non_zero_when_a_file_fails(media: MediaFactory) -> None:
    status, reports = run("verify", str(media.clean_video()), str(media.corrupted_video()),
                          str(media.text_named_mp4()))

    assert status == 1
    assert [r["status"] for r in reports] == ["verified", "failed", "failed"]
    assert reports[2]["reasons"][0]["code"] == "not-media"


def test_verify_checks_an_expected_hash(media: MediaFactory) -> None:
    status, reports = run("verify", "--sha256", "f" * 64, str(media.clean_video()))

    assert status == 1 and reports[0]["reasons"][0]["code"] == "hash-mismatch"


def test_usage_errors_exit_two(media: MediaFactory) -> None:
    clip = str(media.clean_video())
    for argv in (["verify", "--sha256", "f" * 64, clip, clip], ["verify", "--sha256", "xyz", clip], []):
        with pytest.raises(SystemExit) as raised:
            main(argv, stdout=io.StringIO())
        assert raised.value.code == 2


def test_python_dash_m_media(media: MediaFactory) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "media", "verify", "--indent", "2", str(media.truncated_mid_mdat())],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )

    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "failed" and report["reasons"][0]["code"] == "truncated"
    assert "截断" in report["reasons"][0]["message"]


def test_probe(media: MediaFactory) -> None:
    status, reports = run("probe", str(media.clean_video()), str(media.text_named_mp4()))

    assert status == 1
    assert reports[0]["frame_count"] == 100 and reports[1]["error"] == "not-media"


def test_continuity_from_stdin_with_iso_times() -> None:
    segments = {
        "segments": [
            {"name": "A001", "start": "2024-05-01T10:00:00+08:00", "duration": 300},
            {"name": "A003", "start": "2024-05-01T10:10:00+08:00", "duration": 300},
        ],
        "window": {"start": "2024-05-01T10:00:00+08:00", "end": "2024-05-01T10:15:00+08:00"},
    }

    status, (report,) = run("continuity", stdin=json.dumps(segments))

    assert status == 1
    assert report["gaps"] == [{"start": "2024-05-01T10:05:00+08:00",
                               "end": "2024-05-01T10:10:00+08:00",
                               "duration": 300, "after": "A001", "before": "A003"}]
    assert report["window"]["covered_seconds"] == 600 and not report["window"]["complete"]


def test_continuity_of_an_unbroken_recording_in_seconds() -> None:
    status, (report,) = run("continuity", "--tolerance", "2",
                            stdin=json.dumps([{"start": 0, "duration": 60}, {"start": 61, "duration": 60}]))

    assert status == 0 and report["continuous"] and report["end"] == 121


def test_continuity_rejects_bad_input() -> None:
    assert run("continuity", stdin="not json")[0] == 2
    assert run("continuity", stdin=json.dumps([{"start": "10:00", "duration": 5}]))[0] == 2


def test_review_pictures(media: MediaFactory, tmp_path: Path) -> None:
    thumb, sheet = tmp_path / "t.jpg", tmp_path / "s.jpg"

    assert run("thumbnail", str(media.clean_video()), str(thumb))[0] == 0
    status, (info,) = run("contact-sheet", str(media.clean_video()), str(sheet), "--interval", "2")

    assert status == 0 and info["times"] == [0.0, 2.0]
    assert cv2.imread(str(thumb)).shape == (240, 320, 3)
    assert cv2.imread(str(sheet)) is not None
    assert run("thumbnail", str(media.text_named_mp4()), str(tmp_path / "x.jpg"))[0] == 1
