"""Several machines, on one: PostgreSQL, Redis, an S3 object store, two app servers (`flask --app server serve`,
each with its own scratch folder and no shared disk) behind Debian's nginx running deploy/nginx/inspect-once.conf,
and a job worker -- the installation of README "Running on several machines".

A tablet uploads through nginx while one app server is killed mid-PATCH; two tablets sync through both servers;
the worker verifies the evidence from the store; each server's /healthz sees the store.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy.engine import make_url
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from server import create_app, keyfiles
from server.extensions import db
from server.sync.entities import inspection_id_for
from tests.conftest import PASSWORD, TEST_DATABASE_URL, build_world
from tests.s3server import S3Server, free_port
from tests.server.uploads.conftest import UPLOADS, _hlc, footage, sha256

pytestmark = pytest.mark.real_clock  # separate server processes keep the wall clock's time, so must the test

REPO = Path(__file__).resolve().parents[2]
NGINX = Path("/usr/sbin/nginx")
SITE = REPO / "deploy" / "nginx" / "inspect-once.conf"
REDIS_URL = "redis://127.0.0.1:6379/9"  # a database of its own, flushed at the start
FLASK = str(Path(sys.executable).parent / "flask")
CHUNK = 4 * 1024 * 1024
# What the servers sign (inspection codes, case files) with keys kept in their var folder: with
# INSPECT_ONCE_KEYS=provided an installation makes them once (make-keys) and copies them to every machine.
SIGNING_KEYS = tuple(keyfiles.KEY_FILES.values())


# ---- the machines ----------------------------------------------------------------------------------

@dataclass
class Process:
    """A command in its own process group, its output in a file (a pipe nobody reads would stall it)."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, cwd=REPO, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL, grace: float = 10) -> None:
        """The whole group (gunicorn's master and workers alike): SIGKILL leaves no clean-up, no last commit."""
        if self.alive():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


@dataclass
class AppServer(Process):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def patches(self) -> tuple[int, int]:
        """PATCHes begun (gunicorn's debug line at each request's start) and answered 204 (its access log)."""
        text = self.log()
        return (len(re.findall(r"\[DEBUG\] PATCH /api/v1/uploads/", text)),
                len(re.findall(r'"PATCH /api/v1/uploads/\S+ HTTP/1\.[01]" 204 ', text)))


