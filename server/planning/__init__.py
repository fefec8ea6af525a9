"""Planning: spot-check plans, joint plans, double-random draws, approval and frequency control."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from server.planning.cli import verify_draw_command

    app.cli.add_command(verify_draw_command)
