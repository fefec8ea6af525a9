"""Capture provenance: device signing keys, signed capture manifests, each device's chain (docs/provenance.md)."""
from __future__ import annotations
