"""The case file: a signed BagIt package that bagit validates and case-file-verify accepts — and refuses,
naming what is wrong, when one byte of evidence is changed, a file removed or the tag manifest re-hashed."""
from __future__ import annotations

import hashlib
import io
import json
import tracemalloc
import zipfile
from pathlib import Path

import bagit
import pytest
from sqlalchemy import select

from server.archive import casefile, keys
from server.archive.verify import verify_case_file
from server.audit.models import AuditEntry
from server.auth.policy import SYSTEM
from server.extensions import db
from server.uploads.storage import BLOCK_SIZE
from tests.conftest import assert_problem, new_department, new_user
from tests.server.archive.conftest import Case, build_case


def _download(client, auth, case: Case, username: str = "m-sup") -> bytes:  # type: ignore[no-untyped-def]
    response = client.get(f"/api/v1/inspections/{case.inspection.id}/case-file", headers=auth.headers(username))
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]
    return response.get_data()


def _public_key(client, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    body = client.get("/api/v1/archive-key").get_json()
    assert body["algorithm"] == "Ed25519" and body["fingerprint"].startswith("sha256:")
    path = tmp_path / "archive-key.pub.pem"
    path.write_text(body["public_key_pem"])
    return path


def _unpack(data: bytes, tmp_path: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(tmp_path / "bag")
    (root,) = (tmp_path / "bag").iterdir()
    return root


def test_the_case_file_is_a_valid_signed_bag(client, auth, case: Case, tmp_path: Path, app) -> None:
    data = _download(client, auth, case)
    root = _unpack(data, tmp_path)
    assert root.name == f"case-{case.inspection.id}"
    bag = bagit.Bag(str(root))
    bag.validate()  # the library of record: every payload hash, the tag manifest, Payload-Oxum
    assert bag.info["External-Identifier"] == f"inspection:{case.inspection.id}"
    assert bag.info["Retention-Class"] == "ordinary" and bag.info["Legal-Hold"] == "none"
    assert bag.info["Decisions-Served"] == "0 of 0"  # packed before any decision: the file says so
    names = {Path(p).name for p in bag.payload_files()}
    assert {"joint-record.json", "decisions.json", "review-decisions.json", "draw-record.json", "certificates.json",
            "audit-entries.json", "retention.json", "manifest.json"} <= names
    assert {"joint-report.pdf", "joint-report.html"} & names
    evidence = json.loads((root / "data/evidence/manifest.json").read_text())["evidence"]
    assert sorted(e["capture_sha256"] for e in evidence) == sorted([case.video.sha256, case.photo.sha256])
    for item in evidence:  # each file under its capture hash
        assert hashlib.sha256((root / item["path"]).read_bytes()).hexdigest() == item["capture_sha256"]
        assert item["retention"]["class"] == "ordinary"
    certificates = json.loads((root / "data/certificates.json").read_text())
    assert {c["number"]: c["status_on_day"] for c in certificates["certificates"]} == {
        "CERT-M-001": "valid", "CERT-E-001": "valid"}
    audit = json.loads((root / "data/audit-entries.json").read_text())
    assert any(e["action"] == "case_file.download" for e in audit)
    assert json.loads((root / "data/decisions.json").read_text())["available"] is True

    (tmp_path / "case.zip").write_bytes(data)
    verdict = verify_case_file(tmp_path / "case.zip", keys.load_public_pem(_public_key(client, tmp_path).read_bytes()))
    assert verdict.ok, verdict.problems
    assert verdict.payload_files == len(list(bag.payload_files()))
    # The download is in the audit log, by whom.
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "case_file.download"))
    assert entry is not None and entry.actor_username == "m-sup" and entry.object_id == str(case.inspection.id)


def _cli_verify(runner, path: Path, key: Path):  # type: ignore[no-untyped-def]
    return runner.invoke(args=["case-file-verify", str(path), "--public-key", str(key)])


