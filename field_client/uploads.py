"""Resumable evidence uploads over tus 1.0.0 (docs/uploads.md), with tuspy speaking the protocol.

Both uploaders — the tablet's (``FieldClient.upload_media``) and the docking
station's (``field_client.dock``) — hand a file to ``TusSender.send``. tuspy
builds the creation request (``Upload-Length``, ``Upload-Metadata``), the
PATCHes (``Upload-Offset``, ``Upload-Checksum: sha256 …`` per chunk) and keeps
the upload's URL in a ``Storage`` keyed by a fingerprint; ours is a table in
the caller's SQLite file (``SQLiteURLStorage``), so an upload interrupted by a
crash or a power cut resumes from the offset the server reports (``HEAD``)
instead of starting again.

What is ours and not tuspy's:

- every request goes through one ``requests.Session`` with timeouts (tuspy
  1.1 calls ``requests.patch`` & co. without any, so a dead connection would
  hang a dock forever) and is answered as ``HttpStatusError`` when not 2xx;
- the fingerprint is the caller's key (what is uploaded, where, as what),
  never a guess from the file's first bytes;
- the file is opened once by us and closed by us;
- retries: a network failure, 5xx, 423 and 429 back off and resume from the
  server's offset; 409 resumes from the server's offset; a 404/410 for a stored
  upload URL (expired, cleaned up) starts a new upload; a 401 renews the token
  once; 460 ``/problems/hash-mismatch`` (the whole file does not match its
  declared SHA-256) and the other 4xx refusals are permanent and reported.
"""
from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.request import TusRequest
from tusclient.storage.interface import Storage
from tusclient.uploader import Uploader

from field_client.clock import with_device_clock
from field_client.messages import problem_reason

UPLOADS_PATH = "/api/v1/uploads/"
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
# (connect, read) seconds for one request; the read covers one chunk's answer.
DEFAULT_TIMEOUT = (15.0, 120.0)
HASH_BLOCK = 1 << 20

TUS_URLS_SCHEMA = """
CREATE TABLE IF NOT EXISTS tus_urls (
    key        TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""


def sha256_file(path: str | Path, block: int = HASH_BLOCK) -> tuple[str, int]:
    """(hex SHA-256, size) of a file, streamed in blocks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def problem_of(response: requests.Response) -> tuple[str, str]:
    """``(slug, reason)`` of a problem+json answer: the code and the server's Chinese words (never ``errors``)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    kind = str(body.get("type") or "")
    slug = kind.rsplit("/", 1)[-1] if kind else f"http-{response.status_code}"
    return slug, problem_reason(response.status_code, body)


# ---- tuspy's URL storage in our SQLite file ------------------------------------------

class SQLiteURLStorage(Storage):
    """tuspy's ``Storage``: fingerprint → upload URL, in table ``tus_urls`` of our database.

    ``transaction`` is the owner's ``transaction()`` (BEGIN IMMEDIATE … COMMIT),
    so a URL is on disk before the first byte of its upload is sent.
    """

    def __init__(self, transaction: Callable[[], contextlib.AbstractContextManager[sqlite3.Connection]]) -> None:
        self._transaction = transaction

    def get_item(self, key: str) -> str | None:
        with self._transaction() as conn:
            row = conn.execute("SELECT url FROM tus_urls WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_item(self, key: str, value: str | None) -> None:
        if value is None:  # tuspy "stores" the None it read when there was nothing to resume
            return
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._transaction() as conn:
            conn.execute("INSERT INTO tus_urls (key, url, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) "
                         "DO UPDATE SET url = excluded.url, updated_at = excluded.updated_at", (key, value, now))

    def remove_item(self, key: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM tus_urls WHERE key = ?", (key,))


# ---- errors ---------------------------------------------------------------------------

class HttpStatusError(TusCommunicationError):
    """The server answered, but not with success."""

    def __init__(self, method: str, response: requests.Response) -> None:
        self.method = method
        self.slug, self.detail = problem_of(response)
        self.headers = response.headers
        super().__init__(f"{method} → {response.status_code} {self.slug}: {self.detail}", response.status_code,
                         response.content)


class UploadError(Exception):
    """An upload did not complete. ``permanent``: retrying the same bytes cannot help."""

    def __init__(self, code: str, reason: str, *, permanent: bool, status: int | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.permanent = permanent
        self.status = status


class UploadUnauthorized(UploadError):
    """The token was refused again right after it was renewed."""

    def __init__(self, reason: str) -> None:
        super().__init__("unauthorized", reason, permanent=False, status=401)


# ---- tuspy, with our session, timeouts, fingerprint and file handle ------------------

class _Request(TusRequest):
    """One PATCH through the uploader's session, with a timeout."""

    def __init__(self, uploader: _Uploader) -> None:
        super().__init__(uploader)
        self._session = uploader.session
        self._timeout = uploader.timeout
        self.response: requests.Response | None = None

    def perform(self) -> None:
        chunk = self.file.read(self._content_length)
        self.add_checksum(chunk)
        try:
            response = self._session.patch(self._url, data=chunk, headers=with_device_clock(self._request_headers),
                                           timeout=self._timeout, verify=self.verify_tls_cert, cert=self.client_cert)
        except requests.RequestException as error:
            raise TusUploadFailed(error) from error
        self.response = response
        self.status_code = response.status_code
        self.response_content = response.content
        self.response_headers = {k.lower(): v for k, v in response.headers.items()}


