"""Fixtures that build real apps on real databases.

Every test that takes ``app`` runs once on SQLite and, when
``TEST_DATABASE_URL`` is set, once more on that database (PostgreSQL in CI),
except the browser tests (those driving Chromium through ``playwright_session``):
they test what the pages and the tablet app do, run on SQLite only, and the
server paths they cross are run on both databases by the HTTP tests.
A test module marked ``media_stores`` runs a third time, on SQLite with its
evidence in an S3 object store (``rclone serve s3`` started by the tests).
The schema comes from the Alembic migrations, so the migrations are tested by
every test; each test starts with empty tables.
"""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine, text

from server import create_app
from server.auth.policy import SYSTEM
from server.directory import service as directory
from server.directory.models import Department, User
from server.extensions import db
from server.tasks.service import create_task
from tests.clock import AROUND_OFFICE_MIDNIGHT, office_today, session_now

# CI machines are shared and slow at times: a slow first draw is not a failing test.
settings.register_profile("inspect-once", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("inspect-once")

PASSWORD = "correct-horse-battery"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_clock: the test reads the wall clock (it says why); no travel")
    config.addinivalue_line("markers", "around_office_midnight: run at each instant of "
                                       "tests.clock.AROUND_OFFICE_MIDNIGHT, frozen there")
    config.addinivalue_line("markers", "media_stores: run with evidence on local disk and in an S3 object store "
                                       "(tests.s3server)")
    config.addinivalue_line("markers", "local_disk: of a media_stores module, a test of the local store's files only")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("around_office_midnight"):
        metafunc.parametrize("clock", list(AROUND_OFFICE_MIDNIGHT.values()), ids=list(AROUND_OFFICE_MIDNIGHT),
                             indirect=True)
    if "database_url" in metafunc.fixturenames:
        backends = _backends()
        if "playwright_session" in metafunc.fixturenames:
            backends = backends[:1]  # a browser test (seconds of Chromium each): on SQLite only
        if metafunc.definition.get_closest_marker("media_stores") and not metafunc.definition.get_closest_marker(
                "local_disk"):
            # The store does not care which database: local disk on each, the object store on SQLite.
            combinations = [pytest.param(b.values[0], "local", id=f"{b.id}-local") for b in backends]
            combinations.append(pytest.param(backends[0].values[0], "s3", id=f"{backends[0].id}-s3"))
            metafunc.parametrize(("database_url", "media_store"), combinations, indirect=True)
        else:
            metafunc.parametrize("database_url", backends, indirect=True)


@pytest.fixture(autouse=True)
def clock(request: pytest.FixtureRequest) -> Iterator[time_machine.Coordinates | None]:
    """Every test runs at a fixed instant, never at the wall clock's (see tests/clock.py).

    It starts before any other fixture of the test, so the data they make is placed at that instant too.
    ``move_to``/``shift`` on the value move it; a test marked ``around_office_midnight`` runs frozen at
    each of those instants; one marked ``real_clock`` is not moved (it is given None).
    """
    if request.node.get_closest_marker("real_clock"):
        yield None
        return
    instant = getattr(request, "param", None)
    with time_machine.travel(instant or session_now(), tick=instant is None) as traveller:
        yield traveller


def _normalise(url: str) -> str:
    return "postgresql+psycopg://" + url[len("postgresql://"):] if url.startswith("postgresql://") else url


def _backends() -> list[Any]:
    params = [pytest.param("sqlite", id="sqlite")]
    if TEST_DATABASE_URL:
        params.append(pytest.param(_normalise(TEST_DATABASE_URL), id="postgresql"))
    return params


def _build_app(database_url: str, var: Path, extra: dict[str, Any] | None = None,
               env_extra: dict[str, str] | None = None) -> Flask:
    # The machine's free disk space is not the test's business: no floor unless a test sets one.
    env = {"INSPECT_ONCE_VAR": str(var), "MEDIA_ROOT": str(var / "media"), "INSPECT_ONCE_MEDIA_MIN_FREE_BYTES": "0",
           **(env_extra or {})}
    config = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, **(extra or {})}
    return create_app(config, env=env)


