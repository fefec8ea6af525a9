"""A case to archive: the world's joint inspection, finished, with two evidence files and a decision slot."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from server.directory.models import Device, DeviceKind
from server.extensions import db
from server.sync.entities import inspection_id_for
from server.sync.models import SyncedEntity
from server.tasks.models import InspectionTask
from server.uploads.models import Media, MediaObject, VerificationStatus
from server.uploads.service import uploads
from tests.conftest import World


def entity(kind: str, task: InspectionTask, department_id: uuid.UUID, user_id: uuid.UUID, fields: dict[str, Any],
           inspection_id: uuid.UUID | None = None, entity_id: uuid.UUID | None = None) -> SyncedEntity:
    """A synced entity as the tablets leave it after a push (the sync rules are tested in tests/server/sync)."""
    tablet = db.session.scalar(select(Device.id).where(Device.department_id == department_id,
                                                       Device.kind == DeviceKind.TABLET))
    clock = f"{int(time.time() * 1000):013d}-0000-{tablet}"
    row = SyncedEntity(id=entity_id or uuid.uuid4(), kind=kind, task_id=task.id, inspection_id=inspection_id,
                       department_id=department_id, created_by_id=user_id, fields=fields,
                       clocks=dict.fromkeys(fields, clock), field_versions={}, version=1)
    db.session.add(row)
    db.session.flush()
    return row


def stored_media(data: bytes, task: InspectionTask, department_id: uuid.UUID, *, name: str,
                 content_type: str = "video/mp4") -> Media:
    stored = uploads().store.put([data])
    if db.session.get(MediaObject, stored.sha256) is None:
        db.session.add(MediaObject(sha256=stored.sha256, size=stored.size, backend=stored.backend, key=stored.key))
        db.session.flush()
    media = Media(sha256=stored.sha256, size=stored.size, department_id=department_id, task_id=task.id,
                  content_type=content_type, file_name=name, capture_start=datetime.now(UTC) - timedelta(minutes=20),
                  verification_status=VerificationStatus.VERIFIED, verification_reasons=[])
    db.session.add(media)
    db.session.flush()
    return media


@dataclass
class Case:
    world: World
    inspection: SyncedEntity
    video: Media
    photo: Media


def build_case(world: World, video: bytes = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64) -> Case:
    people = world.people
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    inspection = entity("inspection", world.task, world.market.id, people["m-insp"].id,
                        entity_id=inspection_id_for(world.task.id), fields={
        "task_id": str(world.task.id), "place": "厂区一号车间", "started_at": start.isoformat(),
        "ended_at": (start + timedelta(minutes=20)).isoformat(), "representative": "张经理",
        "soft_measures": [], "coercive_measures": [], "conclusion": "基本合规", "status": "finished"})
    entity("finding", world.task, world.market.id, people["m-insp"].id, {
        "inspection_id": str(inspection.id), "check_item_id": str(world.check_items["m-licence"].id),
        "result": "compliant", "note": "执照已公示", "evidence": [],
        "recorded_at": (start + timedelta(minutes=2)).isoformat()}, inspection_id=inspection.id)
    clip = stored_media(video, world.task, world.market.id, name="执法记录仪片段.MP4")
    photo = stored_media(b"\xff\xd8\xff\xe0 certificate photo", world.task, world.ecology.id, name="photo.jpg",
                         content_type="image/jpeg")
    db.session.commit()
    return Case(world, inspection, clip, photo)


@pytest.fixture
def case(world: World) -> Case:
    return build_case(world)
