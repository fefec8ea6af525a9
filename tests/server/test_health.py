"""/healthz: ok, degraded when the media store runs out of room, 503 when a part does not answer."""
from __future__ import annotations

from pathlib import Path

from flask import Flask

from tests.conftest import _build_app


def _health(app: Flask) -> tuple[int, dict[str, object]]:
    with app.app_context():
        answer = app.test_client().get("/healthz")
    return answer.status_code, answer.get_json()


def test_a_healthy_server_says_ok_with_the_free_space(database_url: str, tmp_path: Path) -> None:
    status, body = _health(_build_app(database_url, tmp_path / "var"))
    assert status == 200 and body["status"] == "ok", body
    assert body["checks"] == {"database": "ok", "media_store": "ok"}
    assert isinstance(body["media_free_bytes"], int) and body["media_free_bytes"] > 0


def test_a_media_store_below_its_floor_degrades_health_but_does_not_fail_it(database_url: str, tmp_path: Path) -> None:
    # A floor above any disk: the store is below it, as a full disk would be.
    app = _build_app(database_url, tmp_path / "var", env_extra={"INSPECT_ONCE_MEDIA_MIN_FREE_BYTES": str(1 << 60)})
    status, body = _health(app)
    assert status == 200, body
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == "ok"
    assert str(body["checks"]["media_store"]).startswith("low: "), body
    assert body["media_min_free_bytes"] == 1 << 60


def test_a_media_store_that_cannot_be_written_is_unhealthy(database_url: str, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the media root should be")
    app = _build_app(database_url, tmp_path / "var", env_extra={"MEDIA_ROOT": str(blocked / "media")})
    status, body = _health(app)
    assert status == 503, body
    assert body["type"] == "/problems/unhealthy"
    assert str(body["checks"]["media_store"]).startswith("error: "), body


def test_the_floor_must_be_a_number(tmp_path: Path) -> None:
    import pytest

    from server.config import ConfigError

    with pytest.raises(ConfigError, match="INSPECT_ONCE_MEDIA_MIN_FREE_BYTES"):
        _build_app("sqlite://", tmp_path / "var", env_extra={"INSPECT_ONCE_MEDIA_MIN_FREE_BYTES": "lots"})


def test_an_object_store_is_reported_ok_or_unreachable(database_url: str, tmp_path: Path, s3_server) -> None:
    from tests.s3server import free_port

    reached = _build_app(database_url, tmp_path / "a", env_extra=s3_server.store_env(prefix="health"))
    status, body = _health(reached)
    assert status == 200 and body["checks"] == {"database": "ok", "media_store": "ok"}, body
    assert body["media_free_bytes"] is None  # an object store has no floor it can tell
    down = {**s3_server.store_env(prefix="health"), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    status, body = _health(_build_app(database_url, tmp_path / "b", env_extra=down))
    assert status == 503 and str(body["checks"]["media_store"]).startswith("error: s3://evidence"), body
