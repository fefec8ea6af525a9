"""The S3 media store against a real S3-compatible server (rclone serve s3, tests/s3server.py).

The protocol suites (test_protocol.py, test_streaming.py) run against this store
too; these are the store's own promises: what is durable when, what a crash
leaves, and that nothing outlives an upload.
"""
from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from server.uploads import sha256 as portable_sha256
from server.uploads.locking import RedisUploadLocker, UploadLocked
from server.uploads.s3store import MIN_PART, S3MediaStore, parse_store_url
from server.uploads.storage import OffsetMismatch, StorageError, UnknownObject, UnknownPartial
from tests.s3server import BUCKET


@pytest.fixture
def store(s3_server: Any) -> S3MediaStore:
    env = s3_server.store_env(prefix=f"store-{uuid.uuid4().hex[:8]}")
    return S3MediaStore.from_url(env["MEDIA_STORE_URL"], env)


def names(store: S3MediaStore) -> list[str]:
    """Every object under the store's prefix, without it."""
    return sorted(entry["Key"][len(store.prefix):] for entry in store._list(store.prefix))


def state_of(data: bytes) -> bytes:
    running = portable_sha256.new()
    running.update(data)
    saved = portable_sha256.saved_state(running)
    assert saved is not None
    return saved


def test_the_store_url_is_checked() -> None:
    assert parse_store_url("s3://evidence/county-a/media") == ("evidence", "county-a/media")
    assert parse_store_url("s3://evidence") == ("evidence", "")
    for bad in ("evidence/x", "http://evidence/x", "s3:///x", "s3://Evidence_1/x", "s3://evidence/a//b",
                "s3://evidence/../x", "s3://evidence/x?versionId=1"):
        with pytest.raises(ValueError):
            parse_store_url(bad)


def test_objects_are_content_addressed_ranged_and_stored_once(store: S3MediaStore) -> None:
    data = os.urandom(3000)
    first = store.put([data[:1000], data[1000:]])
    again = store.put([data])
    assert first == again and first.sha256 == hashlib.sha256(data).hexdigest() and first.backend == "s3"
    assert b"".join(store.read(first.key)) == data
    assert b"".join(store.read(first.key, 100, 200)) == data[100:200]
    assert b"".join(store.read(first.key, 2990)) == data[2990:]
    assert b"".join(store.read(first.key, 50, 50)) == b""
    assert store.stat(first.key) == first
    assert [found.key for found in store.iter_objects()] == [first.key]
    store.delete(first.key)
    store.delete(first.key)  # idempotent
    assert store.stat(first.key) is None
    with pytest.raises(UnknownObject):
        store.read(first.key)
    with pytest.raises(UnknownObject):
        store.read("../../etc/passwd")


def test_a_large_put_goes_up_in_parts_and_leaves_nothing_aside(store: S3MediaStore, monkeypatch) -> None:
    import server.uploads.s3store as s3store

    monkeypatch.setattr(s3store, "MAX_PART", MIN_PART)
    data = os.urandom(2 * MIN_PART + 1234)
    stored = store.put(data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20))
    assert b"".join(store.read(stored.key)) == data
    assert names(store) == [f"objects/{stored.key}"]  # the assembled copy under tmp/ is gone


