"""Checking a case file offline, as the archive office does: no server, no database.

Two checks, each failure named: ``bagit`` validates the bag (every payload file present and matching its
SHA-256 in ``manifest-sha256.txt``, no file added, every tag file matching ``tagmanifest-sha256.txt``), and
the Ed25519 signature in ``archive-signature.txt`` must verify ``tagmanifest-sha256.txt`` with the archive's
public key. A tampered file whose manifests were re-hashed passes the first check and fails the second: only
the server's key makes a valid signature. The evidence list's capture hashes must be the manifest's too.

Without the server's settings (at the archive office): ``python -m server.archive.verify FILE --public-key PEM``
— the same check as ``flask --app server case-file-verify``, needing only ``bagit`` and ``cryptography``.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import bagit
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from server.archive import keys
from server.archive.layout import SIGNATURE_FILE, TAG_MANIFEST


@dataclass
class Verdict:
    """What verification found: ``problems`` empty means the case file is intact and signed by the key."""

    bag: str
    payload_files: int = 0
    payload_bytes: int = 0
    key_fingerprint: str | None = None
    key_source: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _describe(detail: object) -> str:
    if isinstance(detail, bagit.ChecksumMismatch):
        return (f"{detail.path}: {detail.algorithm} does not match the manifest (expected {detail.expected}, "
                f"found {detail.found}) — the file was changed")
    if isinstance(detail, bagit.FileMissing):
        return f"{detail.path}: listed in the manifest but missing — the file was removed"
    if isinstance(detail, bagit.UnexpectedFile):
        return f"{detail.path}: not listed in any manifest — a file was added"
    return str(detail)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Path]:
    """The bag's directory: the given directory, or the zip unpacked into a temporary one."""
    if path.is_dir():
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="case-file-") as tmp, zipfile.ZipFile(path) as archive:
        archive.extractall(tmp)  # zipfile drops ".." and absolute parts of member names
        tops = [p for p in Path(tmp).iterdir() if p.is_dir()]
        yield tops[0] if len(tops) == 1 and not (Path(tmp) / "bagit.txt").exists() else Path(tmp)


def _signature_fields(root: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in (root / SIGNATURE_FILE).read_text("ascii").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def _check_signature(root: Path, verdict: Verdict, public_key: Ed25519PublicKey | None) -> None:
    if not (root / SIGNATURE_FILE).is_file():
        verdict.problems.append(f"{SIGNATURE_FILE}: missing — the case file is not signed")
        return
    if not (root / TAG_MANIFEST).is_file():
        verdict.problems.append(f"{TAG_MANIFEST}: missing — nothing is signed")
        return
    try:
        fields = _signature_fields(root)
        signature = base64.b64decode(fields.get("Signature", ""), validate=True)
    except (UnicodeDecodeError, ValueError):
        verdict.problems.append(f"{SIGNATURE_FILE}: unreadable signature")
        return
    if fields.get("Algorithm") != "Ed25519" or fields.get("Signed-File") != TAG_MANIFEST:
        verdict.problems.append(f"{SIGNATURE_FILE}: not an Ed25519 signature of {TAG_MANIFEST}")
        return
    if public_key is None:
        verdict.problems.append("no public key given (--public-key): the signature cannot be checked")
        return
    verdict.key_fingerprint = keys.fingerprint(public_key)
    if fields.get("Key-Fingerprint") and fields["Key-Fingerprint"] != verdict.key_fingerprint:
        verdict.problems.append(f"{SIGNATURE_FILE}: signed with key {fields['Key-Fingerprint']}, "
                                f"not with the archive key {verdict.key_fingerprint}")
        return
    try:
        public_key.verify(signature, (root / TAG_MANIFEST).read_bytes())
    except InvalidSignature:
        verdict.problems.append(f"{TAG_MANIFEST}: the archive signature does not verify — the tag manifest was "
                                "changed or re-hashed after signing")


def _check_capture_hashes(root: Path, bag: bagit.Bag, verdict: Verdict) -> None:
    listing = root / "data" / "evidence" / "manifest.json"
    if not listing.is_file():
        return  # its absence is bagit's finding (a removed payload file)
    try:
        evidence = json.loads(listing.read_text("utf-8"))["evidence"]
    except (ValueError, KeyError, TypeError):
        verdict.problems.append("data/evidence/manifest.json: unreadable")
        return
    manifest = {path: hashes.get("sha256") for path, hashes in bag.entries.items()}
    for item in evidence:
        if manifest.get(item.get("path")) != item.get("capture_sha256"):
            verdict.problems.append(f"{item.get('path')}: its capture hash is not the one in the manifest")


def verify_case_file(path: Path, public_key: Ed25519PublicKey | None) -> Verdict:
    """Check a case file (zip or unpacked directory) against ``public_key``; every problem found is named."""
    verdict = Verdict(bag=str(path))
    try:
        opened = _opened(path)
        root = opened.__enter__()
    except (zipfile.BadZipFile, OSError) as exc:
        verdict.problems.append(f"{path}: not a readable zip or directory ({exc})")
        return verdict
    try:
        # bagit logs every file it checks; the verdict says what matters.
        logging.getLogger("bagit").setLevel(logging.ERROR)
        try:
            bag = bagit.Bag(str(root))
        except bagit.BagError as exc:
            verdict.problems.append(f"not a BagIt package: {exc}")
            return verdict
        try:
            bag.validate()
        except bagit.BagValidationError as exc:
            if exc.details:
                verdict.problems.extend(_describe(d) for d in exc.details)
            else:
                verdict.problems.append(f"bag invalid: {exc.message}")
                if "Payload-Oxum" in bag.info:
                    # bagit stops at a wrong file count or size; without the Oxum it names the files.
                    bag.info.pop("Payload-Oxum")
                    try:
                        bag.validate()
                    except bagit.BagValidationError as again:
                        verdict.problems.extend(_describe(d) for d in again.details or [])
        payload = list(bag.payload_files())
        verdict.payload_files = len(payload)
        verdict.payload_bytes = sum((root / p).stat().st_size for p in payload if (root / p).is_file())
        _check_capture_hashes(root, bag, verdict)
        _check_signature(root, verdict, public_key)
    finally:
        opened.__exit__(None, None, None)
    return verdict


def main(argv: list[str] | None = None) -> int:
    """``python -m server.archive.verify FILE --public-key PEM``: exit 0 when intact, 1 naming each problem."""
    parser = argparse.ArgumentParser(prog="python -m server.archive.verify", description=main.__doc__)
    parser.add_argument("file", type=Path, help="the case file (zip) or an unpacked bag")
    parser.add_argument("--public-key", type=Path, required=True, help="PEM from GET /api/v1/archive-key")
    args = parser.parse_args(argv)
    try:
        key = keys.load_public_pem(args.public_key.read_bytes())
    except (OSError, ValueError) as exc:
        print(f"{args.public_key}: {exc}", file=sys.stderr)
        return 2
    verdict = verify_case_file(args.file, key)
    print(f"{args.file}: {verdict.payload_files} payload file(s), {verdict.payload_bytes} bytes; "
          f"key {keys.fingerprint(key)}")
    for problem in verdict.problems:
        print(f"FAILED {problem}", file=sys.stderr)
    if not verdict.ok:
        return 1
    print("OK: every payload hash matches and the archive signature verifies")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
