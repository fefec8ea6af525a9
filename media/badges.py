"""Certificate shown (亮证): the enforcement-certificate QR codes visible in a photo or video.

Every certificate carries a QR code with its number. A photo is searched once (downscaled, then at
full size if nothing was read); a video is sampled at a bounded rate with a cap on the number of
frames. Each sampled frame is first screened for a code at ``screen_side`` pixels (locating is
cheaper than decoding), and only where one is located decoded at ``max_side`` pixels (and at full
size if it was located but not read). The cost is bounded whatever the file's length and
resolution. The result says which codes were read and when
they were on screen.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from media._json import JsonReport
from media._sampling import SampleClock
from media._scan import GrayImage, SampledFrame, scan
from media.probe import open_container, probe_container

DEFAULT_INTERVAL = 0.5
DEFAULT_MAX_SAMPLES = 600
DEFAULT_MAX_SIDE = 960
#: video frames are first searched for a QR code (not decoded) at this size, which is cheap
DEFAULT_SCREEN_SIDE = 640
PHOTO_MAX_SIDE = 1600
#: a frame this uniform (grayscale standard deviation) cannot show a QR code
_UNIFORM_STD = 4.0
_MAX_UNREADABLE_TIMES = 20


@dataclass(frozen=True)
class CertificateDetection(JsonReport):
    """One QR code text and when it was visible."""

    text: str
    first_seen: float | None
    """Seconds from the start of the video (``None`` for a photo)."""
    last_seen: float | None
    count: int
    """Sampled frames in which it was read."""
    intervals: tuple[tuple[float, float], ...]
    """Runs of consecutive samples in which it was read, as (first, last) seconds."""


@dataclass(frozen=True)
class BadgeReport(JsonReport):
    """The QR codes read from a photo or video."""

    detections: tuple[CertificateDetection, ...]
    frames_examined: int
    sample_interval: float | None
    """Seconds between sampled video frames (``None`` for a photo)."""
    analysed_size: tuple[int, int] | None
    """``(width, height)`` the frames were searched at."""
    unreadable_frames: int
    """Frames where a QR code was located but could not be decoded (blurred, too small, covered)."""
    unreadable_times: tuple[float, ...]

    @property
    def texts(self) -> list[str]:
        """The distinct texts read, in order of first appearance."""
        return [d.text for d in self.detections]


def read_qr_codes(gray: GrayImage, detector: Any | None = None) -> tuple[list[str], int]:
    """Decode the QR codes in one grayscale image.

    Returns the decoded texts and the number of codes located but not decoded.
    """
    detector = detector if detector is not None else cv2.QRCodeDetector()
    try:
        found, texts, _points, _ = detector.detectAndDecodeMulti(gray)
    except cv2.error:
        found, texts = False, ()
    if not found:
        # The multi-code detector misses some lone codes that the single-code one reads.
        try:
            text, points, _ = detector.detectAndDecode(gray)
        except cv2.error:
            return [], 0
        if points is None:
            return [], 0
        return ([text], 0) if text else ([], 1)
    read = [t for t in texts if t]
    return read, len(texts) - len(read)


class CertificateObserver:
    """Collects QR detections from sampled frames (see :func:`find_certificates`)."""

    name = "badges"

    def __init__(
        self,
        *,
        duration: float | None,
        still: bool = False,
        interval: float = DEFAULT_INTERVAL,
        max_samples: int = DEFAULT_MAX_SAMPLES,
        max_side: int = DEFAULT_MAX_SIDE,
        screen_side: int = DEFAULT_SCREEN_SIDE,
    ) -> None:
        self.still = still
        self.screen_side = screen_side
        self.clock = SampleClock(interval, 1 if still else max_samples, None if still else duration)
        self.max_side = PHOTO_MAX_SIDE if still and max_side == DEFAULT_MAX_SIDE else max_side
        self._detector = cv2.QRCodeDetector()
        self._seen: dict[str, list[float]] = {}
        self._unreadable_frames = 0
        self._unreadable_times: list[float] = []
        self._size: tuple[int, int] | None = None

    def due(self, time_s: float) -> bool:
        return self.clock.due(time_s)

    @property
    def exhausted(self) -> bool:
        return self.clock.exhausted

    def observe(self, frame: SampledFrame) -> None:
        gray = frame.gray(self.max_side)
        self._size = (int(gray.shape[1]), int(gray.shape[0]))
        if float(np.std(gray)) < _UNIFORM_STD:
            return
        if not self.still and max(gray.shape) > self.screen_side:
            # Most sampled frames show no code: locating is cheaper than decoding, and cheaper
            # still on a smaller picture, so only frames where something is located go further.
            try:
                located, _ = self._detector.detect(frame.gray(self.screen_side))
            except cv2.error:
                located = False
            if not located:
                return
        texts, unreadable = read_qr_codes(gray, self._detector)
        native_larger = max(frame.width, frame.height) > max(gray.shape)
        if native_larger and (unreadable or (self.still and not texts)):
            # Located but too small to read once downscaled (or a photo, where one more look at
            # full size is affordable): try the frame at its own resolution.
            texts, unreadable = read_qr_codes(frame.gray(None), self._detector)
        for text in dict.fromkeys(texts):
            self._seen.setdefault(text, []).append(frame.time)
        if unreadable and not texts:
            self._unreadable_frames += 1
            if len(self._unreadable_times) < _MAX_UNREADABLE_TIMES:
                self._unreadable_times.append(round(frame.time, 3))

    def report(self) -> BadgeReport:
        """The detections collected so far."""
        gap = self.clock.interval * 1.5 + 1e-6
        detections = []
        for text, times in self._seen.items():
            if self.still:
                detections.append(CertificateDetection(text, None, None, len(times), ()))
                continue
            runs: list[list[float]] = []
            for t in times:
                if runs and t - runs[-1][1] <= gap:
                    runs[-1][1] = t
                else:
                    runs.append([t, t])
            detections.append(CertificateDetection(
                text=text,
                first_seen=round(times[0], 3),
                last_seen=round(times[-1], 3),
                count=len(times),
                intervals=tuple((round(a, 3), round(b, 3)) for a, b in runs),
            ))
        return BadgeReport(
            detections=tuple(detections),
            frames_examined=self.clock.samples,
            sample_interval=None if self.still else round(self.clock.interval, 3),
            analysed_size=self._size,
            unreadable_frames=self._unreadable_frames,
            unreadable_times=tuple(self._unreadable_times),
        )


def find_certificates(
    path: str | os.PathLike[str],
    *,
    interval: float = DEFAULT_INTERVAL,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    max_side: int = DEFAULT_MAX_SIDE,
) -> BadgeReport:
    """Read the certificate QR codes visible in the photo or video at ``path``.

    Video frames are sampled at most once per ``interval`` seconds and at most ``max_samples``
    times (the interval widens for long videos), each downscaled to ``max_side`` pixels on its
    longer side. Raises :class:`~media.errors.MediaError` when the file is not media.
    """
    with open_container(path) as container:
        probed = probe_container(path, container)
        observer = CertificateObserver(
            duration=probed.duration, still=probed.kind == "photo",
            interval=interval, max_samples=max_samples, max_side=max_side,
        )
        scan(container, [observer], strict=False, decode_audio=False)
    return observer.report()
