"""Planning: spot-check plans, joint plans, double-random draws, approval and frequency control.

One module per rule, each importing only those above it in this list:

- ``common``: a refusal naming one field; plans, joint plans and draws are read by every office.
- ``targets``: a plan's target filter over the directory.
- ``plans``, ``joint_plans``: departments' plans, and plans merged with their equivalent check items.
- ``conflicts``: declared conflicts of interest.
- ``frequency``: the frequency cap and overrides of it.
- ``approval``: one approval per participating department before dispatch (the review app calls it).
- ``visits``: ``schedule_visit``, the one way a visit is created (draws and ``POST /api/v1/tasks/``).
- ``drawing`` (pure: no database, no clock) and ``draws``: the draw, recorded and verifiable.
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from server.planning.cli import verify_draw_command

    app.cli.add_command(verify_draw_command)
