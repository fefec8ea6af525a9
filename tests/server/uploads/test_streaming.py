"""GET /api/v1/media/{id}/content: streaming with HTTP Range, authorised like the media record, audited."""
from __future__ import annotations

import os
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.extensions import db
from server.uploads.storage import BLOCK_SIZE
from server.uploads.streaming import ByteRange, Unsatisfiable, parse_range, safe_content_type
from tests.conftest import AuthActions, World, assert_problem
from tests.server.uploads.conftest import OCTETS, create, device_headers, footage, metadata, sha256

# Every case on local disk and in the S3 object store (tests/conftest.py).
pytestmark = pytest.mark.media_stores


def store(client: FlaskClient, world: World, data: bytes, *, filetype: str = "video/mp4",
          device: str = "e-dock", filename: str = "SEG_0001.mp4") -> str:
    """A docking station uploads ``data`` in one request; returns the media id."""
    headers = device_headers(client, world, device)
    response = create(client, headers, len(data), metadata(sha256=sha256(data), filename=filename, filetype=filetype),
                      data=data, content_type=OCTETS)
    assert response.status_code == 201, response.get_data(as_text=True)
    found = client.get("/api/v1/media", query_string={"sha256": sha256(data)}, headers=headers).get_json()["items"]
    return str(found[0]["id"])


def content(client: FlaskClient, media_id: str, headers: dict[str, str], range_header: str | None = None,
            **extra: str) -> Any:
    if range_header is not None:
        extra["Range"] = range_header
    return client.get(f"/api/v1/media/{media_id}/content", headers={**headers, **extra})


@pytest.fixture
def video(client: FlaskClient, world: World) -> tuple[str, bytes]:
    data = footage(10_000, seed=7)
    return store(client, world, data), data


def stream_entries() -> list[AuditEntry]:
    db.session.expire_all()
    return list(db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "media.stream").order_by(AuditEntry.seq)))


def test_no_range_answers_the_whole_file(client, world: World, auth: AuthActions, video) -> None:
    media_id, data = video
    response = content(client, media_id, auth.headers("e-sup"))
    assert response.status_code == 200
    assert response.data == data
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["ETag"] == f'"{sha256(data)}"'
    assert response.mimetype == "video/mp4"
    assert response.headers["Content-Disposition"] == "inline"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Range" not in response.headers


@pytest.mark.parametrize("header, start, end", [
    ("bytes=0-99", 0, 99),                # the first bytes
    ("bytes=4000-5999", 4000, 5999),      # the middle (a seek)
    ("bytes=-500", 9500, 9999),           # the last 500 bytes
    ("bytes=9990-", 9990, 9999),          # open-ended
    ("bytes=0-", 0, 9999),
    ("bytes=9000-20000", 9000, 9999),     # an end past the file is cut at the end
    ("bytes=-20000", 0, 9999),            # a suffix longer than the file is the file
    ("bytes=9999-9999", 9999, 9999),
    ("Bytes = 10-19", 10, 19),
], ids=["first", "middle", "suffix", "open-ended", "from-zero", "beyond-end", "long-suffix", "last-byte", "spacing"])
def test_one_range_answers_206_with_that_range(client, world: World, auth: AuthActions, video, header: str,
                                                start: int, end: int) -> None:
    media_id, data = video
    response = content(client, media_id, auth.headers("e-sup"), header)
    assert response.status_code == 206, response.get_data(as_text=True)
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{len(data)}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.data == data[start:end + 1]
    assert response.headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("header", ["bytes=10000-", "bytes=20000-30000", "bytes=5-2", "bytes=-0", "bytes=abc",
                                    "bytes=", "bytes=-", "bytes=1-2-3", "bytes=0-1,x"])
