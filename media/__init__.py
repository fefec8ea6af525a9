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
from __future__ import annotations

import importlib
import sys
import types
from typing import Any

# Names are imported on first use: a caller that needs only the plain-number parts (continuity,
# reasons) — the web server — does not load OpenCV, PyAV and NumPy with them.
_EXPORTS = {
    "media.badges": ("BadgeReport", "CertificateDetection", "find_certificates"),
    "media.continuity": ("ContinuityReport", "Gap", "Overlap", "Segment", "WindowCoverage",
                         "analyse_continuity", "find_gaps_and_overlaps", "window_coverage"),
    "media.digest": ("sha256_file",),
    "media.errors": ("IndexMissingError", "MediaError", "NotMediaError"),
    "media.integrity": ("IntegrityReport", "check_integrity"),
    "media.lens": ("CoveredInterval", "LensReport", "LensThresholds", "find_covered_lens"),
    "media.probe": ("ProbeReport", "probe"),
    "media.reasons": ("Reason", "Severity"),
    "media.thumbnails": ("Picture", "make_contact_sheet", "make_thumbnail"),
    "media.verify": ("ANALYSER_VERSION", "Detection", "MediaReport", "Status", "VerifyOptions", "verify_file"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


class _Package(types.ModuleType):
    """Keeps an exported function bound under its name when its same-named submodule is imported
    (``media.probe`` the function, as with eager imports, not ``media.probe`` the module)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and value.__name__ == f"{__name__}.{name}" and name in _MODULE_OF:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'media' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_MODULE_OF))


__all__ = [
    "ANALYSER_VERSION", "BadgeReport", "CertificateDetection", "ContinuityReport", "CoveredInterval",
    "Detection", "Gap", "IndexMissingError", "IntegrityReport", "LensReport", "LensThresholds",
    "MediaError", "MediaReport", "NotMediaError", "Overlap", "Picture", "ProbeReport", "Reason",
    "Segment", "Severity", "Status", "VerifyOptions", "WindowCoverage", "analyse_continuity",
    "check_integrity", "find_certificates", "find_covered_lens", "find_gaps_and_overlaps",
    "make_contact_sheet", "make_thumbnail", "probe", "sha256_file", "verify_file",
    "window_coverage",
]