def test_bytes_short_of_a_part_wait_in_a_pending_object_and_a_part_goes_up_at_five_mib(store: S3MediaStore) -> None:
    length = MIN_PART + 3000
    data = os.urandom(length)
    part = store.create_partial(length)
    assert store.partial(part.key).offset == 0
    with store.append(part.key, 0) as writer:
        writer.write(data[:1000])
        assert store.partial(part.key).offset == 0  # nothing before the commit
        assert writer.commit(hash_state=state_of(data[:1000])) == 1000
    assert store.partial(part.key).offset == 1000
    assert f"uploads/{part.key}/pending-{0:020d}" in names(store)
    assert b"".join(store.read_partial(part.key, 1000, start=200)) == data[200:1000]  # pending bytes read back
    with store.append(part.key, 1000) as writer:
        writer.write(data[1000:MIN_PART + 1000])
        assert writer.commit(hash_state=state_of(data[:MIN_PART + 1000])) == MIN_PART + 1000
    listing = names(store)
    assert not any("pending-" in name for name in listing)  # the pending bytes went out at the part's head
    assert [name for name in listing if "hash-" in name] == [f"uploads/{part.key}/hash-{MIN_PART + 1000:020d}"]
    assert store.load_hash_state(part.key) == (MIN_PART + 1000, state_of(data[:MIN_PART + 1000]))
    with pytest.raises(StorageError, match="cannot be read back"):
        list(store.read_partial(part.key, 10))
    with store.append(part.key, MIN_PART + 1000) as writer:
        writer.write(data[MIN_PART + 1000:])
        writer.commit(hash_state=state_of(data))  # the last part may be small
    assert store.partial(part.key).offset == length
    stored = store.finish_partial(part.key, hashlib.sha256(data).hexdigest())
    assert store.finish_partial(part.key, stored.sha256) == stored  # repeated after a crash: the same object
    assert b"".join(store.read(stored.key)) == data
    store.remove_partial(part.key)
    store.remove_partial(part.key)
    assert names(store) == [f"objects/{stored.key}"]
    with pytest.raises(UnknownPartial):
        store.partial(part.key)


def test_what_is_discarded_or_never_committed_is_not_in_the_store(store: S3MediaStore) -> None:
    data = os.urandom(MIN_PART + 10)
    part = store.create_partial(len(data))
    with store.append(part.key, 0) as writer:
        writer.write(data[:MIN_PART])
        writer.discard()
        writer.write(data[:100])
        writer.commit(hash_state=state_of(data[:100]))
        writer.write(data[100:MIN_PART])  # the request ends (a crash) before the next commit
    assert store.partial(part.key).offset == 100
    with pytest.raises(OffsetMismatch) as mismatch:
        store.append(part.key, 0).__enter__()
    assert mismatch.value.durable_offset == 100
    with store.append(part.key, 100) as writer:
        writer.write(data[100:])
        with pytest.raises(ValueError, match="past the upload's length"):
            writer.write(b"x")
        with pytest.raises(ValueError, match="hash state"):
            writer.commit()  # S3 keeps no byte without the state that covers it
        writer.commit(hash_state=state_of(data))
    stored = store.finish_partial(part.key, hashlib.sha256(data).hexdigest())
    assert b"".join(store.read(stored.key)) == data


def test_a_crash_after_the_part_but_before_the_pending_object_is_deleted_counts_each_byte_once(
        store: S3MediaStore, monkeypatch) -> None:
    data = os.urandom(MIN_PART + 500)
    part = store.create_partial(len(data) + 100)
    with store.append(part.key, 0) as writer:
        writer.write(data[:500])
        writer.commit(hash_state=state_of(data[:500]))
    real_delete = store.client.delete_object

    def lost(**kwargs: Any) -> None:
        if "pending-" in kwargs["Key"]:
            raise ConnectionError("the server died here")
        real_delete(**kwargs)

    monkeypatch.setattr(store.client, "delete_object", lost)
    with store.append(part.key, 500) as writer:
        writer.write(data[500:])
        writer.commit(hash_state=state_of(data))
    monkeypatch.undo()
    assert any("pending-" in name for name in names(store))  # left behind, but it starts before the parts' end
    assert store.partial(part.key).offset == len(data)
    assert store.load_hash_state(part.key) == (len(data), state_of(data))


def test_a_crash_before_a_part_is_stored_leaves_the_state_ahead_unused(store: S3MediaStore, monkeypatch) -> None:
    data = os.urandom(MIN_PART)
    part = store.create_partial(len(data) + 1)
    with store.append(part.key, 0) as writer:
        writer.write(data[:10])
        writer.commit(hash_state=state_of(data[:10]))
    monkeypatch.setattr(store.client, "upload_part", lambda **kwargs: (_ for _ in ()).throw(StorageError("down")))
    with store.append(part.key, 10) as writer:
        writer.write(data[10:])
        with pytest.raises(StorageError):
            writer.commit(hash_state=state_of(data))
    monkeypatch.undo()
    assert store.partial(part.key).offset == 10
    assert store.load_hash_state(part.key) == (10, state_of(data[:10]))  # the newer state is past the bytes


