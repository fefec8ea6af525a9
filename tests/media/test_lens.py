"""Lens covered: near-black or featureless stretches of video."""
from __future__ import annotations

import numpy as np
import pytest

from media import find_covered_lens
from media.lens import look

from .conftest import MediaFactory, scene


def test_covered_stretches_are_found_with_their_kind(media: MediaFactory) -> None:
    # black from 2.0 s to 6.0 s, featureless grey from 6.5 s to the end (10 s)
    report = find_covered_lens(media.covered_video())

    dark, flat = report.intervals
    assert (dark.kind, flat.kind) == ("dark", "featureless")
    assert dark.start == pytest.approx(2.0, abs=0.5) and dark.end == pytest.approx(6.0, abs=0.5)
    assert flat.start == pytest.approx(6.5, abs=0.5) and flat.end == pytest.approx(10.0, abs=0.2)
    assert report.covered_seconds == pytest.approx(dark.duration + flat.duration)
    assert dark.mean_brightness < 40 < flat.mean_brightness


def test_stretches_shorter_than_the_threshold_are_ignored(media: MediaFactory) -> None:
    report = find_covered_lens(media.covered_video(), min_duration=4.5)

    assert report.intervals == ()
    assert report.min_duration == 4.5


@pytest.mark.parametrize("name", ["plain_video", "clean_video", "certificate_video"])
def test_lens_not_covered(media: MediaFactory, name: str) -> None:
    report = find_covered_lens(getattr(media, name)())

    assert report.intervals == () and report.covered_seconds == 0
    assert report.frames_examined > 0


def test_photo_of_nothing(media: MediaFactory) -> None:
    black = media.photo("black.jpg", picture=np.zeros((600, 800, 3), np.uint8))

    assert find_covered_lens(black).still_covered is True
    assert find_covered_lens(media.photo("scene.jpg")).still_covered is False


def test_frame_measurements() -> None:
    rng = np.random.default_rng(1)
    black = np.full((90, 160), 16, np.uint8)
    dark_noise = np.clip(rng.normal(20, 3, (90, 160)), 0, 255).astype(np.uint8)
    grey = np.full((90, 160), 180, np.uint8)
    busy = scene(160, 90, 3)[..., 1].copy()
    night = np.zeros((90, 160), np.uint8)
    night[::10, :] = 200  # dark overall, but with structure: a street at night, not a hand

    assert look(black).covered == "dark"
    assert look(dark_noise).covered == "dark"
    assert look(grey).covered == "featureless"
    assert look(busy).covered is None
    assert look(night).covered is None
