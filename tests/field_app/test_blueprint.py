"""The server serves the built tablet app at /field/: types, caching, the service worker's scope, and a clear
Chinese page when the app has not been built."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import _build_app

WEB = Path(__file__).resolve().parents[2] / "field_client" / "web"


def fake_build(folder: Path) -> Path:
    """A build's shape (what build.mjs writes), small enough to check every header against."""
    (folder / "assets").mkdir(parents=True)
    (folder / "icons").mkdir()
    (folder / "index.html").write_text('<!doctype html><script type="module" src="assets/main-ABCDEFGH.js"></script>')
    (folder / "sw.js").write_text("self.addEventListener('fetch', () => {});")
    (folder / "manifest.webmanifest").write_text(json.dumps({"name": "执法检查", "scope": "/field/"}))
    (folder / "version.json").write_text('{"version": "1"}')
    (folder / "assets" / "main-ABCDEFGH.js").write_text("console.log(1)")
    (folder / "assets" / "main-ABCDEFGH.css").write_text("body{}")
    (folder / "icons" / "icon-192.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "secret.py").write_text("not served")
    return folder


@pytest.fixture
def built(app: Flask, tmp_path: Path) -> Path:
    folder = fake_build(tmp_path / "dist")
    app.config["FIELD_APP_DIR"] = str(folder)
    return folder


def test_the_app_shell_is_served_with_its_types_and_caching(client: FlaskClient, built: Path) -> None:
    page = client.get("/field/")
    assert page.status_code == 200
    assert page.content_type == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-cache" and page.headers["ETag"]
    assert "script-src 'self' 'wasm-unsafe-eval'" in page.headers["Content-Security-Policy"]
    assert "connect-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    # Revalidation is cheap: the same ETag answers 304.
    again = client.get("/field/", headers={"If-None-Match": page.headers["ETag"]})
    assert again.status_code == 304

    worker = client.get("/field/sw.js")
    assert worker.status_code == 200 and worker.content_type == "text/javascript; charset=utf-8"
    assert worker.headers["Service-Worker-Allowed"] == "/field/"
    assert worker.headers["Cache-Control"] == "no-cache"

    manifest = client.get("/field/manifest.webmanifest")
    assert manifest.content_type == "application/manifest+json" and manifest.headers["Cache-Control"] == "no-cache"
    assert manifest.get_json(force=True)["scope"] == "/field/"

    script = client.get("/field/assets/main-ABCDEFGH.js")
    assert script.content_type == "text/javascript; charset=utf-8"
    assert script.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert client.get("/field/assets/main-ABCDEFGH.css").content_type == "text/css; charset=utf-8"
    icon = client.get("/field/icons/icon-192.png")
    assert icon.content_type == "image/png" and "immutable" not in icon.headers["Cache-Control"]
    assert client.head("/field/sw.js").status_code == 200


def test_bare_path_redirects_and_unknown_or_foreign_files_are_not_served(client: FlaskClient, built: Path) -> None:
    bare = client.get("/field")
    assert bare.status_code == 308 and bare.headers["Location"].endswith("/field/")
    for path in ("/field/nothing.js", "/field/secret.py", "/field/../pyproject.toml", "/field/%2e%2e/index.html",
                 "/field/assets/", "/field/assets/../../secret.py"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "页面不存在" in answer.get_data(as_text=True)
    assert client.post("/field/").status_code == 405


def test_an_unbuilt_app_answers_a_chinese_503(client: FlaskClient, app: Flask, tmp_path: Path) -> None:
    app.config["FIELD_APP_DIR"] = str(tmp_path / "never-built")
    for path in ("/field/", "/field/sw.js", "/field/manifest.webmanifest"):
        answer = client.get(path)
        assert answer.status_code == 503, path
        assert answer.content_type == "text/html; charset=utf-8"
        text = answer.get_data(as_text=True)
        assert "尚未构建" in text and "make web" in text
        assert answer.headers["Cache-Control"] == "no-store" and answer.headers["Retry-After"]


def test_the_folder_is_configured_by_environment(tmp_path: Path) -> None:
    folder = fake_build(tmp_path / "elsewhere")
    app = _build_app(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "var",
                     env_extra={"INSPECT_ONCE_FIELD_APP_DIR": str(folder)})
    assert app.test_client().get("/field/version.json").get_json() == {"version": "1"}
    default = _build_app(f"sqlite:///{tmp_path / 'db2.sqlite'}", tmp_path / "var")
    assert Path(default.config["FIELD_APP_DIR"]) == WEB / "dist"


def test_the_real_build_is_served(client: FlaskClient, app: Flask) -> None:
    """What `make web` built (the suite builds it first): the shell references hashed files that exist, and
    the service worker precaches them."""
    dist = WEB / "dist"
    if not (dist / "index.html").is_file():
        pytest.fail("field_client/web/dist is not built: run `make web` (make test builds it)", pytrace=False)
    app.config["FIELD_APP_DIR"] = str(dist)
    page = client.get("/field/").get_data(as_text=True)
    scripts = re.findall(r'src="(assets/main-[A-Z0-9]{8}\.js)"', page)
    assert scripts, page
    assert client.get("/field/" + scripts[0]).status_code == 200
    worker = client.get("/field/sw.js").get_data(as_text=True)
    precached = set(re.findall(r'url:"([^"]+)"', worker)) | set(re.findall(r'"url":"([^"]+)"', worker))
    assert {scripts[0], "index.html", "manifest.webmanifest"} <= precached, precached
    assert not any("api" in url for url in precached)  # the service worker never caches the API
    for size in ("192", "512"):
        assert client.get(f"/field/icons/icon-{size}.png").data.startswith(b"\x89PNG")
    manifest = json.loads(client.get("/field/manifest.webmanifest").data)
    assert manifest["start_url"] == "/field/" and manifest["lang"] == "zh-CN"
