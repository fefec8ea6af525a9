"""Lens covered: stretches of video in which the picture is near-black or shows nothing.

A bodycam whose lens is covered by a hand, a pocket or a sticker records frames that are dark, or
bright but without any structure. Sampled frames are shrunk to a thumbnail (cheap, and it averages
sensor noise away) and measured: mean brightness, contrast (standard deviation) and edge density
(share of pixels where the Laplacian is strong). Runs of covered samples longer than
``min_duration`` seconds are reported.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from media._json import JsonReport
from media._sampling import SampleClock
from media._scan import GrayImage, SampledFrame, scan
from media.probe import open_container, probe_container

DEFAULT_INTERVAL = 0.5
DEFAULT_MAX_SAMPLES = 2400
DEFAULT_MIN_DURATION = 3.0
_ANALYSIS_SIDE = 160


@dataclass(frozen=True)
class LensThresholds:
    """When a frame counts as covered."""

    dark_mean: float = 40.0
    """A frame darker than this on average (0–255) …"""
    dark_std: float = 20.0
    """… and with less contrast than this is *dark*."""
    flat_std: float = 12.0
    """A frame with less contrast than this …"""
    flat_edges: float = 0.005
    """… and fewer edge pixels than this share is *featureless*."""
    edge_strength: float = 12.0
    """Laplacian magnitude that makes a pixel an edge pixel."""


@dataclass(frozen=True)
class FrameLook(JsonReport):
    """Measurements of one sampled frame."""

    mean: float
    std: float
    edge_density: float
    covered: str | None
    """``dark``, ``featureless`` or ``None``."""


@dataclass(frozen=True)
class CoveredInterval(JsonReport):
    """A stretch of video with the lens apparently covered."""

    start: float
    end: float
    duration: float
    kind: str
    """``dark``, ``featureless`` or ``mixed``."""
    mean_brightness: float


@dataclass(frozen=True)
class LensReport(JsonReport):
    """Where the lens looked covered."""

    intervals: tuple[CoveredInterval, ...]
    covered_seconds: float
    frames_examined: int
    sample_interval: float | None
    min_duration: float
    still_covered: bool | None
    """For a photo: whether the picture itself is dark or featureless (``None`` for video)."""


def look(gray: GrayImage, thresholds: LensThresholds = LensThresholds()) -> FrameLook:
    """Measure one grayscale frame and say whether it looks covered."""
    if max(gray.shape) > _ANALYSIS_SIDE * 2:
        scale = _ANALYSIS_SIDE / max(gray.shape)
        gray = np.asarray(
            cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), dtype=np.uint8
        )
    mean = float(np.mean(gray))
    std = float(np.std(gray))
    laplacian = cv2.Laplacian(gray, cv2.CV_16S, ksize=3)
    edges = float(np.count_nonzero(np.abs(laplacian) > thresholds.edge_strength)) / laplacian.size
    covered: str | None = None
    if mean < thresholds.dark_mean and std < thresholds.dark_std:
        covered = "dark"
    elif std < thresholds.flat_std and edges < thresholds.flat_edges:
        covered = "featureless"
    return FrameLook(mean=round(mean, 2), std=round(std, 2), edge_density=round(edges, 5), covered=covered)


class LensObserver:
    """Collects covered-lens runs from sampled frames (see :func:`find_covered_lens`)."""

    name = "lens"

    def __init__(
        self,
        *,
        duration: float | None,
        still: bool = False,
        interval: float = DEFAULT_INTERVAL,
        max_samples: int = DEFAULT_MAX_SAMPLES,
        min_duration: float = DEFAULT_MIN_DURATION,
        thresholds: LensThresholds = LensThresholds(),
    ) -> None:
        self.still = still
        self.clock = SampleClock(interval, 1 if still else max_samples, None if still else duration)
        self.min_duration = min_duration
        self.thresholds = thresholds
        self._intervals: list[CoveredInterval] = []
        self._run: list[tuple[float, FrameLook]] = []
        self._still_covered: bool | None = None
        self._last_time = 0.0

    def due(self, time_s: float) -> bool:
        return self.clock.due(time_s)

    @property
    def exhausted(self) -> bool:
        return self.clock.exhausted

    def observe(self, frame: SampledFrame) -> None:
        seen = look(frame.gray(_ANALYSIS_SIDE), self.thresholds)
        self._last_time = frame.time
        if self.still:
            self._still_covered = seen.covered is not None
            return
        if seen.covered is not None:
            self._run.append((frame.time, seen))
        elif self._run:
            self._close_run(frame.time)

    def _close_run(self, end: float) -> None:
        start = self._run[0][0]
        if end - start >= self.min_duration:
            kinds = {s.covered for _, s in self._run}
            self._intervals.append(CoveredInterval(
                start=round(start, 3),
                end=round(end, 3),
                duration=round(end - start, 3),
                kind=kinds.pop() if len(kinds) == 1 else "mixed",  # type: ignore[arg-type]
                mean_brightness=round(float(np.mean([s.mean for _, s in self._run])), 2),
            ))
        self._run = []

    def report(self, end_time: float | None = None) -> LensReport:
        """The intervals found; ``end_time`` closes a run still open at the end of the video."""
        if self._run:
            end = max(end_time or 0.0, self._last_time + self.clock.interval / 2)
            self._close_run(end)
        return LensReport(
            intervals=tuple(self._intervals),
            covered_seconds=round(sum(i.duration for i in self._intervals), 3),
            frames_examined=self.clock.samples,
            sample_interval=None if self.still else round(self.clock.interval, 3),
            min_duration=self.min_duration,
            still_covered=self._still_covered,
        )


def find_covered_lens(
    path: str | os.PathLike[str],
    *,
    min_duration: float = DEFAULT_MIN_DURATION,
    interval: float = DEFAULT_INTERVAL,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    thresholds: LensThresholds = LensThresholds(),
) -> LensReport:
    """Find where the video at ``path`` is near-black or featureless for ``min_duration`` s or more.

    For a photo, ``still_covered`` says whether the picture itself is dark or featureless.
    Raises :class:`~media.errors.MediaError` when the file is not media.
    """
    with open_container(path) as container:
        probed = probe_container(path, container)
        observer = LensObserver(
            duration=probed.duration, still=probed.kind == "photo", interval=interval,
            max_samples=max_samples, min_duration=min_duration, thresholds=thresholds,
        )
        stats = scan(container, [observer], strict=False, decode_audio=False)
    return observer.report(stats.video_end)
