"""The inspectors' tablet app at ``/field/``: the built files of ``field_client/web`` (``make web``).

The server serves them as static files and knows nothing else of the app; the app talks to the JSON API like
any client. The folder is found by path (``INSPECT_ONCE_FIELD_APP_DIR``, default ``field_client/web/dist`` of
this checkout), never by importing the field client.
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from server.field.routes import bp

    app.config.setdefault("FIELD_APP_DIR", str(app.config["SETTINGS"].field_app_dir))
    app.register_blueprint(bp)
