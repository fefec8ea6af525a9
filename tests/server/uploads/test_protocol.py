"""The tus protocol through the Flask test client: the edge cases, one refusal at a time.

Every refusal is problem+json and leaves nothing corrupted: the durable offset,
the stored objects and the media records are checked after each.
"""
from __future__ import annotations

import io
import random
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from server.extensions import db
from server.uploads import sha256 as portable_sha256
from server.uploads.models import Media, MediaObject, Upload, UploadStatus
from server.uploads.s3store import SPOOL_IN_MEMORY, S3MediaStore
from server.uploads.service import uploads
from server.uploads.storage import StorageError
from tests.conftest import World, assert_problem, new_device
from tests.server.uploads.conftest import (
    OCTETS,
    TUS,
    UPLOADS,
    checksum,
    create,
    device_headers,
    footage,
    forget_running_hashes,
    head,
    media_root,
    metadata,
    partial_keys,
    patch,
    push_media,
    quarantined_bytes,
    sha256,
    stored_names,
    stored_objects,
)

# Every case on local disk and in the S3 object store (tests/conftest.py).
pytestmark = pytest.mark.media_stores


def counts() -> tuple[int, int]:
    return (db.session.scalar(select(func.count()).select_from(Media)) or 0,
            db.session.scalar(select(func.count()).select_from(MediaObject)) or 0)


def offset_of(client: Any, url: str, headers: dict[str, str]) -> int:
    response = head(client, url, headers)
    assert response.status_code == 200, response.status_code
    return int(response.headers["Upload-Offset"])


def new_upload(client: Any, auth: Any, world: World, data: bytes,
               user: str = "m-insp") -> tuple[str, dict[str, str], Any]:
    media = push_media(client, auth, world, data, user=user, tablet="SCJG-TAB1" if user == "m-insp" else "STHJ-TAB1")
    headers = auth.headers(user)
    response = create(client, headers, len(data), metadata(sha256=media.sha256, media_id=media.id))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.headers["Location"], headers, media


# ---- discovery and the protocol envelope ---------------------------------------------------

def test_options_advertises_only_what_the_server_does(client) -> None:
    response = client.options(UPLOADS)
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation", "creation-with-upload", "termination", "checksum", "expiration"}
    assert response.headers["Tus-Checksum-Algorithm"] == "sha1,sha256"
    assert int(response.headers["Tus-Max-Size"]) == 20 * 1024 ** 3


