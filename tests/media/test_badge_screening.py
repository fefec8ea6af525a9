"""Screening HD video for certificates: each sample is screened on a small picture and a located code read in
its own region of the full frame; every sample is searched, so a code is found in every sample that shows it,
from its first — also a code shown for one sample only."""
from __future__ import annotations

from pathlib import Path

import pytest

from media import find_certificates, verify_file

from .conftest import CERTIFICATE, OTHER_CERTIFICATE, encode_frames, paste, qr_image, scene

WIDTH, HEIGHT, FPS, SECONDS = 1280, 720, 10, 6.0


def hd_video(path: Path, shown: list[tuple[float, float, int]]) -> Path:
    """6 s at 1280x720, 10 fps; each (start, end, x) shows a certificate's code at x from start to end."""
    codes = [qr_image(CERTIFICATE, module=6), qr_image(OTHER_CERTIFICATE, module=6)]

    def frames():  # type: ignore[no-untyped-def]
        for i in range(int(FPS * SECONDS)):
            frame = scene(WIDTH, HEIGHT, i)
            for n, (start, end, x) in enumerate(shown):
                if start <= i / FPS < end:
                    frame = paste(frame, codes[n], x, 200)
            yield frame

    encode_frames(path, frames(), width=WIDTH, height=HEIGHT, fps=FPS, seconds=SECONDS, audio=False)
    return path


# Samples are taken every 0.5 s from 0.0.
@pytest.mark.parametrize(("start", "end", "first", "count"), [
    (2.0, 3.0, 2.0, 2),
    (2.5, 3.5, 2.5, 2),
    (1.0, 4.0, 1.0, 6),
    (2.0, 2.4, 2.0, 1),  # on screen for one sample only: still found
    (2.5, 2.9, 2.5, 1),
])
def test_a_code_on_screen_is_found_in_every_sample_that_shows_it(tmp_path: Path, start: float, end: float,
                                                                   first: float, count: int) -> None:
    report = find_certificates(hd_video(tmp_path / "shown.mp4", [(start, end, 500)]))

    (seen,) = report.detections
    assert (seen.text, seen.first_seen, seen.count) == (CERTIFICATE, first, count)
    assert report.sample_interval == pytest.approx(0.5) and report.frames_examined == 12


def test_footage_without_codes_is_searched_in_every_sample(tmp_path: Path) -> None:
    report = find_certificates(hd_video(tmp_path / "plain.mp4", []))

    assert report.detections == () and report.frames_examined == 12
    assert report.frames_screened == 12


def test_two_certificates_shown_in_turn_are_each_found_where_they_begin(tmp_path: Path) -> None:
    report = verify_file(hd_video(tmp_path / "two.mp4", [(1.0, 2.0, 150), (3.0, 4.5, 800)]))

    assert report.certificate_texts == [CERTIFICATE, OTHER_CERTIFICATE]
    assert [(d.first_seen, d.last_seen, d.count) for d in report.badges.detections] == [  # type: ignore[union-attr]
        (1.0, 1.5, 2), (3.0, 4.0, 3)]
