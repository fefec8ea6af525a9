"""Resumable upload throughput and memory: this server vs the Node tus reference server.

    .venv/bin/python benchmarks/upload.py [--size-mb 1024] [--big-mb 2048] [--chunk-mb 8]

In one run, on loopback, for --rounds rounds (who goes first alternates):
1. this server as in production (`flask --app server serve`: gunicorn, gthread), started fresh,
   receives a file of --size-mb from the reference Python client `tuspy`;
2. the Node reference server `@tus/server` with `@tus/file-store` (installed with npm into a temporary
   folder), started fresh, receives the same file from the same client with the same chunk size;
3. curl sends the file to a fresh server of ours in a single streaming PATCH.
Then a fresh server of ours receives a file of --big-mb. The peak RSS of a server's processes is read
from /proc (VmHWM) after each upload. Prints the rounds, the medians, the ratio and the RSS figures.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"

NODE_SERVER = """
import http from 'node:http';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';
const tus = new Server({ path: '/files', datastore: new FileStore({ directory: process.argv[2] }) });
http.createServer((req, res) => tus.handle(req, res)).listen(Number(process.argv[3]), '127.0.0.1');
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_file(path: Path, size_mb: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with path.open("wb") as f:
        for n in range(size_mb):
            chunk = block[:-8] + n.to_bytes(8, "big")  # every MiB differs
            f.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def process_tree(pid: int) -> list[int]:
    out = [pid]
    for child in Path("/proc").iterdir():
        if child.name.isdigit():
            try:
                stat = (child / "stat").read_text().split()
            except OSError:
                continue
            if int(stat[3]) == pid:
                out.extend(process_tree(int(child.name)))
    return out


def peak_rss_mb(pid: int) -> float:
    peak = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


def tuspy_upload(url: str, path: Path, chunk: int, metadata: dict[str, str], headers: dict[str, str]) -> float:
    from tusclient import client

    uploader = client.TusClient(url, headers=headers).uploader(str(path), chunk_size=chunk, metadata=metadata,
                                                               retries=0)
    start = time.perf_counter()
    uploader.upload()
    return time.perf_counter() - start


def start_ours(var: Path) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    port = free_port()
    env = {**os.environ, "INSPECT_ONCE_VAR": str(var), "SECRET_KEY": "s" * 40, "JWT_SIGNING_KEY": "j" * 40,
           "INSPECT_ONCE_PORT": str(port), "INSPECT_ONCE_MAX_UPLOAD_BYTES": str(8 << 30)}
    flask = [str(VENV_BIN / "flask"), "--app", "server"]
    subprocess.run([*flask, "init-db"], env=env, check=True, capture_output=True)
    subprocess.run([*flask, "create-department", "--code", "SCJG", "--name", "市场监管局"], env=env, check=True,
                   capture_output=True)
    out = subprocess.run([*flask, "create-device", "--id", "SCJG-DOCK1", "--kind", "dock", "--department", "SCJG"],
                         env=env, check=True, capture_output=True, text=True).stdout
    secret = out.strip().splitlines()[-1]
    server = subprocess.Popen([*flask, "serve"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz")
    request = urllib.request.Request(base + "/api/v1/auth/device-token", method="POST",
                                     data=json.dumps({"device_id": "SCJG-DOCK1", "device_secret": secret}).encode(),
                                     headers={"Content-Type": "application/json"})
    token = json.load(urllib.request.urlopen(request))["access_token"]
    return server, base, {"Authorization": f"Bearer {token}"}


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def curl_single_patch(base: str, headers: dict[str, str], path: Path, sha: str) -> float:
    size = path.stat().st_size
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in
                    {"sha256": sha, "filename": "curl.bin", "device_id": "SCJG-DOCK1"}.items())
    auth = ["-H", f"Authorization: {headers['Authorization']}", "-H", "Tus-Resumable: 1.0.0"]
    created = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "-X", "POST", *auth,
                              "-H", f"Upload-Length: {size}", "-H", f"Upload-Metadata: {meta}",
                              base + "/api/v1/uploads/"], check=True, capture_output=True, text=True).stdout
    location = next(
        line.split(":", 1)[1].strip() for line in created.splitlines() if line.lower().startswith("location:")
    )
    if location.startswith("/"):
        location = base + location
    start = time.perf_counter()
    result = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PATCH", *auth,
                             "-H", "Upload-Offset: 0", "-H", "Content-Type: application/offset+octet-stream",
                             "-H", "Expect:", "--upload-file", str(path), location],  # -T streams the file
                            check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.stdout != "204":
        raise SystemExit(f"curl PATCH answered {result.stdout}")
    return seconds


