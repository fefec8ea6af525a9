"""A county's tablets against one server: requests per second, latency and errors as their number steps up.

    .venv/bin/python benchmarks/load.py [--database URL] [--steps 100,250,500,1000] [--step-seconds 60]
                                        [--history 0] [--history 1000000] [--workers 4] [--quick]

Each simulated tablet is a device of its own, enrolled for the inspector of one task, and syncs once a
minute (at its own second of the minute), as the field app does when it has signal: it pulls from its
cursor, pushes a realistic batch (its task's inspection on the first sync, then two findings and a
media record), and uploads a photo (tus, 200 KB) every tenth sync. Before a step every tablet logs in
once (not timed; tokens last longer than a step). The server is the real one (``flask --app server
serve``: gunicorn with --workers processes) on --database (PostgreSQL: its public schema is dropped!).

--history N: before the steps, N changes of other tasks are written into the sync history with bulk
inserts (the rows the server writes, as benchmarks/sync_push.py does), and the tablets start at the
history's head, as tablets that synced before do; run with 0 and with 1000000 to compare.

Per step it prints requests/s, p50 and p99 latency of every request, errors, and how late the syncs
started against their schedule (a server that keeps up starts each sync on time); the knee is the
first step whose p99 passes 1 s or that has errors. Target: 1,000 tablets with p99 < 1 s, no error,
the same with a history of a million changes.
--quick: 5 tablets, two steps of 3 s, on SQLite, for the test suite.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import heapq
import http.client
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.sync_push import (  # noqa: E402 - after the path is set
    FLASK,
    PASSWORD,
    World,
    bench_raw,
    make_mutations,
    prepare,
    visit_task,
    wait_for,
)

PHOTO_BYTES = 200_000
LOADED = {"INSPECT_ONCE_LOGIN_RATE_LIMIT": "100000 per minute",
          "INSPECT_ONCE_LOGIN_ADDRESS_RATE_LIMIT": "100000 per minute"}


@dataclass
class Tablet:
    username: str
    device_id: str
    secret: str
    task_id: str
    token: str = ""
    cursor: str | None = None
    syncs: int = 0


@dataclass
class Step:
    tablets: int
    latencies: list[float] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float, error: str | None) -> None:
        with self.lock:
            self.requests += 1
            self.latencies.append(seconds)
            if error:
                self.errors[error] = self.errors.get(error, 0) + 1


def enrol_tablets(world: World, count: int) -> list[Tablet]:
    """Per tablet, as an office sets a county up: an inspector with a certificate, the tablet enrolled for
    them, and the one task (its own enterprise) they are sent on, made through the server's services."""
    from server import create_app
    from server.auth import passwords
    from server.auth.policy import SYSTEM
    from server.directory import service as directory
    from server.directory.models import Department
    from server.extensions import db

    # Cheap hashes for the set-up (logging in is not what is measured).
    passwords.configure(time_cost=1, memory_cost=1024)
    app = create_app(env=world.env)
    tablets = []
    today, now = date.today(), datetime.now(UTC)
    with app.app_context():
        department = db.session.get(Department, world.department_id)
        for n in range(count):
            user = directory.create_user(SYSTEM, {
                "username": f"load{n:05d}", "full_name": f"检查员{n}", "password": PASSWORD, "role": "inspector",
                "department_id": world.department_id, "certificate": {
                    "number": f"LOAD-{n:05d}", "valid_from": today - timedelta(days=30),
                    "valid_until": today + timedelta(days=365)}})
            device = directory.create_device(SYSTEM, {"id": f"LOAD-TAB{n:05d}", "kind": "tablet",
                                                      "department_id": world.department_id, "inspector_id": None})
            task = visit_task(department, user.id, [uuid.UUID(i) for i in world.item_ids], f"L{n:07d}", f"负载{n}",
                              now)
            tablets.append(Tablet(user.username, device.id, device.secret, str(task.id)))
            if n % 100 == 99:
                db.session.commit()
        db.session.commit()
        db.engine.dispose()
    return tablets


def write_history(world: World, changes: int, tasks: list[str]) -> str:
    """``changes`` changes of ``tasks`` in the sync history (bulk inserts); returns the head's cursor."""
    from sqlalchemy import create_engine, select

    from server.changefeed import ChangeCounter
    from server.sync.service import encode_cursor

    if changes:
        per_task = math.ceil(changes / len(tasks))
        written = 0
        for start in range(0, len(tasks), 20):
            chunk = World(world.env, world.url, world.device_secret, tasks[start:start + 20], world.item_ids,
                          world.department_id, world.user_id)
            want = min(changes - written, per_task * len(chunk.task_ids))
            if want <= 0:
                break
            mutations = make_mutations(want, chunk, len(world.item_ids), max(0, per_task - 1 - len(world.item_ids)))
            bench_raw(chunk, mutations, 5000)
            written += len(mutations)
    engine = create_engine(world.url)
    with engine.connect() as conn:
        seq = conn.execute(select(ChangeCounter.__table__.c.value)).scalar() or 0
    engine.dispose()
    return encode_cursor(int(seq))


