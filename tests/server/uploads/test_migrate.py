"""``flask --app server media-migrate``: an installation moves its evidence from local disk to an object store.

Each story uploads through the real API on a local-disk app, then runs the
command on a second app with the same database and MEDIA_ROOT but the new
configuration (MEDIA_STORE_URL on the session's S3 server), as an IT officer would.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from server.extensions import db
from server.uploads.migration import migrate_objects
from server.uploads.models import MediaObject
from server.uploads.service import EXTENSION
from server.uploads.storage import LocalMediaStore
from tests.conftest import AuthActions, World, _build_app
from tests.s3server import BUCKET
from tests.server.uploads.conftest import OCTETS, create, device_headers, footage, metadata, sha256


def upload(client: FlaskClient, world: World, data: bytes) -> str:
    """A docking station uploads ``data`` in one request; returns the media id."""
    headers = device_headers(client, world, "e-dock")
    response = create(client, headers, len(data), metadata(sha256=sha256(data), filetype="video/mp4"),
                      data=data, content_type=OCTETS)
    assert response.status_code == 201, response.get_data(as_text=True)
    found = client.get("/api/v1/media", query_string={"sha256": sha256(data)}, headers=headers).get_json()["items"]
    return str(found[0]["id"])


class Installation:
    """Three recordings on local disk, and the same installation configured for the object store."""

    def __init__(self, client: FlaskClient, world: World, database_url: str, var: Path, s3_server: Any) -> None:
        self.files = [footage(3000 + n * 1000, seed=n) for n in range(3)]
        self.media_ids = [upload(client, world, data) for data in self.files]
        self.prefix = f"t-{uuid.uuid4().hex[:12]}"
        self.s3 = s3_server.client()
        self.s3_app = _build_app(database_url, var, env_extra=s3_server.store_env(self.prefix))
        self.media_root = var / "media"
        db.session.commit()

    def migrate(self, *args: str) -> Any:
        """Run the command as the operator would, in the new configuration's app."""
        db.session.rollback()
        with self.s3_app.app_context():
            result = self.s3_app.test_cli_runner().invoke(args=["media-migrate", *args])
        db.session.expire_all()
        return result

    @property
    def target(self) -> Any:
        return self.s3_app.extensions[EXTENSION].store

    def rows(self) -> dict[str, tuple[str, str]]:
        return {row.sha256: (row.backend, row.key) for row in db.session.scalars(select(MediaObject))}

    def in_bucket(self) -> dict[str, bytes]:
        """The objects under the installation's prefix, by key (``ab/cd/<sha256>``)."""
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{self.prefix}/objects/").get("Contents", [])
        start = len(f"{self.prefix}/objects/")
        return {entry["Key"][start:]: self.s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read()
                for entry in listed}

    def local_file(self, data: bytes) -> Path:
        digest = sha256(data)
        return self.media_root / "objects" / digest[:2] / digest[2:4] / digest


@pytest.fixture
def installation(client: FlaskClient, world: World, database_url: str, tmp_path: Path, s3_server: Any,
                 app: Flask) -> Installation:
    return Installation(client, world, database_url, tmp_path / "var", s3_server)


def key_of(data: bytes) -> str:
    digest = sha256(data)
    return f"{digest[:2]}/{digest[2:4]}/{digest}"


def test_the_evidence_moves_to_the_object_store_and_is_served_from_there(installation: Installation,
                                                                         client: FlaskClient, world: World) -> None:
    # A tablet's upload still arriving on local disk is not moved; the operator is told.
    create(client, device_headers(client, world, "e-dock"), 100, metadata(sha256="a" * 64))
    result = installation.migrate()
    assert result.exit_code == 0, result.output
    assert "1 partial upload(s) are still in progress" in result.output
    total = sum(map(len, installation.files))
    assert f"copied 3 ({total / (1 << 20):.1f} MiB), already migrated 0, failed 0" in result.output
    assert "they can be removed once" in result.output

    assert installation.in_bucket() == {key_of(data): data for data in installation.files}
    assert installation.rows() == {sha256(data): ("s3", key_of(data)) for data in installation.files}
    # The local files stay: the old configuration still works until the switch.
    assert all(installation.local_file(data).read_bytes() == data for data in installation.files)

    s3_client = installation.s3_app.test_client()
    headers = AuthActions(s3_client).headers("e-sup")
    for media_id, data in zip(installation.media_ids, installation.files, strict=True):
        response = s3_client.get(f"/api/v1/media/{media_id}/content", headers=headers)
        assert response.status_code == 200
        assert response.data == data

    again = installation.migrate()
    assert again.exit_code == 0, again.output
    assert "copied 0 (0.0 MiB), already migrated 3, failed 0" in again.output


