"""SHA-256 whose running state can be saved as bytes and taken up again in another process.

An upload's PATCHes reach whichever worker process accepts the connection, and
a server may restart mid-upload. hashlib's objects cannot leave the process
that made them, so the worker that takes the next PATCH would have to hash
again what another one received. OpenSSL's ``SHA256_Init/Update/Final`` (the
code hashlib runs, with the same CPU extensions) keep their state in a plain
``SHA256_CTX`` struct, which can be copied out and back in; ``new()`` hands out
such a hash when this process's libcrypto has those functions and passes a
self-test, and a hashlib one otherwise (then ``saved_state`` is None and the
caller hashes again, as before).

A state is only ever restored into the same kind of struct it came from: it is
checked for size and for its constant digest-length field, and the store keeps
it with a checksum. A wrong state cannot make wrong bytes pass; it can only
make a whole-file hash come out wrong, which refuses the upload.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import struct
import threading
from typing import Any

# sizeof(SHA256_CTX): unsigned int h[8], Nl, Nh, data[16], num, md_len
_CTX_SIZE = 112
_MD_LEN_AT = 108
_NUM_AT = 104
_DIGEST_SIZE = 32


class _Libcrypto:
    def __init__(self, lib: ctypes.CDLL) -> None:
        self.init = lib.SHA256_Init
        self.update = lib.SHA256_Update
        self.final = lib.SHA256_Final
        self.init.argtypes = [ctypes.c_void_p]
        self.update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        self.final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        for function in (self.init, self.update, self.final):
            function.restype = ctypes.c_int


_lock = threading.Lock()
_loaded = False
_libcrypto: _Libcrypto | None = None


def _load() -> _Libcrypto | None:
    """libcrypto's SHA-256 functions, once per process, if they are there and behave."""
    global _loaded, _libcrypto
    with _lock:
        if not _loaded:
            _loaded = True
            _libcrypto = _try_load()
    return _libcrypto


def _try_load() -> _Libcrypto | None:
    # hashlib has loaded libcrypto already; dlopen finds it by its soname first.
    for name in ("libcrypto.so.3", ctypes.util.find_library("crypto")):
        if not name:
            continue
        try:
            candidate = _Libcrypto(ctypes.CDLL(name))
        except (OSError, AttributeError):
            continue
        if _passes_self_test(candidate):
            return candidate
    return None


def _passes_self_test(lib: _Libcrypto) -> bool:
    try:
        first = PortableSha256(lib=lib)
        first.update(b"inspect once " * 7)
        resumed = PortableSha256.from_state(first.saved_state(), lib=lib)
        resumed.update(b"abc")
        expected = hashlib.sha256(b"inspect once " * 7 + b"abc").hexdigest()
        return (resumed.hexdigest() == expected
                and PortableSha256(lib=lib).hexdigest() == hashlib.sha256().hexdigest())
    except (ValueError, OSError, RuntimeError):
        return False


class PortableSha256:
    """What hashlib's sha256 objects offer (``update``, ``copy``, ``digest``, ``hexdigest``), plus
    ``saved_state`` and ``from_state``. ``update`` releases the GIL while it hashes (ctypes does)."""

    name = "sha256"
    digest_size = _DIGEST_SIZE
    block_size = 64

    def __init__(self, *, lib: _Libcrypto | None = None, _state: bytes | None = None) -> None:
        lib = lib or _load()
        if lib is None:
            raise RuntimeError("libcrypto's SHA-256 functions are not available")
        self._lib = lib
        self._ctx = ctypes.create_string_buffer(_CTX_SIZE)
        if _state is None:
            if lib.init(self._ctx) != 1:
                raise RuntimeError("SHA256_Init failed")
        else:
            ctypes.memmove(self._ctx, _state, _CTX_SIZE)

    @classmethod
    def from_state(cls, state: bytes, *, lib: _Libcrypto | None = None) -> PortableSha256:
        if len(state) != _CTX_SIZE:
            raise ValueError("not a SHA-256 state")
        md_len, = struct.unpack_from("=I", state, _MD_LEN_AT)
        num, = struct.unpack_from("=I", state, _NUM_AT)
        if md_len != _DIGEST_SIZE or num >= 64:
            raise ValueError("not a SHA-256 state")
        return cls(lib=lib, _state=state)

    def saved_state(self) -> bytes:
        return self._ctx.raw

    def update(self, data: bytes | bytearray | memoryview) -> None:
        buffer: Any
        if isinstance(data, bytes):
            buffer, size = data, len(data)
        else:
            # A bytearray (an upload's block, received in place) is hashed where it lies, not copied first.
            view = memoryview(data).cast("B")
            size = view.nbytes
            buffer = bytes(view) if view.readonly else (ctypes.c_char * size).from_buffer(view)
        if self._lib.update(self._ctx, buffer, size) != 1:
            raise RuntimeError("SHA256_Update failed")

    def copy(self) -> PortableSha256:
        return PortableSha256(lib=self._lib, _state=self._ctx.raw)

    def digest(self) -> bytes:
        finished = self.copy()  # Final spoils the state it finishes
        out = ctypes.create_string_buffer(_DIGEST_SIZE)
        if self._lib.final(out, finished._ctx) != 1:
            raise RuntimeError("SHA256_Final failed")
        return out.raw

    def hexdigest(self) -> str:
        return self.digest().hex()


def portable() -> bool:
    """Whether hash states can be saved and taken up by another process (libcrypto has the functions)."""
    return _load() is not None


def new() -> Any:
    """A fresh SHA-256: portable where libcrypto allows, hashlib's otherwise."""
    return PortableSha256() if _load() is not None else hashlib.sha256()


def saved_state(digest: Any) -> bytes | None:
    """The state of ``digest`` as bytes, or None for a hash that cannot leave this process."""
    return digest.saved_state() if isinstance(digest, PortableSha256) else None


def from_saved_state(state: bytes) -> PortableSha256 | None:
    """The hash ``saved_state`` saved, or None if this process cannot take it up."""
    if _load() is None:
        return None
    try:
        return PortableSha256.from_state(state)
    except ValueError:
        return None
