"""Sync push throughput against raw bulk inserts of the same rows, and pull time, on this machine.

    .venv/bin/python benchmarks/sync_push.py [--mutations 20000] [--batch 500] [--findings 8] [--media 16]
                                             [--pull 10000] [--database sqlite] [--database URL] [--quick]

What tablets push today: every task has exactly one inspection record, whose id is derived from the
task's (``inspection_id_for``; the server refuses any other), so the mutations are grouped by task —
one task per visit, each with its own enterprise and the inspector on its team: the inspection,
one finding per check item (--findings) and media records (--media). For each --database (repeat
the option: SQLite in a temporary file, or a PostgreSQL URL whose public schema is dropped!):

1. the directory, the inspector, the tablet and the tasks are made through the server's own
   services on a freshly migrated database (not timed);
2. the real server (``flask --app server serve``: gunicorn) is started and the mutations are pushed
   over HTTP in batches of --batch (each batch committed before it is answered); then --pull
   changes are pulled in pages of 1000 and timed;
3. the server is killed without warning (SIGKILL) and the mutations it kept are counted
   (acknowledged means durable);
4. in the same run, on a fresh database of the same kind with the same tasks, the same rows the
   server writes for them (synced entities, the mutation log, the change counter) are inserted with
   SQLAlchemy Core ``executemany``, one transaction per batch.

Prints both rates, their ratio (target >= 0.6), the pull rate, and a last ``result:`` line (JSON).
--quick: 300 mutations on SQLite, a few seconds, for the test suite.
"""
from __future__ import annotations

import argparse
import http.client
import json
import logging
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FLASK = str(ROOT / ".venv" / "bin" / "flask")
PASSWORD = "bench-password-1"
DEVICE = "SCJG-TAB1"
SECRETS = {"SECRET_KEY": "b" * 40, "JWT_SIGNING_KEY": "c" * 40}


