"""Inspection codes (涉企行政检查码, "扫码入企"): issue 18, docs/inspection-codes.md.

- ``token``: the signed token (Ed25519) — what it says, signing and checking. No Flask, no database.
- ``service``: the code of a dispatched task, and what a scanned token shows the enterprise.
- ``routes``: the public page ``/public/c/<token>``, the printable QR and ``/public/code-keys.json``.
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """The public page and the key list."""
    from server.codes.routes import bp

    app.register_blueprint(bp)
