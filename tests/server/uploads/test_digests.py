"""The hashing beside receiving: blocks hashed in order where they lie, and handed back once hashed."""
from __future__ import annotations

import hashlib
import os
import threading

import pytest

from server.uploads import sha256 as portable
from server.uploads.digests import BackgroundHash


def test_a_bytearray_or_a_view_is_hashed_as_its_bytes() -> None:
    data = os.urandom(200_003)
    for piece in (bytearray(data), memoryview(data), memoryview(bytearray(data))[7:150_000], bytearray()):
        digest = portable.new()
        digest.update(piece)
        assert digest.hexdigest() == hashlib.sha256(bytes(piece)).hexdigest()


def test_blocks_are_hashed_in_order_and_each_released_after_it_is_hashed() -> None:
    blocks = [bytearray(os.urandom(100_000 + n)) for n in range(12)]
    released: list[int] = []
    hashed_when_released: list[bool] = []
    state = portable.new()
    hasher = BackgroundHash(state)

    def release(block: bytearray) -> None:
        index = next(i for i, b in enumerate(blocks) if b is block)
        expected = hashlib.sha256(b"".join(blocks[:index + 1])).hexdigest()
        hashed_when_released.append(state.hexdigest() == expected)  # released only once part of the hash
        released.append(index)

    for block in blocks:
        hasher.update(block, release)
    result = hasher.result()
    assert result.hexdigest() == hashlib.sha256(b"".join(blocks)).hexdigest()
    assert released == list(range(12)) and all(hashed_when_released)


def test_after_a_failure_the_rest_is_released_unhashed_and_the_failure_raised() -> None:
    released: list[bytes] = []
    gate = threading.Event()
    hasher = BackgroundHash(portable.new())

    def fail(_state: object) -> None:
        gate.wait(5)
        raise OSError("the store could not be read")

    hasher.then(fail)
    hasher.update(bytearray(b"a" * 10), lambda b: released.append(bytes(b)))
    gate.set()
    with pytest.raises(OSError, match="could not be read"):
        hasher.result()
    assert released == [b"a" * 10]
