"""Resumable uploads into an S3 object store: this server vs the Node tus server with its S3 store.

    .venv/bin/python benchmarks/upload_s3.py [--size-mb 512] [--chunk-mb 8] [--rounds 3] [--workdir DIR]

In one run, on loopback, against one S3-compatible server (``rclone serve s3`` over a folder of
--workdir, the one the tests start: tests/s3server.py), for --rounds rounds (who goes first alternates):
1. this server as in production (`flask --app server serve`, MEDIA_STORE_URL=s3://…), started fresh,
   receives a file of --size-mb from the reference Python client `tuspy` with --chunk-mb chunks;
   every PATCH is acknowledged only once its bytes are in S3 (parts, or the pending object);
2. `@tus/server` with `@tus/s3-store` (installed with npm into --workdir once), started fresh, receives
   the same file from the same client with the same chunk size, into the same S3 server.
The peak RSS of each server's processes is read from /proc after each upload, and the object each
stored is checked (size; ours: its SHA-256). Prints the rounds, the medians and the ratio, and a last
`result:` line (JSON). --quick: 8 MiB, one round; @tus/s3-store is skipped when npm's cache lacks it
(the quick mode downloads nothing).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.upload import (  # noqa: E402 - after the path is set
    free_port,
    make_file,
    node_install,
    peak_rss_mb,
    start_ours,
    stop,
    tuspy_upload,
    wait_http,
)
from tests.s3server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server  # noqa: E402

NODE_S3_SERVER = """
import http from 'node:http';
import { Server } from '@tus/server';
import { S3Store } from '@tus/s3-store';
const [endpoint, bucket, port, partSize] = process.argv.slice(2);
const datastore = new S3Store({
  partSize: Number(partSize),
  // As ours: the SDK's default trailing checksums are not taken by every S3-compatible server.
  s3ClientConfig: { bucket, endpoint, region: 'us-east-1', forcePathStyle: true,
                    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
                    credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID,
                                   secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY } },
});
const tus = new Server({ path: '/files', datastore });
http.createServer((req, res) => tus.handle(req, res)).listen(Number(port), '127.0.0.1');
"""


def credentials() -> dict[str, str]:
    import os

    return {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


def ours(s3: S3Server, var: Path, path: Path, sha: str, chunk: int, prefix: str) -> tuple[float, float]:
    env = {**credentials(), **s3.store_env(prefix)}
    server, base, headers = start_ours(var, env)
    try:
        seconds = tuspy_upload(base + "/api/v1/uploads/", path, chunk,
                               {"sha256": sha, "filename": path.name, "device_id": "SCJG-DOCK1"}, headers)
        rss = peak_rss_mb(server.pid)
    finally:
        stop(server)
        shutil.rmtree(var, ignore_errors=True)
    where = f"{prefix}/objects/{sha[:2]}/{sha[2:4]}/{sha}"  # the object, or the upload placed under it
    sizes = [o["Size"] for o in s3.client().list_objects_v2(Bucket=BUCKET, Prefix=where).get("Contents", [])]
    if sizes != [path.stat().st_size]:
        raise SystemExit(f"ours stored {sizes} bytes under {where}, expected {path.stat().st_size}")
    return seconds, rss


def node(s3: S3Server, node_dir: Path, path: Path, chunk: int, prefix: str) -> tuple[float, float]:
    port = free_port()
    process = subprocess.Popen(["node", "server.mjs", s3.endpoint, BUCKET, str(port), str(chunk)], cwd=node_dir,
                               env=credentials(), start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/files")
        before = {o["Key"] for o in s3.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])}
        seconds = tuspy_upload(f"http://127.0.0.1:{port}/files", path, chunk, {"filename": path.name}, {})
        rss = peak_rss_mb(process.pid)
    finally:
        stop(process)
    after = s3.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])
    stored = [o for o in after if o["Key"] not in before and o["Size"] == path.stat().st_size]
    if not stored:
        raise SystemExit("@tus/s3-store left no object of the file's size")
    return seconds, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--chunk-mb", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "inspect-once-upload-s3-bench")
    parser.add_argument("--quick", action="store_true", help="8 MiB, one round, nothing downloaded")
    args = parser.parse_args()
    if args.quick:
        args.size_mb, args.rounds = 8, 1
    args.workdir.mkdir(parents=True, exist_ok=True)
    chunk = args.chunk_mb << 20
    skipped = []
    node_dir = args.workdir / "node-s3"
    why_not = node_install(node_dir, offline=args.quick, store="s3-store", script=NODE_S3_SERVER)
    if why_not:
        skipped.append(f"@tus/s3-store: {why_not}")
    source = args.workdir / f"footage-{args.size_mb}.bin"
    sha = make_file(source, args.size_mb)
    ours_runs: list[tuple[float, float]] = []
    node_runs: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp, S3Server.start(Path(tmp) / "s3") as s3:
        for n in range(args.rounds):
            order = ["ours", "node"] if n % 2 == 0 else ["node", "ours"]
            for who in order:
                if who == "ours":
                    ours_runs.append(ours(s3, Path(tmp) / f"var-{n}", source, sha, chunk, f"ours-{n}"))
                    print(f"round {n + 1}: ours   {args.size_mb / ours_runs[-1][0]:7.1f} MiB/s  "
                          f"peak RSS {ours_runs[-1][1]:.0f} MB", flush=True)
                elif not why_not:
                    node_runs.append(node(s3, node_dir, source, chunk, f"node-{n}"))
                    print(f"round {n + 1}: @tus/s3-store {args.size_mb / node_runs[-1][0]:7.1f} MiB/s  "
                          f"peak RSS {node_runs[-1][1]:.0f} MB", flush=True)
                # Each server's bytes are gone before the next one's, so the S3 server's disk holds one copy.
                client = s3.client()
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
                    for entry in page.get("Contents", []):
                        client.delete_object(Bucket=BUCKET, Key=entry["Key"])
    source.unlink()
    ours_rate = statistics.median(args.size_mb / s for s, _ in ours_runs)
    result = {"benchmark": "upload_s3", "quick": args.quick, "size_mb": args.size_mb, "chunk_mb": args.chunk_mb,
              "rounds": args.rounds, "ours_mib_s": round(ours_rate, 1),
              "ours_peak_rss_mb": round(max(r for _, r in ours_runs), 1), "skipped": skipped}
    print(f"this server, S3 store     : {ours_rate:7.1f} MiB/s (median of {len(ours_runs)})")
    if node_runs:
        node_rate = statistics.median(args.size_mb / s for s, _ in node_runs)
        ratios = [(args.size_mb / o[0]) / (args.size_mb / t[0]) for o, t in zip(ours_runs, node_runs, strict=True)]
        print(f"@tus/server + @tus/s3-store: {node_rate:7.1f} MiB/s   ratio ours/node {statistics.median(ratios):.2f} "
              f"(rounds {' / '.join(f'{r:.2f}' for r in ratios)})")
        result.update({"node_mib_s": round(node_rate, 1), "ratio": round(statistics.median(ratios), 3),
                       "ratios": [round(r, 3) for r in ratios],
                       "node_peak_rss_mb": round(max(r for _, r in node_runs), 1)})
    print("result: " + json.dumps(result))


if __name__ == "__main__":
    main()