@dataclass
class Installation:
    env: dict[str, str]
    tmp: Path
    s3: S3Server
    proxy_port: int
    started: list[Process] = field(default_factory=list)

    def run(self, *args: str) -> str:
        done = subprocess.run([FLASK, "--app", "server", *args], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def _started(self, process: Process) -> Any:
        self.started.append(process.start())
        return process

    def app_server(self, name: str, port: int | None = None) -> AppServer:
        """``flask --app server serve`` with a scratch folder of its own; the debug log says when a request begins."""
        var = self._machine(name)
        port = port or free_port()
        env = {**self.env, "INSPECT_ONCE_VAR": str(var), "INSPECT_ONCE_PORT": str(port),
               "GUNICORN_CMD_ARGS": "--log-level debug"}
        return self._started(AppServer(name, [FLASK, "--app", "server", "serve"], env, self.tmp / f"{name}.log",
                                       port=port))

    def _machine(self, name: str) -> Path:
        """A machine's var folder, holding the installation's keys (the same on every machine: README)."""
        var = self.tmp / name
        var.mkdir(exist_ok=True)
        for key in SIGNING_KEYS:
            shutil.copy2(self.tmp / "keys" / key, var / key)
        return var

    def worker(self) -> Process:
        env = {**self.env, "INSPECT_ONCE_VAR": str(self._machine("worker"))}
        return self._started(Process("worker", [FLASK, "--app", "server", "worker", "--workers", "2"], env,
                                     self.tmp / "worker.log"))

    def nginx(self, servers: list[AppServer]) -> tuple[Process, str]:
        """Debian's nginx with the deploy site, its upstream lines pointing at ``servers``, on a free port."""
        if not NGINX.exists():
            pytest.fail("nginx is missing: install the Debian package nginx (apt-get install nginx; .ci/run does)")
        prefix = self.tmp / "nginx"
        for folder in ("logs", "client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / folder).mkdir(parents=True, exist_ok=True)
        port = self.proxy_port
        (prefix / "site.conf").write_text(site_config(SITE.read_text(), port, [s.port for s in servers]))
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format upstreams '$request_method $uri $status upstream=$upstream_addr statuses=$upstream_status';
    access_log {prefix}/logs/access.log upstreams;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/site.conf;
}}
""")
        nginx = self._started(Process("nginx", [str(NGINX), "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                                                "-e", str(prefix / "logs" / "error.log"), "-g", "daemon off;"],
                                      self.env, prefix / "logs" / "stdout.log"))
        wait_until(lambda: listening(port), 10, "nginx did not start listening", nginx)
        return nginx, f"http://127.0.0.1:{port}"


def site_config(template: str, port: int, upstreams: list[int]) -> str:
    """deploy/nginx/inspect-once.conf with its example upstream servers and listen line replaced."""
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;\n" for p in upstreams)
    site, count = re.subn(r"(?m)^    server \S+:\d+ [^\n]*\n", "", template)
    assert count >= 2, "the template's upstream lines changed shape"
    site = site.replace("upstream inspect_once {\n", "upstream inspect_once {\n" + servers, 1)
    site, count = re.subn(r"(?m)^    listen 80;$", f"    listen 127.0.0.1:{port};", site)
    assert count == 1, "the template's listen line changed shape"
    return site


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def wait_until(ready: Callable[[], bool], seconds: float, message: str, process: Process | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if process is not None and not process.alive():
            pytest.fail(f"{process.name} exited: {process.log()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(message + (f": {process.log()[-3000:]}" if process else ""))
        time.sleep(0.1)


def healthy(server: AppServer) -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(server.url + "/healthz", timeout=2).status_code == 200
    return False


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A PostgreSQL database of this test's own on TEST_DATABASE_URL's server, dropped at the end."""
    if not TEST_DATABASE_URL:
        pytest.skip("needs TEST_DATABASE_URL (PostgreSQL), which CI sets")
    import psycopg

    url = make_url(TEST_DATABASE_URL).set(drivername="postgresql+psycopg")
    name = f"several_machines_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def installation(fresh_database: str, tmp_path: Path) -> Iterator[Installation]:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    with S3Server.start(tmp_path / "s3") as s3:  # also puts AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in os.environ
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSPECT_ONCE_")}
        proxy_port = free_port()  # nginx's: where the public reaches the installation
        env.update({"DATABASE_URL": fresh_database, "REDIS_URL": REDIS_URL,
                    "INSPECT_ONCE_RATELIMIT_STORAGE_URI": REDIS_URL, **s3.store_env(prefix="evidence"),
                    "SECRET_KEY": "several-machines-secret-key-0123456789",
                    "JWT_SIGNING_KEY": "several-machines-jwt-signing-key-0123456789",
                    "INSPECT_ONCE_TRUSTED_PROXIES": "1", "INSPECT_ONCE_KEYS": "provided",
                    "INSPECT_ONCE_WORKERS": "2", "INSPECT_ONCE_THREADS": "4",
                    "INSPECT_ONCE_MEDIA_MIN_FREE_BYTES": "0", "INSPECT_ONCE_VAR": str(tmp_path / "operator"),
                    "INSPECT_ONCE_PUBLIC_URL": f"http://127.0.0.1:{proxy_port}"})
        setup = Installation(env, tmp_path, s3, proxy_port=proxy_port)
        for key in SIGNING_KEYS:
            keyfiles.private_key(tmp_path / "keys" / key, create=True)
        try:
            yield setup
        finally:
            for process in reversed(setup.started):
                process.kill(signal.SIGTERM, grace=3)
            redis.Redis.from_url(REDIS_URL).flushdb()


@dataclass(frozen=True)
class Cast:
    task_id: str
    check_items: dict[str, str]
    tablets: dict[str, tuple[str, str]]  # user -> (tablet id, its secret)


def seed(database_url: str, var: Path) -> Cast:
    """The standard cast of the tests (tests/conftest.py build_world), made through the same services the
    operator commands call: two departments' inspectors on one joint task, a tablet each."""
    app = create_app({"TESTING": True}, env={"DATABASE_URL": database_url, "INSPECT_ONCE_VAR": str(var)})
    with app.app_context():
        world = build_world()
        cast = Cast(str(world.task.id), {k: str(v.id) for k, v in world.check_items.items()},
                    {"m-insp": (world.devices["m-tab"].device.id, world.devices["m-tab"].secret),
                     "e-insp": (world.devices["e-tab"].device.id, world.devices["e-tab"].secret)})
        db.session.remove()
        db.engine.dispose()
    return cast


# ---- what the tablets do ---------------------------------------------------------------------------

