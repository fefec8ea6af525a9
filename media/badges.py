"""Certificate shown (亮证): the enforcement-certificate QR codes visible in a photo or video.

Every certificate carries a QR code with its number. A photo is searched once (downscaled, then at
full size if nothing was read); a video is sampled at a bounded rate with a cap on the number of
frames. Each sampled frame of a video larger than ``screen_side`` is first screened for a code at
that size with OpenCV's ArUco-based QR locator (locating is cheaper than decoding), and only where
one is located decoded, in its region of the full-size frame (the whole frame at ``max_side``
pixels and at full size if the region does not read). The cost is bounded whatever the file's length and
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
from media._scan import GrayImage, SampledFrame, fit_within, scan
from media.probe import open_container, probe_container

DEFAULT_INTERVAL = 0.5
DEFAULT_MAX_SAMPLES = 600
DEFAULT_MAX_SIDE = 960
#: video frames are first searched for a QR code (not decoded) at this size. The ArUco-based locator
#: finds smaller, blurred and turned codes that the classic one missed at 640 px (the classic one scales
#: any picture up to 512 px on its short side first, so 640 px cost as much as 910), at about half its
#: time: tests/media/test_badge_screening.py holds both claims to a grid of sizes, angles and blurs.
DEFAULT_SCREEN_SIDE = 960
PHOTO_MAX_SIDE = 1600
#: a frame this uniform (grayscale standard deviation) cannot show a QR code
_UNIFORM_STD = 4.0
_MAX_UNREADABLE_TIMES = 20
#: certificates looked for in one video frame (each one found is blanked and the search repeated)
_MAX_CODES_PER_FRAME = 4
#: a located code whose box covers more of the frame than this is decoded with the whole frame
_REGION_MAX_SHARE = 0.25


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
    frames_screened: int | None = None
    """Sampled frames searched for a code (every sampled frame: a code shown for one sample is still found)."""

    @property
    def texts(self) -> list[str]:
        """The distinct texts read, in order of first appearance."""
        return [d.text for d in self.detections]


def _region(quad: Any, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The box around a located code's corners, with a margin (a quiet zone for the decoder), within the
    frame; None when the box is too large to be worth decoding apart (a code filling the frame, or
    something taken for a code), as the whole frame is decoded then."""
    x0, y0 = quad.min(axis=0)
    x1, y1 = quad.max(axis=0)
    margin = max(8.0, 0.25 * max(x1 - x0, y1 - y0))
    box = (max(0, int(x0 - margin)), max(0, int(y0 - margin)),
           min(width, int(np.ceil(x1 + margin))), min(height, int(np.ceil(y1 + margin))))
    area = (box[2] - box[0]) * (box[3] - box[1])
    if box[2] - box[0] < 16 or box[3] - box[1] < 16 or area > _REGION_MAX_SHARE * width * height:
        return None
    return box


def _uniform(gray: GrayImage) -> bool:
    """Whether the picture is too uniform to show a QR code (its grayscale standard deviation)."""
    _mean, std = cv2.meanStdDev(gray)
    return float(std[0][0]) < _UNIFORM_STD


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
        self._locator = cv2.QRCodeDetectorAruco()
        self._seen: dict[str, list[float]] = {}
        self._unreadable_frames = 0
        self._unreadable_times: list[float] = []
        self._size: tuple[int, int] | None = None
        self._screened = 0

    def due(self, time_s: float) -> bool:
        return self.clock.due(time_s)

    @property
    def exhausted(self) -> bool:
        return self.clock.exhausted

    def observe(self, frame: SampledFrame) -> None:
        size = fit_within(frame.width, frame.height, self.max_side)
        self._size = size
        if not self.still and max(frame.width, frame.height) > self.screen_side:
            self._observe_screened(frame)
            return
        self._screened += 1
        gray = frame.gray(self.max_side)
        if _uniform(gray):
            return
        self._record(frame.time, *self._read_whole(frame, gray))

    def _observe_screened(self, frame: SampledFrame) -> None:
        """Every sampled frame is screened, so a code shown for a single sample is found as before. (Screening
        only every other sample where none is seen saved 3–6 % of CPU on the benchmark's clips, and lost a
        code that one sample alone shows: not worth a missed certificate.)"""
        found = self._screen_and_read(frame)
        if found is not None:
            self._record(frame.time, *found)

    def _record(self, time_s: float, texts: list[str], unreadable: int) -> None:
        for text in dict.fromkeys(texts):
            self._seen.setdefault(text, []).append(time_s)
        if unreadable and not texts:
            self._unreadable_frames += 1
            if len(self._unreadable_times) < _MAX_UNREADABLE_TIMES:
                self._unreadable_times.append(round(time_s, 3))

    def _read_whole(self, frame: SampledFrame, gray: GrayImage) -> tuple[list[str], int]:
        """Decode the whole picture at the decoding size, and at full size if a code was located but
        not read there (or, for a photo, nothing was read)."""
        texts, unreadable = read_qr_codes(gray, self._detector)
        native_larger = max(frame.width, frame.height) > max(gray.shape)
        if native_larger and (unreadable or (self.still and not texts)):
            # Located but too small to read once downscaled (or a photo, where one more look at
            # full size is affordable): try the frame at its own resolution.
            texts, unreadable = read_qr_codes(frame.gray(None), self._detector)
        return texts, unreadable

    def _screen_and_read(self, frame: SampledFrame) -> tuple[list[str], int] | None:
        """A video frame: None when no code is located on the small screening picture; else what was read.

        Most sampled frames show no code: locating is cheaper than decoding, and cheaper still on a
        smaller picture, so only frames where something is located go further. A located code is
        then decoded in its own region of the full-resolution frame — a tenth of the pixels of the
        whole frame at the decoding size, where the profile of verification found most of the time
        going (and where a code of a 720p bodycam was often too blurred to read, so the full frame
        was decoded once more). The region is blanked on the screening picture and the search
        repeated, for a second certificate in the same frame. Whenever a located code is not read
        in its region, the frame is decoded whole as before, so nothing is read less than then.
        """
        self._screened += 1
        screen = frame.gray(self.screen_side)
        if _uniform(screen):
            return None
        texts: list[str] = []
        for attempt in range(_MAX_CODES_PER_FRAME):
            quad = self._locate(screen)
            if quad is None:
                return (texts, 0) if attempt else None
            scale = frame.width / screen.shape[1]
            region = _region(quad * scale, frame.width, frame.height)
            if region is None:
                return self._read_whole(frame, frame.gray(self.max_side))
            x0, y0, x1, y1 = region
            read, _unreadable = read_qr_codes(np.ascontiguousarray(frame.gray(None)[y0:y1, x0:x1]), self._detector)
            if not read:
                return self._read_whole(frame, frame.gray(self.max_side))
            texts.extend(read)
            if attempt == 0:
                screen = screen.copy()  # the frame's own picture is shared with the other detectors
            sx0, sy0, sx1, sy1 = (round(v / scale) for v in region)
            screen[sy0:sy1, sx0:sx1] = 128
        return texts, 0

    def _locate(self, screen: GrayImage) -> Any:
        try:
            located, points = self._locator.detect(screen)
        except cv2.error:
            return None
        if not located or points is None:
            return None
        return np.asarray(points, dtype=np.float64).reshape(-1, 2)[:4]

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
            frames_screened=self._screened,
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
