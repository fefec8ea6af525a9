"""``verify_file``: everything the server wants to know about one arrived file, in one pass.

The file is hashed (streaming), identified by its bytes, probed, then decoded exactly once: the
integrity check sees every frame and the detectors (certificate QR codes, covered lens) see the
frames they sample on the way. The verdict is

* ``failed`` – the file cannot serve as evidence as it is (not media, truncated, damaged, hash
  mismatch): some reason has severity ``error``;
* ``needs_review`` – it decodes, but a person should look (lens covered, misleading extension);
* ``verified`` – otherwise.

Whether the *right* certificate was shown, and on a valid day, is for the caller to decide: the
report lists the codes read and when; it does not know the inspection.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from media._json import JsonReport
from media._scan import FrameObserver, scan
from media.badges import (
    DEFAULT_INTERVAL as BADGE_INTERVAL,
)
from media.badges import (
    DEFAULT_MAX_SAMPLES as BADGE_MAX_SAMPLES,
)
from media.badges import (
    DEFAULT_MAX_SIDE as BADGE_MAX_SIDE,
)
from media.badges import (
    BadgeReport,
    CertificateObserver,
)
from media.digest import normalise_sha256, sha256_file
from media.errors import MediaError
from media.integrity import IntegrityReport, assess, container_layout
from media.lens import (
    DEFAULT_INTERVAL as LENS_INTERVAL,
)
from media.lens import (
    DEFAULT_MAX_SAMPLES as LENS_MAX_SAMPLES,
)
from media.lens import (
    DEFAULT_MIN_DURATION as LENS_MIN_DURATION,
)
from media.lens import (
    LensObserver,
    LensReport,
    LensThresholds,
)
from media.probe import ProbeReport, open_container, probe_container
from media.reasons import Reason, Severity, reason
from media.sniff import sniff

#: Changes whenever the verdict for the same bytes could change, so stored reports can be redone.
ANALYSER_VERSION = "media/2"  # 2: video frames screened for certificate codes by the ArUco-based locator


class Status(StrEnum):
    """The verdict on one file."""

    VERIFIED = "verified"
    FAILED = "failed"
    NEEDS_REVIEW = "needs_review"


@dataclass(frozen=True)
class VerifyOptions:
    """Tuning of :func:`verify_file`; the defaults keep a long 720p video well under real time."""

    certificates: bool = True
    lens: bool = True
    badge_interval: float = BADGE_INTERVAL
    badge_max_samples: int = BADGE_MAX_SAMPLES
    badge_max_side: int = BADGE_MAX_SIDE
    lens_interval: float = LENS_INTERVAL
    lens_max_samples: int = LENS_MAX_SAMPLES
    lens_min_duration: float = LENS_MIN_DURATION
    lens_thresholds: LensThresholds = field(default_factory=LensThresholds)
    threads: bool = True


@dataclass(frozen=True)
class Detection(JsonReport):
    """Something seen in the picture: a certificate QR code, an unreadable code, a covered lens."""

    kind: str
    """``certificate``, ``unreadable-code`` or ``lens-covered``."""
    text: str | None
    start: float | None
    end: float | None
    count: int


@dataclass(frozen=True)
class MediaReport(JsonReport):
    """The verification report of one file."""

    path: str
    status: Status
    reasons: tuple[Reason, ...]
    sha256: str | None
    expected_sha256: str | None
    measurements: dict[str, Any]
    """Flat numbers for the record: size, duration, frames declared and decoded, errors …"""
    detections: tuple[Detection, ...]
    probe: ProbeReport | None
    integrity: IntegrityReport | None
    badges: BadgeReport | None
    lens: LensReport | None
    timings: dict[str, float]
    """Seconds per stage (hash, probe, decode pass, and the detectors' share of it)."""
    analyser: str = ANALYSER_VERSION

    @property
    def failed(self) -> bool:
        """Whether the file failed verification."""
        return self.status is Status.FAILED

    @property
    def certificate_texts(self) -> list[str]:
        """The distinct certificate QR texts read."""
        return [d.text for d in self.detections if d.kind == "certificate" and d.text]


def _status(reasons: list[Reason]) -> Status:
    if any(r.severity is Severity.ERROR for r in reasons):
        return Status.FAILED
    if reasons:
        return Status.NEEDS_REVIEW
    return Status.VERIFIED


def _measurements(
    size: int | None,
    probed: ProbeReport | None,
    integrity: IntegrityReport | None,
    badges: BadgeReport | None,
    lens: LensReport | None,
) -> dict[str, Any]:
    values: dict[str, Any] = {"size_bytes": size}
    if probed is not None:
        values.update(
            kind=probed.kind, container=probed.container, video_codec=probed.video_codec,
            audio_codec=probed.audio_codec, width=probed.width, height=probed.height,
            frame_rate=probed.frame_rate, duration=probed.duration, has_audio=probed.has_audio,
            creation_time=probed.creation_time.isoformat() if probed.creation_time else None,
        )
    if integrity is not None:
        values.update(
            declared_frames=integrity.declared_frames, decoded_frames=integrity.decoded_frames,
            decoded_duration=integrity.decoded_duration, decode_errors=integrity.decode_errors,
            corrupt_frames=integrity.corrupt_frames,
            audio_decode_errors=integrity.audio_decode_errors,
        )
    if badges is not None:
        values.update(
            certificate_frames_examined=badges.frames_examined,
            certificate_unreadable_frames=badges.unreadable_frames,
        )
    if lens is not None:
        values.update(lens_covered_seconds=lens.covered_seconds)
    return values


def _detections(badges: BadgeReport | None, lens: LensReport | None) -> tuple[Detection, ...]:
    found: list[Detection] = []
    if badges is not None:
        for seen in badges.detections:
            found.append(Detection("certificate", seen.text, seen.first_seen, seen.last_seen, seen.count))
        if badges.unreadable_frames and not badges.detections:
            times = badges.unreadable_times
            found.append(Detection(
                "unreadable-code", None, times[0] if times else None, times[-1] if times else None,
                badges.unreadable_frames,
            ))
    if lens is not None:
        for stretch in lens.intervals:
            found.append(Detection("lens-covered", stretch.kind, stretch.start, stretch.end, 1))
        if lens.still_covered:
            found.append(Detection("lens-covered", None, None, None, 1))
    return tuple(found)


def verify_file(
    path: str | os.PathLike[str],
    *,
    expected_sha256: str | None = None,
    filename: str | None = None,
    options: VerifyOptions = VerifyOptions(),
) -> MediaReport:
    """Verify the photo, audio or video at ``path`` and return its :class:`MediaReport`.

    ``expected_sha256`` is the hash taken at capture; a different content fails the file.
    ``filename`` is the name it was uploaded under (for the extension check) when the stored
    path has another. Never raises for bad content — that is what the report is for — only for a
    malformed ``expected_sha256``. Memory use does not grow with the file's length.
    """
    expected = normalise_sha256(expected_sha256) if expected_sha256 is not None else None
    timings: dict[str, float] = {}
    reasons: list[Reason] = []
    probed: ProbeReport | None = None
    integrity: IntegrityReport | None = None
    badges: BadgeReport | None = None
    lens: LensReport | None = None
    digest: str | None = None
    size: int | None = None

    def finish() -> MediaReport:
        return MediaReport(
            path=os.fspath(path), status=_status(reasons), reasons=tuple(reasons), sha256=digest,
            expected_sha256=expected,
            measurements=_measurements(size, probed, integrity, badges, lens),
            detections=_detections(badges, lens), probe=probed, integrity=integrity,
            badges=badges, lens=lens, timings={k: round(v, 4) for k, v in timings.items()},
        )

    if not os.path.isfile(path):
        reasons.append(reason("file-missing"))
        return finish()
    size = os.path.getsize(path)
    if size == 0:
        reasons.append(reason("empty-file"))
        return finish()

    begun = time.perf_counter()
    digest = sha256_file(path)
    timings["hash"] = time.perf_counter() - begun
    if expected is not None and digest != expected:
        reasons.append(reason("hash-mismatch", expected=expected, actual=digest))

    begun = time.perf_counter()
    identified = sniff(path, filename=filename)
    if identified.kind is not None and identified.extension_matches is False:
        reasons.append(reason(
            "extension-mismatch", extension=identified.extension, content=identified.kind
        ))
    layout = container_layout(path)
    try:
        with open_container(path) as container:
            probed = probe_container(path, container)
            timings["probe"] = time.perf_counter() - begun
            still = probed.kind == "photo"
            observers: list[FrameObserver] = []
            badge_observer = lens_observer = None
            if probed.kind != "audio" and options.certificates:
                badge_observer = CertificateObserver(
                    duration=probed.duration, still=still, interval=options.badge_interval,
                    max_samples=options.badge_max_samples, max_side=options.badge_max_side,
                )
                observers.append(badge_observer)
            if probed.kind != "audio" and options.lens:
                lens_observer = LensObserver(
                    duration=probed.duration, still=still, interval=options.lens_interval,
                    max_samples=options.lens_max_samples, min_duration=options.lens_min_duration,
                    thresholds=options.lens_thresholds,
                )
                observers.append(lens_observer)
            stats = scan(container, observers, strict=True, threads=options.threads)
    except MediaError as error:
        timings.setdefault("probe", time.perf_counter() - begun)
        details: dict[str, Any] = {"error": str(error)}
        if layout is not None:
            details["boxes"] = list(layout.boxes)
        reasons.append(reason(error.code, **details))
        return finish()

    timings["decode"] = stats.seconds
    for name, seconds in stats.observer_seconds.items():
        timings[name] = seconds
    integrity = assess(path, probed, stats, layout)
    reasons.extend(integrity.problems)
    if badge_observer is not None:
        badges = badge_observer.report()
    if lens_observer is not None:
        lens = lens_observer.report(stats.video_end)
        if lens.intervals:
            reasons.append(reason(
                "lens-covered", seconds=lens.covered_seconds,
                intervals=[[i.start, i.end] for i in lens.intervals],
            ))
        elif lens.still_covered:
            reasons.append(reason("lens-covered", photo=True))
    return finish()
