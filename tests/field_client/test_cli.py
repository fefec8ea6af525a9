"""``fieldsync`` as an inspector uses it: offline commands, sync, status, and what happens on bad input."""
from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from field_client.cli import main
from field_client.engine import FieldClient
from tests.conftest import PASSWORD, World
from tests.field_client.conftest import SERVER, TASK_ID, FakeServer, FlaskTransport


class Run:
    """Calls ``main`` with captured streams; remembers the last output."""

    def __init__(self, store: Path, transport: Any = None) -> None:
        self.store = store
        self.transport = transport
        self.out = self.err = ""

    def __call__(self, *argv: str, stdin: str = "", **options: Any) -> int:
        out, err = io.StringIO(), io.StringIO()
        code = main(["--store", str(self.store), *argv], transport=self.transport, stdin=io.StringIO(stdin),
                    stdout=out, stderr=err, password_prompt=lambda prompt: PASSWORD,
                    client_options={"sleep": lambda s: None, **options})
        self.out, self.err = out.getvalue(), err.getvalue()
        return code


@pytest.fixture
def offline(tmp_path: Path, offline_tablet: Callable[..., FieldClient]) -> Run:
    """A store that logged in and pulled once; the CLI then runs with no transport at all."""
    path = tmp_path / "tablet" / "field.db"
    offline_tablet(path).close()
    return Run(path)


def test_offline_session_from_start_to_finish(offline: Run, tmp_path: Path) -> None:
    assert offline("tasks") == 0
    assert "联合检查：浯溪食品" in offline.out and "SCJG-01" in offline.out and "（本部门）" in offline.out
    assert offline("inspect", "start", TASK_ID[:8] + "-0000", "--place", "生产车间") == 0
    assert offline("inspect", "start", TASK_ID, "--place", "生产车间") == 0
    inspection = offline.out.split("：")[1].split("\n")[0].strip()
    assert "已加入" in offline.out
    assert offline("finding", inspection[:8], "SCJG-01", "--result", "non_compliant", "--note", "执照未公示") == 0
    photo = tmp_path / "执照.jpg"
    photo.write_bytes(b"\xff\xd8licence")
    assert offline("attach", inspection, str(photo), "--proves", "certificate") == 0
    assert "sha256" in offline.out
    assert offline("measure", inspection, "--soft", "当场提醒公示") == 0
    assert offline("measure", inspection, "--coercive", "seizure", "--description", "查封过期原料") == 0
    assert offline("finish", inspection, "--conclusion", "责令整改") == 0
    assert offline("inspect", "show", inspection) == 0
    assert "执照未公示" in offline.out and "查封过期原料" in offline.out and "责令整改" in offline.out

    assert offline("status") == 0
    assert "待推送：6 条" in offline.out and "待上传证据文件：1 个" in offline.out
    assert "被服务器拒绝：0 条" in offline.out and "冲突：0 条" in offline.out
    assert offline("status", "--json") == 0
    assert '"pending"' in offline.out


@pytest.mark.parametrize("argv", [
    (),
    ("fly",),
    ("finding", "x", "y"),
    ("finding", "x", "y", "--result", "fine"),
    ("measure", "x", "--soft", "a", "--coercive", "seizure"),
    ("measure", "x", "--coercive", "seizure"),
    ("measure", "x"),
    ("attach", "x", "f.jpg", "--proves", "selfie"),
    ("inspect",),
    ("login", "--server", SERVER),
])
def test_usage_errors_exit_2(offline: Run, argv: tuple[str, ...]) -> None:
    assert offline(*argv) == 2
    assert offline.err and "Traceback" not in offline.err


def test_refusals_exit_1_with_a_reason(offline: Run, tmp_path: Path) -> None:
    assert offline("finding", "00000000-aaaa", "SCJG-01", "--result", "compliant") == 1
    assert "本机没有检查记录" in offline.err
    assert offline("inspect", "start", TASK_ID) == 0
    inspection = offline.out.split("：")[1].strip()
    assert offline("finding", inspection, "STHJ-01", "--result", "compliant") == 1
    assert "属于其他部门" in offline.err
    assert offline("attach", inspection, str(tmp_path / "nothing.jpg"), "--proves", "scene") == 1
    assert "找不到文件" in offline.err

    # Sync over real HTTP to a server that is not there: a clear message, nothing lost.
    client = FieldClient(offline.store)
    client.store.set("server_url", "http://127.0.0.1:1")
    client.close()
    assert offline("sync") == 1
    assert "无法连接服务器" in offline.err and "保存在本机" in offline.err
    assert offline("status") == 0 and "待推送：1 条" in offline.out and "[network]" in offline.out


def test_a_fresh_store_explains_how_to_start(tmp_path: Path) -> None:
    run = Run(tmp_path / "new" / "field.db")
    assert run("tasks") == 0 and "fieldsync sync" in run.out
    assert run("status") == 0 and "尚未登录" in run.out and "尚未登记为执法平板" in run.out
    assert run("inspect", "start", TASK_ID) == 1 and "fieldsync login" in run.err


