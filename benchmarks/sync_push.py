"""Sync push throughput against plain bulk inserts, and pull time, on this machine.

    .venv/bin/python benchmarks/sync_push.py [--mutations 20000] [--batch 500] [--database sqlite|URL]

Starts the real server (gunicorn, its own SQLite file or the given PostgreSQL
URL) in a subprocess, pushes N mutations over HTTP in batches (each batch is
committed before it is acknowledged), then in the same run inserts the same
rows (entities + mutation log) with SQLAlchemy Core bulk inserts into a fresh
database of the same kind, one commit per batch. Prints both rates, their
ratio, and the time to pull 10,000 changes.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FLASK = str(ROOT / ".venv" / "bin" / "flask")
PASSWORD = "bench-password-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(env: dict[str, str], *args: str) -> str:
    return subprocess.run([FLASK, "--app", "server", *args], env=env, check=True, capture_output=True, text=True).stdout


def prepare_server(var: Path, database_url: str | None) -> tuple[dict[str, str], dict[str, str]]:
    env = {**os.environ, "INSPECT_ONCE_VAR": str(var), "SECRET_KEY": "b" * 40, "JWT_SIGNING_KEY": "c" * 40,
           "INSPECT_ONCE_PORT": str(free_port())}
    if database_url:
        env["DATABASE_URL"] = database_url
    run_cli(env, "init-db")
    run_cli(env, "create-department", "--code", "SCJG", "--name", "市场监管局")
    run_cli(env, "create-user", "--username", "bench", "--password", PASSWORD, "--role", "inspector",
            "--department", "SCJG", "--certificate", "BENCH-001", "--valid-until", "2030-12-31")
    run_cli(env, "create-device", "--id", "SCJG-TAB1", "--kind", "tablet", "--department", "SCJG")
    # The task and its check items are created in-process (no CLI for tasks yet).
    script = """
import sys
from datetime import datetime, timedelta, timezone
from server import create_app
from server.auth.policy import SYSTEM
from server.directory import service as directory
from server.directory.models import User
from server.extensions import db
from server.tasks.service import create_task
from sqlalchemy import select
app = create_app()
with app.app_context():
    dept = directory.department_by_code("SCJG")
    items = [directory.create_check_item(SYSTEM, {"department_id": dept.id, "code": f"B-{n}", "title": f"事项{n}",
             "legal_basis": "依据"}) for n in range(4)]
    ent = directory.create_enterprise(
        SYSTEM, {"credit_code": "91350100M000100Y43", "name": "基准企业", "address": "祁阳"}, [dept]
    )
    user = db.session.scalar(select(User).where(User.username == "bench"))
    now = datetime.now(timezone.utc)
    task = create_task(SYSTEM, {"title": "基准", "enterprise_id": ent.id, "window_start": now - timedelta(hours=1),
        "window_end": now + timedelta(hours=10), "member_ids": [user.id], "check_item_ids": [i.id for i in items],
        "lead_department_id": dept.id})
    db.session.commit()
    print(task.id, *[i.id for i in items])