class _Uploader(Uploader):
    """tuspy's uploader; every request goes through ``session``; SHA-256 chunk checksums."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)

    def __init__(self, *, key: str, session: requests.Session, timeout: Any, **kwargs: Any) -> None:
        self._key = key
        self.session = session
        self.timeout = timeout
        super().__init__(**kwargs)

    def _get_fingerprint(self) -> str:
        # tuspy would open the file again (and close our stream) to md5 its first 64 KiB.
        return self._key

    def get_offset(self) -> int:
        try:
            response = self.session.head(self.url, headers=self.get_headers(), timeout=self.timeout,
                                         verify=self.verify_tls_cert, cert=self.client_cert)
        except requests.RequestException as error:
            raise TusCommunicationError(error) from error
        if not 200 <= response.status_code < 300:
            raise HttpStatusError("HEAD", response)
        offset, length = response.headers.get("upload-offset"), response.headers.get("upload-length")
        if offset is None or not offset.isdigit():
            raise TusCommunicationError("HEAD answer without Upload-Offset", response.status_code)
        if length is not None and length.isdigit() and int(length) != self.stop_at:
            # Not this file's upload (any more): start a new one.
            raise StaleUpload(f"stored upload has length {length}, the file {self.stop_at}")
        return int(offset)

    def create_url(self) -> str:
        try:
            response = self.session.post(self.client.url, headers=with_device_clock(self.get_url_creation_headers()),
                                         timeout=self.timeout, verify=self.verify_tls_cert, cert=self.client_cert)
        except requests.RequestException as error:
            raise TusCommunicationError(error) from error
        location = response.headers.get("location")
        if response.status_code != 201 or not location:
            raise HttpStatusError("POST", response)
        return urljoin(self.client.url, location)

    def _do_request(self) -> None:
        self.request = _Request(self)
        self.request.perform()
        response = self.request.response
        assert response is not None
        if not 200 <= response.status_code < 300:
            raise HttpStatusError("PATCH", response)
        offset = self.request.response_headers.get("upload-offset")
        if offset is None or not offset.isdigit():
            raise TusCommunicationError("PATCH answer without Upload-Offset", response.status_code)


class StaleUpload(TusCommunicationError):
    """A stored upload URL that no longer fits the file."""


# ---- the sender -------------------------------------------------------------------------

@dataclass
class UploadJob:
    path: Path
    size: int
    sha256: str
    metadata: dict[str, str]
    key: str  # fingerprint for the URL storage: what, where and as what


def default_backoff(attempt: int, retry_after: str | None, cap: float = 30.0, base: float = 0.5) -> float:
    import random
    delay = random.uniform(0, min(cap, base * (2 ** (attempt - 1))))
    if retry_after:
        with contextlib.suppress(ValueError):
            delay = max(delay, min(float(retry_after), cap))
    return delay


class TusSender:
    """Uploads files to one tus endpoint, resuming through ``storage``.

    ``token()`` gives the current bearer token; ``renew(old)`` is called on a
    401 and must make ``token()`` return a fresh one (or raise). ``sleep`` and
    ``backoff(attempt, retry_after)`` are injectable for tests.
    """

    def __init__(self, endpoint: str, *, session: requests.Session, storage: Storage,
                 token: Callable[[], str], renew: Callable[[str], None],
                 chunk_size: int = DEFAULT_CHUNK_SIZE, timeout: Any = DEFAULT_TIMEOUT,
                 sleep: Callable[[float], None] = time.sleep,
                 backoff: Callable[[int, str | None], float] = default_backoff, max_attempts: int = 5) -> None:
        self.endpoint = endpoint
        self.session = session
        self.storage = storage
        self.token = token
        self.renew = renew
        self.chunk_size = max(1, chunk_size)
        self.timeout = timeout
        self.sleep = sleep
        self.backoff = backoff
        self.max_attempts = max(1, max_attempts)

    def _uploader(self, job: UploadJob, stream: IO[bytes]) -> _Uploader:
        client = TusClient(self.endpoint, headers={"Authorization": f"Bearer {self.token()}"})
        return _Uploader(key=job.key, session=self.session, timeout=self.timeout, file_stream=stream,
                         client=client, chunk_size=self.chunk_size, metadata=dict(job.metadata), retries=0,
                         store_url=True, url_storage=self.storage, upload_checksum=True)

    def send(self, job: UploadJob, *, on_offset: Callable[[int], None] | None = None,
             on_resume: Callable[[int], None] | None = None) -> int:
        """Upload ``job`` to completion; returns the bytes sent by this call.

        ``on_offset(n)`` is called whenever the server confirmed ``n`` bytes
        (each chunk), ``on_resume(n)`` when a stored upload was found at ``n``.
        Raises ``UploadError`` (``permanent`` or not) or ``UploadUnauthorized``.
        """
        sent = 0
        failures = 0
        renewed = False
        last: UploadError | None = None
        with open(job.path, "rb") as stream:
            while True:
                retry_after: str | None = None
                try:
                    uploader = self._uploader(job, stream)
                    if uploader.stop_at != job.size:
                        self.storage.remove_item(job.key)
                        raise UploadError("file-changed",
                                          f"文件大小已变化（应为 {job.size} 字节，现为 {uploader.stop_at}）",
                                          permanent=True)
                    if uploader.url:
                        if on_resume:
                            on_resume(uploader.offset)
                    else:
                        uploader.set_url(uploader.create_url())
                        uploader.offset = 0
                    if on_offset:
                        on_offset(uploader.offset)
                    while uploader.offset < job.size:
                        before = uploader.offset
                        uploader.upload_chunk()
                        if uploader.offset <= before:
                            raise TusCommunicationError(f"the server's offset did not advance ({uploader.offset})")
                        sent += uploader.offset - before
                        failures, renewed = 0, False  # progress: the trouble is over
                        if on_offset:
                            on_offset(uploader.offset)
                    self.storage.remove_item(job.key)
                    return sent
                except UploadError:
                    raise
                except StaleUpload as exc:
                    self.storage.remove_item(job.key)
                    failures += 1
                    if failures >= self.max_attempts:
                        raise UploadError("stale-upload", str(exc), permanent=False) from None
                    continue
                except HttpStatusError as exc:
                    status = exc.status_code or 0
                    if status == 401:
                        if renewed:
                            raise UploadUnauthorized(exc.detail) from None
                        renewed = True
                        self.renew(self.token())
                        continue  # a renewal is not a failed attempt
                    if (status in (404, 410) and exc.method != "POST") or (status == 403 and exc.method == "HEAD"):
                        # The stored upload expired, was terminated or cleaned up — or (403 on
                        # HEAD) another identity began it (another user on this tablet, another
                        # device id on this dock): start a new one at once.
                        self.storage.remove_item(job.key)
                        failures += 1
                        if failures >= self.max_attempts:
                            raise UploadError("upload-gone", f"上传会话反复失效（{exc.detail}）", permanent=False,
                                              status=status) from None
                        continue
                    if status == 460 and exc.slug == "hash-mismatch":
                        self.storage.remove_item(job.key)
                        raise UploadError("hash-mismatch", exc.detail, permanent=True, status=460) from None
                    elif (status in (409, 423, 429, 460) or status >= 500
                          or (status == 400 and exc.slug == "body-truncated")):
                        # 409: our offset was stale; 423: another request holds the upload;
                        # 460 without hash-mismatch: this chunk arrived damaged; body-truncated:
                        # the connection broke mid-chunk. Resume from the server's offset.
                        last = UploadError(exc.slug, exc.detail, permanent=False, status=status)
                        retry_after = exc.headers.get("Retry-After")
                    elif status == 404:
                        raise UploadError("uploads-unsupported", f"服务器不支持文件上传（{exc.detail}）",
                                          permanent=False, status=404) from None
                    else:
                        self.storage.remove_item(job.key)
                        raise UploadError(exc.slug, exc.detail, permanent=True, status=status) from None
                except (TusCommunicationError, requests.RequestException) as exc:
                    last = UploadError("network", f"网络错误：{exc}", permanent=False)
                failures += 1
                if failures >= self.max_attempts:
                    assert last is not None
                    raise last
                self.sleep(self.backoff(failures, retry_after))