def call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
         headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read(), dict(response.getheaders())


class Client:
    """One keep-alive connection of a worker thread; every request is timed into the step."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def send(self, step: Step | None, method: str, path: str, payload: Any = None, token: str = "",
             raw: bytes | None = None, headers: dict[str, str] | None = None,
             ok: tuple[int, ...] = (200,)) -> tuple[int, Any, dict[str, str]]:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        body = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
        began = time.perf_counter()
        try:
            try:
                status, data, answer = call(self.conn, method, path, body, all_headers)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed the idle keep-alive connection (gunicorn's keepalive): send again on a new
                # one, as HTTP clients do, and time that.
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                began = time.perf_counter()
                status, data, answer = call(self.conn, method, path, body, all_headers)
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            if step is not None:
                step.record(time.perf_counter() - began, type(exc).__name__)
            return 0, None, {}
        error = None if status in ok else f"{method} {path.split('?')[0].rsplit('/', 1)[0]} {status}"
        if step is not None:
            step.record(time.perf_counter() - began, error)
        decoded = json.loads(data) if data and answer.get("Content-Type", "").endswith("json") else None
        return status, decoded, answer


def log_in(client: Client, tablet: Tablet) -> None:
    status, data, _ = client.send(None, "POST", "/api/v1/auth/token", {
        "username": tablet.username, "password": PASSWORD, "device_id": tablet.device_id,
        "device_secret": tablet.secret})
    if status != 200:
        raise SystemExit(f"log-in of {tablet.device_id}: {status} {data}")
    tablet.token = data["access_token"]


def one_sync(client: Client, step: Step, tablet: Tablet, world: World) -> None:
    from server.sync.entities import inspection_id_for

    tablet.syncs += 1
    query = "/api/v1/sync/pull?limit=200" + (f"&cursor={tablet.cursor}" if tablet.cursor else "")
    status, page, _ = client.send(step, "GET", query, token=tablet.token)
    if status == 200 and page:
        tablet.cursor = page["cursor"]
    inspection = str(inspection_id_for(uuid.UUID(tablet.task_id)))
    wall = int(time.time() * 1000)
    count = iter(range(1000))

    def mutation(entity: str, entity_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "entity": entity, "entity_id": entity_id, "op": "upsert",
                "base_version": 0, "hlc": f"{wall:013d}-{next(count):04x}-{tablet.device_id}", "fields": fields}

    batch = []
    if tablet.syncs == 1:
        batch.append(mutation("inspection", inspection, {"task_id": tablet.task_id, "place": "生产车间"}))
    for item in world.item_ids[:2]:
        batch.append(mutation("finding", str(uuid.uuid4()), {"inspection_id": inspection, "check_item_id": item,
                                                              "result": "compliant", "note": "符合要求"}))
    photo = os.urandom(PHOTO_BYTES) if tablet.syncs % 10 == 1 else None
    media_id = str(uuid.uuid4())
    digest = hashlib.sha256(photo or media_id.encode()).hexdigest()
    batch.append(mutation("media", media_id, {"inspection_id": inspection, "sha256": digest,
                                              "size": len(photo) if photo else 1000, "content_type": "image/jpeg",
                                              "file_name": "IMG_0001.jpg", "proves": "scene"}))
    client.send(step, "POST", "/api/v1/sync/push", {"device_id": tablet.device_id, "mutations": batch},
                token=tablet.token)
    if photo is None:
        return
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in
                    (("sha256", digest), ("media_id", media_id), ("filename", "IMG_0001.jpg")))
    tus = {"Tus-Resumable": "1.0.0"}
    status, _, answer = client.send(step, "POST", "/api/v1/uploads/", raw=b"", token=tablet.token, ok=(201,),
                                    headers={**tus, "Upload-Length": str(len(photo)), "Upload-Metadata": meta})
    location = answer.get("Location", "")
    if status == 201 and location:
        path = "/" + location.split("/", 3)[3] if location.startswith("http") else location
        client.send(step, "PATCH", path, raw=photo, token=tablet.token, ok=(204,), headers={
            **tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})


def run_step(port: int, world: World, tablets: list[Tablet], seconds: float, threads: int,
             period: float = 60.0) -> Step:
    """Every tablet syncs once per ``period`` (at its own point of it), for ``seconds``."""
    step = Step(len(tablets))
    began = time.monotonic()
    schedule = [(began + (n * period / len(tablets)) % period, n) for n in range(len(tablets))]
    heapq.heapify(schedule)
    guard = threading.Lock()
    end = began + seconds

    def worker() -> None:
        client = Client(port)
        while True:
            with guard:
                if not schedule or schedule[0][0] >= end:
                    return
                due, n = heapq.heappop(schedule)
                heapq.heappush(schedule, (due + period, n))
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with step.lock:
                step.lateness.append(max(0.0, time.monotonic() - due))
            one_sync(client, step, tablets[n], world)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    step.seconds = time.monotonic() - began
    return step


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def run(database: str, args: argparse.Namespace, history: int) -> dict[str, Any]:
    most = max(args.steps)
    with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp:
        var = Path(tmp)
        url = f"sqlite:///{var / 'server.db'}" if database == "sqlite" else database
        began = time.perf_counter()
        # The history is of other inspectors' tasks (the benchmark's "bench" inspector): a tablet sees none of
        # it, but every pull runs over a change feed that long.
        world = prepare(var / "server", url, max(1, min(2000, history // 1000)), 8)
        tablets = enrol_tablets(world, most)
        head = write_history(world, history, world.task_ids)
        for tablet in tablets:
            tablet.cursor = head  # tablets that synced before
        print(f"[{database.split('@')[-1]}] {most} tablets, history of {history} changes, prepared in "
              f"{time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
        env = {**world.env, **LOADED, "INSPECT_ONCE_WORKERS": str(args.workers)}
        port = int(env["INSPECT_ONCE_PORT"])
        server = subprocess.Popen([FLASK, "--app", "server", "serve"], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        results = []
        try:
            wait_for(port, server)
            login = Client(port)
            for tablet in tablets:
                log_in(login, tablet)
            for count in args.steps:
                step = run_step(port, world, tablets[:count], args.step_seconds, args.threads, args.period)
                results.append(report(step, history))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
    knee = next((r["tablets"] for r in results if r["p99_ms"] >= 1000 or r["errors"]), None)
    print(f"  knee: {'none up to ' + str(most) + ' tablets' if knee is None else f'{knee} tablets'}", flush=True)
    return {"database": "sqlite" if database == "sqlite" else "postgresql", "history": history,
            "steps": results, "knee": knee}


def report(step: Step, history: int) -> dict[str, Any]:
    rate = step.requests / step.seconds if step.seconds else 0.0
    p50, p99 = percentile(step.latencies, 0.5) * 1000, percentile(step.latencies, 0.99) * 1000
    late = percentile(step.lateness, 0.99) * 1000
    errors = sum(step.errors.values())
    print(f"  history {history:>8}  tablets {step.tablets:>5}: {rate:7.1f} req/s  p50 {p50:6.0f} ms  "
          f"p99 {p99:6.0f} ms  errors {errors}{' ' + json.dumps(step.errors) if errors else ''}  "
          f"p99 start lateness {late:.0f} ms", flush=True)
    return {"tablets": step.tablets, "requests": step.requests, "req_per_s": round(rate, 1),
            "p50_ms": round(p50, 1), "p99_ms": round(p99, 1), "errors": errors,
            "median_ms": round(statistics.median(step.latencies) * 1000, 1) if step.latencies else None,
            "p99_lateness_ms": round(late, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite", help="sqlite, or a PostgreSQL URL (its schema is dropped!)")
    parser.add_argument("--steps", default="100,250,500,1000", help="numbers of tablets, comma-separated")
    parser.add_argument("--step-seconds", type=float, default=60.0)
    parser.add_argument("--history", type=int, action="append", help="changes already in the sync history")
    parser.add_argument("--period", type=float, default=60.0, help="seconds between a tablet's syncs")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=64, help="client threads sending the tablets' requests")
    parser.add_argument("--quick", action="store_true", help="tiny sizes on SQLite, for the test suite")
    args = parser.parse_args()
    args.steps = [int(s) for s in str(args.steps).split(",") if s.strip()]
    if args.quick:
        args.steps, args.step_seconds, args.period, args.threads, args.workers = [2, 5], 3.0, 1.5, 4, 2
        args.database, args.history = "sqlite", [0, 500]
    runs = [run(args.database, args, history) for history in (args.history or [0])]
    print("result: " + json.dumps({"benchmark": "load", "quick": args.quick, "runs": runs}))


if __name__ == "__main__":
    main()
