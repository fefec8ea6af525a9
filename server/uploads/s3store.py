"""The media store over the S3 API (MinIO, Ceph RGW, a cloud OSS): evidence with no local disk.

Layout under ``s3://BUCKET/PREFIX/``::

    objects/ab/cd/<sha256>          complete files, one per content (the same keys as the local store's)
    objects/ab/cd/<sha256>/<key>    an uploaded file, placed by the SHA-256 its sender declared: the multipart
                                    upload is made there, so finishing it copies nothing
    uploads/<key>/info.json         length, creation time, the multipart upload's id and where it is
    uploads/<key>/data              the multipart upload of a file whose SHA-256 was not declared
    uploads/<key>/pending-<start>   bytes from offset <start> too few for a part (S3 wants 5 MiB but for the last)
    uploads/<key>/hash-<offset>     the running SHA-256 state of the bytes [0, offset)
    quarantine/<key>/data, reason.json
    tmp/put-<uuid>                  a large ``put`` being assembled

A partial upload is an S3 multipart upload, as in tusd's S3 store: its durable
offset is what S3 says it holds (the parts, plus the pending object that starts
where the parts end), so there is no offset record that could disagree with the
bytes. A part is uploaded only when the protocol commits, so nothing discarded
is ever in S3 (some S3-compatible servers refuse to replace a part).

An uploaded file stays where its multipart upload assembled it, under its
declared SHA-256 and its upload's key; no one reads it before the protocol has
checked that hash and recorded it. A file whose hash turns out different is
copied to ``quarantine/`` and removed from there; a second copy of content the
records hold already is deleted once the records show the first
(``server.uploads.service``).

The bytes of an unfinished multipart upload cannot be read back, so they cannot
be hashed again by another server: the protocol hands the running-hash state to
every commit (``CommitsHashState``), which stores it *before* the bytes it
covers, so a state for the durable offset always exists.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from server.config import parse_store_url
from server.uploads.storage import (
    BLOCK_SIZE,
    PARTIAL_KEY,
    SHA256_HEX,
    CommitsHashState,
    ExpiringStore,
    HashStateStore,
    MediaStore,
    OffsetMismatch,
    PartialState,
    PartialWriter,
    StorageError,
    StoredObject,
    StoreHealth,
    UnknownObject,
    UnknownPartial,
    storage_errors,
)

#: S3's smallest part but for the last one.
MIN_PART = 5 << 20
#: A commit of more than this is sent as several parts (each read into memory once to be sent).
MAX_PART = 32 << 20
#: How long a state read by ``partial`` may stand in for the scan of the ``append`` right after it.
RECENT_SCAN_SECONDS = 2.0
#: CopyObject's limit; a larger object is copied in parts.
COPY_OBJECT_LIMIT = 5 * 1024 ** 3
#: Bytes awaiting a commit stay in memory up to this, then in a temporary file. Above a checkpoint (8 MiB)
#: and the pending bytes (under 5 MiB), so only a PATCH with its own checksum (never checkpointed) spills.
SPOOL_IN_MEMORY = 16 << 20

# Content-addressed (put, migrated) or placed by an upload: ab/cd/<sha256>[/<upload key>].
_OBJECT_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/([0-9a-f]{64})(?:/[0-9a-f]{32})?$")
_HASH = re.compile(r"^hash-(\d{20})$")


def _describe(exc: Exception) -> str:
    error = getattr(exc, "response", None)
    if isinstance(error, dict) and "Error" in error:
        return f"S3 {error['Error'].get('Code', '?')}: {error['Error'].get('Message', '')}"
    return str(exc)


# A failure of the S3 service or of the way to it.
_client_errors = storage_errors((ClientError, BotoCoreError), _describe)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _missing(exc: Exception) -> bool:
    return _code(exc) in ("404", "NoSuchKey", "NotFound")


@dataclass
class _Scan:
    """What S3 holds of one partial upload."""

    key: str
    length: int
    created_at: datetime
    upload_id: str
    data_name: str  # the multipart upload's S3 name
    names: dict[str, tuple[int, datetime]]  # object name under uploads/<key>/ → size, last modified
    parts: list[dict[str, Any]] = field(default_factory=list)  # PartNumber, ETag, Size, LastModified
    finished: bool = False  # the multipart upload was completed into data_name

    @property
    def parts_size(self) -> int:
        return sum(int(p["Size"]) for p in self.parts)

    @property
    def pending(self) -> tuple[str, int] | None:
        """The pending object that starts where the parts end, and its size (older ones do not count)."""
        name = f"pending-{self.parts_size:020d}"
        entry = self.names.get(name)
        return (name, entry[0]) if entry is not None else None

    @property
    def offset(self) -> int:
        if self.finished:
            return self.length
        pending = self.pending
        return self.parts_size + (pending[1] if pending else 0)

    @property
    def updated_at(self) -> datetime:
        times = [self.created_at] + [entry[1] for entry in self.names.values()]
        times += [p["LastModified"] for p in self.parts if isinstance(p.get("LastModified"), datetime)]
        return max(t if t.tzinfo else t.replace(tzinfo=UTC) for t in times)


class S3MediaStore(MediaStore, ExpiringStore, HashStateStore, CommitsHashState):
    """Objects and partial uploads in one bucket under one prefix (see the module's docstring)."""

    backend = "s3"

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, client_factory: Callable[[], Any] | None = None,
                 scratch: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._endpoint_url = endpoint_url
        self._region = region
        self._client_factory = client_factory
        self._scratch = scratch
        self._local = threading.local()
        self._pid = os.getpid()
        self._shared: Any = None
        self._health: tuple[int, Any] | None = None
        self._lock = threading.Lock()

    @property
    def scratch(self) -> str | None:
        """This machine's folder for temporary copies (a commit's spill, a file being verified)."""
        return self._scratch

    @classmethod
    def from_url(cls, url: str, env: Mapping[str, str], scratch: str | None = None) -> S3MediaStore:
        """The store ``MEDIA_STORE_URL`` names, with the endpoint and region from the standard AWS variables."""
        bucket, prefix = parse_store_url(url)
        return cls(bucket, prefix, endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
                   region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None, scratch=scratch)

    # -- the client --------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """One client per process (boto3 clients are thread-safe, but not to be shared over a fork)."""
        with self._lock:
            if self._shared is None or self._pid != os.getpid():
                self._shared = (self._client_factory or self._make_client)()
                self._pid = os.getpid()
            return self._shared

    @property
    def health_client(self) -> Any:
        """A client that tries once, briefly: a health check answers within seconds, whatever the store does."""
        if self._client_factory is not None:
            return self.client
        with self._lock:
            if self._health is None or self._health[0] != os.getpid():
                self._health = (os.getpid(), self._make_client(attempts=1, connect_timeout=2, read_timeout=5))
            return self._health[1]

    def _make_client(self, attempts: int = 5, connect_timeout: float = 5, read_timeout: float = 60) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            # Path-style addressing for a private endpoint (MinIO, rclone, Ceph): its buckets are rarely in DNS.
            s3={"addressing_style": "path" if self._endpoint_url else "auto"},
            retries={"mode": "standard", "max_attempts": attempts},
            connect_timeout=connect_timeout, read_timeout=read_timeout, max_pool_connections=64,
            # Every byte is checked against its SHA-256 by the protocol; not every S3-compatible server takes
            # the newer trailing checksums.
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
        )
        return boto3.session.Session().client("s3", endpoint_url=self._endpoint_url,
                                              region_name=self._region or "us-east-1", config=config)

    def _name(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    def _upload_name(self, key: str, name: str = "") -> str:
        if not PARTIAL_KEY.match(key):
            raise UnknownPartial(key)
        return self._name("uploads", key, name) if name else self._name("uploads", key) + "/"

    # -- health ------------------------------------------------------------------------

    def health(self) -> StoreHealth:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.health_client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            return StoreHealth(False, f"s3://{self.bucket}: {_code(exc) or exc}")
        except BotoCoreError as exc:
            return StoreHealth(False, f"s3://{self.bucket}: {exc}")
        return StoreHealth(True)

    # -- objects -----------------------------------------------------------------------

    def object_key(self, sha256: str) -> str:
        if not SHA256_HEX.match(sha256):
            raise ValueError("not a lowercase hex SHA-256")
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def _object_name(self, key: str) -> str:
        if not _OBJECT_KEY.match(key):
            raise UnknownObject(key)
        return self._name("objects", key)

    @_client_errors
    def put(self, blocks: Iterable[bytes], sha256: str | None = None) -> StoredObject:
        expected = sha256 if sha256 and SHA256_HEX.match(sha256) else None
        if expected is not None:
            known = self.stat(self.object_key(expected))
            if known is not None:
                return known  # the content is there: nothing to send
        digest = hashlib.sha256()
        buffer = bytearray()
        size = 0
        # With the hash known, a large object is assembled where it stays and completed only if the bytes have
        # that hash (else aborted: no other content ever appears under that name); without it, under tmp/ and
        # copied once its hash is known.
        name = (self._object_name(self.object_key(expected)) if expected
                else self._name("tmp", f"put-{uuid.uuid4().hex}"))
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            for block in blocks:
                digest.update(block)
                buffer += block
                size += len(block)
                if len(buffer) >= MAX_PART:
                    if upload_id is None:
                        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=name)["UploadId"]
                    parts.append(self._upload_part(name, upload_id, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            found = digest.hexdigest()
            if expected is not None and found != expected:
                raise ValueError(f"the bytes hash to {found}, not to {expected}")
            key = self.object_key(found)
            if upload_id is None:
                if self.stat(key) is None:
                    self.client.put_object(Bucket=self.bucket, Key=self._object_name(key), Body=bytes(buffer))
                return StoredObject(self.backend, key, found, size)
            if buffer:
                parts.append(self._upload_part(name, upload_id, len(parts) + 1, bytes(buffer)))
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts})
            upload_id = None
            if expected is not None:
                return StoredObject(self.backend, key, found, size)
            try:
                return self._publish(name, found, size)
            finally:
                self.client.delete_object(Bucket=self.bucket, Key=name)
        finally:
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)

    def _upload_part(self, name: str, upload_id: str, number: int, body: bytes | _Window) -> dict[str, Any]:
        answer = self.client.upload_part(Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number,
                                         Body=body, ContentLength=len(body))
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _publish(self, source: str, sha256: str, size: int) -> StoredObject:
        """Copy the S3 object ``source`` (server side) to the object for ``sha256`` unless that exists."""
        key = self.object_key(sha256)
        existing = self.stat(key)
        if existing is not None:
            if existing.size != size:
                raise StorageError(f"object {key} holds {existing.size} bytes, expected {size}")
            return existing
        self._copy(source, self._object_name(key), size)
        return StoredObject(self.backend, key, sha256, size)

    def _copy(self, source: str, target: str, size: int) -> None:
        """A server-side copy: one CopyObject up to its 5 GB limit, part copies beyond (boto3's managed copy)."""
        if size <= COPY_OBJECT_LIMIT:
            self.client.copy_object(Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": source})
        else:
            self.client.copy({"Bucket": self.bucket, "Key": source}, self.bucket, target)

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        return self._read(self._object_name(key), start, end, UnknownObject(key))

    @_client_errors
    def _read(self, name: str, start: int, end: int | None, missing: LookupError) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        if end is not None and end <= start:
            return iter(())
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
        if start or end is not None:
            arguments["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            body = self.client.get_object(**arguments)["Body"]
        except ClientError as exc:
            if _missing(exc):
                raise missing from None
            if _code(exc) == "InvalidRange":
                return iter(())
            raise

        def blocks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(BLOCK_SIZE)
            except (BotoCoreError, ClientError, OSError) as exc:
                raise StorageError(f"read {name}: {exc}") from exc
            finally:
                body.close()

        return blocks()

    @_client_errors
    def stat(self, key: str) -> StoredObject | None:
        from botocore.exceptions import ClientError

        match = _OBJECT_KEY.match(key)
        if match is None:
            return None
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._object_name(key))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return StoredObject(self.backend, key, match.group(1), int(head["ContentLength"]))

    def _size(self, name: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=name)["ContentLength"])
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    @_client_errors
    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._object_name(key))

    @_client_errors
    def iter_objects(self) -> Iterator[StoredObject]:
        """Every object the store holds (for ``media-migrate``)."""
        for entry in self._list(self._name("objects") + "/"):
            key = entry["Key"][len(self._name("objects")) + 1:]
            match = _OBJECT_KEY.match(key)
            if match is not None:
                yield StoredObject(self.backend, key, match.group(1), int(entry["Size"]))

    def _list(self, prefix: str, delimiter: str | None = None) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            arguments["Delimiter"] = delimiter
        for page in paginator.paginate(**arguments):
            if delimiter:
                yield from ({"Prefix": p["Prefix"]} for p in page.get("CommonPrefixes", []))
            yield from page.get("Contents", [])

    # -- partial uploads ---------------------------------------------------------------

    @_client_errors
    def create_partial(self, length: int, sha256: str | None = None) -> PartialState:
        if length < 0:
            raise ValueError("negative length")
        key = uuid.uuid4().hex
        data = (self._name("objects", self.object_key(sha256), key) if sha256 and SHA256_HEX.match(sha256)
                else self._upload_name(key, "data"))
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=data)
        now = datetime.now(UTC)
        info = {"length": length, "created_at": now.isoformat(), "upload_id": upload_id["UploadId"],
                "data": data[len(self.prefix):]}
        # The info object is what makes the upload exist: written last, it appears whole or not at all.
        self.client.put_object(Bucket=self.bucket, Key=self._upload_name(key, "info.json"),
                               Body=json.dumps(info).encode(), ContentType="application/json")
        return PartialState(key, length, 0, now)

    def _scan(self, key: str) -> _Scan:
        from botocore.exceptions import ClientError

        directory = self._upload_name(key)
        names = {entry["Key"][len(directory):]: (int(entry["Size"]), entry["LastModified"])
                 for entry in self._list(directory)}
        if "info.json" not in names:
            raise UnknownPartial(key)
        try:
            raw = self.client.get_object(Bucket=self.bucket, Key=directory + "info.json")["Body"].read()
        except ClientError as exc:
            if _missing(exc):
                raise UnknownPartial(key) from None
            raise
        try:
            info = json.loads(raw)
            data = self.prefix + str(info.get("data") or f"uploads/{key}/data")
            if not data.startswith((self._name("objects") + "/", directory)):
                raise ValueError("its data lies outside the store's objects and the upload's folder")
            scan = _Scan(key, int(info["length"]), datetime.fromisoformat(info["created_at"]),
                         str(info["upload_id"]), data, names)
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"partial {key}: unreadable info.json ({exc})") from exc
        try:
            paginator = self.client.get_paginator("list_parts")
            for page in paginator.paginate(Bucket=self.bucket, Key=scan.data_name, UploadId=scan.upload_id):
                scan.parts.extend(page.get("Parts", []))
        except ClientError as exc:
            if _code(exc) != "NoSuchUpload":
                raise
            if self._size(scan.data_name) != scan.length:
                raise UnknownPartial(key) from None  # aborted, or being removed
            scan.finished = True
            scan.parts = []
        scan.parts.sort(key=lambda p: int(p["PartNumber"]))
        if [int(p["PartNumber"]) for p in scan.parts] != list(range(1, len(scan.parts) + 1)):
            raise StorageError(f"partial {key}: its parts are not numbered 1..n")
        return scan

    @_client_errors
    def partial(self, key: str) -> PartialState:
        scan = self._scan(key)
        # A PATCH asks for the state, then appends at once, on this thread, holding the upload's lock:
        # the append takes this scan instead of asking S3 again.
        self._local.scan = (key, scan, time.monotonic())
        return PartialState(key, scan.length, scan.offset, scan.updated_at)

    def _scan_for_append(self, key: str) -> _Scan:
        recent = getattr(self._local, "scan", None)
        self._local.scan = None
        if recent is not None and recent[0] == key and time.monotonic() - recent[2] < RECENT_SCAN_SECONDS:
            return recent[1]  # type: ignore[no-any-return]
        return _client_errors(self._scan)(key)

    @contextlib.contextmanager
    def append(self, key: str, offset: int) -> Iterator[PartialWriter]:
        scan = self._scan_for_append(key)
        if offset != scan.offset:
            raise OffsetMismatch(scan.offset)
        if scan.finished:
            raise StorageError(f"partial upload {key} is finished")
        writer = _S3Writer(self, scan)
        try:
            yield writer
        finally:
            writer.close()

    def read_partial(self, key: str, end: int, start: int = 0) -> Iterator[bytes]:
        scan = _client_errors(self._scan)(key)
        if scan.finished:
            return self._read(scan.data_name, start, end, UnknownPartial(key))
        pending = scan.pending
        if start < scan.parts_size or pending is None and end > start:
            raise StorageError(f"partial upload {key}: bytes [{start}, {end}) are in unfinished S3 parts, "
                               "which cannot be read back")
        if end <= start:
            return iter(())
        assert pending is not None
        begin = scan.parts_size
        return self._read(self._upload_name(key, pending[0]), start - begin, end - begin, UnknownPartial(key))

    def _complete(self, scan: _Scan) -> None:
        """Assemble the multipart upload where it was made (once)."""
        if scan.finished:
            return
        if scan.offset != scan.length:
            raise ValueError(f"partial upload {scan.key} is not complete ({scan.offset}/{scan.length})")
        name = scan.data_name
        if not scan.parts:  # an empty file: S3 wants at least one part
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=scan.upload_id)
            self.client.put_object(Bucket=self.bucket, Key=name, Body=b"")
        else:
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=name, UploadId=scan.upload_id,
                MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in scan.parts]})
        scan.finished = True

    @_client_errors
    def finish_partial(self, key: str, sha256: str) -> StoredObject:
        scan = self._scan(key)
        self._complete(scan)
        placed = scan.data_name[len(self._name("objects")) + 1:]
        match = _OBJECT_KEY.match(placed)
        if match is not None and match.group(1) == sha256:
            return StoredObject(self.backend, placed, sha256, scan.length)  # it stays where it was assembled
        return self._publish(scan.data_name, sha256, scan.length)

    @_client_errors
    def remove_partial(self, key: str) -> None:
        from botocore.exceptions import ClientError

        directory = self._upload_name(key)
        names = [entry["Key"] for entry in self._list(directory)]
        if directory + "info.json" in names:
            try:
                info = json.loads(self.client.get_object(Bucket=self.bucket, Key=directory + "info.json")["Body"]
                                  .read())
                self.client.abort_multipart_upload(Bucket=self.bucket,
                                                   Key=self.prefix + str(info.get("data") or f"uploads/{key}/data"),
                                                   UploadId=str(info["upload_id"]))
            except ClientError as exc:
                if _code(exc) not in ("NoSuchUpload", "NoSuchKey", "404"):
                    raise
            except (ValueError, KeyError, TypeError):
                pass
            # The info object first: from then on the upload is gone, whatever is left behind.
            self.client.delete_object(Bucket=self.bucket, Key=directory + "info.json")
        rest = [name for name in names if name != directory + "info.json"]
        for start in range(0, len(rest), 1000):
            self.client.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": name} for name in rest[start:start + 1000]], "Quiet": True})

    @_client_errors
    def quarantine_partial(self, key: str, reason: Mapping[str, Any]) -> str:
        scan = self._scan(key)
        self._complete(scan)
        target = self._name("quarantine", key)
        self._copy(scan.data_name, target + "/data", scan.length)
        if not scan.data_name.startswith(self._upload_name(key)):
            # Assembled under the SHA-256 it was declared to have, which it does not: it leaves at once.
            self.client.delete_object(Bucket=self.bucket, Key=scan.data_name)
        self.client.put_object(Bucket=self.bucket, Key=target + "/reason.json",
                               Body=json.dumps(dict(reason), ensure_ascii=False, default=str).encode(),
                               ContentType="application/json")
        self.remove_partial(key)
        return f"quarantine/{key}"

    # -- hash state capability ---------------------------------------------------------

    @_client_errors
    def save_hash_state(self, key: str, offset: int, state: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._upload_name(key, f"hash-{offset:020d}"), Body=state)

    def load_hash_state(self, key: str) -> tuple[int, bytes] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            scan = self._scan(key)
            offsets = sorted((int(m.group(1)) for m in map(_HASH.match, scan.names) if m), reverse=True)
            for kept in offsets:
                if kept <= scan.offset:
                    body = self.client.get_object(Bucket=self.bucket,
                                                  Key=self._upload_name(key, f"hash-{kept:020d}"))["Body"]
                    return kept, body.read()
        except (ClientError, BotoCoreError, UnknownPartial, StorageError):
            return None
        return None

    # -- expiration capability ---------------------------------------------------------

    @_client_errors
    def iter_partials(self) -> Iterator[PartialState]:
        directory = self._name("uploads") + "/"
        for entry in self._list(directory, delimiter="/"):
            name = entry.get("Prefix", "")[len(directory):].rstrip("/")
            if not PARTIAL_KEY.match(name):
                continue
            try:
                yield self.partial(name)
            except UnknownPartial:
                continue


