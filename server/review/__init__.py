"""The supervisors' review app under /review/: server-rendered pages, Chinese by default.

Log-on uses the API's accounts in a browser session; forms carry a CSRF token (the bearer-token
JSON API does not need one); every look at a record or its footage goes to the audit log.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask, request, session
from flask_babel import Babel, get_locale
from flask_wtf.csrf import CSRFProtect

TRANSLATIONS = Path(__file__).parent / "translations"


def select_locale() -> str:
    chosen = session.get("lang") if request else None
    return chosen if chosen in ("zh", "en") else "zh"


def init_app(app: Flask) -> None:
    from server.review import clock_offsets, evaluations, labels, legal, provenance
    from server.review import deadlines as _deadlines  # noqa: F401 - the publication deadlines' pages
    from server.review.routes import bp, clock, local_time

    relaxed = bool(app.config.get("DEBUG") or app.config.get("TESTING"))
    # Flask's defaults are looser (no SameSite, not Secure): the review session is set here.
    app.config.update(SESSION_COOKIE_SECURE=not relaxed, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_NAME="inspect_once_review")
    app.config["REVIEW_IDLE_TIMEOUT"] = timedelta(minutes=int(app.config["REVIEW_IDLE_MINUTES"]))
    # CSRF is checked only for the review blueprint's forms (its before_request), not app-wide:
    # the JSON API authenticates with bearer tokens, which a foreign page cannot send.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid as long as the (server-side) session lives
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "zh")
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "Asia/Shanghai")
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    CSRFProtect(app)
    Babel(app, locale_selector=select_locale)
    app.jinja_env.filters["local_time"] = local_time
    app.jinja_env.filters["clock"] = clock
    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.globals.update(label=labels.label, flag_text=labels.flag_label, audit_details=labels.audit_details,
                                 value_text=labels.value_text)
    legal.init_app(app)  # the enforcement decisions on an inspection's page
    evaluations.init_app(app)  # the enterprise's evaluation and complaints on it, and the follow-ups
    clock_offsets.init_app(app)  # the capturing device's clock beside each capture time
    provenance.init_app(app)  # who signed each file at capture, and its place in the device's chain
    app.register_blueprint(bp)
    from server.audit.service import register_object_type
    from server.review.service import inspection_department

    # Audit entries about an inspection belong to its department (its supervisors read them).
    register_object_type("inspection", inspection_department)
