"""Framework-free analysis of evidence files: photos, audio and bodycam video.

Nothing here knows Flask, the database or the server: functions take paths (or plain data) and
return frozen dataclass reports that serialise to JSON (``report.to_dict()`` / ``.to_json()``).

* :func:`verify_file` – the one call the server's workers make: hash, probe, integrity,
  certificate QR codes and covered lens in a single decode pass, with a verdict and reasons.
* :func:`probe` – declared properties; :func:`check_integrity` – whole, truncated, damaged or not
  media; :func:`find_certificates` – QR codes shown (亮证); :func:`find_covered_lens`.
* :func:`make_thumbnail`, :func:`make_contact_sheet` – review pictures.
* :func:`analyse_continuity` – gaps and overlaps between a device's segments.
"""
from media.badges import BadgeReport, CertificateDetection, find_certificates
from media.continuity import (
    ContinuityReport,
    Gap,
    Overlap,
    Segment,
    WindowCoverage,
    analyse_continuity,
    find_gaps_and_overlaps,
    window_coverage,
)
from media.digest import sha256_file
from media.errors import IndexMissingError, MediaError, NotMediaError
from media.integrity import IntegrityReport, check_integrity
from media.lens import CoveredInterval, LensReport, LensThresholds, find_covered_lens
from media.probe import ProbeReport, probe
from media.reasons import Reason, Severity
from media.thumbnails import Picture, make_contact_sheet, make_thumbnail
from media.verify import (
    ANALYSER_VERSION,
    Detection,
    MediaReport,
    Status,
    VerifyOptions,
    verify_file,
)

__all__ = [
    "ANALYSER_VERSION", "BadgeReport", "CertificateDetection", "ContinuityReport", "CoveredInterval",
    "Detection", "Gap", "IndexMissingError", "IntegrityReport", "LensReport", "LensThresholds",
    "MediaError", "MediaReport", "NotMediaError", "Overlap", "Picture", "ProbeReport", "Reason",
    "Segment", "Severity", "Status", "VerifyOptions", "WindowCoverage", "analyse_continuity",
    "check_integrity", "find_certificates", "find_covered_lens", "find_gaps_and_overlaps",
    "make_contact_sheet", "make_thumbnail", "probe", "sha256_file", "verify_file",
    "window_coverage",
]