class _S3Writer(PartialWriter):
    """Bytes since the last commit wait in a spool; a commit sends them as parts, or as the pending object."""

    def __init__(self, store: S3MediaStore, scan: _Scan) -> None:
        self._store = store
        self._scan = scan
        self._durable = scan.offset
        self._offset = scan.offset
        self._parts = scan.parts_size  # bytes in parts
        pending = scan.pending
        self._spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, dir=store.scratch)
        if pending is not None and pending[1]:
            # The pending bytes go out again at the head of the next part.
            for block in store._read(store._upload_name(scan.key, pending[0]), 0, None, UnknownPartial(scan.key)):
                self._spool.write(block)
        self._next_part = len(scan.parts) + 1
        self._hash_names = [name for name in scan.names if _HASH.match(name)]
        self._pending_stored = pending is not None

    @property
    def durable_offset(self) -> int:
        return self._durable

    @property
    def offset(self) -> int:
        return self._offset

    def write(self, block: bytes | bytearray) -> None:
        if self._offset + len(block) > self._scan.length:
            raise ValueError("write past the upload's length")
        self._spool.write(block)
        self._offset += len(block)

    @_client_errors
    def commit(self, hash_state: bytes | None = None) -> int:
        if self._offset == self._durable:
            return self._durable
        if hash_state is None:
            raise ValueError("the S3 store needs the hash state with every commit (CommitsHashState)")
        store, key = self._store, self._scan.key
        client, bucket = store.client, store.bucket
        # Before the bytes it covers: whenever they are durable, so is the state.
        store.save_hash_state(key, self._offset, hash_state)
        waiting = self._offset - self._parts
        final = self._offset == self._scan.length
        old_pending = f"pending-{self._parts:020d}"
        if waiting >= MIN_PART or final:
            start = 0
            while waiting > 0:
                size = waiting if waiting <= MAX_PART + MIN_PART else MAX_PART
                # Read from the spool as it is sent (and again if botocore retries): no copy of the part in memory.
                body = _Window(self._spool, start, size)
                store._upload_part(self._scan.data_name, self._scan.upload_id, self._next_part, body)
                start += size
                self._next_part += 1
                self._parts += size
                waiting -= size
            self._spool.seek(0)
            self._spool.truncate()
            if self._pending_stored:
                with contextlib.suppress(Exception):  # a leftover pending object no longer counts (it starts before)
                    client.delete_object(Bucket=bucket, Key=store._upload_name(key, old_pending))
                self._pending_stored = False
        else:
            self._spool.seek(0)
            body = self._spool.read()
            self._spool.seek(0, os.SEEK_END)
            # Rewritten whole under the same name: S3 replaces an object atomically.
            client.put_object(Bucket=bucket, Key=store._upload_name(key, old_pending), Body=body)
            self._pending_stored = True
        self._durable = self._offset
        keep = f"hash-{self._durable:020d}"
        stale = [name for name in self._hash_names if name != keep]
        if stale:
            with contextlib.suppress(Exception):
                client.delete_objects(Bucket=bucket, Delete={
                    "Objects": [{"Key": store._upload_name(key, name)} for name in stale], "Quiet": True})
        self._hash_names = [keep]
        return self._durable

    def discard(self) -> None:
        if self._offset != self._durable:
            self._spool.seek(self._durable - self._parts)
            self._spool.truncate()
            self._offset = self._durable

    def close(self) -> None:
        self._spool.close()


class _Window(io.RawIOBase):
    """``size`` bytes of ``spool`` from ``start``, as a seekable file that botocore reads a part's body from."""

    def __init__(self, spool: IO[bytes], start: int, size: int) -> None:
        super().__init__()
        self._spool = spool
        self._start = start
        self._size = size
        self._position = 0

    def __len__(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = min(max(0, base + offset), self._size)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        left = self._size - self._position
        want = left if size is None or size < 0 else min(size, left)
        if want <= 0:
            return b""
        self._spool.seek(self._start + self._position)
        block = self._spool.read(want)
        if len(block) != want:
            raise StorageError("the spool holds fewer bytes than were written")
        self._position += len(block)
        return block

    def readinto(self, buffer: Any) -> int:
        block = self.read(len(buffer))
        buffer[:len(block)] = block
        return len(block)
