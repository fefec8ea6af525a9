"""Serving the built app: the right content types, and caching that lets a new deployment reach every tablet.

- ``index.html``, ``sw.js``, ``manifest.webmanifest`` and ``version.json`` are revalidated on every load
  (``no-cache`` with an ETag), so the browser sees a new service worker as soon as one is deployed.
- Files under ``assets/`` carry their content's hash in their name: cached for a year, immutable.
- ``sw.js`` may control all of ``/field/`` (``Service-Worker-Allowed``).
- Until the app is built, every ``/field/`` page answers a Chinese 503 page saying how to build it.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, Response, current_app, request
from werkzeug.security import safe_join

bp = Blueprint("field", __name__, url_prefix="/field")

# Only what the build writes; anything else in the folder is not served.
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".webmanifest": "application/manifest+json",
    ".json": "application/json",
    ".map": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".txt": "text/plain",
}
REVALIDATE = {"index.html", "sw.js", "manifest.webmanifest", "version.json"}
HASHED = re.compile(r"^assets/[^/]+-[A-Z0-9]{8}\.[a-z.]+$")
YEAR = 365 * 24 * 3600

# The app's own page: its scripts and styles only, pictures and video the app made itself (blob:), the
# API on this server. hash-wasm compiles its WebAssembly in the page ('wasm-unsafe-eval').
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
                           "style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; "
                           "worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'self'; "
                           "frame-ancestors 'none'; form-action 'self'")

NOT_BUILT = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>执法检查应用尚未构建</title></head>
<body style="font-family: sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.6">
<h1>执法检查应用尚未构建</h1>
<p data-testid="field-app-unavailable">服务器上没有找到平板应用的文件，暂时无法使用。请管理员在服务器上运行
<code>make web</code>（或 <code>make run</code>）构建应用后再试。</p>
<p lang="en" style="color: #666">The tablet app is not built on this server: run <code>make web</code>.</p>
</body></html>
"""

NOT_FOUND = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>页面不存在</title></head>
<body style="font-family: sans-serif; margin: 3rem auto; max-width: 40rem; padding: 0 1rem">
<h1>页面不存在</h1><p><a href="/field/">返回执法检查应用</a></p></body></html>
"""


def app_dir() -> Path:
    """The built app's folder; read per request, so a deployment (or a test) can swap it."""
    return Path(current_app.config["FIELD_APP_DIR"])


def _page(body: str, status: int, **headers: str) -> Response:
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers)
    return response


def _serve(name: str) -> Response:
    folder = app_dir()
    if not (folder / "index.html").is_file():
        # No caching: the page must go away the moment the app is built.
        return _page(NOT_BUILT, 503, **{"Retry-After": "60"})
    content_type = CONTENT_TYPES.get(Path(name).suffix)
    path = safe_join(str(folder), name)
    if content_type is None or path is None or not Path(path).is_file():
        return _page(NOT_FOUND, 404)
    # The build's files are small (the largest is a source map): read whole, so no file handle outlives the
    # request; the ETag comes from the file's size and time, which a new build changes.
    file = Path(path)
    stat = file.stat()
    response = Response(file.read_bytes(), mimetype=content_type)
    response.set_etag(f"{stat.st_mtime_ns:x}-{stat.st_size:x}")
    response.last_modified = datetime.fromtimestamp(stat.st_mtime, UTC)
    response.make_conditional(request)
    if name in REVALIDATE:
        response.headers["Cache-Control"] = "no-cache"
    elif HASHED.match(name):
        response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    else:
        response.headers["Cache-Control"] = "public, max-age=86400"
    if name == "sw.js":
        response.headers["Service-Worker-Allowed"] = "/field/"
    if name == "index.html":
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/")
def index() -> Response:
    return _serve("index.html")


@bp.get("/<path:name>")
def asset(name: str) -> Response:
    return _serve(name)