def node_install(directory: Path) -> None:
    directory.mkdir()
    subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "@tus/server", "@tus/file-store"],
                   cwd=directory, check=True)
    (directory / "server.mjs").write_text(NODE_SERVER)


def node_upload(node_dir: Path, store: Path, path: Path, chunk: int) -> tuple[float, float]:
    """Seconds for tuspy to upload ``path`` to a fresh @tus/server, and its peak RSS in MB."""
    store.mkdir()
    port = free_port()
    node = subprocess.Popen(["node", "server.mjs", str(store), str(port)], cwd=node_dir, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/files")
        seconds = tuspy_upload(f"http://127.0.0.1:{port}/files", path, chunk, {"filename": path.name}, {})
        return seconds, peak_rss_mb(node.pid)
    finally:
        stop(node)
        shutil.rmtree(store, ignore_errors=True)


def ours_upload(var: Path, path: Path, sha: str, chunk: int | None) -> tuple[float, float]:
    """Seconds for tuspy (or, with no chunk size, one curl PATCH) to upload ``path`` to a fresh server of
    ours, and the peak RSS in MB of its processes (master and workers)."""
    server, base, headers = start_ours(var)
    try:
        if chunk is None:
            seconds = curl_single_patch(base, headers, path, sha)
        else:
            seconds = tuspy_upload(base + "/api/v1/uploads/", path, chunk,
                                   {"sha256": sha, "filename": path.name, "device_id": "SCJG-DOCK1"}, headers)
        return seconds, peak_rss_mb(server.pid)
    finally:
        stop(server)
        shutil.rmtree(var, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--big-mb", type=int, default=2048)
    parser.add_argument("--chunk-mb", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    chunk = args.chunk_mb << 20
    mb = args.size_mb
    with tempfile.TemporaryDirectory(prefix="upload-bench-") as tmp:
        tmp_path = Path(tmp)
        node_dir = tmp_path / "node"
        node_install(node_dir)
        small, small_sha = tmp_path / "footage.bin", make_file(tmp_path / "footage.bin", mb)
        big, big_sha = tmp_path / "footage-big.bin", make_file(tmp_path / "footage-big.bin", args.big_mb)
        os.sync()  # neither server starts with the writeback of these files to do

        ours: list[tuple[float, float]] = []
        node: list[tuple[float, float]] = []
        curl: list[tuple[float, float]] = []
        for round_ in range(args.rounds):
            # Alternate who goes first, so neither always finds the page cache as the other left it.
            runs = [lambda: ours.append(ours_upload(tmp_path / "var", small, small_sha, chunk)),
                    lambda: node.append(node_upload(node_dir, tmp_path / "store", small, chunk))]
            for run in runs if round_ % 2 == 0 else reversed(runs):
                run()
                os.sync()
            curl.append(ours_upload(tmp_path / "var", small, small_sha, None))
            os.sync()
            print(f"round {round_ + 1}: ours {mb / ours[-1][0]:6.1f} MiB/s, node {mb / node[-1][0]:6.1f} MiB/s, "
                  f"ratio {node[-1][0] / ours[-1][0]:.2f}; curl single PATCH {mb / curl[-1][0]:6.1f} MiB/s",
                  flush=True)
        big_seconds, big_rss = ours_upload(tmp_path / "var", big, big_sha, chunk)

    ours_rate = mb / statistics.median(s for s, _ in ours)
    node_rate = mb / statistics.median(s for s, _ in node)
    ratios = [n / o for (o, _), (n, _) in zip(ours, node, strict=True)]
    print(f"file {mb} MiB, tuspy chunks of {args.chunk_mb} MiB, loopback, {args.rounds} rounds, medians")
    print(f"this server (gunicorn) : {ours_rate:7.1f} MiB/s")
    print(f"@tus/server FileStore  : {node_rate:7.1f} MiB/s")
    print(f"ratio ours/node        : {statistics.median(ratios):.2f}  (per round: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}; target >= 1.00)")
    print(f"curl single PATCH      : {mb / statistics.median(s for s, _ in curl):7.1f} MiB/s")
    small_rss = statistics.median(r for _, r in ours)
    print(f"peak RSS, fresh server, {mb:5d} MiB tuspy upload: {small_rss:6.1f} MB")
    print(f"peak RSS, fresh server, {args.big_mb:5d} MiB tuspy upload: {big_rss:6.1f} MB  "
          f"({args.big_mb / big_seconds:.1f} MiB/s)")
    print(f"peak RSS, fresh server, {mb:5d} MiB curl PATCH:   {statistics.median(r for _, r in curl):6.1f} MB;  "
          f"node reference peak RSS {statistics.median(r for _, r in node):.1f} MB")
    print("targets: throughput >= node, RSS < 150 MB for 2 GiB, same RSS for 1 and 2 GiB")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
