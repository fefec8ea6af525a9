"""Publication on the statutory calendar (事后公开) and the public results page (issue 15, docs/publication.md).

- ``calendar``: working days (chinese_calendar) and the publication deadline of a decision. No Flask.
- ``models``: published versions of decisions' results; ``service`` publishes, corrects, withdraws and
  lists deadlines per department; ``public`` reads what the public page and feed show.
- ``routes``: the public page ``/public/`` and its feed, and the office API; ``cli``: ``publication-due``.
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the tables, the public pages, the API and ``publication-due``."""
    from server.api import api
    from server.audit.service import register_object_model
    from server.publication.cli import publication_due_command
    from server.publication.models import Publication
    from server.publication.routes import api_blueprints, bp

    register_object_model("publication", Publication)
    app.register_blueprint(bp)
    for blueprint in api_blueprints:
        api.register_blueprint(blueprint)
    app.cli.add_command(publication_due_command)