def test_tus_version_is_required(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    for version in (None, "0.2.2"):
        extra = {"Tus-Resumable": version} if version else {}
        response = client.post(UPLOADS, headers={**headers, **extra, "Upload-Length": "10"})
        body = assert_problem(response, 412, "tus-version-unsupported")
        assert response.headers["Tus-Version"] == "1.0.0" and body["detail"]


@pytest.mark.parametrize("method", ["POST", "HEAD", "PATCH", "DELETE"])
def test_unauthenticated_requests_are_refused(client, method: str) -> None:
    url = UPLOADS if method == "POST" else f"{UPLOADS}{uuid.uuid4()}"
    headers = {**TUS, "Upload-Length": "10", "Upload-Offset": "0", "Content-Type": OCTETS}
    response = client.open(url, method=method, headers=headers, data=b"x" if method == "PATCH" else None)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    if method != "HEAD":
        assert_problem(response, 401)
    assert response.headers["Tus-Resumable"] == "1.0.0"


def test_roles_without_uploads_are_refused(client, world: World, auth) -> None:
    for user in ("admin", "m-sup"):
        assert_problem(create(client, auth.headers(user), 10, metadata(sha256="a" * 64)), 403)


# ---- creation ------------------------------------------------------------------------------

@pytest.mark.parametrize("meta, status, slug, field", [
    (None, 422, "validation-failed", "Upload-Metadata.sha256"),
    (metadata(filename="a.jpg"), 422, "validation-failed", "Upload-Metadata.sha256"),
    (metadata(sha256="xyz"), 422, "validation-failed", "Upload-Metadata.sha256"),
    (metadata(sha256="g" * 64), 422, "validation-failed", "Upload-Metadata.sha256"),
    (metadata(sha256="a" * 64, media_id="not-a-uuid"), 422, "validation-failed", "Upload-Metadata.media_id"),
    (metadata(sha256="a" * 64, capture_start="yesterday"), 422, "validation-failed", "Upload-Metadata.capture_start"),
    (metadata(sha256="a" * 64, capture_start="2026-11-26T09:00:00"), 422, "validation-failed",
     "Upload-Metadata.capture_start"),
    (metadata(sha256="a" * 64, filename="a\x00b"), 422, "validation-failed", "Upload-Metadata.filename"),
    ("sha256 not*base64", 400, "malformed-upload-metadata", None),
    ("sha256 " + "//79", 400, "malformed-upload-metadata", None),  # not UTF-8
    ("sha256 YQ== extra", 400, "malformed-upload-metadata", None),
    ("sha256 YQ==,sha256 YQ==", 400, "malformed-upload-metadata", None),
    ("ключ YQ==", 400, "malformed-upload-metadata", None),
])
def test_bad_metadata_is_refused_and_nothing_is_created(client, world: World, auth, app, meta: str | None,
                                                        status: int, slug: str, field: str | None) -> None:
    headers = auth.headers("m-insp")
    body = assert_problem(create(client, headers, 10, meta), status, slug)
    if field:
        assert field in body["errors"], body
    assert db.session.scalar(select(func.count()).select_from(Upload)) == 0
    assert not partial_keys(app)


def test_a_tablet_upload_names_a_synced_media_record_of_its_task(client, world: World, auth) -> None:
    data = footage(1000)
    media = push_media(client, auth, world, data)
    m_insp = auth.headers("m-insp")
    # no media_id
    body = assert_problem(create(client, m_insp, 1000, metadata(sha256=media.sha256)), 422)
    assert "Upload-Metadata.media_id" in body["errors"]
    # a media record nobody synced
    assert_problem(create(client, m_insp, 1000, metadata(sha256=media.sha256, media_id=str(uuid.uuid4()))),
                   422, "unknown-media")
    # the record says another hash, or another size
    assert_problem(create(client, m_insp, 1000, metadata(sha256=sha256(b"other"), media_id=media.id)), 422,
                   "media-mismatch")
    assert_problem(create(client, m_insp, 999, metadata(sha256=media.sha256, media_id=media.id)), 422, "media-mismatch")
    # an inspector of another department who is not on that media record's task
    assert_problem(create(client, auth.headers("e-insp2"), 1000, metadata(sha256=media.sha256, media_id=media.id)), 403)
    # a teammate of the other department may send it (joint inspection)
    response = create(client, auth.headers("e-insp"), 1000, metadata(sha256=media.sha256, media_id=media.id))
    assert response.status_code == 201
    assert db.session.scalar(select(func.count()).select_from(Upload)) == 1


def test_upload_length_rules(client, world: World, auth) -> None:
    headers = {**TUS, **auth.headers("m-insp")}
    meta = metadata(sha256="a" * 64)
    assert_problem(client.post(UPLOADS, headers={**headers, "Upload-Metadata": meta}), 400, "missing-upload-length")
    for bad in ("-1", "1e3", "12a", "１２", "9" * 30):
        assert_problem(client.post(UPLOADS, headers={**headers, "Upload-Length": bad, "Upload-Metadata": meta}), 400,
                       "invalid-upload-length")
    assert_problem(client.post(UPLOADS, headers={**headers, "Upload-Defer-Length": "1", "Upload-Metadata": meta}), 400,
                   "deferred-length-unsupported")
    uploads().max_upload_bytes = 1000
    response = client.post(UPLOADS, headers={**headers, "Upload-Length": "1001", "Upload-Metadata": meta})
    assert_problem(response, 413, "upload-too-large")
    assert response.headers["Tus-Max-Size"] == "1000"


def test_a_creation_body_must_be_an_offset_octet_stream(client, world: World, auth) -> None:
    response = client.post(UPLOADS, data=b"{}", headers={**TUS, **auth.headers("m-insp"), "Upload-Length": "2",
                                                         "Upload-Metadata": metadata(sha256="a" * 64),
                                                         "Content-Type": "application/json"})
    assert_problem(response, 415)


def test_creation_with_upload_stores_a_small_file_in_one_request(client, world: World, auth) -> None:
    data = footage(5000)
    media = push_media(client, auth, world, data)
    response = create(client, auth.headers("m-insp"), len(data), metadata(sha256=media.sha256, media_id=media.id),
                      data=data, content_type=OCTETS)
    assert response.status_code == 201
    assert response.headers["Upload-Offset"] == str(len(data))
    assert "Upload-Expires" not in response.headers
    stored = db.session.get(Media, uuid.UUID(media.id))
    assert stored is not None and stored.sha256 == media.sha256 and stored.task_id == world.task.id
    assert stored_objects(client.application) == [data]


def test_creation_with_part_of_the_file_then_patches(client, world: World, auth) -> None:
    data = footage(5000)
    media = push_media(client, auth, world, data)
    headers = auth.headers("m-insp")
    response = client.post(UPLOADS, data=data[:1234], headers={
        **TUS, **headers, "Upload-Length": str(len(data)), "Content-Type": OCTETS,
        "Upload-Metadata": metadata(sha256=media.sha256, media_id=media.id),
        "Upload-Checksum": checksum("sha256", data[:1234])})
    assert response.status_code == 201 and response.headers["Upload-Offset"] == "1234"
    url = response.headers["Location"]
    assert patch(client, url, headers, 1234, data[1234:]).status_code == 204
    assert db.session.get(Media, uuid.UUID(media.id)) is not None


def test_a_creation_whose_body_stops_short_creates_nothing(client, world: World, auth, app) -> None:
    data = footage(5000)
    media = push_media(client, auth, world, data)
    response = client.post(UPLOADS, input_stream=io.BytesIO(data[:2000]), environ_overrides={"CONTENT_LENGTH": "5000"},
                           headers={**TUS, **auth.headers("m-insp"), "Upload-Length": "5000", "Content-Type": OCTETS,
                                    "Upload-Metadata": metadata(sha256=media.sha256, media_id=media.id)})
    assert_problem(response, 400, "body-truncated")
    assert db.session.scalar(select(func.count()).select_from(Upload)) == 0
    assert not partial_keys(app)


def test_an_empty_file_is_stored_at_creation(client, world: World, auth) -> None:
    media = push_media(client, auth, world, b"")
    response = create(client, auth.headers("m-insp"), 0, metadata(sha256=media.sha256, media_id=media.id))
    assert response.status_code == 201 and response.headers["Upload-Offset"] == "0"
    assert db.session.get(Media, uuid.UUID(media.id)).size == 0  # type: ignore[union-attr]


def test_a_file_name_is_information_never_a_path(client, world: World, auth, app, tmp_path) -> None:
    data = footage(2000)
    name = "../../../../../../tmp/evil/../../etc/passwd-inspect-once"
    media = push_media(client, auth, world, data, file_name="IMG.jpg")
    headers = auth.headers("m-insp")
    response = create(client, headers, len(data), metadata(sha256=media.sha256, media_id=media.id, filename=name,
                                                           filetype="../../x"))
    assert response.status_code == 201
    assert patch(client, response.headers["Location"], headers, 0, data).status_code == 204
    stored = client.get(f"/api/v1/media/{media.id}", headers=headers).get_json()
    assert stored["file_name"] == name and stored["content_type"] == "../../x"
    every_path = stored_names(app)
    assert every_path and not any("passwd" in p or "evil" in p or ".." in p for p in every_path)
    assert not list(tmp_path.parent.rglob("passwd-inspect-once"))
    assert not (media_root(app).parent / "etc").exists()


# ---- PATCH ---------------------------------------------------------------------------------

def test_a_patch_may_be_larger_than_the_json_limit(client, world: World, auth, app) -> None:
    data = footage(app.config["MAX_CONTENT_LENGTH"] + 1024 * 1024 + 7)
    url, headers, _ = new_upload(client, auth, world, data)
    response = patch(client, url, headers, 0, data)
    assert response.status_code == 204, response.get_data(as_text=True)
    assert [sha256(b) for b in stored_objects(app)] == [sha256(data)]


class GeneratedFootage(io.RawIOBase):
    """A long body made on the fly, so the test itself holds no copy of it."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.left, self.rng = size, size, random.Random(seed)
        self.position = 0  # what tell() reports: the test client measures the body by seeking

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = self.size if whence == 2 else offset
        return self.position

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left, 256 * 1024)
        buffer[:n] = self.rng.randbytes(n)
        self.left -= n
        return n


def test_memory_does_not_grow_with_the_body(client, world: World, app) -> None:
    import hashlib
    import tracemalloc

    size = 48 * 1024 * 1024
    digest, source = hashlib.sha256(), GeneratedFootage(size, seed=3)
    while block := source.read(1024 * 1024):
        digest.update(block)
    cam = device_headers(client, world, "m-cam")
    url = create(client, cam, size, metadata(sha256=digest.hexdigest())).headers["Location"]
    tracemalloc.start()
    try:
        response = client.patch(url, input_stream=GeneratedFootage(size, seed=3),
                                headers={**TUS, **cam, "Upload-Offset": "0", "Content-Type": OCTETS})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 204, response.get_data(as_text=True)
    # The S3 store holds what awaits a commit (a checkpoint, and bytes short of a part) in memory, to a limit.
    limit = 8 * 1024 * 1024 + (SPOOL_IN_MEMORY if isinstance(uploads().store, S3MediaStore) else 0)
    assert peak < limit, f"peak {peak} bytes for a {size}-byte body"
    assert [len(b) for b in stored_objects(app)] == [size]


def test_patch_at_the_wrong_offset_is_a_conflict(client, world: World, auth) -> None:
    data = footage(3000)
    url, headers, _ = new_upload(client, auth, world, data)
    assert patch(client, url, headers, 0, data[:1000]).status_code == 204
    for wrong in (0, 999, 1001, 3000):
        response = patch(client, url, headers, wrong, data[wrong:wrong + 10])
        body = assert_problem(response, 409, "offset-mismatch")
        assert response.headers["Upload-Offset"] == "1000" and body["offset"] == 1000
    assert_problem(patch(client, url, headers, 1000, b"", **{"Upload-Offset": "x"}), 400, "invalid-upload-offset")
    assert offset_of(client, url, headers) == 1000
    assert patch(client, url, headers, 1000, data[1000:]).status_code == 204
    assert counts() == (1, 1)


def test_patch_needs_the_offset_octet_stream_type(client, world: World, auth) -> None:
    data = footage(100)
    url, headers, _ = new_upload(client, auth, world, data)
    response = client.patch(url, data=data, headers={**TUS, **headers, "Upload-Offset": "0",
                                                     "Content-Type": "application/octet-stream"})
    assert_problem(response, 415)
    assert offset_of(client, url, headers) == 0


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_a_wrong_patch_checksum_drops_that_patch(client, world: World, auth, algorithm: str) -> None:
    data = footage(4000)
    url, headers, _ = new_upload(client, auth, world, data)
    assert patch(client, url, headers, 0, data[:1000],
                 **{"Upload-Checksum": checksum(algorithm, data[:1000])}).status_code == 204
    damaged = data[1000:1999] + bytes([data[1999] ^ 0xFF])
    response = patch(client, url, headers, 1000, damaged, **{"Upload-Checksum": checksum(algorithm, data[1000:2000])})
    assert_problem(response, 460, "checksum-mismatch")
    assert response.headers["Upload-Offset"] == "1000"
    assert offset_of(client, url, headers) == 1000
    assert patch(client, url, headers, 1000, data[1000:],
                 **{"Upload-Checksum": checksum(algorithm, data[1000:])}).status_code == 204
    assert counts() == (1, 1)


def test_checksum_header_rules(client, world: World, auth) -> None:
    data = footage(100)
    url, headers, _ = new_upload(client, auth, world, data)
    assert_problem(patch(client, url, headers, 0, data, **{"Upload-Checksum": checksum("md5", data)}), 400,
                   "checksum-algorithm-unsupported")
    assert_problem(patch(client, url, headers, 0, data, **{"Upload-Checksum": "sha1 !!!"}), 400,
                   "invalid-upload-checksum")
    assert_problem(patch(client, url, headers, 0, data, **{"Upload-Checksum": "sha1 AAAA"}), 400,
                   "invalid-upload-checksum")
    assert_problem(patch(client, url, headers, 0, data, **{"Upload-Checksum": "sha1"}), 400, "invalid-upload-checksum")
    assert offset_of(client, url, headers) == 0


def test_more_bytes_than_the_upload_holds_are_refused_whole(client, world: World, auth, app) -> None:
    data = footage(2000)
    url, headers, _ = new_upload(client, auth, world, data)
    assert patch(client, url, headers, 0, data[:500]).status_code == 204
    response = patch(client, url, headers, 500, data[500:] + b"one byte too many")
    assert_problem(response, 413, "upload-length-exceeded")
    assert response.headers["Upload-Offset"] == "500"
    # without a Content-Length (a chunked body) the excess shows only while reading
    response = client.patch(url, input_stream=io.BytesIO(data[500:] + b"+"), headers={
        **TUS, **headers, "Upload-Offset": "500", "Content-Type": OCTETS},
        environ_overrides={"wsgi.input_terminated": True})
    assert_problem(response, 413, "upload-length-exceeded")
    assert offset_of(client, url, headers) == 500
    # exactly what is left, from a server that terminates the input stream (gunicorn), without a length ...
    response = client.patch(url, input_stream=io.BytesIO(data[500:]), headers={
        **TUS, **headers, "Upload-Offset": "500", "Content-Type": OCTETS},
        environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 204, response.get_data(as_text=True)
    assert stored_objects(app) == [data]
    # ... and with one
    other = footage(100)
    url, headers, _ = new_upload(client, auth, world, other)
    response = client.patch(url, data=other, headers={**TUS, **headers, "Upload-Offset": "0", "Content-Type": OCTETS},
                            environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 204, response.get_data(as_text=True)


def truncated_patch(client: Any, url: str, headers: dict[str, str], offset: int, sent: bytes, announced: int,
                    **extra: str) -> Any:
    """A PATCH whose body stops before its Content-Length: the client went away mid-body."""
    return client.patch(url, input_stream=io.BytesIO(sent), environ_overrides={"CONTENT_LENGTH": str(announced)},
                        headers={**TUS, **headers, "Upload-Offset": str(offset), "Content-Type": OCTETS, **extra})


def test_a_truncated_body_keeps_what_arrived(client, world: World, auth, app) -> None:
    data = footage(10_000)
    url, headers, _ = new_upload(client, auth, world, data)
    response = truncated_patch(client, url, headers, 0, data[:3000], len(data))
    body = assert_problem(response, 400, "body-truncated")
    assert response.headers["Upload-Offset"] == "3000" and body["offset"] == 3000
    assert offset_of(client, url, headers) == 3000
    # with its own checksum a PATCH is all or nothing
    response = truncated_patch(client, url, headers, 3000, data[3000:5000], 7000,
                               **{"Upload-Checksum": checksum("sha1", data[3000:])})
    assert_problem(response, 400, "body-truncated")
    assert offset_of(client, url, headers) == 3000
    assert patch(client, url, headers, 3000, data[3000:]).status_code == 204
    assert stored_objects(app) == [data]


def test_an_upload_cut_at_random_offsets_resumes_to_the_right_file(client, world: World, auth, app) -> None:
    """Many cuts, some PATCHes damaged, some restarts (hash state lost): the stored file is the file."""
    rng = random.Random(20261126)
    data = footage(256 * 1024, seed=7)
    url, headers, media = new_upload(client, auth, world, data)
    offset, steps = 0, 0
    while offset < len(data):
        steps += 1
        assert steps < 200
        end = min(len(data), offset + rng.randint(1, 40_000))
        action = rng.random()
        if action < 0.15:
            forget_running_hashes(app)  # as if the server restarted: the durable prefix is hashed again
        if action < 0.55 and end > offset + 1:
            cut = rng.randint(offset, end - 1)
            response = truncated_patch(client, url, headers, offset, data[offset:cut], end - offset)
            assert response.status_code == 400 and response.headers["Upload-Offset"] == str(cut)
        elif action < 0.65:
            damaged = bytes([data[offset] ^ 0xFF]) + data[offset + 1:end]
            response = patch(client, url, headers, offset, damaged,
                             **{"Upload-Checksum": checksum("sha256", data[offset:end])})
            assert response.status_code == 460
        else:
            response = patch(client, url, headers, offset, data[offset:end])
            assert response.status_code == 204, response.get_data(as_text=True)
        offset = offset_of(client, url, headers)
        if response.status_code == 204:
            assert offset == end
    stored = client.get(f"/api/v1/media/{media.id}", headers=headers).get_json()
    assert stored["sha256"] == sha256(data) and stored["size"] == len(data)
    assert [sha256(b) for b in stored_objects(app)] == [sha256(data)]
    assert not partial_keys(app)


@pytest.mark.parametrize("states_kept", [True, False], ids=["hash-state-kept", "no-portable-hash"])
def test_a_worker_that_missed_patches_reads_back_only_what_it_cannot_take_up(client, world: World, auth, app,
                                                                           monkeypatch, states_kept: bool) -> None:
    """Clients that connect per PATCH land on any worker process. The one that took the first PATCH but
    not the second takes up the hash state the other kept in the store; without portable hash states
    it reads back and hashes only the second PATCH's bytes."""
    if not states_kept:
        monkeypatch.setattr(portable_sha256, "saved_state", lambda digest: None)
    data = footage(90_000, seed=5)
    url, headers, media = new_upload(client, auth, world, data)
    if not states_kept and isinstance(uploads().store, S3MediaStore):
        # Parts in S3 cannot be read back: without a state to keep, the store takes nothing.
        assert_problem(patch(client, url, headers, 0, data[:30_000]), 503, "media-store-unavailable")
        assert offset_of(client, url, headers) == 0
        return
    digests = uploads().digests
    upload = db.session.scalars(select(Upload)).one()
    assert patch(client, url, headers, 0, data[:30_000]).status_code == 204
    this_worker = digests.nearest(upload.id.hex, 30_000)
    assert this_worker is not None and this_worker[0] == 30_000
    assert patch(client, url, headers, 30_000, data[30_000:70_000]).status_code == 204  # "another worker"
    digests.put(upload.id.hex, *this_worker)  # this worker knows nothing of that PATCH
    store = uploads().store
    read_back: list[tuple[int, int]] = []
    real_read_partial = store.read_partial

    def recording_read_partial(key: str, end: int, start: int = 0) -> Any:
        read_back.append((start, end))
        return real_read_partial(key, end, start=start)

    monkeypatch.setattr(store, "read_partial", recording_read_partial)
    assert patch(client, url, headers, 70_000, data[70_000:]).status_code == 204
    assert read_back == ([] if states_kept else [(30_000, 70_000)])
    stored = client.get(f"/api/v1/media/{media.id}", headers=headers).get_json()
    assert stored["sha256"] == sha256(data)
    assert stored_objects(app) == [data]


@pytest.mark.local_disk  # the local store's files
def test_after_a_restart_the_kept_hash_state_is_taken_up_and_a_damaged_one_ignored(client, world: World, auth,
                                                                                  app, monkeypatch) -> None:
    data = footage(80_000, seed=8)
    url, headers, media = new_upload(client, auth, world, data)
    upload = db.session.scalars(select(Upload)).one()
    store = uploads().store
    read_back: list[tuple[int, int]] = []
    real_read_partial = store.read_partial
    monkeypatch.setattr(store, "read_partial", lambda key, end, start=0: read_back.append((start, end))
                        or real_read_partial(key, end, start=start))
    assert patch(client, url, headers, 0, data[:20_000]).status_code == 204
    forget_running_hashes(app)  # a restart
    assert patch(client, url, headers, 20_000, data[20_000:50_000]).status_code == 204
    assert read_back == []  # nothing hashed twice
    forget_running_hashes(app)
    kept = media_root(app) / "uploads" / upload.storage_key / "hash"
    damaged = bytearray(kept.read_bytes())
    damaged[30] ^= 0xFF  # a torn write, say: the checksum no longer fits
    kept.write_bytes(bytes(damaged))
    assert patch(client, url, headers, 50_000, data[50_000:]).status_code == 204
    assert read_back == [(0, 50_000)]
    assert client.get(f"/api/v1/media/{media.id}", headers=headers).get_json()["sha256"] == sha256(data)


@pytest.mark.local_disk  # the local store's files
def test_a_catch_up_hashes_what_the_disk_holds(client, world: World, auth, app, monkeypatch) -> None:
    """Without a hash state to take up, the bytes are hashed as the disk holds them, not as some
    process believes it wrote them: a changed byte fails the whole-file hash. (A kept state skips
    that reading; the verifier hashes every stored file again.)"""
    monkeypatch.setattr(portable_sha256, "saved_state", lambda digest: None)
    data = footage(60_000, seed=6)
    url, headers, media = new_upload(client, auth, world, data)
    upload = db.session.scalars(select(Upload)).one()
    assert patch(client, url, headers, 0, data[:20_000]).status_code == 204
    forget_running_hashes(app)
    data_file = media_root(app) / "uploads" / upload.storage_key / "data"
    with data_file.open("r+b") as f:  # a disk that returned one byte changed
        f.seek(10_000)
        f.write(bytes([data[10_000] ^ 0x01]))
    response = patch(client, url, headers, 20_000, data[20_000:])
    assert_problem(response, 460, "hash-mismatch")
    assert counts() == (0, 0) and stored_objects(app) == []


# ---- the end of an upload ------------------------------------------------------------------

def test_a_wrong_whole_file_hash_is_quarantined_and_nothing_is_stored(client, world: World, auth, app) -> None:
    data = footage(3000)
    media = push_media(client, auth, world, data)
    headers = auth.headers("m-insp")
    url = create(client, headers, len(data), metadata(sha256=media.sha256, media_id=media.id)).headers["Location"]
    tampered = data[:1500] + bytes([data[1500] ^ 1]) + data[1501:]
    assert patch(client, url, headers, 0, tampered[:2000]).status_code == 204
    response = patch(client, url, headers, 2000, tampered[2000:])
    body = assert_problem(response, 460, "hash-mismatch")
    assert body["declared_sha256"] == media.sha256 and body["received_sha256"] == sha256(tampered)
    assert counts() == (0, 0) and stored_objects(app) == []
    upload = db.session.scalars(select(Upload)).one()
    assert upload.status == UploadStatus.QUARANTINED and upload.quarantined_as
    assert quarantined_bytes(app, upload.quarantined_as) == tampered
    assert not partial_keys(app)
    assert head(client, url, headers).status_code == 410
    assert_problem(patch(client, url, headers, 3000, b""), 410, "upload-gone")
    assert_problem(client.get(f"/api/v1/media/{media.id}", headers=headers), 404)


def test_a_complete_upload_answers_its_length_and_takes_no_more(client, world: World, auth) -> None:
    data = footage(700)
    url, headers, _ = new_upload(client, auth, world, data)
    assert patch(client, url, headers, 0, data).status_code == 204
    response = head(client, url, headers)
    assert response.status_code == 200
    assert response.headers["Upload-Offset"] == response.headers["Upload-Length"] == "700"
    assert "Upload-Expires" not in response.headers
    assert patch(client, url, headers, 700, b"").status_code == 204
    assert_problem(patch(client, url, headers, 700, b"x"), 413)
    assert_problem(patch(client, url, headers, 0, data), 409, "offset-mismatch")
    assert_problem(client.delete(url, headers={**TUS, **headers}), 409, "upload-complete")
    assert counts() == (1, 1)


def test_every_byte_durable_but_never_finished_is_finished_on_head(client, world: World, auth, app) -> None:
    """The server stopped between the last durable write and the commit: HEAD finishes the upload."""
    data = footage(4000)
    url, headers, media = new_upload(client, auth, world, data)
    upload = db.session.scalars(select(Upload)).one()
    running = portable_sha256.new()
    running.update(data)
    with uploads().store.append(upload.storage_key, 0) as writer:
        writer.write(data)
        writer.commit(hash_state=portable_sha256.saved_state(running))  # as the protocol commits
    forget_running_hashes(app)
    response = head(client, url, headers)
    assert response.status_code == 200 and response.headers["Upload-Offset"] == "4000"
    assert db.session.get(Media, uuid.UUID(media.id)) is not None
    assert stored_objects(app) == [data]


def test_identical_footage_is_stored_once_with_every_reference(client, world: World, auth, app) -> None:
    data = footage(6000)
    url, headers, media = new_upload(client, auth, world, data)
    assert patch(client, url, headers, 0, data).status_code == 204
    cam = device_headers(client, world, "m-cam")
    response = create(client, cam, len(data), metadata(sha256=sha256(data), filename="REC_0001.mp4"),
                      data=data, content_type=OCTETS)
    assert response.status_code == 201
    assert counts() == (2, 1)
    assert stored_objects(app) == [data]
    assert not partial_keys(app)
    found = client.get(f"/api/v1/media?sha256={sha256(data)}", headers=cam).get_json()["items"]
    assert {m["id"] for m in found} >= {media.id}
    assert {m["device_id"] for m in found} == {None, "SCJG-BC01"}
    # the same device sending the same recording again (its last answer lost) is not a second record
    again = create(client, cam, len(data), metadata(sha256=sha256(data)), data=data, content_type=OCTETS)
    assert again.status_code == 201
    assert counts() == (2, 1)


# ---- who may upload what -------------------------------------------------------------------

def test_devices_upload_for_their_own_department_only(client, world: World, auth) -> None:
    data = footage(1000)
    market_media = push_media(client, auth, world, data)
    e_dock = device_headers(client, world, "e-dock")
    m_cam = device_headers(client, world, "m-cam")
    meta = metadata(sha256=sha256(data))
    # a dock of ecology uploading a market bodycam's recording, or a market media record
    assert_problem(create(client, e_dock, 1000, metadata(sha256=sha256(data), device_id="SCJG-BC01")), 403)
    assert_problem(create(client, e_dock, 1000, metadata(sha256=sha256(data), media_id=market_media.id)), 403)
    # a bodycam may only send its own recordings
    assert_problem(create(client, m_cam, 1000, metadata(sha256=sha256(data), device_id="SCJG-TAB1")), 403)
    assert_problem(create(client, e_dock, 1000, metadata(sha256=sha256(data), device_id="NO-SUCH-DEVICE")), 422,
                   "unknown-device")
    # a dock uploading for a bodycam of its own department
    new_device("STHJ-BC07", "bodycam", world.ecology)
    response = create(client, e_dock, 1000, metadata(sha256=sha256(data), device_id="STHJ-BC07",
                                                      capture_start="2026-11-26T09:00:00+08:00"), data=data,
                      content_type=OCTETS)
    assert response.status_code == 201
    stored = db.session.scalars(select(Media)).one()
    assert stored.device_id == "STHJ-BC07" and stored.department_id == world.ecology.id
    assert stored.capture_start.isoformat() == "2026-11-26T01:00:00+00:00"  # type: ignore[union-attr]
    assert stored.uploaded_by_device_id == "STHJ-DOCK1"
    # and the market bodycam's own upload belongs to market
    assert create(client, m_cam, 1000, meta).status_code == 201


def test_an_upload_is_reachable_only_by_whoever_started_it(client, world: World, auth) -> None:
    data = footage(1000)
    url, headers, _ = new_upload(client, auth, world, data)
    assert patch(client, url, headers, 0, data[:100]).status_code == 204
    other_department = auth.headers("e-insp")
    assert head(client, url, other_department).status_code == 404
    assert_problem(patch(client, url, other_department, 100, data[100:]), 404)
    assert_problem(client.delete(url, headers={**TUS, **other_department}), 404)
    same_department = device_headers(client, world, "m-cam")
    assert_problem(patch(client, url, same_department, 100, data[100:]), 403)
    assert_problem(client.delete(url, headers={**TUS, **same_department}), 403)
    assert offset_of(client, url, headers) == 100


def test_unknown_uploads_are_not_found(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    url = f"{UPLOADS}{uuid.uuid4()}"
    response = head(client, url, headers)
    assert response.status_code == 404 and response.mimetype == "application/problem+json"
    assert_problem(patch(client, url, headers, 0, b"abc"), 404)
    assert_problem(client.delete(url, headers={**TUS, **headers}), 404)
    assert_problem(patch(client, f"{UPLOADS}not-an-id", headers, 0, b"abc"), 404)


def test_termination_deletes_the_partial_bytes(client, world: World, auth, app) -> None:
    data = footage(5000)
    url, headers, _ = new_upload(client, auth, world, data)
    assert patch(client, url, headers, 0, data[:2500]).status_code == 204
    response = client.delete(url, headers={**TUS, **headers})
    assert response.status_code == 204 and response.headers["Tus-Resumable"] == "1.0.0"
    assert not partial_keys(app)
    assert head(client, url, headers).status_code == 410
    assert_problem(patch(client, url, headers, 2500, data[2500:]), 410, "upload-gone")
    assert_problem(client.delete(url, headers={**TUS, **headers}), 410)
    assert counts() == (0, 0)


def test_a_busy_upload_is_locked(client, world: World, auth) -> None:
    data = footage(1000)
    url, headers, _ = new_upload(client, auth, world, data)
    upload = db.session.scalars(select(Upload)).one()
    with uploads().locker.hold(upload.id.hex):
        response = patch(client, url, headers, 0, data)
        assert_problem(response, 423, "upload-locked")
        assert response.headers["Retry-After"]
        assert_problem(client.delete(url, headers={**TUS, **headers}), 423)
        assert offset_of(client, url, headers) == 0  # HEAD does not wait for the writer
    assert patch(client, url, headers, 0, data).status_code == 204


def test_a_failing_store_answers_503_and_keeps_the_offset(client, world: World, auth, monkeypatch) -> None:
    data = footage(1000)
    url, headers, _ = new_upload(client, auth, world, data)
    assert patch(client, url, headers, 0, data[:400]).status_code == 204

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("append: No space left on device")

    monkeypatch.setattr(uploads().store, "append", broken)
    response = patch(client, url, headers, 400, data[400:])
    assert_problem(response, 503, "media-store-unavailable")
    monkeypatch.undo()
    assert offset_of(client, url, headers) == 400


# ---- expiry --------------------------------------------------------------------------------

@pytest.mark.around_office_midnight
@pytest.mark.local_disk  # ages the store's files (the S3 case: tests/server/uploads/test_s3store.py)
def test_expire_uploads_removes_abandoned_partial_uploads(client, world: World, auth, app, runner) -> None:
    import os
    from datetime import timedelta

    from server.db_types import utcnow

    data = footage(3000)
    stale_url, headers, stale_media = new_upload(client, auth, world, data)
    assert patch(client, stale_url, headers, 0, data[:1000]).status_code == 204
    fresh_url, _, _ = new_upload(client, auth, world, footage(10))
    # By its file, not by the earliest creation: on a frozen clock both were created at one instant.
    stale = db.session.scalars(select(Upload).where(Upload.media_id == uuid.UUID(str(stale_media.id)))).one()
    long_ago = utcnow() - timedelta(hours=73)
    stale.created_at = long_ago
    db.session.commit()
    offset_file = media_root(app) / "uploads" / stale.storage_key / "offset"
    os.utime(offset_file, (long_ago.timestamp(), long_ago.timestamp()))
    orphan = uploads().store.create_partial(50)  # a creation whose record never committed
    os.utime(media_root(app) / "uploads" / orphan.key / "offset", (long_ago.timestamp(), long_ago.timestamp()))

    result = runner.invoke(args=["expire-uploads"])
    assert result.exit_code == 0, result.output
    assert f"expired upload {stale.id}: 1000/3000 bytes" in result.output
    assert f"removed leftover partial upload {orphan.key}" in result.output
    assert result.output.strip().endswith("2 partial upload(s) removed")
    assert not (media_root(app) / "uploads" / stale.storage_key).exists()
    assert head(client, stale_url, headers).status_code == 410
    assert offset_of(client, fresh_url, headers) == 0
    assert runner.invoke(args=["expire-uploads"]).output.strip() == "0 partial upload(s) removed"


# ---- media look-ups ------------------------------------------------------------------------

def test_media_look_ups_are_department_scoped(client, world: World, auth) -> None:
    data = footage(800)
    url, headers, media = new_upload(client, auth, world, data)
    assert patch(client, url, headers, 0, data).status_code == 204
    for who in (auth.headers("m-sup"), device_headers(client, world, "m-cam"), auth.headers("admin")):
        assert client.get(f"/api/v1/media/{media.id}", headers=who).status_code == 200
        assert len(client.get(f"/api/v1/media?sha256={media.sha256.upper()}", headers=who).get_json()["items"]) == 1
    for who in (auth.headers("e-sup"), auth.headers("e-insp2"), device_headers(client, world, "e-dock")):
        assert_problem(client.get(f"/api/v1/media/{media.id}", headers=who), 404)
        assert client.get(f"/api/v1/media?sha256={media.sha256}", headers=who).get_json() == {"items": []}
    # an inspector of another department on the same (joint) task sees it, as sync shows the record
    teammate = auth.headers("e-insp")
    assert client.get(f"/api/v1/media/{media.id}", headers=teammate).status_code == 200
    assert len(client.get(f"/api/v1/media?sha256={media.sha256}", headers=teammate).get_json()["items"]) == 1
    assert_problem(client.get("/api/v1/media", headers=headers), 422)
    assert_problem(client.get("/api/v1/media?sha256=abc", headers=headers), 422)
    assert_problem(client.get(f"/api/v1/media?sha256={media.sha256}"), 401)
    # device tokens still reach nothing else
    assert_problem(client.get("/api/v1/tasks/", headers=device_headers(client, world, "m-cam")), 401)


def test_upload_limits_come_from_the_environment(tmp_path) -> None:
    from datetime import timedelta

    from server import create_app

    app = create_app({"TESTING": True}, env={"INSPECT_ONCE_VAR": str(tmp_path), "INSPECT_ONCE_MAX_UPLOAD_BYTES": "1234",
                                             "INSPECT_ONCE_UPLOAD_EXPIRY_HOURS": "2"})
    assert app.test_client().options(UPLOADS).headers["Tus-Max-Size"] == "1234"
    with app.app_context():
        assert uploads().expiry == timedelta(hours=2)
    for name, value in (("INSPECT_ONCE_MAX_UPLOAD_BYTES", "0"), ("INSPECT_ONCE_UPLOAD_EXPIRY_HOURS", "soon")):
        with pytest.raises(Exception, match=name):
            create_app({"TESTING": True}, env={"INSPECT_ONCE_VAR": str(tmp_path), name: value})


@pytest.mark.around_office_midnight
@pytest.mark.local_disk  # ages the store's files (the S3 case: tests/server/uploads/test_s3store.py)
def test_the_worker_expires_abandoned_uploads_too(client, world: World, auth, app) -> None:
    import os
    from datetime import timedelta

    from server.db_types import utcnow
    from server.jobs.queue import current_queue
    from server.uploads import EXPIRE_JOB

    data = footage(2000)
    url, headers, _ = new_upload(client, auth, world, data)
    assert patch(client, url, headers, 0, data[:500]).status_code == 204
    upload = db.session.scalars(select(Upload)).one()
    long_ago = utcnow() - timedelta(hours=73)
    upload.created_at = long_ago
    os.utime(media_root(app) / "uploads" / upload.storage_key / "offset", (long_ago.timestamp(), long_ago.timestamp()))
    db.session.commit()
    queue = current_queue(app)
    queue.huey.flush()  # jobs of the synced record (its assessment) are not this test's business
    queue.enqueue(EXPIRE_JOB)
    assert queue.run_pending() == 1
    assert not (media_root(app) / "uploads" / upload.storage_key).exists()
    db.session.expire_all()
    assert db.session.get(Upload, upload.id).status.value == "expired"
    assert head(client, url, headers).status_code in (404, 410)
