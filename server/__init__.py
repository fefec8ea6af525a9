"""Inspect Once server: ``create_app`` builds the Flask application."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response
from sqlalchemy.exc import IntegrityError, OperationalError

from server.config import flask_config, load_settings
from server.jsonbody import JSONRequest

log = logging.getLogger(__name__)


def create_app(test_config: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Flask:
    """Build the app. ``env`` replaces ``os.environ`` (tests); ``test_config`` overrides Flask keys."""
    testing = bool(test_config and test_config.get("TESTING"))
    settings = load_settings(env, testing=testing)
    app = Flask(__name__, instance_relative_config=False)
    app.request_class = JSONRequest
    app.config.from_mapping(flask_config(settings))
    if test_config:
        app.config.from_mapping(test_config)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        Path(app.config["SQLALCHEMY_DATABASE_URI"][len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    from server import (
        audit,
        changefeed,  # noqa: F401 - registers the change-sequence hook
        cli,
        clocks,
        codes,
        decisions,
        directory,
        errors,
        evaluations,
        events,
        field,
        health,
        planning,
        publication,
        review,
        tasks,
        uploads,
        verification,
    )
    from server.api import api, document_security
    from server.archive import init_app as init_archive
    from server.archive import models as _archive_models  # noqa: F401 - tables for migrations
    from server.archive.routes import blp as archive_blp
    from server.audit.routes import blp as audit_blp
    from server.auth import passwords
    from server.auth import service as auth_service
    from server.auth.routes import blp as auth_blp
    from server.decisions.routes import blueprints as decision_blueprints
    from server.directory.routes import blueprints as directory_blueprints
    from server.extensions import configure_sqlite, db, migrate
    from server.jobs.queue import build_queue
    from server.joint.routes import blp as joint_blp
    from server.planning.routes import blueprints as planning_blueprints
    from server.provenance.routes import blp as provenance_blp
    from server.publication import models as _publication_models  # noqa: F401 - tables for migrations
    from server.sync.routes import blp as sync_blp
    from server.tasks.routes import blp as tasks_blp
    from server.uploads.routes import blp as uploads_blp
    from server.uploads.routes import media_blp
    from server.verification import models as _verification_models  # noqa: F401 - tables for migrations
    from server.verification.routes import blp as inspections_blp

    if testing:
        passwords.configure(time_cost=1, memory_cost=8 * 1024)
    db.init_app(app)
    events.init_app(app)
    app.extensions["inspect_once.queue"] = build_queue(app)
    with app.app_context():
        configure_sqlite(db.engine)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    api.init_app(app)
    document_security(api)
    errors.init_app(app)
    auth_service.init_app(app)
    api.register_blueprint(auth_blp)
    for blp in planning_blueprints:
        api.register_blueprint(blp)
    api.register_blueprint(joint_blp)
    for blp in [*directory_blueprints, tasks_blp, sync_blp, uploads_blp, media_blp, inspections_blp]:
        api.register_blueprint(blp)
    api.register_blueprint(provenance_blp)
    api.register_blueprint(audit_blp)
    api.register_blueprint(archive_blp)
    for blp in decision_blueprints:
        api.register_blueprint(blp)
    directory.init_app(app)
    tasks.init_app(app)
    uploads.init_app(app)
    clocks.init_app(app)
    app.register_blueprint(health.bp)
    field.init_app(app)
    cli.init_app(app)
    verification.init_app(app)
    planning.init_app(app)
    review.init_app(app)
    audit.init_app(app)
    init_archive(app)
    decisions.init_app(app)
    publication.init_app(app)
    codes.init_app(app)
    evaluations.init_app(app)
    _refuse_unstorable_path_values(app)
    _install_transaction_boundary(app)
    _trust_proxies(app, settings.trusted_proxies)
    return app


def _trust_proxies(app: Flask, count: int) -> None:
    """Behind ``count`` reverse proxies, read the client's address, scheme and host from their X-Forwarded-*
    headers (the rightmost ``count`` values, the ones our own proxies appended); with none, ignore them."""
    if count:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)  # type: ignore[method-assign]


def _refuse_unstorable_path_values(app: Flask) -> None:
    """A path segment with NUL (``/devices/%00``) names nothing: 404 before it reaches the database."""
    from server.errors import Problem
    from server.schemas import has_unstorable_text

    @app.url_value_preprocessor
    def refuse(endpoint: str | None, values: dict[str, Any] | None) -> None:
        if values and any(has_unstorable_text(value) for value in values.values()):
            raise Problem(404, "not-found", "资源不存在")


def _install_transaction_boundary(app: Flask) -> None:
    """One commit per request: services flush, the request commits on success.

    The answer is sent only after the commit, so a client never hears
    "received" for something that is not durable.
    """
    from server import transaction
    from server.errors import problem_response
    from server.extensions import db

    @app.after_request
    def commit_or_rollback(response: Response) -> Response:
        # A few refusals record why they refused (an upload quarantined for a
        # wrong hash): the service asks for its writes to be kept.
        if response.status_code >= 400 and not transaction.writes_kept():
            db.session.rollback()
            transaction.rolled_back()
            return response
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            transaction.rolled_back()
            log.info("commit refused by a database constraint")
            return problem_response(409, "conflict", "与现有数据冲突",
                                    "与现有数据冲突（可能是重复提交），未保存任何内容")
        except OperationalError:
            db.session.rollback()
            transaction.rolled_back()
            log.exception("database unavailable at commit")
            return problem_response(503, "database-unavailable", "数据库暂时不可用",
                                    "数据库暂时不可用，未保存任何内容，请稍后重试", headers={"Retry-After": "5"})
        transaction.committed()
        return response

    @app.teardown_request
    def end_request(error: BaseException | None) -> None:
        transaction.request_ended()