def test_unsatisfiable_or_malformed_ranges_answer_416(client, world: World, auth: AuthActions, video,
                                                      header: str) -> None:
    media_id, data = video
    response = content(client, media_id, auth.headers("e-sup"), header)
    assert_problem(response, 416, "range-not-satisfiable")
    assert response.headers["Content-Range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize("header", ["items=0-10", "bytes=0-1,5-6", "bytes=0-1, -5"])
def test_other_units_and_several_ranges_answer_the_whole_file(client, world: World, auth: AuthActions, video,
                                                              header: str) -> None:
    media_id, data = video
    response = content(client, media_id, auth.headers("e-sup"), header)
    assert response.status_code == 200 and response.data == data


def test_if_range_with_another_etag_answers_the_whole_file(client, world: World, auth: AuthActions, video) -> None:
    media_id, data = video
    headers = auth.headers("e-sup")
    assert content(client, media_id, headers, "bytes=0-9", **{"If-Range": '"' + "0" * 64 + '"'}).status_code == 200
    same = content(client, media_id, headers, "bytes=0-9", **{"If-Range": f'"{sha256(data)}"'})
    assert same.status_code == 206 and same.data == data[:10]


def test_another_departments_media_answers_404_and_the_refusal_is_recorded(client, world: World,
                                                                          auth: AuthActions, video) -> None:
    media_id, _ = video
    for who in ("m-sup", "m-insp", "m-head"):
        assert_problem(content(client, media_id, auth.headers(who), "bytes=0-9"), 404)
    assert_problem(content(client, media_id, device_headers(client, world, "m-cam")), 404)
    denied = stream_entries()
    assert [(e.outcome.value, e.actor_username or e.actor_id) for e in denied] == [
        ("denied", "m-sup"), ("denied", "m-insp"), ("denied", "m-head"), ("denied", "SCJG-BC01")]
    assert all(e.object_id == media_id and e.department_id == world.ecology.id for e in denied)
    assert_problem(content(client, "00000000-0000-4000-8000-000000000000", auth.headers("admin")), 404)


def test_the_uploading_device_and_the_admin_may_stream(client, world: World, auth: AuthActions, video) -> None:
    media_id, data = video
    by_device = content(client, media_id, device_headers(client, world, "e-dock"), "bytes=-4")
    assert by_device.status_code == 206 and by_device.data == data[-4:]
    assert content(client, media_id, auth.headers("admin")).data == data
    assert_problem(client.get(f"/api/v1/media/{media_id}/content"), 401)


def test_every_stream_is_in_the_audit_log_with_its_range(client, world: World, auth: AuthActions, video) -> None:
    media_id, data = video
    headers = auth.headers("e-insp")
    content(client, media_id, headers)
    content(client, media_id, headers, "bytes=100-199")
    content(client, media_id, headers, "bytes=99999-")
    entries = stream_entries()
    assert [(e.details["range"], e.details["status"], e.outcome.value) for e in entries] == [
        (None, 200, "success"), ("bytes=100-199", 206, "success"), ("bytes=99999-", 416, "failed")]
    assert entries[1].details["content_range"] == f"bytes 100-199/{len(data)}"
    assert all(e.actor_username == "e-insp" and e.actor_kind.value == "user" and e.object_type == "media"
               and e.client_ip == "127.0.0.1" and e.department_id == world.ecology.id for e in entries)


def _open_descriptors_on(path: str) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == path
        except OSError:
            continue
    return count


@pytest.mark.local_disk  # counts the open descriptors on the local file
def test_a_large_file_is_streamed_in_blocks_and_the_file_closed(client, world: World, auth: AuthActions) -> None:
    data = footage(3 * BLOCK_SIZE + 12345, seed=3)
    media_id = store(client, world, data)
    from server.uploads.service import uploads
    path = str(uploads().store.local_path(uploads().store.object_key(sha256(data))))  # type: ignore[attr-defined]
    headers = auth.headers("e-sup")

    response = client.get(f"/api/v1/media/{media_id}/content", headers=headers, buffered=False)
    assert response.status_code == 200
    sizes = [len(block) for block in response.response]
    response.close()
    assert sum(sizes) == len(data) and len(sizes) >= 4 and max(sizes) <= BLOCK_SIZE

    # A player that reads a little and goes away: the file is closed with the response.
    response = client.get(f"/api/v1/media/{media_id}/content", headers={**headers, "Range": "bytes=100-"},
                          buffered=False)
    assert response.status_code == 206
    assert len(next(iter(response.response))) <= BLOCK_SIZE
    assert _open_descriptors_on(path) == 1
    response.close()
    assert _open_descriptors_on(path) == 0


def test_uploaded_types_that_could_run_in_the_browser_are_downloads(client, world: World, auth: AuthActions) -> None:
    data = b"<script>alert(1)</script>"
    media_id = store(client, world, data, filetype="text/html", filename="x.html")
    response = content(client, media_id, auth.headers("e-sup"))
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"] == "attachment"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


@pytest.mark.parametrize("declared, expected", [
    ("video/mp4", ("video/mp4", True)), ("VIDEO/MP4; codecs=avc1", ("video/mp4", True)),
    ("image/jpeg", ("image/jpeg", True)), ("image/svg+xml", ("application/octet-stream", False)),
    ("text/html", ("application/octet-stream", False)), ("../../etc/passwd", ("application/octet-stream", False)),
    ("video/mp4\r\nSet-Cookie: x", ("application/octet-stream", False)), (None, ("application/octet-stream", False)),
])
def test_content_type_comes_from_the_record_sanitised(declared: str | None, expected: tuple[str, bool]) -> None:
    assert safe_content_type(declared) == expected


def test_parse_range_edge_cases() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-0", 10) == ByteRange(0, 0)
    assert parse_range("bytes=-3", 2) == ByteRange(0, 1)
    for header, size in (("bytes=0-", 0), ("bytes=-1", 0), ("bytes=99999999999999999999-", 10)):
        with pytest.raises(Unsatisfiable):
            parse_range(header, size)


def test_download_names_never_become_paths(app) -> None:
    from server.uploads.streaming import _disposition

    value = _disposition(True, '../../secret "x"\r\n.mp4')
    assert value.startswith('attachment; filename="')
    assert "/" not in value.split("filename*=")[0] and "\r" not in value and "\n" not in value
    assert "%E8%AF%81" in _disposition(True, "证据.mp4")
    assert "filename*=UTF-8''" in _disposition(False, "bad\ud800name.mp4")


def test_a_file_lost_from_the_store_answers_404_not_a_broken_200(client, world: World, auth: AuthActions,
                                                                 video) -> None:
    from server.uploads.service import uploads

    media_id, data = video
    store_ = uploads().store
    from server.uploads.models import MediaObject

    store_.delete(db.session.get(MediaObject, sha256(data)).key)  # lost behind the server's back
    assert_problem(content(client, media_id, auth.headers("e-sup")), 404, "media-content-missing")
    [entry] = stream_entries()
    assert (entry.outcome.value, entry.details["status"]) == ("failed", 404)


def test_head_answers_the_headers_only(client, world: World, auth: AuthActions, video) -> None:
    media_id, data = video
    response = client.head(f"/api/v1/media/{media_id}/content", headers={**auth.headers("e-sup"), "Range": "bytes=0-9"})
    assert response.status_code == 206 and response.data == b""
    assert response.headers["Content-Range"] == f"bytes 0-9/{len(data)}"