@dataclass
class Tablet:
    device_id: str
    headers: dict[str, str]

    def push(self, base: str, mutations: list[dict[str, Any]]) -> list[str]:
        response = requests.post(f"{base}/api/v1/sync/push", json={"device_id": self.device_id,
                                                                   "mutations": mutations},
                                 headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        return [r["status"] for r in response.json()["results"]]

    def mutation(self, entity: str, entity_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "entity": entity, "entity_id": entity_id, "op": "upsert",
                "base_version": 0, "hlc": _hlc(self.device_id), "fields": fields}

    def pull(self, base: str) -> list[tuple[str, str, int, Any]]:
        changes, cursor = [], None
        while True:
            response = requests.get(f"{base}/api/v1/sync/pull", params={"cursor": cursor} if cursor else {},
                                    headers=self.headers, timeout=30)
            assert response.status_code == 200, response.text
            page = response.json()
            changes += [(c["entity"], c["entity_id"], c["version"], c["fields"]) for c in page["changes"]]
            if not page["has_more"]:
                return sorted(changes, key=lambda c: (c[0], c[1]))
            cursor = page["cursor"]


def log_in(base: str, user: str, cast: Cast) -> Tablet:
    device_id, secret = cast.tablets[user]
    response = requests.post(f"{base}/api/v1/auth/token", timeout=30, json={
        "username": user, "password": PASSWORD, "device_id": device_id, "device_secret": secret})
    assert response.status_code == 200, response.text
    return Tablet(device_id, {"Authorization": "Bearer " + response.json()["access_token"]})


class KillMidPatch(threading.Thread):
    """SIGKILLs the first app server seen in the middle of an upload PATCH once both have answered one, then
    starts that machine again (a new process, same port and scratch folder) while the upload goes on."""

    def __init__(self, servers: list[AppServer], restart: Callable[[AppServer], AppServer]) -> None:
        super().__init__(daemon=True)
        self.servers, self.restart, self.done = servers, restart, threading.Event()
        self.killed: AppServer | None = None
        self.restarted: AppServer | None = None

    def run(self) -> None:
        while not self.done.is_set() and self.killed is None:
            counts = [s.patches() for s in self.servers]
            if all(answered for _, answered in counts):
                for server, (begun, answered) in zip(self.servers, counts, strict=True):
                    if begun > answered:
                        time.sleep(0.02)  # into the body
                        server.kill()
                        self.killed = server
                        self.restarted = self.restart(server)
                        return
            time.sleep(0.005)


def upload_through(base: str, tablet: Tablet, data: bytes, media_id: str, deadline: float) -> list[str]:
    """tuspy in 4 MiB chunks; a chunk that fails (the server died under it: 502; its lock still held: 423) is
    resumed from the offset a HEAD reports, as the field client does. Returns what each failure was.
    (A refused PATCH is answered after its body is read, so nginx passes the 423 on: routes.RequestBody.drain.)"""
    meta = {"sha256": sha256(data), "media_id": media_id, "filename": "REC_0001.mp4", "filetype": "video/mp4"}
    client = TusClient(base + UPLOADS, headers=tablet.headers)
    uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=CHUNK, metadata=meta)
    url, failures = None, []
    while uploader is None or uploader.offset < len(data):
        assert time.monotonic() < deadline, f"upload not done in time; failures {failures}"
        try:
            if uploader is None:  # HEAD: the durable offset
                uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=CHUNK, metadata=meta, url=url)
            url = uploader.url
            uploader.upload_chunk()
        except (TusCommunicationError, TusUploadFailed) as error:
            failures.append(str(getattr(error, "status_code", None) or error))
            uploader = None
            time.sleep(0.5)
    return failures


# ---- the test --------------------------------------------------------------------------------------

