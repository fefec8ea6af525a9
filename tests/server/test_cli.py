"""The operator's command line (``flask --app server …``), as an operator uses it.

Every refusal must say why, exit non-zero, and leave the database exactly as
it was: the counts are read through a separate connection, so they show what
was committed, not what one session believes.
"""
from __future__ import annotations

from collections import Counter
from datetime import UTC
from typing import Any

import pytest
from sqlalchemy import func, select, text

from server.directory.credit_code import is_valid_credit_code
from server.directory.models import (
    Certificate,
    CertificateStatus,
    CertificateStatusChange,
    CheckItem,
    Department,
    Device,
    Enterprise,
    Role,
    User,
)
from server.extensions import db
from server.seed import DEMO_PASSWORD, DEPARTMENTS
from tests.conftest import PASSWORD, World


def snapshot() -> dict[str, int]:
    """Committed row count of every table, read on a fresh connection."""
    with db.engine.connect() as conn:
        return {t.name: conn.execute(text(f'SELECT COUNT(*) FROM "{t.name}"')).scalar_one()
                for t in db.metadata.sorted_tables}


def invoke(runner: Any, *args: str) -> Any:
    return runner.invoke(args=list(args))


def refused(result: Any, *fragments: str) -> None:
    """A refusal: non-zero exit, an ``Error:`` line naming the reason, no traceback."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Error" in result.output, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, (fragment, result.output)


def ok(result: Any) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output  # type: ignore[no-any-return]


# ---- create-department -------------------------------------------------------

def test_create_department(runner: Any) -> None:
    out = ok(invoke(runner, "create-department", "--code", "SCJG", "--name", "市场监管局"))
    assert "created department SCJG 市场监管局" in out
    department = db.session.scalar(select(Department).where(Department.code == "SCJG"))
    assert department is not None and department.name == "市场监管局"
    assert str(department.id) in out


def test_create_department_refuses_a_duplicate_code(runner: Any) -> None:
    ok(invoke(runner, "create-department", "--code", "SCJG", "--name", "市场监管局"))
    before = snapshot()
    result = invoke(runner, "create-department", "--code", "SCJG", "--name", "另一个局")
    refused(result, "SCJG", "已存在")
    assert result.output.count("已存在") == 1, result.output  # one line, said once
    assert snapshot() == before
    assert db.session.scalars(select(Department.name)).all() == ["市场监管局"]


@pytest.mark.parametrize("code", ["scjg", "S", "1ABC", "SC JG", "市场", "A" * 33])
def test_create_department_refuses_an_invalid_code(runner: Any, code: str) -> None:
    before = snapshot()
    result = invoke(runner, "create-department", "--code", code, "--name", "市场监管局")
    refused(result, "code", "部门代码须为")
    assert snapshot() == before


def test_create_department_refuses_an_empty_name(runner: Any) -> None:
    before = snapshot()
    refused(invoke(runner, "create-department", "--code", "SCJG", "--name", ""), "name")
    assert snapshot() == before


# ---- create-user -------------------------------------------------------------

def test_create_user_without_certificate(runner: Any, make_department: Any) -> None:
    make_department("SCJG", "市场监管局")
    out = ok(invoke(runner, "create-user", "--username", "li.head", "--password", PASSWORD,
                    "--role", "head", "--department", "SCJG", "--full-name", "李主任"))
    assert "created user li.head (head, SCJG)" in out
    user = db.session.scalar(select(User).where(User.username == "li.head"))
    assert user is not None
    assert (user.role, user.full_name, user.department.code, user.certificates) == (Role.HEAD, "李主任", "SCJG", [])


def test_create_user_with_certificate_can_log_in(runner: Any, client: Any, make_department: Any) -> None:
    make_department("SCJG", "市场监管局")
    ok(invoke(runner, "create-user", "--username", "wang", "--password", PASSWORD, "--role", "inspector",
              "--department", "SCJG", "--certificate", "43112100123", "--valid-from", "2025-01-01",
              "--valid-until", "2028-12-31"))
    user = db.session.scalar(select(User).where(User.username == "wang"))
    assert user is not None and user.full_name == "wang"  # defaults to the username
    [certificate] = user.certificates
    assert (certificate.number, certificate.valid_from.isoformat(), certificate.valid_until.isoformat(),
            certificate.status) == ("43112100123", "2025-01-01", "2028-12-31", CertificateStatus.VALID)
    assert [h.status for h in certificate.history] == [CertificateStatus.VALID]
    response = client.post("/api/v1/auth/token", json={"username": "wang", "password": PASSWORD})
    assert response.status_code == 200, response.get_json()


@pytest.mark.around_office_midnight
def test_create_user_certificate_valid_from_defaults_to_today(runner: Any, make_department: Any) -> None:
    """Today is the offices' day (UTC+8), not the machine's: they differ from 16:00 to 24:00 UTC."""
    from datetime import datetime, timedelta
    make_department("SCJG")
    ok(invoke(runner, "create-user", "--username", "zhao", "--password", PASSWORD, "--role", "inspector",
              "--department", "SCJG", "--certificate", "CERT-0001", "--valid-until", "2099-01-01"))
    certificate = db.session.scalar(select(Certificate).where(Certificate.number == "CERT-0001"))
    office_today = (datetime.now(UTC) + timedelta(hours=8)).date()
    assert certificate is not None and certificate.valid_from == office_today


def test_create_user_refuses_an_unknown_department(runner: Any, make_department: Any) -> None:
    make_department("SCJG")
    before = snapshot()
    result = invoke(runner, "create-user", "--username", "wang", "--password", PASSWORD, "--role", "inspector",
                    "--department", "NOPE")
    refused(result, "NOPE", "不存在")
    assert snapshot() == before


def test_create_user_refuses_a_short_password(runner: Any, make_department: Any) -> None:
    make_department("SCJG")
    before = snapshot()
    result = invoke(runner, "create-user", "--username", "wang", "--password", "short", "--role", "inspector",
                    "--department", "SCJG", "--certificate", "CERT-0001", "--valid-until", "2099-01-01")
    refused(result, "password", "8-256")
    assert snapshot() == before


def test_create_user_refuses_a_duplicate_username(runner: Any, world: World) -> None:
    before = snapshot()
    original_hash = world.people["m-insp"].password_hash
    result = invoke(runner, "create-user", "--username", "m-insp", "--password", "another-password-1",
                    "--role", "inspector", "--department", "STHJ", "--certificate", "CERT-NEW-1",
                    "--valid-until", "2099-01-01")
    refused(result, "m-insp", "已被使用")
    assert snapshot() == before
    db.session.expire_all()
    user = db.session.scalar(select(User).where(User.username == "m-insp"))
    assert user is not None and user.password_hash == original_hash and user.department_id == world.market.id
    assert db.session.scalar(select(Certificate).where(Certificate.number == "CERT-NEW-1")) is None


def test_create_user_refuses_a_duplicate_certificate_number(runner: Any, world: World) -> None:
    before = snapshot()
    result = invoke(runner, "create-user", "--username", "newcomer", "--password", PASSWORD, "--role", "inspector",
                    "--department", "SCJG", "--certificate", "CERT-M-001", "--valid-until", "2099-01-01")
    refused(result, "CERT-M-001", "已存在")
    # The user row was flushed before the certificate was refused: it must not survive.
    assert snapshot() == before
    assert db.session.scalar(select(User).where(User.username == "newcomer")) is None


def test_create_user_refuses_a_certificate_without_valid_until(runner: Any, make_department: Any) -> None:
    make_department("SCJG")
    before = snapshot()
    result = invoke(runner, "create-user", "--username", "wang", "--password", PASSWORD, "--role", "inspector",
                    "--department", "SCJG", "--certificate", "CERT-0001")
    refused(result, "--valid-until", "required with --certificate")
    assert snapshot() == before


@pytest.mark.parametrize("option, value", [
    ("--valid-until", "2028-13-01"), ("--valid-until", "31/12/2028"), ("--valid-until", "tomorrow"),
    ("--valid-from", "2025-02-30"),
])
def test_create_user_refuses_a_bad_date(runner: Any, make_department: Any, option: str, value: str) -> None:
    make_department("SCJG")
    dates = {"--valid-from": "2025-01-01", "--valid-until": "2028-12-31", option: value}
    before = snapshot()
    result = invoke(runner, "create-user", "--username", "wang", "--password", PASSWORD, "--role", "inspector",
                    "--department", "SCJG", "--certificate", "CERT-0001", *[x for kv in dates.items() for x in kv])
    refused(result, option, value, "YYYY-MM-DD")
    assert snapshot() == before


def test_create_user_refuses_a_window_that_ends_before_it_starts(runner: Any, make_department: Any) -> None:
    make_department("SCJG")
    before = snapshot()
    result = invoke(runner, "create-user", "--username", "wang", "--password", PASSWORD, "--role", "inspector",
                    "--department", "SCJG", "--certificate", "CERT-0001", "--valid-from", "2028-01-01",
                    "--valid-until", "2027-01-01")
    refused(result, "valid_until", "早于起始日期")
    assert snapshot() == before


def test_create_user_refuses_an_unknown_role(runner: Any, make_department: Any) -> None:
    make_department("SCJG")
    before = snapshot()
    result = invoke(runner, "create-user", "--username", "wang", "--password", PASSWORD, "--role", "boss",
                    "--department", "SCJG")
    refused(result, "--role", "boss")
    assert snapshot() == before


# ---- create-device -----------------------------------------------------------

def test_create_device_prints_a_secret_that_works(runner: Any, client: Any, world: World) -> None:
    out = ok(invoke(runner, "create-device", "--id", "SCJG-BC09", "--kind", "bodycam", "--department", "SCJG",
                    "--inspector", "m-insp", "--label", "执法记录仪 2 号"))
    lines = out.rstrip("\n").split("\n")
    assert len(lines) >= 2 and "SCJG-BC09" in lines[0] and "shown once" in lines[0]
    secret = lines[-1]
    assert secret == secret.strip() and len(secret) >= 20 and " " not in secret
    device = db.session.get(Device, "SCJG-BC09")
    assert device is not None
    assert (device.kind.value, device.department_id, device.inspector_id, device.label) == (
        "bodycam", world.market.id, world.people["m-insp"].id, "执法记录仪 2 号")
    assert secret not in device.secret_hash  # only a hash is kept

    response = client.post("/api/v1/auth/device-token", json={"device_id": "SCJG-BC09", "device_secret": secret})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["access_token"] and response.get_json()["token_type"] == "Bearer"
    wrong = client.post("/api/v1/auth/device-token", json={"device_id": "SCJG-BC09", "device_secret": secret + "x"})
    assert wrong.status_code == 401


def test_create_device_without_inspector(runner: Any, world: World) -> None:
    out = ok(invoke(runner, "create-device", "--id", "STHJ-TAB9", "--kind", "tablet", "--department", "STHJ"))
    device = db.session.get(Device, "STHJ-TAB9")
    assert device is not None and device.inspector_id is None
    assert len(out.rstrip("\n").split("\n")) == 2


def test_create_device_refuses_an_unknown_inspector(runner: Any, world: World) -> None:
    before = snapshot()
    result = invoke(runner, "create-device", "--id", "SCJG-BC09", "--kind", "bodycam", "--department", "SCJG",
                    "--inspector", "nobody")
    refused(result, "--inspector", "nobody")
    assert snapshot() == before
    assert db.session.get(Device, "SCJG-BC09") is None


def test_create_device_refuses_an_inspector_of_another_department(runner: Any, world: World) -> None:
    before = snapshot()
    result = invoke(runner, "create-device", "--id", "SCJG-BC09", "--kind", "bodycam", "--department", "SCJG",
                    "--inspector", "e-insp")
    refused(result, "不属于该部门")
    assert snapshot() == before


def test_create_device_refuses_a_duplicate_id(runner: Any, world: World) -> None:
    before = snapshot()
    old = db.session.get(Device, "SCJG-BC01")
    assert old is not None
    old_hash, old_inspector = old.secret_hash, old.inspector_id
    result = invoke(runner, "create-device", "--id", "SCJG-BC01", "--kind", "tablet", "--department", "STHJ")
    refused(result, "SCJG-BC01", "已存在")
    assert snapshot() == before
    db.session.expire_all()
    device = db.session.get(Device, "SCJG-BC01")
    assert device is not None
    assert (device.kind.value, device.secret_hash, device.inspector_id) == ("bodycam", old_hash, old_inspector)


@pytest.mark.parametrize("device_id", ["SCJG BC09", "-BC09", "设备1", "A" * 65, "SCJG/BC09"])
def test_create_device_refuses_an_invalid_id(runner: Any, world: World, device_id: str) -> None:
    before = snapshot()
    result = invoke(runner, "create-device", "--id", device_id, "--kind", "bodycam", "--department", "SCJG")
    refused(result, "id", "设备编号须为")
    assert snapshot() == before


def test_create_device_refuses_an_unknown_department_or_kind(runner: Any, world: World) -> None:
    before = snapshot()
    refused(invoke(runner, "create-device", "--id", "X-1", "--kind", "bodycam", "--department", "NOPE"), "NOPE")
    refused(invoke(runner, "create-device", "--id", "X-1", "--kind", "drone", "--department", "SCJG"), "--kind")
    assert snapshot() == before


# ---- set-certificate-status --------------------------------------------------

def _certificate(number: str) -> Certificate:
    db.session.expire_all()
    certificate = db.session.scalar(select(Certificate).where(Certificate.number == number))
    assert certificate is not None
    return certificate


def test_suspending_a_certificate_is_kept_in_its_history(runner: Any, client: Any, world: World, auth: Any) -> None:
    out = ok(invoke(runner, "set-certificate-status", "CERT-M-001", "suspended", "--reason", "年度考试未通过"))
    assert "CERT-M-001 is now suspended" in out
    certificate = _certificate("CERT-M-001")
    assert certificate.status == CertificateStatus.SUSPENDED
    assert [(h.status, h.reason) for h in certificate.history] == [
        (CertificateStatus.VALID, "发证"), (CertificateStatus.SUSPENDED, "年度考试未通过")]

    response = client.get(f"/api/v1/certificates/{certificate.id}", headers=auth.headers("admin"))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["number"] == "CERT-M-001" and body["status"] == "suspended"
    assert [(h["status"], h["reason"]) for h in body["history"]] == [("valid", "发证"), ("suspended", "年度考试未通过")]
    assert body["history"][-1]["changed_at"]

    # Reinstating needs no reason, and is history too.
    ok(invoke(runner, "set-certificate-status", "CERT-M-001", "valid"))
    assert [h.status.value for h in _certificate("CERT-M-001").history] == ["valid", "suspended", "valid"]


@pytest.mark.parametrize("status", ["suspended", "revoked"])
def test_suspending_or_revoking_without_a_reason_is_refused(runner: Any, world: World, status: str) -> None:
    before = snapshot()
    refused(invoke(runner, "set-certificate-status", "CERT-M-001", status), "必须说明理由")
    refused(invoke(runner, "set-certificate-status", "CERT-M-001", status, "--reason", ""), "必须说明理由")
    assert snapshot() == before
    assert _certificate("CERT-M-001").status == CertificateStatus.VALID


def test_an_unknown_certificate_number_is_refused(runner: Any, world: World) -> None:
    before = snapshot()
    refused(invoke(runner, "set-certificate-status", "CERT-X-999", "suspended", "--reason", "调查"),
            "CERT-X-999", "不存在")
    assert snapshot() == before


def test_an_unknown_status_is_refused(runner: Any, world: World) -> None:
    before = snapshot()
    refused(invoke(runner, "set-certificate-status", "CERT-M-001", "expired", "--reason", "x"), "expired")
    assert snapshot() == before


def test_setting_the_status_it_already_has_is_refused(runner: Any, world: World) -> None:
    before = snapshot()
    refused(invoke(runner, "set-certificate-status", "CERT-M-001", "valid"), "valid")
    assert snapshot() == before


def test_a_revoked_certificate_is_final(runner: Any, world: World) -> None:
    ok(invoke(runner, "set-certificate-status", "CERT-E-001", "revoked", "--reason", "调离执法岗位"))
    before = snapshot()
    for status, reason in (("valid", None), ("suspended", "再次暂扣"), ("revoked", "再次吊销")):
        args = ["set-certificate-status", "CERT-E-001", status] + (["--reason", reason] if reason else [])
        refused(invoke(runner, *args), "已吊销")
    assert snapshot() == before
    certificate = _certificate("CERT-E-001")
    assert certificate.status == CertificateStatus.REVOKED
    assert [h.status.value for h in certificate.history] == ["valid", "revoked"]


# ---- seed-demo ---------------------------------------------------------------

def test_seed_demo_leaves_a_joint_inspection_for_review(app: Any, runner: Any) -> None:
    from server.jobs.queue import current_queue
    from server.uploads.models import Media
    from server.verification.models import InspectionFlag

    ok(invoke(runner, "seed-demo", "--if-empty"))
    [media] = db.session.scalars(select(Media)).all()
    queue = current_queue(app)
    while queue.run_pending():  # the worker: verify the photo, then assess the inspection
        pass
    db.session.expire_all()
    assert media.verification["status"] == "verified"
    assert len({d["text"] for d in media.verification["detections"]}) == 2  # two certificates shown
    # The photographed visit's flags (the demo's earlier visits, with no photo, have flags of their own).
    flags = db.session.scalars(select(InspectionFlag).where(InspectionFlag.task_id == media.task_id)).all()
    # The other two members' certificates are not in the evidence.
    assert sorted(f.code for f in flags if f.code.startswith("certificate")) == ["certificate-missing"] * 2


def test_seed_demo_builds_a_believable_city_once(runner: Any, client: Any) -> None:
    out = ok(invoke(runner, "seed-demo", "--if-empty"))
    assert "seeded:" in out and DEMO_PASSWORD in out
    for account in ("admin", "scjg-head", "scjg-supervisor", "scjg-insp1"):
        assert account in out

    departments = {d.code: d for d in db.session.scalars(select(Department))}
    assert {code: d.name for code, d in departments.items()} == {
        "SCJG": "市场监管局", "STHJ": "生态环境局", "JTYS": "交通运输局",
        "NYNC": "农业农村局", "WLGT": "文旅广体局", "YJGL": "应急管理局",
    } == dict(DEPARTMENTS)

    items = db.session.scalars(select(CheckItem)).all()
    assert 25 <= len(items) <= 40
    per_department = Counter(i.department_id for i in items)
    assert set(per_department) == {d.id for d in departments.values()}
    assert all(i.title and i.legal_basis.startswith("《") for i in items)

    enterprises = db.session.scalars(select(Enterprise)).all()
    assert len(enterprises) == 200
    assert all(is_valid_credit_code(e.credit_code) for e in enterprises), \
        [e.credit_code for e in enterprises if not is_valid_credit_code(e.credit_code)]
    assert len({e.credit_code for e in enterprises}) == len({e.name for e in enterprises}) == 200
    assert all(e.supervising_departments for e in enterprises)
    assert any(len(e.supervising_departments) > 1 for e in enterprises)  # joint inspections need shared targets

    inspectors = db.session.scalars(select(User).where(User.role == Role.INSPECTOR)).all()
    assert len(inspectors) >= 36
    assert all(len(i.certificates) == 1 for i in inspectors)
    assert {i.department_id for i in inspectors} == {d.id for d in departments.values()}
    roles = Counter(u.role for u in db.session.scalars(select(User)))
    assert roles[Role.ADMIN] == 1 and roles[Role.HEAD] == 6 and roles[Role.SUPERVISOR] == 6
    assert roles[Role.LEGAL_REVIEWER] >= 1
    statuses = Counter(c.status for c in db.session.scalars(select(Certificate)))
    assert statuses[CertificateStatus.SUSPENDED] >= 2 and statuses[CertificateStatus.VALID] > 30
    for certificate in db.session.scalars(select(Certificate).where(Certificate.status != CertificateStatus.VALID)):
        assert certificate.history[-1].status == certificate.status and certificate.history[-1].reason

    devices = db.session.scalars(select(Device)).all()
    assert len(devices) >= len(inspectors)
    assert {d.kind.value for d in devices} == {"bodycam", "tablet", "dock"}
    bodycam_owners = {d.inspector_id for d in devices if d.kind.value == "bodycam"}
    assert bodycam_owners == {i.id for i in inspectors}

    for username in ("admin", "scjg-head", "scjg-supervisor", "scjg-insp1", "yjgl-insp6"):
        response = client.post("/api/v1/auth/token", json={"username": username, "password": DEMO_PASSWORD})
        assert response.status_code == 200, (username, response.get_json())
    me = client.get("/api/v1/auth/me", headers={"Authorization": "Bearer " + response.get_json()["access_token"]})
    assert me.get_json()["role"] == "inspector" and me.get_json()["department_id"] == str(departments["YJGL"].id)

    # `make run` calls it on every start: the second time it adds nothing.
    before = snapshot()
    out = ok(invoke(runner, "seed-demo", "--if-empty"))
    assert "nothing added" in out
    assert snapshot() == before

    # Without --if-empty on a populated database it refuses and changes nothing.
    result = invoke(runner, "seed-demo")
    refused(result, "SCJG", "已存在")
    assert snapshot() == before
    assert db.session.scalar(select(func.count()).select_from(CertificateStatusChange)) == before[
        "certificate_status_change"]


def test_seed_demo_if_empty_leaves_an_existing_installation_alone(runner: Any, make_department: Any) -> None:
    make_department("OWN", "本地部门")
    before = snapshot()
    out = ok(invoke(runner, "seed-demo", "--if-empty"))
    assert "nothing added" in out
    assert snapshot() == before


def test_create_user_refuses_validity_dates_without_a_certificate(runner, app) -> None:
    from sqlalchemy import func, select

    from server.directory.models import User
    from server.extensions import db

    runner.invoke(args=["create-department", "--code", "SCJG", "--name", "市场监管局"])
    before = db.session.scalar(select(func.count()).select_from(User))
    result = runner.invoke(args=["create-user", "--username", "lonely", "--password", "long-enough-1",
                                 "--role", "inspector", "--department", "SCJG", "--valid-until", "2030-01-01"])
    assert result.exit_code != 0 and "--certificate" in result.output
    assert db.session.scalar(select(func.count()).select_from(User)) == before


# ---- signing keys: make-keys, and INSPECT_ONCE_KEYS=provided --------------------------

def test_make_keys_makes_each_key_once_and_prints_its_fingerprint(runner: Any, app: Any) -> None:
    from server import keyfiles

    var = app.config["SETTINGS"].var_dir
    first = ok(invoke(runner, "make-keys"))
    assert first.count(": made (") == len(keyfiles.KEY_FILES) and "sha256:" in first
    for name in keyfiles.KEY_FILES.values():
        assert (var / name).stat().st_mode & 0o777 == 0o600
    again = ok(invoke(runner, "make-keys"))
    assert again.count(": kept (") == len(keyfiles.KEY_FILES)
    assert [line.rsplit(" ", 1)[1] for line in first.splitlines()[:2]] == [
        line.rsplit(" ", 1)[1] for line in again.splitlines()[:2]]


def test_with_provided_keys_a_server_missing_one_does_not_start_or_sign(database_url: str, tmp_path: Any) -> None:
    from server import keyfiles
    from tests.conftest import _build_app

    app = _build_app(database_url, tmp_path / "var", env_extra={"INSPECT_ONCE_KEYS": "provided"})
    runner = app.test_cli_runner()
    var = (tmp_path / "var").resolve()
    with app.app_context():
        refused(invoke(runner, "serve"), "INSPECT_ONCE_KEYS=provided", "code-key.pem", "make-keys")
        refused(invoke(runner, "worker", "--once"), "archive-key.pem")
        answer = app.test_client().get("/api/v1/archive-key")
        assert answer.status_code == 503 and answer.get_json()["type"].endswith("signing-key-missing")
        assert len(keyfiles.missing_keys(var)) == 2  # nothing was generated on first use
        ok(invoke(runner, "make-keys"))
        assert keyfiles.missing_keys(var) == []
        assert app.test_client().get("/api/v1/archive-key").status_code == 200
        from server.extensions import db
        db.engine.dispose()


def test_an_unknown_keys_mode_is_refused(tmp_path: Any) -> None:
    from server.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="INSPECT_ONCE_KEYS"):
        load_settings(env={"INSPECT_ONCE_VAR": str(tmp_path), "INSPECT_ONCE_KEYS": "shared"}, testing=True)