def test_quarantine_keeps_the_bytes_aside_and_expiry_lists_what_is_left(store: S3MediaStore) -> None:
    data = os.urandom(2000)
    part = store.create_partial(len(data))
    other = store.create_partial(10)
    with store.append(part.key, 0) as writer:
        writer.write(data)
        writer.commit(hash_state=state_of(data))
    assert sorted(p.key for p in store.iter_partials()) == sorted([part.key, other.key])
    where = store.quarantine_partial(part.key, {"declared_sha256": "0" * 64})
    assert where == f"quarantine/{part.key}"
    kept = store.client.get_object(Bucket=store.bucket, Key=store._name(where, "data"))["Body"].read()
    assert kept == data
    assert [p.key for p in store.iter_partials()] == [other.key]
    store.remove_partial(other.key)
    assert list(store.iter_partials()) == []
    assert not store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix).get("Uploads")


def test_an_empty_upload_becomes_an_empty_object(store: S3MediaStore) -> None:
    part = store.create_partial(0)
    stored = store.finish_partial(part.key, hashlib.sha256(b"").hexdigest())
    assert stored.size == 0 and b"".join(store.read(stored.key)) == b""


def test_an_unreachable_store_is_one_storage_error_and_unhealthy() -> None:
    import boto3
    from botocore.config import Config

    from tests.s3server import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    down = S3MediaStore("evidence", "x", client_factory=lambda: boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", config=Config(retries={"max_attempts": 1})))
    health = down.health()
    assert not health.available and health.problem and "evidence" in health.problem
    with pytest.raises(StorageError):
        down.create_partial(10)
    with pytest.raises(StorageError):
        down.put([b"x"])


def test_a_store_in_a_missing_bucket_is_unhealthy(s3_server: Any) -> None:
    store = S3MediaStore("no-such-bucket", "", endpoint_url=s3_server.endpoint)
    health = store.health()
    assert not health.available and "no-such-bucket" in (health.problem or "")
    assert BUCKET != "no-such-bucket"


# ---- locks across machines ----------------------------------------------------------------

@pytest.fixture
def redis_url() -> Iterator[str]:
    import redis

    url = "redis://127.0.0.1:6379/14"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at 127.0.0.1:6379 is needed (Debian's redis-server; .ci/run starts it): {exc}")
    client.flushdb()
    yield url
    client.flushdb()


def test_redis_locks_exclude_other_servers_and_a_dead_holders_lock_runs_out(redis_url: str, monkeypatch) -> None:
    import redis

    import server.uploads.locking as locking

    upload = uuid.uuid4().hex
    one, other = RedisUploadLocker(redis_url), RedisUploadLocker(redis_url)  # two app servers
    held = one.acquire(upload)
    with pytest.raises(UploadLocked):
        other.acquire(upload)
    held.release()
    held.release()  # twice is harmless
    with other.hold(upload):
        with pytest.raises(UploadLocked):
            one.acquire(upload)
    # A holder that dies stops renewing: its lock runs out after REDIS_LOCK_SECONDS (shortened here).
    monkeypatch.setattr(locking, "REDIS_LOCK_SECONDS", 0.3)
    dead = one.acquire(upload)
    dead._stop.set()  # type: ignore[attr-defined]  # what SIGKILL does to the renewer
    with pytest.raises(UploadLocked):
        other.acquire(upload)
    ttl = redis.Redis.from_url(redis_url).pttl(one.namespace + upload)
    assert 0 < ttl <= 300
    import time
    time.sleep(0.4)
    with other.hold(upload):
        pass


def test_a_live_holders_lock_is_renewed(redis_url: str, monkeypatch) -> None:
    import time

    import server.uploads.locking as locking

    monkeypatch.setattr(locking, "REDIS_LOCK_SECONDS", 0.3)
    upload = uuid.uuid4().hex
    one, other = RedisUploadLocker(redis_url), RedisUploadLocker(redis_url)
    with one.hold(upload):
        time.sleep(0.8)  # well past the lock's time: a long PATCH
        with pytest.raises(UploadLocked):
            other.acquire(upload)
    with other.hold(upload):
        pass


def test_expiry_aborts_an_abandoned_multipart_upload(database_url: str, s3_server: Any, tmp_path, clock) -> None:
    from datetime import UTC, timedelta

    import time_machine

    from server.extensions import db
    from server.uploads.service import uploads
    from tests.conftest import _build_app

    app = _build_app(database_url, tmp_path / "var", env_extra=s3_server.store_env(prefix=uuid.uuid4().hex[:8]))
    with app.app_context():
        store = uploads().store
        assert isinstance(store, S3MediaStore)
        orphan = store.create_partial(50)  # a creation whose record never committed
        runner = app.test_cli_runner()
        # S3 dates its objects by its own clock, the wall clock; the expiry looks 73 hours past it.
        clock.move_to(time_machine.escape_hatch.datetime.datetime.now(UTC) + timedelta(hours=1))
        assert runner.invoke(args=["expire-uploads"]).output.strip() == "0 partial upload(s) removed"
        clock.move_to(time_machine.escape_hatch.datetime.datetime.now(UTC) + timedelta(hours=73))
        result = runner.invoke(args=["expire-uploads"])
        assert result.exit_code == 0, result.output
        assert f"removed leftover partial upload {orphan.key} (no upload record; 0/50 bytes)" in result.output
        assert list(store.iter_partials()) == []
        assert not store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix).get("Uploads")
        db.session.remove()
        db.engine.dispose()


def test_an_upload_is_assembled_where_it_stays_and_a_wrong_one_leaves_for_quarantine(store: S3MediaStore) -> None:
    data = os.urandom(MIN_PART + 77)
    sha = hashlib.sha256(data).hexdigest()
    part = store.create_partial(len(data), sha256=sha)
    with store.append(part.key, 0) as writer:
        writer.write(data)
        writer.commit(hash_state=state_of(data))
    stored = store.finish_partial(part.key, sha)
    assert stored.key == f"{sha[:2]}/{sha[2:4]}/{sha}/{part.key}"  # no copy to the content address
    assert store.finish_partial(part.key, sha) == stored
    store.remove_partial(part.key)
    assert names(store) == [f"objects/{stored.key}"]
    assert store.stat(stored.key) == stored and b"".join(store.read(stored.key, 5, 10)) == data[5:10]
    assert [found.key for found in store.iter_objects()] == [stored.key]

    liar = store.create_partial(100, sha256=sha)  # declares that content, sends other bytes
    other = os.urandom(100)
    with store.append(liar.key, 0) as writer:
        writer.write(other)
        writer.commit(hash_state=state_of(other))
    where = store.quarantine_partial(liar.key, {"declared_sha256": sha})
    assert names(store) == sorted([f"objects/{stored.key}", f"{where}/data", f"{where}/reason.json"])
    assert [found.key for found in store.iter_objects()] == [stored.key]


def test_a_put_of_known_content_is_assembled_in_place_or_not_at_all(store: S3MediaStore, monkeypatch) -> None:
    import server.uploads.s3store as s3store

    monkeypatch.setattr(s3store, "MAX_PART", MIN_PART)
    data = os.urandom(2 * MIN_PART + 99)
    sha = hashlib.sha256(data).hexdigest()

    def blocks(payload: bytes) -> Iterator[bytes]:
        yield from (payload[i:i + (1 << 20)] for i in range(0, len(payload), 1 << 20))

    wrong = bytes([data[0] ^ 1]) + data[1:]
    with pytest.raises(ValueError, match="hash"):
        store.put(blocks(wrong), sha256=sha)
    assert names(store) == []  # aborted: no other content ever under that name
    assert not store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix).get("Uploads")
    stored = store.put(blocks(data), sha256=sha)
    assert names(store) == [f"objects/{stored.key}"] and stored.key == store.object_key(sha)  # no tmp/, no copy
    assert b"".join(store.read(stored.key)) == data

    def untouched() -> Iterator[bytes]:
        raise AssertionError("the stream was read although the object is there")
        yield b""

    assert store.put(untouched(), sha256=sha) == stored


def test_the_local_store_refuses_a_put_of_other_bytes_than_named(tmp_path) -> None:
    from server.uploads.storage import LocalMediaStore

    local = LocalMediaStore(tmp_path / "media")
    with pytest.raises(ValueError, match="hash"):
        local.put([b"other bytes"], sha256=hashlib.sha256(b"these bytes").hexdigest())
    assert list(local.iter_objects()) == []
    assert local.put([b"these bytes"], sha256=hashlib.sha256(b"these bytes").hexdigest()).size == 11
