"""Screening HD video for certificates: each sample is screened on a small picture and a located code read in
its own region of the full frame; every sample is searched, so a code is found in every sample that shows it,
from its first — also a code shown for one sample only."""
from __future__ import annotations

import itertools
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from media import find_certificates, verify_file
from media._scan import SampledFrame
from media.badges import CertificateObserver, read_qr_codes

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


def _turned_blurred_frame(module: int, angle: int, blur: int, noisy_background: bool,
                          rng: np.random.Generator) -> np.ndarray:
    """A 1280x720 grayscale frame showing the certificate's code at ``module`` px, turned and blurred, with
    sensor noise, on a smooth or a noisy background."""
    code = qr_image(CERTIFICATE, module=module)
    size = code.shape[1]
    code = cv2.warpAffine(code, cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0), (size, size),
                          borderValue=255)
    frame = (rng.integers(0, 255, (HEIGHT, WIDTH), dtype=np.uint8) if noisy_background
             else np.tile(np.linspace(40, 200, WIDTH, dtype=np.uint8), (HEIGHT, 1)))
    frame[200:200 + size, 400:400 + size] = code
    if blur:
        frame = cv2.GaussianBlur(frame, (0, 0), blur)
    return np.clip(frame.astype(np.int16) + rng.integers(-10, 10, frame.shape), 0, 255).astype(np.uint8)


def _screened_reads(gray: np.ndarray) -> bool:
    observer = CertificateObserver(duration=10.0)
    observer.observe(SampledFrame(av.VideoFrame.from_ndarray(gray, format="gray"), 0.0))
    return bool(observer.report().detections)


def _whole_frame_reads(gray: np.ndarray) -> bool:
    half = cv2.resize(gray, (960, 540), interpolation=cv2.INTER_AREA)
    return bool(read_qr_codes(half)[0]) or bool(read_qr_codes(gray)[0])


def test_screening_reads_what_decoding_the_whole_frame_reads_small_turned_and_blurred() -> None:
    """Screening exists to spend less than decoding every sample whole, not to find less: over a grid of code
    sizes (2-8 px a module), angles and blurs, every code that decoding the whole frame (at 960 px and at
    full size) reads is read by the screened search, except at the grid's edge (2 px modules, or blurred
    and turned at once); and it reads more of the grid than the whole-frame decode does."""
    rng = np.random.default_rng(3)
    missed, screened, whole = [], 0, 0
    for module, angle, blur, noisy in itertools.product([2, 3, 5, 8], [0, 30, 45], [0, 1, 2],
                                                        [False, True]):
        gray = _turned_blurred_frame(module, angle, blur, noisy, rng)
        by_screen, by_whole = _screened_reads(gray), _whole_frame_reads(gray)
        screened += by_screen
        whole += by_whole
        if by_whole and not by_screen and module >= 3 and blur <= 1:
            missed.append((module, angle, blur, noisy))
    assert missed == []
    assert screened >= whole