"""
    out = subprocess.run([str(ROOT / ".venv/bin/python"), "-c", script], env=env, check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout.split()
    return env, {"task": out[0], "items": ",".join(out[1:])}


def make_mutations(count: int, task_id: str, item_ids: list[str]) -> list[dict[str, Any]]:
    """Per inspection: the inspection, 4 findings, 5 media records — 10 mutations."""
    mutations: list[dict[str, Any]] = []
    ms = int(time.time() * 1000) - 3_600_000
    counter = 0

    def stamp() -> str:
        nonlocal counter
        counter += 1
        return f"{ms + counter // 65536:013d}-{counter % 65536:04x}-SCJG-TAB1"

    def add(entity: str, fields: dict[str, Any]) -> str:
        entity_id = str(uuid.uuid4())
        mutations.append({"id": str(uuid.uuid4()), "entity": entity, "entity_id": entity_id, "op": "upsert",
                          "base_version": 0, "hlc": stamp(), "fields": fields})
        return entity_id

    while len(mutations) < count:
        inspection = add(
            "inspection", {"task_id": task_id, "place": "生产车间", "started_at": "2026-11-26T09:00:00+08:00"}
        )
        for item in item_ids:
            add("finding", {"inspection_id": inspection, "check_item_id": item,
                            "result": "compliant", "note": "符合要求"})
        for n in range(5):
            add("media", {"inspection_id": inspection, "sha256": uuid.uuid4().hex * 2, "size": 1_000_000 + n,
                          "content_type": "video/mp4", "proves": "scene"})
    return mutations[:count]


def wait_for(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def request(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None,
            token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    data = json.loads(response.read())
    if response.status != 200:
        raise SystemExit(f"{method} {path}: {response.status} {data}")
    return data


def bench_sync(
    env: dict[str, str], ids: dict[str, str], count: int, batch: int
) -> tuple[float, list[float], float, int]:
    port = int(env["INSPECT_ONCE_PORT"])
    server = subprocess.Popen([FLASK, "--app", "server", "serve"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(port)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        token = request(conn, "POST", "/api/v1/auth/token", {"username": "bench", "password": PASSWORD})["access_token"]
        mutations = make_mutations(count, ids["task"], ids["items"].split(","))
        latencies = []
        start = time.perf_counter()
        for i in range(0, count, batch):
            t0 = time.perf_counter()
            results = request(conn, "POST", "/api/v1/sync/push",
                              {"device_id": "SCJG-TAB1", "mutations": mutations[i:i + batch]}, token)["results"]
            latencies.append(time.perf_counter() - t0)
            bad = [r for r in results if r["status"] != "applied"]
            if bad:
                raise SystemExit(f"unexpected results: {bad[:3]}")
        push_seconds = time.perf_counter() - start
        start = time.perf_counter()
        cursor, pulled = None, 0
        while pulled < 10_000:
            query = "/api/v1/sync/pull?limit=1000" + (f"&cursor={cursor}" if cursor else "")
            page = request(conn, "GET", query, None, token)
            pulled += len(page["changes"])
            cursor = page["cursor"]
            if not page["has_more"]:
                break
        pull_seconds = time.perf_counter() - start
        # Acknowledged means durable: kill the server without warning, then count what it kept.
        os.killpg(server.pid, 9)
        server.wait(timeout=10)
        script = ("from server import create_app; from server.extensions import db; from sqlalchemy import text; "
                  "app = create_app(); ctx = app.app_context(); ctx.push(); "
                  "print(db.session.execute(text('SELECT count(*) FROM sync_mutation')).scalar())")
        kept = int(subprocess.run([str(ROOT / ".venv/bin/python"), "-c", script], env=env, cwd=ROOT, check=True,
                                  capture_output=True, text=True).stdout.split()[-1])
        if kept != count:
            raise SystemExit(f"durability: {count} acknowledged, {kept} kept after SIGKILL")
        return push_seconds, latencies, pull_seconds, pulled
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
            server.wait(timeout=10)


def bench_raw(database_url: str, count: int, batch: int) -> float:
    """The same rows (entity + mutation log), Core executemany, one commit per batch."""
    from sqlalchemy import create_engine, insert

    from server import create_app
    from server.extensions import configure_sqlite, db
    from server.sync.models import MutationRecord, SyncedEntity

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url})
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    engine = create_engine(database_url)
    configure_sqlite(engine)
    with engine.begin() as conn:  # the foreign keys the rows point at
        dept, user, task, ent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        now = datetime.now(UTC)
        tables = db.metadata.tables
        conn.execute(insert(tables["department"]), [{"id": dept, "code": "SCJG", "name": "x", "created_at": now}])
        conn.execute(insert(tables["app_user"]), [{
            "id": user, "username": "u", "full_name": "u", "password_hash": "x",
            "role": "inspector", "department_id": dept, "active": True, "created_at": now}])
        conn.execute(insert(tables["enterprise"]), [{
            "id": ent, "credit_code": "91350100M000100Y43", "name": "e", "address": "a", "risk_level": "normal",
            "created_at": now, "updated_at": now, "change_seq": 0}])
        conn.execute(insert(tables["inspection_task"]), [{
            "id": task, "title": "t", "enterprise_id": ent, "department_id": dept, "window_start": now,
            "window_end": now + timedelta(hours=1), "status": "dispatched", "created_at": now, "change_seq": 0}])
    rows = make_mutations(count, str(task), [str(uuid.uuid4()) for _ in range(4)])
    start = time.perf_counter()
    for i in range(0, count, batch):
        chunk = rows[i:i + batch]
        now = datetime.now(UTC)
        entities = [{
            "id": uuid.UUID(m["entity_id"]), "kind": m["entity"], "task_id": task,
            "inspection_id": uuid.UUID(m["fields"]["inspection_id"]) if "inspection_id" in m["fields"] else None,
            "department_id": dept, "created_by_id": user, "fields": m["fields"],
            "clocks": dict.fromkeys(m["fields"], m["hlc"]), "field_versions": dict.fromkeys(m["fields"], 1),
            "deleted": False, "version": 1, "first_received_at": now, "last_received_at": now, "updated_at": now,
            "change_seq": i + n + 1} for n, m in enumerate(chunk)]
        log = [{"id": uuid.UUID(m["id"]), "content_hash": "0" * 64, "entity_id": uuid.UUID(m["entity_id"]),
                "device_id": "SCJG-TAB1", "user_id": user, "hlc": m["hlc"], "device_time": now, "received_at": now,
                "status": "applied", "version": 1} for m in chunk]
        with engine.begin() as conn:
            conn.execute(insert(SyncedEntity.__table__), entities)
            conn.execute(insert(MutationRecord.__table__), log)
    seconds = time.perf_counter() - start
    engine.dispose()
    return seconds


def reset_schema(url: str) -> None:
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutations", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--database", default="sqlite",
                        help="sqlite, or a PostgreSQL URL (its public schema is dropped!)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp)
        server_url = None if args.database == "sqlite" else args.database
        raw_url = f"sqlite:///{var / 'raw.db'}" if args.database == "sqlite" else args.database
        if server_url:
            reset_schema(server_url)
        env, ids = prepare_server(var, server_url)
        push_seconds, latencies, pull_seconds, pulled = bench_sync(env, ids, args.mutations, args.batch)
        if server_url:
            reset_schema(server_url)
        raw_seconds = bench_raw(raw_url, args.mutations, args.batch)
    sync_rate = args.mutations / push_seconds
    raw_rate = args.mutations / raw_seconds
    print(f"database: {args.database}; {args.mutations} mutations in batches of {args.batch}")
    print(f"sync push over HTTP : {sync_rate:9.0f} mutations/s ({push_seconds:.2f} s; median batch "
          f"{statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms)")
    print(f"raw Core bulk insert: {raw_rate:9.0f} rows/s      ({raw_seconds:.2f} s)")
    print(f"ratio sync/raw      : {sync_rate / raw_rate:.2f}  (target >= 0.50)")
    print(f"durability          : all {args.mutations} acknowledged mutations present after SIGKILL of the server")
    print(f"pull of {pulled} changes: {pull_seconds:.2f} s ({pulled / pull_seconds:.0f} changes/s, pages of 1000)")


if __name__ == "__main__":
    main()
