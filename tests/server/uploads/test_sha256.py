"""The portable SHA-256: hashlib's answers, a state that survives the process, and the fallback."""
from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from server.uploads import sha256 as portable

REPO = Path(__file__).resolve().parents[3]


def test_libcrypto_is_found_here() -> None:
    """On the Linux machines we run on, the portable hash is the one in use (not the fallback)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("libcrypto's soname is Linux's")
    assert isinstance(portable.new(), portable.PortableSha256)


def test_any_chunking_gives_hashlibs_digest() -> None:
    rng = random.Random(7)
    for _ in range(30):
        data = os.urandom(rng.randint(0, 300_000))
        digest = portable.new()
        position = 0
        while position < len(data):
            step = rng.choice([1, 63, 64, 65, 4096, rng.randint(1, 100_000)])
            digest.update(data[position:position + step])
            position += step
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
        assert digest.digest() == hashlib.sha256(data).digest()


def test_copy_and_digest_leave_the_state_going_on() -> None:
    digest = portable.new()
    digest.update(bytearray(b"first part "))  # not only bytes
    fork = digest.copy()
    assert digest.hexdigest() == hashlib.sha256(b"first part ").hexdigest()
    digest.update(memoryview(b"second"))
    fork.update(b"other")
    assert digest.hexdigest() == hashlib.sha256(b"first part second").hexdigest()
    assert fork.hexdigest() == hashlib.sha256(b"first part other").hexdigest()


def test_a_saved_state_goes_on_in_another_process() -> None:
    head, tail = os.urandom(100_003), os.urandom(77_777)
    digest = portable.new()
    digest.update(head)
    state = portable.saved_state(digest)
    assert state is not None
    script = ("import sys; from server.uploads import sha256 as p; "
              "d = p.from_saved_state(bytes.fromhex(sys.argv[1])); d.update(sys.stdin.buffer.read()); "
              "print(d.hexdigest())")
    result = subprocess.run([sys.executable, "-c", script, state.hex()], input=tail, cwd=REPO, check=True,
                            capture_output=True)
    assert result.stdout.decode().strip() == hashlib.sha256(head + tail).hexdigest()


def test_a_state_that_is_not_one_is_refused() -> None:
    good = portable.saved_state(portable.new())
    assert good is not None
    assert portable.from_saved_state(good[:-1]) is None
    assert portable.from_saved_state(b"\0" * len(good)) is None  # its digest length is not 32
    with pytest.raises(ValueError):
        portable.PortableSha256.from_state(b"x" * 5)


def test_without_libcrypto_hashlib_is_used_and_nothing_is_saved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portable, "_loaded", True)
    monkeypatch.setattr(portable, "_libcrypto", None)
    digest = portable.new()
    assert not isinstance(digest, portable.PortableSha256)
    digest.update(b"abc")
    assert digest.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    assert portable.saved_state(digest) is None
    assert portable.from_saved_state(b"\0" * 112) is None
