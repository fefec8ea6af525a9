"""The inspection code's public page ``/public/c/<token>``: what a scanned code says, no log-in, in Chinese.

Also ``/public/code-keys.json`` (the public keys, for checking tokens without this server) and
``/public/c/<token>/qr.svg`` (the code to print).

The offline checker (docs/inspection-codes.md): ``/public/code-check.js`` (the page's script) and
``/public/code-sw.js`` (its service worker, scope ``/public/c/``) are built with the tablet app
(field_client/web/src/public-check → dist/public-check); ``/public/code-offline.html`` is the page the worker
keeps and answers for a code page when the phone has no network.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import segno
from flask import Blueprint, Response, current_app, jsonify, render_template, request

from server.codes import service
from server.codes.token import raw_public_key
from server.db_types import OFFICE_TIMEZONE, utcnow
from server.pageheaders import public_page_headers

bp = Blueprint("codes", __name__, url_prefix="/public", template_folder="templates",
               static_folder="static", static_url_path="/code-static")

#: HTTP status of the page per state: a code that may not be used is refused, with a page saying why.
STATE_STATUS = {"valid": 200, "not-yet-valid": 200, "expired": 410, "cancelled": 410, "superseded": 409,
                "withdrawn": 409, "unknown-task": 404, "forged": 400, "malformed": 400}
_CREDIT_CODE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{18}")
CERTIFICATE_WORDS = {"valid": "有效", "suspended": "暂扣", "revoked": "已吊销", "expired": "已过期",
                     "not-yet-valid": "尚未生效", "none": "无执法证"}


@bp.context_processor
def words() -> dict[str, object]:
    return {"certificate_words": CERTIFICATE_WORDS, "checker_scope": service.URL_PREFIX}


@bp.app_template_filter("office_time")
def office_time(moment: object) -> str:
    """A moment as the offices read it, to the minute."""
    if not isinstance(moment, datetime):
        return ""
    return moment.astimezone(OFFICE_TIMEZONE).strftime("%Y-%m-%d %H:%M")


@bp.after_request
def public_headers(response: Response) -> Response:
    # The page's own script (the offline checker) only; nothing from elsewhere; never cached by a proxy.
    return public_page_headers(response, script="'self'", cache="no-store")


@bp.get("/c/<path:token>")
def code_page(token: str) -> Any:
    check = service.check_code(token, utcnow())
    status = STATE_STATUS[check.state]
    entered = (request.args.get("credit_code") or "").strip().upper()
    own: str | None = None  # the enterprise's own check: "match", "mismatch" or "invalid"
    if entered and check.genuine:
        if not _CREDIT_CODE.fullmatch(entered):
            own = "invalid"
        elif entered == check.task.enterprise.credit_code:  # type: ignore[union-attr]
            own = "match"
        else:
            own, status = "mismatch", 409
    return render_template("codes/page.html", check=check, token=token, own=own,
                           entered=entered if own == "invalid" else ""), status


@bp.get("/c/<path:token>/qr.svg")
def code_qr(token: str) -> Any:
    check = service.check_code(token, utcnow())
    if not check.genuine:
        return render_template("codes/page.html", check=check, token=token, own=None, entered=""), \
            STATE_STATUS[check.state]
    svg = segno.make(service.public_base_url() + service.URL_PREFIX + token, error="m").svg_inline(scale=4)
    return Response(svg, mimetype="image/svg+xml")


@bp.get("/code-keys.json")
def code_keys() -> Any:
    """The Ed25519 public keys whose inspection codes are genuine, by key id (raw 32 bytes, base64url)."""
    return jsonify({"algorithm": "Ed25519", "keys": [{"id": key_id, "public_key": raw_public_key(key)}
                                                       for key_id, key in service.public_keys().items()]})


def _checker_file(name: str) -> Response:
    """A file of the offline checker's build, revalidated on every load (a new build reaches phones at once)."""
    folder = Path(current_app.config.get("FIELD_APP_DIR") or current_app.config["SETTINGS"].field_app_dir)
    file = folder / "public-check" / name
    if not file.is_file():  # not built (make web): the code page works without it
        return Response("离线核验工具尚未构建", status=404, mimetype="text/plain")
    stat = file.stat()
    response = Response(file.read_bytes(), mimetype="text/javascript")
    response.set_etag(f"{stat.st_mtime_ns:x}-{stat.st_size:x}")
    response.last_modified = datetime.fromtimestamp(stat.st_mtime, UTC)
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)


@bp.get("/code-check.js")
def checker_script() -> Response:
    return _checker_file("code-check.js")


@bp.get("/code-sw.js")
def checker_worker() -> Response:
    response = _checker_file("code-sw.js")
    # Served outside the scope it controls.
    response.headers["Service-Worker-Allowed"] = request.script_root + service.URL_PREFIX
    return response


@bp.get("/code-offline.html")
def offline_page() -> Any:
    """The offline checker page: kept by the worker, answered by it when a code page cannot be loaded."""
    return render_template("codes/offline.html")