def test_two_app_servers_behind_nginx_share_uploads_sync_and_verification(installation: Installation,
                                                                          fresh_database: str) -> None:
    started = time.monotonic()
    installation.run("init-db")
    servers = [installation.app_server("app-a"), installation.app_server("app-b")]
    worker = installation.worker()
    cast = seed(fresh_database, installation.tmp / "seed")  # while they start
    for server in servers:
        wait_until(lambda s=server: healthy(s), 30, f"{server.name} did not become healthy", server)
    _, proxy = installation.nginx(servers)
    phases = {"up": time.monotonic() - started}

    # (a) An upload through nginx, its PATCHes on both servers, one of them killed under a PATCH.
    inspector = log_in(proxy, "m-insp", cast)
    data = footage(24 * 1024 * 1024, seed=24)
    inspection_id, media_id = str(inspection_id_for(uuid.UUID(cast.task_id))), str(uuid.uuid4())
    assert inspector.push(proxy, [
        inspector.mutation("inspection", inspection_id, {"task_id": cast.task_id, "place": "厂区"}),
        inspector.mutation("media", media_id, {
            "inspection_id": inspection_id, "sha256": sha256(data), "size": len(data), "proves": "scene",
            "content_type": "video/mp4", "file_name": "REC_0001.mp4"}),
    ]) == ["applied", "applied"]
    killer = KillMidPatch(servers, lambda dead: installation.app_server(dead.name + "-again", port=dead.port))
    killer.start()
    try:
        failures = upload_through(proxy, inspector, data, media_id, deadline=time.monotonic() + 45)
    finally:
        killer.done.set()
        killer.join(5)
    assert killer.killed is not None and killer.restarted is not None, "no server was caught in a PATCH"
    survivor = next(s for s in servers if s is not killer.killed)
    begun, answered = killer.killed.patches()
    assert begun > answered >= 1, killer.killed.log()[-2000:]  # it had served a PATCH, and died in the next
    assert failures and failures[0] == "502", failures  # the killed server's PATCH: nginx says so
    # Then only the dead server's lock, until it ran out.
    assert set(failures[1:]) <= {"423"}, failures
    assert survivor.patches()[1] >= 2, survivor.log()[-2000:]
    record = requests.get(f"{proxy}/api/v1/media/{media_id}", headers=inspector.headers, timeout=10).json()
    assert (record["sha256"], record["size"]) == (sha256(data), len(data)), record
    stored = [o["Key"] for o in installation.s3.client().list_objects_v2(
        Bucket="evidence", Prefix="evidence/")["Contents"] if sha256(data) in o["Key"]]
    assert len(stored) == 1, stored
    body = installation.s3.client().get_object(Bucket="evidence", Key=stored[0])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha256(data)
    upload_seconds = time.monotonic() - started
    phases["upload"] = upload_seconds

    # The killed machine came back: a new process on the same port and scratch folder.
    restarted = killer.restarted
    wait_until(lambda: healthy(restarted), 30, "the killed server did not come back", restarted)
    servers = [survivor, restarted]
    phases["restart"] = time.monotonic() - started

    # (b) Two tablets of two departments push their halves of the joint visit, each through both servers.
    colleague = log_in(servers[1].url, "e-insp", cast)
    pushes = [
        (inspector, servers[0], [inspector.mutation("inspection", inspection_id, {"representative": "张经理"}),
                                 inspector.mutation("finding", str(uuid.uuid4()), {
                                     "inspection_id": inspection_id, "check_item_id": cast.check_items["m-licence"],
                                     "result": "compliant"})]),
        (colleague, servers[1], [colleague.mutation("inspection", inspection_id, {"place": "污水处理站"}),
                                 colleague.mutation("finding", str(uuid.uuid4()), {
                                     "inspection_id": inspection_id, "check_item_id": cast.check_items["e-permit"],
                                     "result": "non_compliant", "note": "排污口未设标识"})]),
        (inspector, servers[1], [inspector.mutation("inspection", inspection_id, {"conclusion": "限期整改"})]),
        (colleague, servers[0], [colleague.mutation("inspection", inspection_id, {"status": "finished"})]),
    ]
    for tablet, server, mutations in pushes:
        assert set(tablet.push(server.url, mutations)) <= {"applied", "conflict"}
    for tablet in (inspector, colleague):
        seen = [tablet.pull(server.url) for server in servers]
        assert seen[0] == seen[1], [f"{a[:3]}: {a[3]} != {b[3]}" for a, b in zip(*seen, strict=True) if a != b]
        inspection = next(c[3] for c in seen[0] if c[0] == "inspection")
        assert (inspection["representative"], inspection["conclusion"], inspection["status"]) == (
            "张经理", "限期整改", "finished"), inspection
        assert sorted(c[3]["result"] for c in seen[0] if c[0] == "finding") == ["compliant", "non_compliant"]
    joint = [requests.get(f"{s.url}/api/v1/tasks/{cast.task_id}/joint-record", headers=inspector.headers,
                          timeout=10) for s in servers]
    assert [r.status_code for r in joint] == [200, 200] and joint[0].content == joint[1].content

    phases["sync"] = time.monotonic() - started

    # (c) The worker verified the evidence, reading it from the object store.
    def verified() -> bool:
        answer = requests.get(f"{proxy}/api/v1/media/{media_id}", headers=inspector.headers, timeout=10).json()
        return answer["verification"]["status"] != "pending"

    wait_until(verified, 30, "the worker did not verify the upload", worker)
    phases["verified"] = time.monotonic() - started

    # (d) Each server's health check sees the database and the object store.
    for server in servers:
        health = requests.get(server.url + "/healthz", timeout=10)
        assert health.status_code == 200, health.text
        assert health.json()["checks"] == {"database": "ok", "media_store": "ok"}
    print(f"\nseveral machines, seconds from the start: { {k: round(v, 1) for k, v in phases.items()} }, "
          f"all {time.monotonic() - started:.1f}; failures seen {failures}")