@dataclass
class World:
    """What the pushes refer to, made on one database."""

    env: dict[str, str]
    url: str
    device_secret: str
    task_ids: list[str]
    item_ids: list[str]
    department_id: uuid.UUID
    user_id: uuid.UUID


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reset_schema(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def prepare(var: Path, url: str, tasks: int, findings: int) -> World:
    """A migrated database with one department, its inspector and tablet, ``findings`` check items and
    ``tasks`` dispatched tasks (one enterprise each: a second task for one enterprise would be folded
    into the first), made through the server's services as an operator would."""
    from flask_migrate import upgrade

    from server import create_app
    from server.auth.policy import SYSTEM
    from server.directory import service as directory
    from server.extensions import db

    if url.startswith("postgresql"):
        reset_schema(url)
    env = {**os.environ, **SECRETS, "INSPECT_ONCE_VAR": str(var), "DATABASE_URL": url,
           "INSPECT_ONCE_PORT": str(free_port())}
    app = create_app(env=env)
    with app.app_context():
        logging.disable(logging.INFO)  # the migrations' progress lines
        try:
            upgrade(directory=app.extensions["migrate"].directory, revision="heads")
        finally:
            logging.disable(logging.NOTSET)
        department = directory.create_department(SYSTEM, "SCJG", "市场监管局")
        today = date.today()
        user = directory.create_user(SYSTEM, {
            "username": "bench", "full_name": "基准检查员", "password": PASSWORD, "role": "inspector",
            "department_id": department.id, "certificate": {
                "number": "BENCH-001", "valid_from": today - timedelta(days=30),
                "valid_until": today + timedelta(days=365)}})
        device = directory.create_device(SYSTEM, {"id": DEVICE, "kind": "tablet", "department_id": department.id,
                                                  "inspector_id": None})
        items = [directory.create_check_item(SYSTEM, {"department_id": department.id, "code": f"B-{n:02d}",
                                                      "title": f"检查事项{n}", "legal_basis": "依据"})
                 for n in range(findings)]
        now = datetime.now(UTC)
        task_ids = []
        for n in range(tasks):
            task = visit_task(department, user.id, [i.id for i in items], f"B{n:07d}", f"基准{n}", now)
            task_ids.append(str(task.id))
        db.session.commit()
        world = World(env, url, device.secret, task_ids, [str(i.id) for i in items], department.id, user.id)
        db.engine.dispose()
    return world


def visit_task(department: Any, member_id: uuid.UUID, item_ids: list[uuid.UUID], code: str, name: str,
               now: datetime) -> Any:
    """A task dispatched now to ``member_id``, for an enterprise of its own (``code``: 8 characters of its
    credit code), since a second task for one enterprise would be folded into the first."""
    from server.auth.policy import SYSTEM
    from server.directory import service as directory
    from server.directory.credit_code import make_credit_code
    from server.tasks.service import create_task

    enterprise = directory.create_enterprise(SYSTEM, {
        "credit_code": make_credit_code("9", "1", "431121", code), "name": f"{name}企业", "address": "祁阳市"},
        [department])
    return create_task(SYSTEM, {
        "title": f"{name}检查", "enterprise_id": enterprise.id, "window_start": now - timedelta(hours=2),
        "window_end": now + timedelta(hours=10), "member_ids": [member_id], "check_item_ids": item_ids,
        "lead_department_id": department.id})


def make_mutations(count: int, world: World, findings: int, media: int) -> list[dict[str, Any]]:
    """Per task, as a tablet's outbox holds it: the task's one inspection, a finding per check item,
    media records; cut at ``count``."""
    from server.sync.entities import inspection_id_for

    mutations: list[dict[str, Any]] = []
    wall = int(time.time() * 1000) - 3_600_000  # captured offline an hour ago
    counter = 0

    def add(entity: str, entity_id: str, fields: dict[str, Any]) -> None:
        nonlocal counter
        counter += 1
        hlc = f"{wall + counter // 65536:013d}-{counter % 65536:04x}-{DEVICE}"
        mutations.append({"id": str(uuid.uuid4()), "entity": entity, "entity_id": entity_id, "op": "upsert",
                          "base_version": 0, "hlc": hlc, "fields": fields})

    for task_id in world.task_ids:
        inspection = str(inspection_id_for(uuid.UUID(task_id)))
        add("inspection", inspection, {"task_id": task_id, "place": "生产车间", "representative": "张经理",
                                       "started_at": "2026-11-26T09:00:00+08:00"})
        for item in world.item_ids[:findings]:
            add("finding", str(uuid.uuid4()), {"inspection_id": inspection, "check_item_id": item,
                                               "result": "compliant", "note": "符合要求",
                                               "recorded_at": "2026-11-26T09:10:00+08:00"})
        for n in range(media):
            add("media", str(uuid.uuid4()), {
                "inspection_id": inspection, "sha256": uuid.uuid4().hex * 2, "size": 1_000_000 + n,
                "content_type": "video/mp4", "file_name": f"VID_{n:04d}.mp4", "device_id": DEVICE,
                "capture_start": "2026-11-26T09:05:00+08:00", "proves": "scene"})
        if len(mutations) >= count:
            break
    return mutations[:count]


def wait_for(port: int, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode}) before answering")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status in (200, 503):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def request(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None,
            token: str | None = None, ok: tuple[int, ...] = (200,)) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    data = json.loads(response.read())
    if response.status not in ok:
        raise SystemExit(f"{method} {path}: {response.status} {data}")
    return response.status, data


def log_in(conn: http.client.HTTPConnection, world: World) -> str:
    """The inspector's token, bound to the tablet where the server binds log-ins to devices."""
    credentials = {"username": "bench", "password": PASSWORD}
    status, data = request(conn, "POST", "/api/v1/auth/token",
                           {**credentials, "device_id": DEVICE, "device_secret": world.device_secret}, ok=(200, 422))
    if status == 422:  # a server that does not take the device in the log-in yet
        _, data = request(conn, "POST", "/api/v1/auth/token", credentials)
    return str(data["access_token"])


