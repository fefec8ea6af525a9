"""The clock ledger: each device's clock against the server's, read at every sync and upload (docs/verification.md).

Device clocks lie (no network, a dead battery, a hand on the settings): the times a device stamps on what it
captures are worth only what its clock was worth. Each push, pull and upload request carries the device's
clock (``Device-Clock`` header); the server keeps one ledger row per request beside its own receive time, and
the inspection's assessment reads each capture time against the offsets known before and after it.
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from server.clocks import models as _models  # noqa: F401 - the ledger's table, for migrations
