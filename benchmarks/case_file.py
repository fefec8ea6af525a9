"""Case file: build and stream one inspection's signed BagIt zip against ``zip -0`` of the same files, and
``case-file-verify`` against ``sha256sum -c`` on the same payload, in the same run.

    .venv/bin/python benchmarks/case_file.py --gib 2       # 2 GiB of footage in 4 files
    .venv/bin/python benchmarks/case_file.py --quick       # tiny files, for the test suite

The case file is written to a file (as ``case-file-export`` does: the bytes the download streams), its
peak RSS measured; ``zip -0 -r`` packs the same evidence files from the media store. Verification unpacks the
zip and runs ``bagit`` and the signature check; ``sha256sum -c`` checks the manifest's lines on the unpacked
payload. Prints one ``result: {...}`` line.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_app(var: Path):  # type: ignore[no-untyped-def]
    from flask_migrate import upgrade

    from server import create_app

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{var / 'bench.db'}"},
                     env={"INSPECT_ONCE_VAR": str(var), "MEDIA_ROOT": str(var / "media"), "INSPECT_ONCE_DEBUG": "1",
                          "INSPECT_ONCE_MEDIA_MIN_FREE_BYTES": "0"})
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory, revision="heads")
    return app


def footage(store, size: int, seed: int):  # type: ignore[no-untyped-def]
    """A file of ``size`` pseudo-random bytes put in the store in 8 MiB blocks (never held whole)."""
    block = os.urandom(8 << 20)

    def blocks():  # type: ignore[no-untyped-def]
        left = size
        first = True
        while left > 0:
            piece = block[: min(left, len(block))]
            if first:
                piece = seed.to_bytes(8, "big") + piece[8:]
                first = False
            left -= len(piece)
            yield piece

    return store.put(blocks())


def timed(fn) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=2.0, help="footage in GiB (default 2)")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    total = 256 * 1024 if args.quick else int(args.gib * (1 << 30))
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="case-file-bench-") as tmp:
        var = Path(tmp) / "var"
        app = build_app(var)
        with app.app_context():
            from server.archive import casefile
            from server.auth.policy import SYSTEM
            from server.extensions import db
            from server.uploads.models import Media, MediaObject, VerificationStatus
            from server.uploads.service import uploads
            from tests.conftest import build_world
            from tests.server.archive.conftest import build_case

            world = build_world()
            case = build_case(world)
            store = uploads().store
            paths = []
            for index in range(args.files):
                stored = footage(store, total // args.files, index)
                db.session.add(MediaObject(sha256=stored.sha256, size=stored.size, backend=stored.backend,
                                           key=stored.key))
                db.session.flush()
                db.session.add(Media(sha256=stored.sha256, size=stored.size, department_id=world.market.id,
                                     task_id=world.task.id, content_type="video/mp4", file_name=f"clip{index}.mp4",
                                     verification_status=VerificationStatus.VERIFIED, verification_reasons=[]))
                paths.append(str(store.root / "objects" / stored.key))
            db.session.commit()
            out = Path(tmp) / "case.zip"
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

            marks: dict[str, float] = {}

            def build_and_stream() -> int:
                started = time.perf_counter()
                built = casefile.assemble(SYSTEM, case.inspection.id, var)
                db.session.commit()
                marks["assemble_seconds"] = time.perf_counter() - started
                marks["rss_after_assemble"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                written = 0
                with out.open("wb") as sink:
                    for chunk in casefile.stream_zip(built):
                        sink.write(chunk)
                        written += len(chunk)
                return written

            case_seconds, case_bytes = timed(build_and_stream)
            rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            result: dict[str, object] = {"quick": args.quick, "footage_bytes": total, "files": args.files,
                                         "case_file_seconds": round(case_seconds, 3), "case_file_bytes": case_bytes,
                                         "assemble_seconds": round(marks["assemble_seconds"], 3),
                                         # Peak RSS while gathering (PDF report rendering dominates) and the
                                         # growth of the peak while the footage streamed (flat: blocks only).
                                         "peak_rss_growth_assemble_mib": round(
                                             (marks["rss_after_assemble"] - rss_before) / 1024, 1),
                                         "peak_rss_growth_streaming_mib": round(
                                             (rss_after - marks["rss_after_assemble"]) / 1024, 1)}
            if shutil.which("zip"):
                plain = Path(tmp) / "plain.zip"
                zip_seconds, _ = timed(lambda: subprocess.run(["zip", "-0", "-q", "-j", str(plain), *paths],
                                                              check=True))
                result["zip0_seconds"] = round(zip_seconds, 3)
                result["case_file_vs_zip0"] = round(case_seconds / zip_seconds, 2) if zip_seconds else None
            else:
                skipped.append("zip -0 (zip not installed)")
            from server.archive import keys
            from server.archive.verify import verify_case_file

            public = keys.private_key(var).public_key()
            verify_seconds, verdict = timed(lambda: verify_case_file(out, public))
            assert verdict.ok, verdict.problems  # type: ignore[attr-defined]
            result["case_file_verify_seconds"] = round(verify_seconds, 3)
            unpacked = Path(tmp) / "unpacked"
            import zipfile

            with zipfile.ZipFile(out) as archive:
                archive.extractall(unpacked)
            (root,) = unpacked.iterdir()
            if shutil.which("sha256sum"):
                sha_seconds, _ = timed(lambda: subprocess.run(["sha256sum", "-c", "--quiet", "manifest-sha256.txt"],
                                                              cwd=root, check=True))
                result["sha256sum_c_seconds"] = round(sha_seconds, 3)
                result["verify_vs_sha256sum"] = round(verify_seconds / sha_seconds, 2) if sha_seconds else None
            else:
                skipped.append("sha256sum -c (coreutils missing)")
            result["skipped"] = skipped
    print("result: " + json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