def test_case_file_verify_accepts_the_download_and_names_each_tampering(client, auth, case: Case, runner,
                                                                        tmp_path: Path) -> None:
    data = _download(client, auth, case)
    key = _public_key(client, tmp_path)
    good = tmp_path / "case.zip"
    good.write_bytes(data)
    result = _cli_verify(runner, good, key)
    assert result.exit_code == 0, result.output
    assert "OK" in result.output

    evidence = f"data/evidence/{case.video.id}.mp4"

    # 1. One byte of evidence changed.
    changed = _unpack(data, tmp_path / "changed")
    target = changed / evidence
    raw = bytearray(target.read_bytes())
    raw[100] ^= 0x01
    target.write_bytes(bytes(raw))
    result = _cli_verify(runner, changed, key)
    assert result.exit_code == 1
    assert f"{evidence}: sha256 does not match the manifest" in result.output and "changed" in result.output

    # 2. A file removed.
    removed = _unpack(data, tmp_path / "removed")
    (removed / "data/certificates.json").unlink()
    result = _cli_verify(runner, removed, key)
    assert result.exit_code == 1
    assert "data/certificates.json: listed in the manifest but missing" in result.output

    # 3. Evidence changed and every manifest re-hashed to match, without the archive key.
    forged = _unpack(data, tmp_path / "forged")
    target = forged / evidence
    raw = bytearray(target.read_bytes())
    raw[100] ^= 0x01
    target.write_bytes(bytes(raw))
    new_hash = hashlib.sha256(bytes(raw)).hexdigest()
    manifest = (forged / "manifest-sha256.txt").read_text()
    manifest = "".join(f"{new_hash}  {evidence}\n" if line.endswith(f"  {evidence}") else f"{line}\n"
                       for line in manifest.splitlines())
    (forged / "manifest-sha256.txt").write_text(manifest)
    listing = forged / "data/evidence/manifest.json"
    listing.write_text(listing.read_text().replace(case.video.sha256, new_hash))
    manifest = (forged / "manifest-sha256.txt").read_text()
    listing_line = f"{hashlib.sha256(listing.read_bytes()).hexdigest()}  data/evidence/manifest.json"
    manifest = "".join(listing_line + "\n" if line.endswith("  data/evidence/manifest.json") else f"{line}\n"
                       for line in manifest.splitlines())
    (forged / "manifest-sha256.txt").write_text(manifest)
    tags = "".join(f"{hashlib.sha256((forged / name).read_bytes()).hexdigest()}  {name}\n"
                   for name in ("bag-info.txt", "bagit.txt", "manifest-sha256.txt"))
    (forged / "tagmanifest-sha256.txt").write_text(tags)
    bagit.Bag(str(forged)).validate()  # a consistent bag: only the signature tells
    result = _cli_verify(runner, forged, key)
    assert result.exit_code == 1
    assert "tagmanifest-sha256.txt: the archive signature does not verify" in result.output

    # A key other than the archive's is no proof either.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = tmp_path / "other.pem"
    other.write_text(keys.public_pem(Ed25519PrivateKey.generate().public_key()))
    result = _cli_verify(runner, good, other)
    assert result.exit_code == 1 and "not with the archive key" in result.output


def test_the_archive_key_is_made_once_and_kept_private(client, app, tmp_path: Path) -> None:
    first = client.get("/api/v1/archive-key").get_json()
    second = client.get("/api/v1/archive-key").get_json()
    assert first == second
    pem = client.get("/api/v1/archive-key?format=pem")
    assert pem.mimetype == "application/x-pem-file" and pem.get_data(as_text=True) == first["public_key_pem"]
    assert_problem(client.get("/api/v1/archive-key?format=der"), 422)
    path = app.config["SETTINGS"].var_dir / keys.KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600


def test_who_may_download_the_case_file(client, auth, case: Case) -> None:
    url = f"/api/v1/inspections/{case.inspection.id}/case-file"
    assert_problem(client.get(url), 401)
    # An inspector on the team reads the record, not the case file (it holds the audit log).
    assert_problem(client.get(url, headers=auth.headers("m-insp")), 403)
    # A participating department's supervisor may; another department's does not learn it exists.
    assert client.get(url, headers=auth.headers("e-sup")).status_code == 200
    other = new_department("ZRZY", "自然资源局")
    new_user("z-sup", "supervisor", other)
    db.session.commit()
    assert_problem(client.get(url, headers=auth.headers("z-sup")), 404, "not-found")
    assert_problem(client.get(f"/api/v1/inspections/{case.world.task.id}/case-file",
                              headers=auth.headers("m-sup")), 404)
    refused = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "case_file.download")).all()
    assert [e.actor_username for e in refused] == ["e-sup"]


