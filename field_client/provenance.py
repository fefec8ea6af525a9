"""Capture manifests signed by a docking station (issue 17; the fixed v1 format of docs/provenance.md, the one
the tablet app signs with WebCrypto and the server verifies).

A dock holds an Ed25519 key file (PEM, mode 600) in its state folder, made on first start, and its chain
state beside it: the counter and the hash of its last manifest, kept as a small JSON file replaced
atomically (write to a temporary file, fsync, rename, fsync the folder) under an exclusive lock, so two docks
sharing the state folder never use a counter twice. The manifest of a file is signed once, when its upload is
first prepared, and kept with the file's row so a resumed or retried upload sends the same one; the chain
file also keeps the last manifest it signed, so a crash between the two writes does not burn a counter.
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MANIFEST_VERSION = 1
MANIFEST_KEYS = ("v", "device_id", "counter", "prev", "sha256", "size", "media_type", "capture_start", "capture_end",
                 "device_clock", "media_id", "task_id", "inspection_id", "inspector", "location")
CHAIN_VERSION = 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


class SigningError(Exception):
    """The dock cannot sign: the message (Chinese) says why and what to do."""


def b64url(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def iso_utc(moment: datetime | str) -> str:
    """ISO 8601 UTC with Z, to the millisecond (as the tablet's ``toISOString``)."""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    if value.tzinfo is None:
        raise ValueError(f"a time without an offset: {moment!r}")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def manifest_bytes(fields: Mapping[str, Any]) -> bytes:
    """The manifest's bytes: compact UTF-8 JSON of exactly the manifest keys, in order, integers only.

    ``fields`` has every key but ``v``. Raises ValueError naming what does not fit the format.
    """
    m = {"v": MANIFEST_VERSION, **fields}
    extra = sorted(set(m) - set(MANIFEST_KEYS))
    missing = [k for k in MANIFEST_KEYS if k not in m]
    problems = [f"unknown keys {extra}"] if extra else []
    if missing:
        problems.append(f"missing keys {missing}")
    if not problems:
        if not (isinstance(m["device_id"], str) and 0 < len(m["device_id"]) <= 64):
            problems.append("device_id")
        if not (_is_int(m["counter"]) and m["counter"] >= 1):
            problems.append("counter must be an integer >= 1")
        elif not (m["prev"] == "" if m["counter"] == 1 else isinstance(m["prev"], str) and _HEX64.match(m["prev"])):
            problems.append("prev")
        if not (isinstance(m["sha256"], str) and _HEX64.match(m["sha256"])):
            problems.append("sha256")
        if not (_is_int(m["size"]) and m["size"] >= 0):
            problems.append("size")
        if not (isinstance(m["media_type"], str) and 0 < len(m["media_type"]) <= 100):
            problems.append("media_type")
        problems += [k for k in ("capture_start", "capture_end", "device_clock")
                     if not (isinstance(m[k], str) and _UTC.match(m[k]))]
        problems += [k for k in ("media_id", "task_id", "inspection_id", "inspector")
                     if not (m[k] is None or isinstance(m[k], str) and _UUID.match(m[k]))]
        location = m["location"]
        if location is not None and not (isinstance(location, dict)
                                         and set(location) == {"lat_e7", "lon_e7", "accuracy_m"}
                                         and all(_is_int(v) for v in location.values())):
            problems.append("location")
    if problems:
        raise ValueError("manifest: " + "; ".join(problems))
    ordered = {k: m[k] for k in MANIFEST_KEYS}
    if ordered["location"] is not None:
        ordered["location"] = {k: ordered["location"][k] for k in ("lat_e7", "lon_e7", "accuracy_m")}
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ---- files that survive a power cut ---------------------------------------------------------------

def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that after a crash it holds either the old or the new bytes."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _private_only(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


# ---- the dock's key and chain --------------------------------------------------------------------------

@dataclass(frozen=True)
class Signed:
    manifest: str  # base64url of the bytes
    signature: str  # base64url of the 64-byte signature
    counter: int
    hash: str  # hex SHA-256 of the bytes


def _safe_name(device_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "_", device_id)


class DeviceSigner:
    """One device's key file and chain in a state folder: ``.fieldsync-dock-key-<device>.pem`` and
    ``.fieldsync-dock-chain-<device>.json`` (with a ``.lock`` beside it)."""

    def __init__(self, folder: Path, device_id: str) -> None:
        self.device_id = device_id
        self.folder = folder
        name = _safe_name(device_id)
        self.key_path = folder / f".fieldsync-dock-key-{name}.pem"
        self.chain_path = folder / f".fieldsync-dock-chain-{name}.json"
        self._lock_path = folder / f".fieldsync-dock-chain-{name}.lock"
        self.created = False
        folder.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._key = self._load_or_create()
        self.public_key = b64url(self._key.public_key().public_bytes(serialization.Encoding.Raw,
                                                                     serialization.PublicFormat.Raw))

    @property
    def fingerprint(self) -> str:
        """A short name of the public key for people: the first 16 hex digits of its SHA-256."""
        return hashlib.sha256(b64url_decode(self.public_key)).hexdigest()[:16]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        handle = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)

    def _load_or_create(self) -> Ed25519PrivateKey:
        if self.key_path.exists():
            if not _private_only(self.key_path):
                raise SigningError(f"签名密钥文件 {self.key_path} 可被其他用户读取，拒绝使用。"
                                   f"请执行 chmod 600 {self.key_path} 后重试")
            try:
                key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
            except (OSError, ValueError) as exc:
                raise SigningError(f"无法读取签名密钥文件 {self.key_path}：{exc}") from None
            if not isinstance(key, Ed25519PrivateKey):
                raise SigningError(f"签名密钥文件 {self.key_path} 不是 Ed25519 私钥")
            if not self.chain_path.exists():
                # A new chain under the old key would use counters already used: the server would see them replayed.
                raise SigningError(f"签名链状态文件 {self.chain_path} 丢失，而密钥文件仍在。为避免重复使用采集计数，"
                                   "本机不再签名；请联系管理员在服务器上清除本设备的旧公钥，"
                                   f"再删除 {self.key_path} 以生成新密钥")
            return key
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        if not self.chain_path.exists():
            self._write_chain({"counter": 0, "prev": "", "registered": {}, "last": None})
        write_atomically(self.key_path, pem, 0o600)
        os.chmod(self.key_path, 0o600)
        if not _private_only(self.key_path):
            # A FAT-formatted card or a share without Unix permissions: the key would be readable by anyone.
            self.key_path.unlink()
            raise SigningError(f"无法把签名密钥文件 {self.key_path} 设为仅本用户可读（该目录的文件系统不支持权限？）。"
                               "请用 --state 把状态库放到本机磁盘上的目录")
        self.created = True
        return key

    # ---- the chain file ------------------------------------------------------------------------------

    def _read_chain(self) -> dict[str, Any]:
        try:
            state = json.loads(self.chain_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SigningError(f"无法读取签名链状态文件 {self.chain_path}：{exc}") from None
        if not isinstance(state, dict) or state.get("device_id") != self.device_id or not _is_int(state.get("counter")):
            raise SigningError(f"签名链状态文件 {self.chain_path} 内容有误，本机不再签名；请联系管理员")
        return state

    def _write_chain(self, state: dict[str, Any]) -> None:
        state = {"v": CHAIN_VERSION, **state, "device_id": self.device_id}
        write_atomically(self.chain_path, json.dumps(state, ensure_ascii=False, indent=1).encode("utf-8"))

    def chain(self) -> dict[str, Any]:
        """The chain state: ``counter`` (of the last manifest, 0 before the first), ``prev`` (its hash), …"""
        with self._locked():
            return self._read_chain()

    def registered_with(self, server: str) -> bool:
        return self.chain().get("registered", {}).get(server) == self.public_key

    def note_registered(self, server: str) -> None:
        with self._locked():
            state = self._read_chain()
            state.setdefault("registered", {})[server] = self.public_key
            state.get("registering", {}).pop(server, None)
            self._write_chain(state)

    def attempting(self, server: str) -> bool:
        """Mark (durably) that this key is about to be sent to ``server``; True if an earlier attempt went
        unanswered (so the server may hold it already)."""
        with self._locked():
            state = self._read_chain()
            before = state.setdefault("registering", {}).get(server) == self.public_key
            state["registering"][server] = self.public_key
            self._write_chain(state)
            return before

    def attempted(self, server: str) -> None:
        """The server answered the attempt."""
        with self._locked():
            state = self._read_chain()
            if state.get("registering", {}).pop(server, None) is not None:
                self._write_chain(state)

    def sign(self, item: str, fields: Mapping[str, Any], now: datetime) -> Signed:
        """Sign the next manifest of this device for ``item`` (a name of the file's row).

        ``fields``: every manifest key but ``v``, ``device_id``, ``counter``, ``prev`` and ``device_clock``. If the
        last manifest signed was for this same item (its row was not written: a crash), that one is returned.
        """
        with self._locked():
            state = self._read_chain()
            last = state.get("last")
            if isinstance(last, dict) and last.get("item") == item:
                return Signed(last["manifest"], last["signature"], int(last["counter"]), last["hash"])
            counter = state["counter"] + 1
            raw = manifest_bytes({"device_id": self.device_id, "counter": counter,
                                  "prev": state.get("prev", "") if counter > 1 else "", **fields,
                                  "device_clock": iso_utc(now)})
            signed = Signed(b64url(raw), b64url(self._key.sign(raw)), counter, hashlib.sha256(raw).hexdigest())
            state.update(counter=counter, prev=signed.hash, last={"item": item, "manifest": signed.manifest,
                                                                  "signature": signed.signature,
                                                                  "counter": counter, "hash": signed.hash})
            self._write_chain(state)
            return signed
