"""The inspection record carries the task's inspection code (扫码入企): the token the tablet pulled with the task,
set when the record is started offline, synced to the server; a task from an older server (no code) starts a
record without one, and ``fieldsync`` says so."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from field_client.engine import FieldClient
from server.codes.service import verify_token
from server.extensions import db
from server.sync.models import SyncedEntity
from tests.conftest import World
from tests.field_client.conftest import TASK_ID, FlaskTransport
from tests.field_client.test_cli import Run


def _inspection_fields(client: FieldClient) -> dict[str, object]:
    (pending,) = [p for p in client.status().pending if p.entity == "inspection"]
    return pending.fields


def test_a_record_started_offline_carries_the_pulled_token_to_the_server(world: World,
                                                                        tablet: Callable[..., FieldClient],
                                                                        tmp_path: Path) -> None:
    client = tablet("m-insp", "SCJG-TAB1")
    client.sync()
    (task,) = [t for t in client.tasks() if t["id"] == str(world.task.id)]
    code = task["inspection_code"]
    assert code["url"].endswith("/public/c/" + code["token"])
    assert verify_token(code["token"]).task_id == world.task.id  # the server's own signature

    transport = client.transport()
    assert isinstance(transport, FlaskTransport)
    transport.offline = True
    inspection_id = client.start_inspection(str(world.task.id))
    assert _inspection_fields(client)["inspection_code"] == code["token"]
    run = Run(tmp_path / "SCJG-TAB1" / "field.db")
    assert run("tasks") == 0 and f"检查码：{code['url']}（有效期至 " in run.out
    assert run("inspect", "show", inspection_id) == 0 and "检查码：已记录" in run.out

    transport.offline = False
    assert not client.sync().push.rejected
    db.session.expire_all()
    record = db.session.get(SyncedEntity, uuid.UUID(inspection_id))
    assert record is not None and record.fields["inspection_code"] == code["token"]


def test_a_task_without_a_code_starts_a_record_without_one(offline_tablet: Callable[..., FieldClient],
                                                           tmp_path: Path) -> None:
    # The scripted server stands for an older one: its task carries no inspection_code.
    client = offline_tablet()
    inspection_id = client.start_inspection(TASK_ID)
    assert _inspection_fields(client)["inspection_code"] is None
    run = Run(tmp_path / "tablet" / "field.db")
    assert run("tasks") == 0 and "检查码：本任务暂无检查码，请联系派发部门" in run.out
    assert run("inspect", "show", inspection_id) == 0 and "检查码：未记录" in run.out