@dataclass
class SyncRun:
    push_seconds: float
    latencies: list[float]
    pull_seconds: float
    pulled: int
    kept: int


def kept_mutations(world: World) -> int:
    from sqlalchemy import create_engine, func, select

    from server.sync.models import MutationRecord

    engine = create_engine(world.url)
    with engine.connect() as conn:
        kept = int(conn.execute(select(func.count()).select_from(MutationRecord.__table__)).scalar_one())
    engine.dispose()
    return kept


def bench_sync(world: World, mutations: list[dict[str, Any]], batch: int, pull: int) -> SyncRun:
    port = int(world.env["INSPECT_ONCE_PORT"])
    server = subprocess.Popen([FLASK, "--app", "server", "serve"], env=world.env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(port, server)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        token = log_in(conn, world)
        latencies = []
        start = time.perf_counter()
        for i in range(0, len(mutations), batch):
            t0 = time.perf_counter()
            _, data = request(conn, "POST", "/api/v1/sync/push",
                              {"device_id": DEVICE, "mutations": mutations[i:i + batch]}, token)
            latencies.append(time.perf_counter() - t0)
            bad = [r for r in data["results"] if r["status"] != "applied"]
            if bad:
                raise SystemExit(f"the server did not apply every mutation: {bad[:3]}")
        push_seconds = time.perf_counter() - start
        start = time.perf_counter()
        cursor, pulled = None, 0
        while pulled < pull:
            query = f"/api/v1/sync/pull?limit={min(1000, pull - pulled)}" + (f"&cursor={cursor}" if cursor else "")
            _, page = request(conn, "GET", query, None, token)
            pulled += len(page["changes"])
            cursor = page["cursor"]
            if not page["has_more"]:
                break
        pull_seconds = time.perf_counter() - start
        conn.close()
        # Acknowledged means durable: kill the server without warning, then count what it kept.
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        return SyncRun(push_seconds, latencies, pull_seconds, pulled, kept_mutations(world))
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def bench_raw(world: World, mutations: list[dict[str, Any]], batch: int) -> float:
    """The rows the server writes for these mutations — a synced entity and a mutation-log row each,
    the change counter once per batch — with Core ``executemany``, one transaction per batch."""
    from sqlalchemy import create_engine, insert, update

    from server.changefeed import ChangeCounter
    from server.extensions import configure_sqlite
    from server.sync.models import MutationRecord, SyncedEntity

    task_of = {}  # inspection id -> task id, as the server resolves it
    for m in mutations:
        if m["entity"] == "inspection":
            task_of[m["entity_id"]] = uuid.UUID(m["fields"]["task_id"])
    engine = create_engine(world.url)
    configure_sqlite(engine)
    counter = ChangeCounter.__table__
    with engine.begin() as conn:  # the directory and the tasks made it already; a fresh database has none
        if conn.execute(counter.select()).first() is None:
            conn.execute(insert(counter), [{"id": 1, "value": 0}])
        seq = int(conn.execute(counter.select()).one().value)
    start = time.perf_counter()
    for i in range(0, len(mutations), batch):
        chunk = mutations[i:i + batch]
        now = datetime.now(UTC)
        entities, log = [], []
        for m in chunk:
            seq += 1
            fields = m["fields"]
            inspection = m["entity_id"] if m["entity"] == "inspection" else fields["inspection_id"]
            entities.append({
                "id": uuid.UUID(m["entity_id"]), "kind": m["entity"], "task_id": task_of[inspection],
                "inspection_id": uuid.UUID(inspection), "department_id": world.department_id,
                "created_by_id": world.user_id, "fields": fields, "clocks": dict.fromkeys(fields, m["hlc"]),
                "field_versions": dict.fromkeys(fields, 1), "contenders": {}, "deleted": False, "version": 1,
                "first_received_at": now, "last_received_at": now, "updated_at": now, "change_seq": seq})
            log.append({"id": uuid.UUID(m["id"]), "content_hash": "0" * 64, "entity_id": uuid.UUID(m["entity_id"]),
                        "device_id": DEVICE, "user_id": world.user_id, "hlc": m["hlc"], "device_time": now,
                        "received_at": now, "status": "applied", "version": 1})
        with engine.begin() as conn:
            conn.execute(update(counter).where(counter.c.id == 1).values(value=counter.c.value + len(chunk)))
            conn.execute(insert(SyncedEntity.__table__), entities)
            conn.execute(insert(MutationRecord.__table__), log)
    seconds = time.perf_counter() - start
    engine.dispose()
    return seconds


def run_database(database: str, args: argparse.Namespace) -> dict[str, Any]:
    per_task = 1 + args.findings + args.media
    tasks = math.ceil(args.mutations / per_task)
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        var = Path(tmp)
        urls = ((f"sqlite:///{var / 'server.db'}", f"sqlite:///{var / 'raw.db'}") if database == "sqlite"
                else (database, database))
        began = time.perf_counter()
        world = prepare(var / "server", urls[0], tasks, args.findings)
        print(f"[{database.split('@')[-1]}] {tasks} tasks prepared in {time.perf_counter() - began:.1f} s",
              file=sys.stderr, flush=True)
        mutations = make_mutations(args.mutations, world, args.findings, args.media)
        run = bench_sync(world, mutations, args.batch, args.pull)
        if run.kept != len(mutations):
            raise SystemExit(f"durability: {len(mutations)} acknowledged, {run.kept} kept after SIGKILL")
        raw_world = prepare(var / "raw", urls[1], tasks, args.findings)
        raw_mutations = make_mutations(args.mutations, raw_world, args.findings, args.media)
        raw_seconds = bench_raw(raw_world, raw_mutations, args.batch)
    count = len(mutations)
    sync_rate, raw_rate = count / run.push_seconds, count / raw_seconds
    name = "sqlite" if database == "sqlite" else "postgresql"
    print(f"database: {name}; {count} mutations ({tasks} tasks: 1 inspection, {args.findings} findings, "
          f"{args.media} media records each) in batches of {args.batch}")
    print(f"  sync push over HTTP : {sync_rate:9.0f} mutations/s ({run.push_seconds:.2f} s; median batch "
          f"{statistics.median(run.latencies) * 1000:.0f} ms, max {max(run.latencies) * 1000:.0f} ms)")
    print(f"  raw Core bulk insert: {raw_rate:9.0f} rows/s      ({raw_seconds:.2f} s)")
    print(f"  ratio sync/raw      : {sync_rate / raw_rate:.2f}  (target >= 0.60)")
    print(f"  durability          : all {count} acknowledged mutations present after SIGKILL of the server")
    print(f"  pull of {run.pulled} changes: {run.pull_seconds:.2f} s ({run.pulled / run.pull_seconds:.0f} changes/s, "
          f"pages of 1000)", flush=True)
    return {"database": name, "mutations": count, "tasks": tasks, "sync_per_s": round(sync_rate, 1),
            "raw_per_s": round(raw_rate, 1), "ratio": round(sync_rate / raw_rate, 3),
            "pulled": run.pulled, "pull_s": round(run.pull_seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutations", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--findings", type=int, default=8, help="findings per inspection (one per check item)")
    parser.add_argument("--media", type=int, default=16, help="media records per inspection")
    parser.add_argument("--pull", type=int, default=10_000, help="changes to pull")
    parser.add_argument("--database", action="append",
                        help="sqlite, or a PostgreSQL URL (its public schema is dropped!); may be repeated")
    parser.add_argument("--quick", action="store_true", help="tiny sizes on SQLite, for the test suite")
    args = parser.parse_args()
    if args.quick:
        args.mutations, args.batch, args.pull = 300, 100, 200
        args.database = args.database or ["sqlite"]
    results = [run_database(database, args) for database in (args.database or ["sqlite"])]
    print("result: " + json.dumps({"benchmark": "sync_push", "quick": args.quick, "runs": results}))


if __name__ == "__main__":
    main()
