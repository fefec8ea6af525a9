"""Integrity: whole, truncated, damaged, or not media at all."""
from __future__ import annotations

import av
import cv2
import pytest

from media import check_integrity

from .conftest import MediaFactory


def codes(report: object) -> list[str]:
    return [p.code for p in report.problems]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["clean_video", "faststart_video", "silent_mkv", "audio_only"])
def test_whole_files_pass(media: MediaFactory, name: str) -> None:
    report = check_integrity(getattr(media, name)())

    assert report.ok, report.problems
    assert report.decode_errors == report.corrupt_frames == report.audio_decode_errors == 0


def test_every_declared_frame_is_decoded(media: MediaFactory) -> None:
    report = check_integrity(media.clean_video())

    assert report.declared_frames == report.demuxed_packets == report.decoded_frames == 100
    assert report.decoded_duration == pytest.approx(4.0, abs=0.05)
    assert report.layout is not None and report.layout.has_moov and not report.layout.truncated_box


def test_mp4_cut_short_without_its_index(media: MediaFactory) -> None:
    report = check_integrity(media.truncated_moov_missing())

    assert not report.ok
    assert codes(report) == ["index-missing"]
    assert report.layout is not None and "mdat" in report.layout.boxes and not report.layout.has_moov


def test_mp4_with_index_in_front_cut_in_the_middle_of_its_data(media: MediaFactory) -> None:
    report = check_integrity(media.truncated_mid_mdat())

    assert codes(report) == ["truncated"]  # the half packet at the cut is not "damage" too
    details = report.problems[0].details
    assert details["declared_frames"] == 100 and details["packets"] < 90
    assert details["box"] == "mdat" and details["missing_bytes"] > 0
    assert report.decoded_frames < report.declared_frames


def test_matroska_cut_short_falls_short_of_its_declared_duration(media: MediaFactory) -> None:
    data = media.silent_mkv().read_bytes()
    cut = media.root / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])

    report = check_integrity(cut)

    assert "truncated" in codes(report)
    assert report.problems[0].details["reached"] < report.problems[0].details["declared_duration"]


def test_damaged_bytes_inside_a_well_formed_file(media: MediaFactory) -> None:
    report = check_integrity(media.corrupted_video())

    assert not report.ok
    assert "decode-errors" in codes(report) and "truncated" not in codes(report)
    assert report.decode_errors > 0
    assert report.error_times and all(0 < t < 4 for t in report.error_times)
    # The container itself is intact: every packet is there; only the decoder sees the damage.
    assert report.demuxed_packets == report.declared_frames == 100
    assert report.layout is not None and report.layout.truncated_box is None


def test_opencv_alone_would_not_notice_the_damage(media: MediaFactory) -> None:
    """Why the check decodes with PyAV: OpenCV's reader conceals the broken frames."""
    capture = cv2.VideoCapture(str(media.corrupted_video()))
    frames = 0
    while capture.grab():
        frames += 1
    capture.release()

    assert frames >= 95  # read "successfully", no error surfaced
    assert not check_integrity(media.corrupted_video()).ok


def test_text_called_mp4_is_not_media(media: MediaFactory) -> None:
    report = check_integrity(media.text_named_mp4())

    assert codes(report) == ["not-media"] and report.kind is None


def test_random_bytes_called_jpg_are_not_media(media: MediaFactory) -> None:
    noise = media.root / "noise.jpg"
    noise.write_bytes(bytes(range(256)) * 64)

    assert codes(check_integrity(noise)) == ["not-media"]


def test_plain_text_is_not_video_even_where_ffmpeg_would_render_it(media: MediaFactory) -> None:
    """FFmpeg's ``tty`` demuxer turns any .txt file into "video"; that is no evidence."""
    text = media.root / "statement.txt"
    text.write_text("On-site inspection record, page 1\n" * 100, encoding="ascii")
    with av.open(str(text)) as container:
        assert container.format.name == "tty" and container.streams.video

    report = check_integrity(text)

    assert codes(report) == ["not-media"] and "tty" in report.problems[0].details["error"]


@pytest.mark.parametrize("name", ["whole.jpg", "whole.png"])
def test_whole_photos_pass(media: MediaFactory, name: str) -> None:
    report = check_integrity(media.photo(name))

    assert report.ok and report.kind == "photo" and report.decoded_frames == 1


@pytest.mark.parametrize("name", ["cut.jpg", "cut.png"])
def test_photo_cut_short(media: MediaFactory, name: str) -> None:
    data = media.photo("source-" + name).read_bytes()
    cut = media.root / name
    cut.write_bytes(data[: len(data) // 2])

    report = check_integrity(cut)

    assert codes(report) == ["truncated"]
    assert report.problems[0].details["end_marker"] == "missing"


def test_png_with_a_damaged_chunk(media: MediaFactory) -> None:
    data = bytearray(media.photo("source-damaged.png").read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged = media.root / "damaged.png"
    damaged.write_bytes(bytes(data))

    assert codes(check_integrity(damaged)) == ["decode-errors"]


def test_empty_and_missing_files(media: MediaFactory) -> None:
    empty = media.root / "empty-integrity.mp4"
    empty.write_bytes(b"")

    assert codes(check_integrity(empty)) == ["empty-file"]
    assert codes(check_integrity(media.root / "absent.mp4")) == ["file-missing"]