def _migrate(app: Flask) -> None:
    from flask_migrate import upgrade
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory, revision="heads")
        db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file copied for each test (fresh and fast)."""
    var = tmp_path_factory.mktemp("sqlite-template")
    path = var / "template.db"
    _migrate(_build_app(f"sqlite:///{path}", var))
    return path


@pytest.fixture(scope="session")
def postgres_ready(tmp_path_factory: pytest.TempPathFactory) -> str | None:
    if not TEST_DATABASE_URL:
        return None
    url = _normalise(TEST_DATABASE_URL)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    _migrate(_build_app(url, tmp_path_factory.mktemp("pg-migrate")))
    return url


@pytest.fixture  # parametrized by pytest_generate_tests
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "inspect-once.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_ready")
    yield url
    engine = create_engine(url)
    with engine.begin() as conn:
        # DELETE, not TRUNCATE: a test leaves a few rows, and TRUNCATE's fixed cost per table (new files, synced
        # at commit) was some 150 ms a test, minutes of the suite. The replica role skips the triggers (foreign
        # keys, the audit log's append-only guard) for this transaction only.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(text(f'DELETE FROM "{table.name}"'))
    engine.dispose()


@pytest.fixture
def media_store(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment that chooses the media store: local disk (the default), or, for a test marked
    ``media_stores``, also a fresh prefix of a bucket on the session's S3 server."""
    if getattr(request, "param", "local") == "local":
        return {}
    server = request.getfixturevalue("s3_server")
    return server.store_env(prefix=f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.s3server import S3Server

    with S3Server.start(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def app(database_url: str, media_store: dict[str, str], tmp_path: Path) -> Iterator[Flask]:
    app = _build_app(database_url, tmp_path / "var", env_extra=media_store)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Any]:
    """One Playwright driver for the whole session, shared by every browser test.

    The sync API runs its event loop for as long as the driver is open, and a second driver cannot start inside it
    ("using Playwright Sync API inside the asyncio loop"), so the tablet app's session-long driver and the review
    app's browsers must be the same one.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


# ---- factories: real objects through the same services users call ----------

def new_department(code: str, name: str | None = None) -> Department:
    department = directory.create_department(SYSTEM, code, name or f"{code} 局")
    db.session.commit()
    return department


def new_user(username: str, role: str, department: Department, *, certificate: str | None = None,
             valid_from: date | None = None, valid_until: date | None = None, password: str = PASSWORD) -> User:
    data: dict[str, Any] = {"username": username, "full_name": f"测试{username}", "password": password,
                            "role": role, "department_id": department.id, "certificate": None}
    if certificate:
        data["certificate"] = {"number": certificate,
                               "valid_from": valid_from or office_today() - timedelta(days=365),
                               "valid_until": valid_until or office_today() + timedelta(days=365)}
    user = directory.create_user(SYSTEM, data)
    db.session.commit()
    return user


# The tablets this test made, with their secrets, in the order made: the helpers log inspectors in on them.
TABLETS: dict[str, tuple[uuid.UUID, str]] = {}


def remember_tablet(device_id: str, department_id: uuid.UUID, secret: str) -> None:
    """A tablet's current secret (after ``create-device`` or an enrolment), for the log-in helpers."""
    TABLETS[device_id] = (department_id, secret)


@pytest.fixture(autouse=True)
def _forget_tablets() -> Iterator[None]:
    TABLETS.clear()
    yield
    TABLETS.clear()


def new_device(device_id: str, kind: str, department: Department,
               inspector: User | None = None) -> directory.CreatedDevice:
    created = directory.create_device(SYSTEM, {"id": device_id, "kind": kind, "department_id": department.id,
                                               "inspector_id": inspector.id if inspector else None})
    db.session.commit()
    if kind == "tablet":
        remember_tablet(device_id, department.id, created.secret)
    return created


@pytest.fixture
def make_department(app: Flask) -> Callable[..., Department]:
    return new_department


@pytest.fixture
def make_user(app: Flask) -> Callable[..., User]:
    return new_user


@pytest.fixture
def make_device(app: Flask) -> Callable[..., directory.CreatedDevice]:
    return new_device


#: ``device=`` default of the log-in helpers: an inspector is logged in on a tablet of their department.
ON_A_TABLET = "on-a-tablet"


def tablet_for(username: str) -> str | None:
    """The tablet the helpers log ``username`` in on: the first one made in their department; None for office
    roles (they do not sync) and for inspectors of departments without a tablet."""
    user = db.session.scalar(db.select(User).where(User.username == username))
    if user is None or user.role.value != "inspector":
        return None
    return next((device_id for device_id, (department_id, _) in TABLETS.items()
                 if department_id == user.department_id), None)


def login_body(username: str, password: str = PASSWORD, device: str | None = ON_A_TABLET) -> dict[str, str]:
    """The log-in request: bound to ``device`` (a tablet this test made), to the user's default tablet
    (``ON_A_TABLET``), or to none (``None``)."""
    body = {"username": username, "password": password}
    if device == ON_A_TABLET:
        device = tablet_for(username)
    if device is not None:
        body.update(device_id=device, device_secret=TABLETS[device][1])
    return body


@dataclass
class AuthActions:
    """Logs in through the real endpoint and hands out Authorization headers.

    Sync needs a log-in bound to an enrolled tablet, so inspectors are logged in on a tablet of their department
    (the first one the test made; ``device=`` names another, ``device=None`` logs in bound to none).
    """

    client: FlaskClient

    def login(self, username: str, password: str = PASSWORD, *, device: str | None = ON_A_TABLET) -> dict[str, Any]:
        response = self.client.post("/api/v1/auth/token", json=login_body(username, password, device))
        assert response.status_code == 200, response.get_json()
        return response.get_json()  # type: ignore[no-any-return]

    def headers(self, username: str, *, device: str | None = ON_A_TABLET) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.login(username, device=device)["access_token"]}


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


