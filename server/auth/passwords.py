"""Password and device-secret hashing."""
from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# Argon2id (memory-hard). Tests swap in a cheaper profile through ``configure``.
_hasher = PasswordHasher()
# A hash of a random password, verified against when the username is unknown so
# that a guess at a non-existent account costs as much time as a real one.
_dummy_hash: str | None = None


def configure(*, time_cost: int, memory_cost: int) -> None:
    global _hasher, _dummy_hash
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=1)
    _dummy_hash = None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    global _dummy_hash
    if stored_hash is None:
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
        stored_hash = _dummy_hash
        try:
            _hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            pass
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_device_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_device_secret(secret: str) -> str:
    # Device secrets are 256 random bits, so a fast keyless hash is enough:
    # there is nothing to brute-force, unlike a human password.
    return "sha256$" + hashlib.sha256(secret.encode()).hexdigest()


def verify_device_secret(stored_hash: str | None, secret: str) -> bool:
    candidate = hash_device_secret(secret)
    return hmac.compare_digest(candidate, stored_hash or "sha256$" + "0" * 64)


def device_key(secret_hash: str) -> str:
    """A short fingerprint of a device's current secret: a log-in bound to the device carries it, so
    re-enrolling the device (a new secret) ends those log-ins without touching anything else."""
    return hashlib.sha256(("device-key\n" + secret_hash).encode()).hexdigest()[:16]


def hash_refresh_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()