def test_streaming_reads_evidence_in_blocks_with_flat_memory(app, world, tmp_path: Path) -> None:
    footage = bytes(range(256)) * (48 * 1024 * 1024 // 256)  # 48 MiB
    case = build_case(world, video=footage)
    del footage
    built = casefile.assemble(SYSTEM, case.inspection.id, tmp_path / "var")
    reads: list[int] = []
    original = built.read

    def counting(key: str):  # type: ignore[no-untyped-def]
        for block in original(key):
            reads.append(len(block))
            yield block

    built = casefile.CaseFile(built.name, built.payload, built.tags, counting)
    tracemalloc.start()
    total, largest = 0, 0
    digest = hashlib.sha256()
    for chunk in casefile.stream_zip(built):
        total += len(chunk)
        largest = max(largest, len(chunk))
        digest.update(chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total > 48 * 1024 * 1024
    assert max(reads) <= BLOCK_SIZE  # never the whole file at once
    assert largest <= BLOCK_SIZE + 64 * 1024
    assert peak < 8 * 1024 * 1024, peak  # 48 MiB streamed; a few blocks held at most


def test_a_stored_file_that_rotted_is_named_when_verified(client, auth, case: Case, tmp_path: Path, app) -> None:
    from server.uploads.service import uploads

    store = uploads().store
    key = store.object_key(case.photo.sha256)
    path = store.root / "objects" / key  # type: ignore[attr-defined]
    path.chmod(0o644)
    path.write_bytes(b"rotted bytes")
    data = _download(client, auth, case)
    key = keys.load_public_pem(_public_key(client, tmp_path).read_bytes())
    verdict = verify_case_file(_unpack(data, tmp_path), key)
    assert any(f"data/evidence/{case.photo.id}.jpg" in p for p in verdict.problems), verdict.problems


@pytest.mark.parametrize("garbage", [b"not a zip", b"PK\x03\x04broken"])
def test_case_file_verify_refuses_what_is_not_a_case_file(runner, tmp_path: Path, garbage: bytes, client) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(garbage)
    result = _cli_verify(runner, path, _public_key(client, tmp_path))
    assert result.exit_code == 1
    assert "FAILED" in result.output


def test_the_case_file_of_a_missing_inspection_is_404(client, auth, world) -> None:
    import uuid

    assert_problem(client.get(f"/api/v1/inspections/{uuid.uuid4()}/case-file", headers=auth.headers("m-sup")), 404)


def test_the_archive_office_checks_without_the_server(client, auth, case: Case, tmp_path: Path) -> None:
    """``python -m server.archive.verify``: no settings, no database, only the file and the published key."""
    import os
    import subprocess
    import sys

    good = tmp_path / "case.zip"
    good.write_bytes(_download(client, auth, case))
    key = _public_key(client, tmp_path)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    done = subprocess.run([sys.executable, "-m", "server.archive.verify", str(good), "--public-key", str(key)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout
    with zipfile.ZipFile(good) as archive, zipfile.ZipFile(tmp_path / "cut.zip", "w") as cut:
        for item in archive.infolist():
            if not item.filename.endswith("data/draw-record.json"):
                cut.writestr(item, archive.read(item))
    done = subprocess.run([sys.executable, "-m", "server.archive.verify", str(tmp_path / "cut.zip"),
                           "--public-key", str(key)], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 1
    assert "data/draw-record.json: listed in the manifest but missing" in done.stderr


def test_the_draw_and_the_review_decisions_are_in_the_file(client, auth, case: Case, tmp_path: Path) -> None:
    from server.planning.models import Draw
    from server.review.models import DecisionKind, ReviewDecision

    world = case.world
    chosen = Draw(department_id=world.market.id, seed="a" * 64, inputs={"enterprises": [str(world.enterprise.id)]},
                  input_hash="b" * 64, result={"pairs": []}, result_hash="c" * 64, task_ids=[str(world.task.id)])
    other = Draw(department_id=world.market.id, seed="d" * 64, inputs={}, input_hash="e" * 64, result={},
                 result_hash="f" * 64, task_ids=[])
    db.session.add_all([chosen, other])
    db.session.add(ReviewDecision(inspection_id=case.inspection.id, task_id=world.task.id,
                                  department_id=world.market.id, kind=DecisionKind.APPROVE, comment="同意",
                                  decided_by_id=world.people["m-sup"].id))
    db.session.commit()
    root = _unpack(_download(client, auth, case), tmp_path)
    draws = json.loads((root / "data/draw-record.json").read_text())
    assert [(d["id"], d["seed"], d["result_hash"]) for d in draws] == [(str(chosen.id), "a" * 64, "c" * 64)]
    reviews = json.loads((root / "data/review-decisions.json").read_text())
    assert [(r["kind"], r["decided_by"], r["comment"]) for r in reviews] == [("approve", "m-sup", "同意")]
    audit = json.loads((root / "data/audit-entries.json").read_text())
    assert all(e["object_id"] in {str(case.inspection.id), str(world.task.id), str(case.video.id),
                                  str(case.photo.id), str(chosen.id)} for e in audit)
