"""Resumable upload throughput and memory: this server vs the Node tus reference server.

    .venv/bin/python benchmarks/upload.py [--size-mb 1024] [--big-mb 2048] [--chunk-mb 8]

In one run, on loopback, for --rounds rounds (who goes first alternates):
1. this server as in production (`flask --app server serve`: gunicorn, gthread), started fresh,
   receives a file of --size-mb from the reference Python client `tuspy`;
2. `dd bs=1M conv=fdatasync` writes the same file: the disk's durable-write limit, in the same run;
3. the Node reference server `@tus/server` with `@tus/file-store` (installed with npm into --workdir
   once), started fresh, receives the same file from the same client with the same chunk size;
4. curl sends the file to a fresh server of ours in a single streaming PATCH.
Then a fresh server of ours receives a file of --big-mb. The peak RSS of a server's processes is read
from /proc (VmHWM) after each upload. Prints the rounds, the medians, the ratios and the RSS figures,
and a last `result:` line (JSON). --quick: 8 MiB, one round, and a peer whose tool is missing (or, for
@tus/server, not in npm's cache: the quick mode downloads nothing) is skipped, saying so.
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


def prepare_ours(var: Path, extra_env: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    """A fresh server's environment and database (migrated, one department, a dock), made through the
    server's own services in this process — a subprocess per CLI command would cost seconds each."""
    import logging

    from flask_migrate import upgrade

    from server import create_app
    from server.auth.policy import SYSTEM
    from server.directory import service as directory
    from server.extensions import db

    env = {**os.environ, "INSPECT_ONCE_VAR": str(var), "SECRET_KEY": "s" * 40, "JWT_SIGNING_KEY": "j" * 40,
           "INSPECT_ONCE_PORT": str(free_port()), "INSPECT_ONCE_MAX_UPLOAD_BYTES": str(8 << 30), **(extra_env or {})}
    env.pop("DATABASE_URL", None)  # the server's own SQLite file under var/
    app = create_app(env=env)
    with app.app_context():
        logging.disable(logging.INFO)  # the migrations' progress lines
        try:
            upgrade(directory=app.extensions["migrate"].directory, revision="heads")
        finally:
            logging.disable(logging.NOTSET)
        department = directory.create_department(SYSTEM, "SCJG", "市场监管局")
        dock = directory.create_device(SYSTEM, {"id": "SCJG-DOCK1", "kind": "dock", "department_id": department.id,
                                                "inspector_id": None})
        db.session.commit()
        secret = dock.secret
        db.engine.dispose()
    return env, secret


