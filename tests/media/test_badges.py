"""Certificate shown (亮证): QR codes read from photos and video, with when they were visible."""
from __future__ import annotations

import pytest

from media import NotMediaError, find_certificates
from media.badges import read_qr_codes

from .conftest import (
    CERTIFICATE,
    OTHER_CERTIFICATE,
    MediaFactory,
    damaged_qr_image,
    paste,
    qr_image,
    scene,
)


def test_certificate_shown_in_a_video_and_when(media: MediaFactory) -> None:
    report = find_certificates(media.certificate_video())  # code on screen from 1.0 s to 3.0 s

    assert report.texts == [CERTIFICATE]
    seen = report.detections[0]
    assert 1.0 <= seen.first_seen < 1.5  # type: ignore[operator]
    assert 2.5 <= seen.last_seen < 3.0  # type: ignore[operator]
    assert seen.count >= 4
    assert seen.intervals == ((seen.first_seen, seen.last_seen),)
    assert report.sample_interval == pytest.approx(0.5)


def test_each_certificate_is_told_apart(media: MediaFactory) -> None:
    report = find_certificates(media.certificate_video(OTHER_CERTIFICATE))

    assert report.texts == [OTHER_CERTIFICATE]


def test_video_without_a_certificate(media: MediaFactory) -> None:
    report = find_certificates(media.plain_video())

    assert report.detections == () and report.frames_examined == 10


def test_large_frames_are_downscaled_and_still_read(media: MediaFactory) -> None:
    report = find_certificates(media.hd_certificate_video())

    assert report.analysed_size == (960, 540)
    assert report.texts == [CERTIFICATE]


def test_sampling_is_bounded(media: MediaFactory) -> None:
    """A cap on frames widens the interval over the whole video instead of stopping early."""
    report = find_certificates(media.certificate_video(), interval=0.1, max_samples=5)

    assert report.frames_examined <= 5
    assert report.sample_interval == pytest.approx(6.0 / 5)


def test_certificate_in_a_photo(media: MediaFactory) -> None:
    report = find_certificates(media.photo("certificate.jpg", certificates=[CERTIFICATE]))

    assert report.texts == [CERTIFICATE]
    assert report.detections[0].first_seen is None and report.sample_interval is None


def test_photo_without_a_certificate(media: MediaFactory) -> None:
    report = find_certificates(media.photo("no-certificate.png"))

    assert report.detections == () and report.frames_examined == 1


def test_two_certificates_in_one_photo(media: MediaFactory) -> None:
    photo = media.photo("team.png", certificates=[CERTIFICATE, OTHER_CERTIFICATE], width=900)

    assert sorted(find_certificates(photo).texts) == sorted([CERTIFICATE, OTHER_CERTIFICATE])


def test_large_photo_is_downscaled_and_still_read(media: MediaFactory) -> None:
    photo = media.photo("large.jpg", certificates=[CERTIFICATE], width=4000, height=3000, module=6)

    report = find_certificates(photo)

    assert report.texts == [CERTIFICATE]
    assert report.analysed_size == (1600, 1200)


def test_code_located_but_unreadable(media: MediaFactory) -> None:
    picture = paste(scene(800, 600, 2), damaged_qr_image(CERTIFICATE), 250, 150)
    photo = media.photo("worn-certificate.png", picture=picture)

    report = find_certificates(photo)

    assert report.detections == () and report.unreadable_frames == 1


def test_read_qr_codes_on_an_array() -> None:
    texts, unreadable = read_qr_codes(qr_image("ZF-1", module=6))

    assert (texts, unreadable) == (["ZF-1"], 0)


def test_not_media(media: MediaFactory) -> None:
    with pytest.raises(NotMediaError):
        find_certificates(media.text_named_mp4())
