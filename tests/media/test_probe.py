"""Probe: what a file declares about itself."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from media import MediaError, NotMediaError, probe
from media.errors import IndexMissingError

from .conftest import MediaFactory, exif_app1


def test_video_declares_container_codecs_size_rate_length_and_creation_time(media: MediaFactory) -> None:
    report = probe(media.clean_video())

    assert report.kind == "video"
    assert "mp4" in report.container and report.content_type == "mp4"
    assert (report.video_codec, report.audio_codec) == ("h264", "aac")
    assert (report.width, report.height) == (320, 240)
    assert report.frame_rate == pytest.approx(25.0)
    assert report.frame_count == 100
    assert report.duration == pytest.approx(4.0, abs=0.1)
    assert report.creation_time == datetime(2024, 5, 1, 1, 30, tzinfo=UTC)
    assert report.has_audio and report.audio_sample_rate == 16000 and report.audio_channels == 1


def test_report_serialises_to_json(media: MediaFactory) -> None:
    document = json.loads(probe(media.clean_video()).to_json())

    assert document["creation_time"] == "2024-05-01T01:30:00+00:00"
    assert document["frame_count"] == 100


def test_matroska_without_audio_declares_no_frame_count(media: MediaFactory) -> None:
    report = probe(media.silent_mkv())

    assert report.kind == "video" and report.content_type == "matroska"
    assert not report.has_audio and report.audio_codec is None
    assert report.frame_count is None
    assert report.duration == pytest.approx(3.0, abs=0.1)
    assert report.creation_time is None


def test_audio_recording(media: MediaFactory) -> None:
    report = probe(media.audio_only())

    assert report.kind == "audio" and report.has_audio
    assert report.video_codec is None and report.width is None
    assert report.duration == pytest.approx(2.0, abs=0.1)


def test_photos_declare_dimensions(media: MediaFactory) -> None:
    jpeg = probe(media.photo("plain.jpg"))
    png = probe(media.photo("plain.png"))

    assert (jpeg.kind, jpeg.content_type, jpeg.width, jpeg.height) == ("photo", "jpeg", 800, 600)
    assert (png.kind, png.content_type, png.width, png.height) == ("photo", "png", 800, 600)
    assert jpeg.duration is None and jpeg.frame_count is None


def test_photo_capture_time_comes_from_exif(media: MediaFactory) -> None:
    plain = media.photo("for-exif.jpg").read_bytes()
    with_offset = media.root / "exif-offset.jpg"
    with_offset.write_bytes(plain[:2] + exif_app1("2024:05:01 09:30:15", "+08:00") + plain[2:])
    local = media.root / "exif-local.jpg"
    local.write_bytes(plain[:2] + exif_app1("2024:05:01 09:30:15") + plain[2:])

    assert probe(with_offset).creation_time == datetime(
        2024, 5, 1, 9, 30, 15, tzinfo=timezone(timedelta(hours=8)))
    # Without an offset EXIF is the camera's local clock: kept as such, not guessed into UTC.
    assert probe(local).creation_time == datetime(2024, 5, 1, 9, 30, 15)


def test_not_media_whatever_the_extension(media: MediaFactory) -> None:
    with pytest.raises(NotMediaError) as raised:
        probe(media.text_named_mp4())
    assert raised.value.code == "not-media"


def test_mp4_cut_before_its_index_is_reported_as_such(media: MediaFactory) -> None:
    with pytest.raises(IndexMissingError) as raised:
        probe(media.truncated_moov_missing())
    assert raised.value.code == "index-missing"


def test_empty_and_missing_files(media: MediaFactory) -> None:
    empty = media.root / "empty.mp4"
    empty.write_bytes(b"")

    with pytest.raises(MediaError) as raised:
        probe(empty)
    assert raised.value.code == "empty-file"
    with pytest.raises(MediaError) as raised:
        probe(media.root / "absent.mp4")
    assert raised.value.code == "file-missing"