def test_store_location_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIELDSYNC_STORE", str(tmp_path / "env" / "field.db"))
    assert main(["status"], stdout=io.StringIO(), stderr=io.StringIO()) == 0
    assert (tmp_path / "env" / "field.db").exists()


def _code_for(world: World, device_id: str) -> str:
    """An administrator issues a one-time enrolment code for the tablet (as flask enrol-tablet does)."""
    from server.auth.policy import SYSTEM
    from server.directory import enrolment
    from server.extensions import db

    issued = enrolment.issue_code(SYSTEM, world.market.id, device_id)
    db.session.commit()
    return issued.code


def test_enrol_login_sync_and_a_retired_tablet_against_the_server(app: Flask, world: World, tmp_path: Path) -> None:
    transport = FlaskTransport(app)
    run = Run(tmp_path / "cli" / "field.db", transport)
    # Not enrolled: no log-in, whatever --device says.
    assert run("login", "--server", SERVER, "--username", "m-insp", "--device", "ANYTHING", "--password-stdin",
               stdin=PASSWORD + "\n") == 1
    assert "尚未登记为执法平板" in run.err and "fieldsync enrol" in run.err
    assert run("enrol", "--server", SERVER, "AAAA-BBBB-CCCC") == 1 and "登记码不正确" in run.err
    code = _code_for(world, "SCJG-TAB1")
    assert run("enrol", "--server", SERVER, code) == 0
    assert "SCJG-TAB1" in run.out and "市场监管局" in run.out
    assert run("status") == 0 and "本机平板：SCJG-TAB1（市场监管局）" in run.out
    assert run("enrol", "--server", SERVER, code) == 1 and "已经使用过" in run.err
    assert run("login", "--server", SERVER, "--username", "m-insp", "--device", "SCJG-TAB2", "--password-stdin",
               stdin=PASSWORD + "\n") == 1
    assert "本机登记的平板是 SCJG-TAB1" in run.err
    assert run("login", "--server", SERVER, "--username", "e-insp", "--password-stdin", stdin=PASSWORD + "\n") == 1
    assert "其他部门" in run.err
    assert run("login", "--server", SERVER, "--username", "m-insp", "--password-stdin", stdin=PASSWORD + "\n") == 0
    assert "已登录" in run.out and "SCJG-TAB1" in run.out
    assert run("sync") == 0 and "拉取" in run.out
    assert run("inspect", "start", str(world.task.id)) == 0
    inspection = run.out.split("：")[1].strip()
    assert run("finding", inspection, "SCJG-01", "--result", "compliant") == 0
    assert run("sync") == 0
    assert "推送 2/2" in run.err and "新保存 2" in run.out

    # The tablet is retired meanwhile: the session ends at the next request, and the record stays on the tablet.
    from server.auth.policy import SYSTEM
    from server.directory import enrolment
    from server.extensions import db
    enrolment.retire(SYSTEM, "SCJG-TAB1")
    db.session.commit()
    assert run("finish", inspection) == 0
    assert run("sync") == 1
    assert "device-unknown" in run.err and "已停用" in run.err
    assert run("status") == 0 and "待推送：1 条" in run.out
    assert run("login", "--server", SERVER, "--username", "m-insp", "--password-stdin", stdin=PASSWORD + "\n") == 1
    assert "未登记、已停用" in run.err


def test_a_tablet_provisioned_by_create_device_enrols_with_its_secret_file(
        app: Flask, world: World, tmp_path: Path) -> None:
    run = Run(tmp_path / "cli" / "field.db", FlaskTransport(app))
    secret = tmp_path / "secret"
    secret.write_text(world.devices["m-tab"].secret + "\n")
    assert run("enrol", "--server", SERVER, "--device", "SCJG-TAB1") == 2
    assert run("enrol", "--server", SERVER, "--device", "SCJG-TAB1", "--secret-file", str(tmp_path / "none")) == 2
    assert run("enrol", "--server", SERVER, "--device", "SCJG-TAB1", "--secret-file", str(secret)) == 0
    assert run("login", "--server", SERVER, "--username", "m-insp", "--password-stdin", stdin=PASSWORD + "\n") == 0
    assert run("sync") == 0


def test_wrong_password_and_rejections_exit_1(app: Flask, world: World, tmp_path: Path) -> None:
    transport = FlaskTransport(app)
    run = Run(tmp_path / "cli" / "field.db", transport)
    assert run("enrol", "--server", SERVER, _code_for(world, "SCJG-TAB1")) == 0
    assert run("login", "--server", SERVER, "--username", "m-insp", "--device", "SCJG-TAB1", "--password-stdin",
               stdin="wrong\n") == 1
    assert "登录失败" in run.err
    assert run("login", "--server", SERVER, "--username", "m-insp", "--device", "SCJG-TAB1") == 0
    assert run("sync") == 0
    assert run("inspect", "start", str(world.task.id)) == 0
    from server.auth.policy import SYSTEM
    from server.extensions import db
    from server.tasks.service import close_task
    close_task(SYSTEM, world.task.id)
    db.session.commit()
    assert run("sync") == 1
    assert "task-closed" in run.err and "已关闭" in run.err
    assert run("status") == 0 and "被服务器拒绝：1 条" in run.out and "task-closed" in run.out


