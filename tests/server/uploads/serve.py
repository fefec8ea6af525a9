"""The app on a real socket in a process of its own, for tests that kill the server.

``python -m tests.server.uploads.serve DATABASE_URL VAR`` prints the port it
listens on, then serves (werkzeug, threaded: it streams request bodies to the
app as they arrive, as the production server does). Checkpoints are small so
that a kill mid-PATCH finds some of it durable.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import _build_app

TEST_CONFIG = {"UPLOAD_CHECKPOINT_BYTES": 64 * 1024, "UPLOAD_CHECKPOINT_SECONDS": 0.1}


def make_app() -> Flask:
    """For gunicorn: ``tests.server.uploads.serve:make_app()`` with UPLOAD_TEST_DATABASE_URL and UPLOAD_TEST_VAR."""
    return _build_app(os.environ["UPLOAD_TEST_DATABASE_URL"], Path(os.environ["UPLOAD_TEST_VAR"]), TEST_CONFIG)


def main() -> None:
    database_url, var = sys.argv[1], Path(sys.argv[2])
    app = _build_app(database_url, var, TEST_CONFIG)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(server.server_port, flush=True)
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