def start_ours(var: Path, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str,
                                                                          dict[str, str]]:
    env, secret = prepare_ours(var, extra_env)
    server = subprocess.Popen([str(VENV_BIN / "flask"), "--app", "server", "serve"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{env['INSPECT_ONCE_PORT']}"
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


def node_install(directory: Path, offline: bool, store: str = "file-store", script: str = NODE_SERVER) -> str | None:
    """Install @tus/server and its ``store`` (@tus/file-store) into ``directory`` (kept between runs); None
    when done, else why the Node reference server is skipped. ``offline`` never touches the network: only
    what npm's cache holds (the quick mode, in the test suite)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm not installed"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "server.mjs").write_text(script)
    if all((directory / "node_modules" / "@tus" / name / "package.json").exists() for name in ("server", store)):
        return None
    command = ["npm", "install", "--silent", "--no-audit", "--no-fund", "--no-save", "@tus/server", f"@tus/{store}"]
    if offline:
        command.insert(2, "--offline")
    try:
        subprocess.run(command, cwd=directory, check=True, capture_output=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = exc.stderr.decode(errors="replace").strip().splitlines()[-1:] if exc.stderr else []
        return ("@tus/server not in npm's cache (quick mode installs nothing from the network)" if offline
                else f"npm install @tus/server failed: {' '.join(detail)}")
    return None


def dd_fdatasync(source: Path, target: Path, size_mb: int) -> float:
    """Seconds for ``dd bs=1M conv=fdatasync`` to write ``size_mb`` MiB of ``source`` (in the page cache):
    the durable-write limit of this disk, in the same run."""
    start = time.perf_counter()
    subprocess.run(["dd", f"if={source}", f"of={target}", "bs=1M", f"count={size_mb}", "conv=fdatasync"],
                   check=True, capture_output=True)
    seconds = time.perf_counter() - start
    target.unlink()
    return seconds


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


# The quick mode starts one server of ours and sends every upload to it: starting gunicorn (the app
# preloaded) takes seconds on a busy machine, and the quick mode measures nothing.
_shared: tuple[subprocess.Popen[bytes], str, dict[str, str]] | None = None


def ours_upload(var: Path, path: Path, sha: str, chunk: int | None, *, shared: bool = False) -> tuple[float, float]:
    """Seconds for tuspy (or, with no chunk size, one curl PATCH) to upload ``path`` to a fresh server of
    ours (``shared``: the one server of the quick mode), and the peak RSS in MB of its processes."""
    global _shared
    if shared:
        if _shared is None:
            _shared = start_ours(var)
        server, base, headers = _shared
    else:
        server, base, headers = start_ours(var)
    try:
        if chunk is None:
            seconds = curl_single_patch(base, headers, path, sha)
        else:
            seconds = tuspy_upload(base + "/api/v1/uploads/", path, chunk,
                                   {"sha256": sha, "filename": path.name, "device_id": "SCJG-DOCK1"}, headers)
        return seconds, peak_rss_mb(server.pid)
    finally:
        if not shared:
            stop(server)
            shutil.rmtree(var, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--big-mb", type=int, default=2048)
    parser.add_argument("--chunk-mb", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "inspect-once-upload-bench",
                        help="where the Node reference server is installed (kept between runs)")
    parser.add_argument("--quick", action="store_true",
                        help="8 MiB in 1 MiB chunks, one round, nothing fetched from the network (the test suite)")
    args = parser.parse_args()
    if args.quick:
        args.size_mb, args.big_mb, args.chunk_mb, args.rounds = 8, 16, 1, 1
    chunk = args.chunk_mb << 20
    mb = args.size_mb
    skipped: list[str] = []
    args.workdir.mkdir(parents=True, exist_ok=True)
    node_dir = args.workdir / "node"
    why_not_node = node_install(node_dir, offline=args.quick)
    if why_not_node:
        skipped.append(f"@tus/server: {why_not_node}")
    if shutil.which("curl") is None:
        skipped.append("curl single PATCH: curl not installed")
    with tempfile.TemporaryDirectory(prefix="upload-bench-", dir=args.workdir) as tmp:
        tmp_path = Path(tmp)
        small, small_sha = tmp_path / "footage.bin", make_file(tmp_path / "footage.bin", mb)
        big, big_sha = tmp_path / "footage-big.bin", make_file(tmp_path / "footage-big.bin", args.big_mb)
        # Neither server starts with the writeback of these files to do. os.sync() flushes the whole
        # machine's dirty pages, which on a busy machine takes long: not in the quick mode (nothing timed).
        settle = (lambda: None) if args.quick else os.sync
        settle()

        ours: list[tuple[float, float]] = []
        node: list[tuple[float, float]] = []
        curl: list[tuple[float, float]] = []
        dd: list[float] = []
        for round_ in range(args.rounds):
            # Alternate who goes first, so neither always finds the page cache as the other left it.
            runs = [lambda: ours.append(ours_upload(tmp_path / "var", small, small_sha, chunk, shared=args.quick)),
                    lambda: dd.append(dd_fdatasync(small, tmp_path / "dd.out", mb))]
            if not why_not_node:
                runs.append(lambda: node.append(node_upload(node_dir, tmp_path / "store", small, chunk)))
            for run in runs if round_ % 2 == 0 else reversed(runs):
                run()
                settle()
            if shutil.which("curl"):
                curl.append(ours_upload(tmp_path / "var", small, small_sha, None, shared=args.quick))
                settle()
            line = f"round {round_ + 1}: ours {mb / ours[-1][0]:6.1f} MiB/s, dd {mb / dd[-1]:6.1f} MiB/s"
            if node:
                line += f", node {mb / node[-1][0]:6.1f} MiB/s"
            if curl:
                line += f", curl single PATCH {mb / curl[-1][0]:6.1f} MiB/s"
            print(line, flush=True)
        big_seconds, big_rss = ours_upload(tmp_path / "var", big, big_sha, chunk, shared=args.quick)
        if _shared is not None:
            stop(_shared[0])

    ours_rate = mb / statistics.median(s for s, _ in ours)
    dd_rate = mb / statistics.median(dd)
    per_round_dd = [d / o for (o, _), d in zip(ours, dd, strict=True)]
    result: dict[str, object] = {
        "benchmark": "upload", "quick": args.quick, "size_mb": mb, "chunk_mb": args.chunk_mb, "rounds": args.rounds,
        "ours_mib_s": round(ours_rate, 1), "dd_mib_s": round(dd_rate, 1),
        "ours_over_dd": round(statistics.median(per_round_dd), 3), "skipped": skipped}
    print(f"file {mb} MiB, tuspy chunks of {args.chunk_mb} MiB, loopback, {args.rounds} rounds, medians")
    print(f"this server (gunicorn) : {ours_rate:7.1f} MiB/s")
    print(f"dd conv=fdatasync      : {dd_rate:7.1f} MiB/s   ratio ours/dd {statistics.median(per_round_dd):.2f} "
          f"(per round: {', '.join(f'{r:.2f}' for r in per_round_dd)}; target >= 0.80)")
    if node:
        node_rate = mb / statistics.median(s for s, _ in node)
        ratios = [n / o for (o, _), (n, _) in zip(ours, node, strict=True)]
        print(f"@tus/server FileStore  : {node_rate:7.1f} MiB/s   ratio ours/node {statistics.median(ratios):.2f} "
              f"(per round: {', '.join(f'{r:.2f}' for r in ratios)}; target >= 1.10)")
        result.update(node_mib_s=round(node_rate, 1), ours_over_node=round(statistics.median(ratios), 3))
    if curl:
        curl_rate = mb / statistics.median(s for s, _ in curl)
        curl_dd = [d / c for (c, _), d in zip(curl, dd, strict=True)]
        print(f"curl single PATCH      : {curl_rate:7.1f} MiB/s   ratio curl/dd {statistics.median(curl_dd):.2f} "
              f"(target >= 0.90)")
        result.update(curl_mib_s=round(curl_rate, 1), curl_over_dd=round(statistics.median(curl_dd), 3))
    small_rss = statistics.median(r for _, r in ours)
    print(f"peak RSS, fresh server, {mb:5d} MiB tuspy upload: {small_rss:6.1f} MB")
    print(f"peak RSS, fresh server, {args.big_mb:5d} MiB tuspy upload: {big_rss:6.1f} MB  "
          f"({args.big_mb / big_seconds:.1f} MiB/s)")
    if curl:
        print(f"peak RSS, fresh server, {mb:5d} MiB curl PATCH:   {statistics.median(r for _, r in curl):6.1f} MB")
    if node:
        print(f"node reference peak RSS {statistics.median(r for _, r in node):.1f} MB")
    print("targets: >= 0.8 x dd, >= 1.1 x node, curl >= 0.9 x dd; RSS < 150 MB for 2 GiB, same for 1 and 2 GiB")
    for reason in skipped:
        print(f"skipped {reason}")
    result.update(rss_mb=round(small_rss, 1), big_rss_mb=round(big_rss, 1))
    print("result: " + json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