def test_fake_server_is_never_contacted_by_offline_commands(offline: Run, fake_server: FakeServer) -> None:
    calls = len(fake_server.calls)
    offline("tasks")
    offline("status")
    offline("inspect", "start", TASK_ID)
    assert len(fake_server.calls) == calls


# ---- what the inspector reads ---------------------------------------------------------------

# 2026-01-05 09:00 in the offices' zone (01:00 UTC): the tablet's clock, never the machine's.
FIXED_NOW = 1767574800.0


def test_starting_a_finished_record_says_it_is_finished_and_what_can_be_done(offline: Run) -> None:
    assert offline("inspect", "start", TASK_ID, clock=lambda: FIXED_NOW) == 0
    inspection = offline.out.split("：")[1].strip()
    assert offline("finish", inspection, "--conclusion", "责令整改", clock=lambda: FIXED_NOW + 3600) == 0
    assert offline("inspect", "start", TASK_ID) == 0
    assert "进行中" not in offline.out and "已加入" not in offline.out
    assert "已结束" in offline.out and "2026-01-05 10:00" in offline.out and inspection in offline.out
    assert f"fieldsync inspect show {inspection}" in offline.out and "--new" in offline.out
    # Starting it anew is said as such.
    assert offline("inspect", "start", TASK_ID, "--new", clock=lambda: FIXED_NOW + 7200) == 0
    assert "重新开始" in offline.out and "已结束" not in offline.out
    assert offline("inspect", "show", inspection) == 0 and "开始：2026-01-05 11:00" in offline.out


@pytest.fixture
def precise_window(fake_server: FakeServer) -> None:
    """The task window as the server sends it: UTC, with microseconds."""
    task = fake_server.changes[-1]["fields"]
    task["window_start"], task["window_end"] = "2026-12-02T01:00:00.123456+00:00", "2026-12-02T09:30:00+00:00"


@pytest.fixture
def reset_machine_zone() -> Any:
    yield
    import time
    time.tzset()


def test_tasks_show_office_time_whatever_the_machine_zone(precise_window: None, offline: Run,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          reset_machine_zone: None) -> None:
    import time
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    monkeypatch.delenv("FIELDSYNC_TIMEZONE", raising=False)
    assert offline("tasks") == 0
    assert "时间窗口：2026-12-02 09:00 ~ 2026-12-02 17:30" in offline.out
    assert ".123456" not in offline.out and "+00:00" not in offline.out and "T01:00" not in offline.out


def test_the_office_zone_can_be_set_by_option_or_environment(precise_window: None, offline: Run,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIELDSYNC_TIMEZONE", "UTC")
    assert offline("tasks") == 0 and "时间窗口：2026-12-02 01:00 ~ 2026-12-02 09:30" in offline.out
    assert offline("--timezone", "+05:30", "tasks") == 0
    assert "时间窗口：2026-12-02 06:30 ~ 2026-12-02 15:00" in offline.out
    assert offline("--timezone", "Mars/Olympus", "tasks") == 2 and "时区" in offline.err
    monkeypatch.setenv("FIELDSYNC_TIMEZONE", "nowhere")
    assert offline("tasks") == 2 and "FIELDSYNC_TIMEZONE" in offline.err


class ClosedPipe(io.StringIO):
    """A stdout whose reader has gone (``fieldsync tasks | head``)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("argv", [("tasks",), ("status",), ("status", "--json"), ("inspect", "start", TASK_ID)])
def test_a_closed_stdout_ends_the_command_quietly(offline: Run, argv: tuple[str, ...]) -> None:
    err = io.StringIO()
    code = main(["--store", str(offline.store), *argv], stdout=ClosedPipe(), stderr=err,
                client_options={"sleep": lambda s: None})
    assert code == 141 and err.getvalue() == ""


@pytest.mark.parametrize(("argv", "exit_code"), [(("tasks",), 141), (("status",), 141),
                                                 (("--help",), 0)])  # argparse itself ignores a failed write
def test_fieldsync_into_a_closed_pipe_leaves_no_traceback(offline: Run, argv: tuple[str, ...], exit_code: int) -> None:
    import os
    import subprocess
    import sys
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before fieldsync writes a byte, as after `| head` has had its lines
    try:
        result = subprocess.run([sys.executable, "-m", "field_client.cli", "--store", str(offline.store), *argv],
                                stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60,
                                cwd=Path(__file__).resolve().parents[2])
    finally:
        os.close(writer)
    assert result.stderr == "" and result.returncode == exit_code