def test_an_interruption_half_way_leaves_checked_rows_and_a_rerun_finishes(
        installation: Installation, monkeypatch: pytest.MonkeyPatch) -> None:
    target = installation.target
    put, calls = target.put, []

    def put_then_stop(blocks: Any, sha256: str | None = None) -> Any:
        calls.append(1)
        if len(calls) == 2:
            next(iter(blocks))  # some bytes of the second object are on their way
            raise KeyboardInterrupt
        return put(blocks, sha256=sha256)

    monkeypatch.setattr(target, "put", put_then_stop)
    result = installation.migrate()
    assert result.exit_code == 130, result.output
    assert "run media-migrate again" in result.output
    ordered = sorted(installation.files, key=sha256)
    rows = installation.rows()
    assert rows[sha256(ordered[0])] == ("s3", key_of(ordered[0]))
    assert [rows[sha256(data)][0] for data in ordered[1:]] == ["local", "local"]
    assert installation.in_bucket() == {key_of(ordered[0]): ordered[0]}

    monkeypatch.setattr(target, "put", put)
    rerun = installation.migrate()
    assert rerun.exit_code == 0, rerun.output
    assert "already migrated 1, failed 0" in rerun.output and "copied 2 " in rerun.output
    assert installation.in_bucket() == {key_of(data): data for data in installation.files}
    assert {backend for backend, _ in installation.rows().values()} == {"s3"}


def test_a_damaged_or_missing_local_file_is_reported_and_not_copied(installation: Installation) -> None:
    tampered, missing, intact = installation.files
    path = installation.local_file(tampered)
    path.chmod(0o640)
    path.write_bytes(b"X" + tampered[1:])
    installation.local_file(missing).unlink()

    result = installation.migrate()
    assert result.exit_code != 0
    assert f"failed {sha256(tampered)}: the source file does not hash to its SHA-256" in result.output
    assert f"failed {sha256(missing)}: the source file is missing" in result.output
    assert "copied 1 " in result.output and "failed 2" in result.output
    assert "2 object(s) were not copied" in result.output
    # Nothing of the damaged file reached the bucket, under any address.
    assert installation.in_bucket() == {key_of(intact): intact}
    rows = installation.rows()
    assert rows[sha256(tampered)] == ("local", key_of(tampered))
    assert rows[sha256(missing)] == ("local", key_of(missing))
    assert rows[sha256(intact)] == ("s3", key_of(intact))


def test_the_copy_is_read_back_unless_told_not_to(installation: Installation,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    target = installation.target
    read, reads = target.read, []
    monkeypatch.setattr(target, "read", lambda key, *a: reads.append(key) or read(key, *a))
    assert installation.migrate("--no-recheck").exit_code == 0
    assert reads == []
    for data in installation.files:  # back to local, to copy again with the default
        db.session.execute(MediaObject.__table__.update().where(MediaObject.sha256 == sha256(data))
                           .values(backend="local"))
    db.session.commit()
    assert installation.migrate().exit_code == 0
    assert sorted(reads) == sorted(key_of(data) for data in installation.files)


def test_a_copy_that_reads_back_wrong_leaves_its_row_local(installation: Installation,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # An object store that answers other bytes than it was given (a failing disk behind it, a proxy).
    target = installation.target
    victim = min(installation.files, key=sha256)
    read = target.read
    monkeypatch.setattr(target, "read",
                        lambda key, *a: iter([b"?" * len(victim)]) if key == key_of(victim) else read(key, *a))
    lines: list[str] = []
    with installation.s3_app.app_context():
        report = migrate_objects(LocalMediaStore(installation.media_root), target, say=lines.append,
                                 advance=lambda n: None, page_size=1)
    db.session.expire_all()
    assert (report.copied, report.already_migrated, [sha for sha, _ in report.failed]) == (2, 0, [sha256(victim)])
    assert lines == [f"failed {sha256(victim)}: the copy read back from the target does not hash to its SHA-256 "
                     f"(it hashes to {sha256(b'?' * len(victim))})"]
    assert installation.rows()[sha256(victim)][0] == "local"


def test_without_an_object_store_configured_the_command_refuses(app: Flask, runner: Any) -> None:
    result = runner.invoke(args=["media-migrate"])
    assert result.exit_code == 1
    assert "MEDIA_STORE_URL is not set" in result.output