@dataclass
class World:
    """Two departments with a head, supervisor, inspector each; an admin; devices; an enterprise."""

    market: Department
    ecology: Department
    people: dict[str, User]
    devices: dict[str, directory.CreatedDevice]
    enterprise: Any
    check_items: dict[str, Any]
    task: Any


VALID_CODE = "91350100M000100Y43"


@pytest.fixture
def world(app: Flask) -> World:
    return build_world()


def build_world() -> World:
    """The standard cast, inside the current app context."""
    make_department, make_user, make_device = new_department, new_user, new_device
    market = make_department("SCJG", "市场监管局")
    ecology = make_department("STHJ", "生态环境局")
    people = {
        "admin": make_user("admin", "admin", market),
        "m-head": make_user("m-head", "head", market),
        "m-sup": make_user("m-sup", "supervisor", market),
        "m-insp": make_user("m-insp", "inspector", market, certificate="CERT-M-001"),
        "e-head": make_user("e-head", "head", ecology),
        "e-sup": make_user("e-sup", "supervisor", ecology),
        "e-insp": make_user("e-insp", "inspector", ecology, certificate="CERT-E-001"),
        "e-insp2": make_user("e-insp2", "inspector", ecology, certificate="CERT-E-002"),
    }
    devices = {
        "m-cam": make_device("SCJG-BC01", "bodycam", market, people["m-insp"]),
        "e-dock": make_device("STHJ-DOCK1", "dock", ecology),
        "m-tab": make_device("SCJG-TAB1", "tablet", market),
        "e-tab": make_device("STHJ-TAB1", "tablet", ecology),
        "e-tab2": make_device("STHJ-TAB2", "tablet", ecology),
    }
    enterprise = directory.create_enterprise(
        SYSTEM, {"credit_code": VALID_CODE, "name": "祁阳市浯溪食品有限公司", "address": "祁阳市浯溪街道建设路1号"},
        [market, ecology])
    items = {
        "m-licence": directory.create_check_item(SYSTEM, {"department_id": market.id, "code": "SCJG-01",
                                                          "title": "营业执照公示",
                                                          "legal_basis": "《市场主体登记管理条例》第三十六条"}),
        "e-permit": directory.create_check_item(SYSTEM, {"department_id": ecology.id, "code": "STHJ-01",
                                                         "title": "排污许可",
                                                         "legal_basis": "《排污许可管理条例》第十七条"}),
    }
    now = datetime.now(UTC)
    # Registered and dispatched before its window began, as offices do: the team's tablets hold its
    # inspection code (pulled) when a visit starts at the window's start (a visit begun before its code
    # existed is flagged code-missing, or late-registration).
    with time_machine.travel(now - timedelta(hours=1, minutes=10), tick=False):
        task = create_task(SYSTEM, {
            "title": "联合检查：浯溪食品", "enterprise_id": enterprise.id, "window_start": now - timedelta(hours=1),
            "window_end": now + timedelta(hours=8), "member_ids": [people["m-insp"].id, people["e-insp"].id],
            "check_item_ids": [items["m-licence"].id, items["e-permit"].id], "lead_department_id": market.id})
        db.session.flush()
    db.session.commit()
    return World(market, ecology, people, devices, enterprise, items, task)


def inspection_code(task: Any) -> str:
    """The token of a dispatched task's inspection code, as its team's tablets hold it after a pull and
    record it (``inspection_code``) on the inspection they start."""
    from server.codes.service import issued_code

    code = issued_code(task)
    assert code is not None, f"task {task.id} has no code ({task.status.value})"
    return code.token


def assert_problem(response: Any, status: int, slug: str | None = None) -> dict[str, Any]:
    """The answer is RFC 9457 problem+json with the given status (and type slug)."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/problem+json", response.mimetype
    body = response.get_json()
    assert body["status"] == status
    assert body["type"].startswith("/problems/")
    assert body["title"] and body["detail"]
    if slug:
        assert body["type"] == f"/problems/{slug}", body
    return body  # type: ignore[no-any-return]


def new_id() -> str:
    return str(uuid.uuid4())
