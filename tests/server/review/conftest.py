"""A review scene: a joint inspection led by market regulation with footage, flags and findings,
and an ecology-only inspection that market's supervisor must not see; and the same joint record
crowded with thousands of signatures, findings, files, flags, conflicts, decisions and audit entries."""
from __future__ import annotations

import dataclasses
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import g
from flask.testing import FlaskClient
from sqlalchemy import insert, select

from server.audit.service import record as audit
from server.auth.policy import SYSTEM
from server.directory import service as directory
from server.directory.credit_code import make_credit_code
from server.directory.models import Device, DeviceKind
from server.extensions import db
from server.review import service
from server.review.models import DecisionKind
from server.review.sessions import principal_of
from server.sync import service as sync
from server.sync.entities import MAX_PER_INSPECTION, inspection_id_for
from server.sync.models import SyncConflict, SyncedEntity
from server.tasks.models import InspectionTask
from server.tasks.service import create_task
from server.uploads.models import Media, MediaObject, VerificationStatus
from server.uploads.service import uploads
from server.verification.models import (
    InspectionFlag,
    InspectionMedia,
    VerificationReport,
)
from tests.conftest import PASSWORD, World
from tests.media.conftest import run_ffmpeg

CLIP_SECONDS = 12
CERTIFICATE_AT = (2.0, 4.0)  # seconds into the clip where the inspector's certificate is seen


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A short H.264 recording, a keyframe every second (seeking lands where asked), index first (streams)."""
    path = tmp_path_factory.mktemp("review-clip") / "clip.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10", "-t", str(CLIP_SECONDS), "-c:v", "libx264",
               "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "10", "-movflags", "+faststart", str(path))
    return Path(path).read_bytes()


def entity(kind: str, task: InspectionTask, department_id: uuid.UUID, user_id: uuid.UUID, fields: dict[str, Any],
           inspection_id: uuid.UUID | None = None, entity_id: uuid.UUID | None = None) -> SyncedEntity:
    """A synced entity as tablets leave it after a push (the sync rules are tested in tests/server/sync)."""
    tablet = db.session.scalar(select(Device.id).where(Device.department_id == department_id,
                                                       Device.kind == DeviceKind.TABLET))
    clock = f"{int(time.time() * 1000):013d}-0000-{tablet}"  # the HLC of the write that won each field
    row = SyncedEntity(id=entity_id or uuid.uuid4(), kind=kind, task_id=task.id, inspection_id=inspection_id,
                       department_id=department_id, created_by_id=user_id, fields=fields,
                       clocks=dict.fromkeys(fields, clock),
                       field_versions={}, version=1)
    db.session.add(row)
    db.session.flush()
    return row


def stored_media(data: bytes, task: InspectionTask, department_id: uuid.UUID, *, name: str,
                 capture_start: datetime, content_type: str = "video/mp4") -> Media:
    stored = uploads().store.put([data])
    if db.session.get(MediaObject, stored.sha256) is None:
        db.session.add(MediaObject(sha256=stored.sha256, size=stored.size, backend=stored.backend, key=stored.key))
        db.session.flush()
    media = Media(sha256=stored.sha256, size=stored.size, department_id=department_id, task_id=task.id,
                  content_type=content_type, file_name=name, capture_start=capture_start,
                  verification_status=VerificationStatus.VERIFIED, verification_reasons=[])
    db.session.add(media)
    db.session.flush()
    return media


def other_enterprise(body: str, name: str, world: World) -> Any:
    return directory.create_enterprise(SYSTEM, {"credit_code": make_credit_code("9", "1", "431121", body),
                                                "name": name, "address": "祁阳市长虹街道"},
                                       [world.market, world.ecology])


@dataclass
class Scene:
    world: World
    joint: SyncedEntity          # market-led joint inspection (ecology took part)
    ecology_only: SyncedEntity   # ecology's own inspection: market may not see it
    coercive: SyncedEntity       # market inspection with a seizure: legal review needed
    video: Media
    start: datetime


def build_scene(world: World, clip: bytes) -> Scene:
    people = world.people
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    joint = entity("inspection", world.task, world.market.id, people["m-insp"].id,
                   entity_id=inspection_id_for(world.task.id), fields={
        "task_id": str(world.task.id), "place": "厂区一号车间", "started_at": start.isoformat(),
        "ended_at": (start + timedelta(seconds=CLIP_SECONDS + 10)).isoformat(), "representative": "张经理",
        "soft_measures": ["提醒规范公示营业执照"], "coercive_measures": [], "conclusion": "基本合规",
        "status": "finished"})
    entity("finding", world.task, world.market.id, people["m-insp"].id, {
        "inspection_id": str(joint.id), "check_item_id": str(world.check_items["m-licence"].id),
        "result": "compliant", "note": "执照已公示", "evidence": [],
        "recorded_at": (start + timedelta(seconds=8)).isoformat()}, inspection_id=joint.id)
    entity("finding", world.task, world.ecology.id, people["e-insp"].id, {
        "inspection_id": str(joint.id), "check_item_id": str(world.check_items["e-permit"].id),
        "result": "non_compliant", "note": "排污许可证过期", "evidence": [],
        "recorded_at": (start + timedelta(seconds=10)).isoformat()}, inspection_id=joint.id)
    video = stored_media(clip, world.task, world.market.id, name="REC_0001.MP4",
                         capture_start=start + timedelta(seconds=2))
    db.session.add(VerificationReport(
        media_id=video.id, status="verified", reasons=[], attempts=1, analyser="media/1",
        measurements={"duration": float(CLIP_SECONDS), "kind": "video"},
        detections=[{"kind": "certificate", "text": "CERT-M-001", "start": CERTIFICATE_AT[0], "end": CERTIFICATE_AT[1],
                     "count": 4},
                    {"kind": "lens-covered", "text": "dark", "start": 9.0, "end": 11.0, "count": 4}],
        started_at=start, finished_at=start))
    db.session.add(InspectionMedia(inspection_id=joint.id, media_id=video.id, task_id=world.task.id,
                                   source="bodycam", attached_at=start))
    db.session.add(InspectionFlag(inspection_id=joint.id, task_id=world.task.id, code="lens-covered",
                                  severity="warning", message="镜头被遮挡 2 秒", media_id=video.id, raised_at=start,
                                  details={"start": (start + timedelta(seconds=11)).isoformat(),
                                           "end": (start + timedelta(seconds=13)).isoformat()}))

    ecology_task = create_task(SYSTEM, {
        "title": "生态环境检查：祁阳化工", "enterprise_id": other_enterprise("PL990001", "祁阳化工有限公司", world).id,
        "window_start": start - timedelta(days=2),
        "window_end": start - timedelta(days=2) + timedelta(hours=4), "member_ids": [people["e-insp2"].id],
        "check_item_ids": [world.check_items["e-permit"].id], "lead_department_id": world.ecology.id})
    ecology_only = entity("inspection", ecology_task, world.ecology.id, people["e-insp2"].id, {
        "task_id": str(ecology_task.id), "place": "污水处理站", "status": "finished"})
    db.session.add(InspectionFlag(inspection_id=ecology_only.id, task_id=ecology_task.id, code="certificate-missing",
                                  severity="error", message="未见亮证", raised_at=start, details={}))

    market_task = create_task(SYSTEM, {
        "title": "查封扣押：祁阳副食仓库", "enterprise_id": other_enterprise("PL990002", "祁阳副食品批发部", world).id,
        "window_start": start - timedelta(days=1),
        "window_end": start - timedelta(days=1) + timedelta(hours=4), "member_ids": [people["m-insp"].id],
        "check_item_ids": [world.check_items["m-licence"].id], "lead_department_id": world.market.id})
    coercive = entity("inspection", market_task, world.market.id, people["m-insp"].id, {
        "task_id": str(market_task.id), "place": "仓库", "status": "finished",
        "coercive_measures": [{"kind": "seizure", "description": "查封过期食品"}]})
    db.session.add(InspectionFlag(inspection_id=coercive.id, task_id=market_task.id, code="footage-missing",
                                  severity="error", message="采取强制措施但无执法记录仪视频", raised_at=start,
                                  details={}))
    db.session.commit()
    return Scene(world, joint, ecology_only, coercive, video, start)


@pytest.fixture
def scene(world: World, clip: bytes) -> Scene:
    return build_scene(world, clip)


_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/review/login") -> str:
    # Test requests share the test's app context, so Flask-WTF's per-request cache in g would
    # hand one client's token to another: forget it, as a new request on a server does.
    g.pop("csrf_token", None)
    page = client.get(path)
    found = _TOKEN.search(page.get_data(as_text=True))
    assert found, page.get_data(as_text=True)[:500]
    return found.group(1)


def log_in(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    return client.post("/review/login", data={"username": username, "password": password,
                                              "csrf_token": csrf_token(client)})


@pytest.fixture
def review_as(client: FlaskClient):  # type: ignore[no-untyped-def]
    """Log ``client`` in to the review app as a user; returns the client."""
    def login(username: str) -> FlaskClient:
        response = log_in(client, username)
        assert response.status_code == 303, response.get_data(as_text=True)[:1000]
        return client
    return login


def post_form(client: FlaskClient, path: str, data: dict[str, Any], page: str = "/review/") -> Any:
    return client.post(path, data={**data, "csrf_token": csrf_token(client, page)})


# ---- a crowded record: thousands of everything on one inspection ----------------------------

SIGNATURES = 6000
FINDINGS = 3000
FILES = 400   # photos and recording segments
FLAGS = 1500
CONFLICTS = 500
DECISIONS = 60
VIEWS = 300
PAGE_BOUND = 400_000  # bytes: the page of the record as built in the scene is about 40 kB


def _push(scene: Scene, user: str, tablet: str, mutations: list[tuple[str, uuid.UUID, dict[str, Any]]]) -> None:
    """Through the sync service, as tablets push, a thousand mutations a batch."""
    principal = dataclasses.replace(principal_of(scene.world.people[user]), device_id=tablet)  # logged in on it
    for start in range(0, len(mutations), 1000):
        batch = [{"id": uuid.uuid4(), "entity": entity, "entity_id": entity_id, "op": "upsert", "base_version": 0,
                  "hlc": f"{int(time.time() * 1000):013d}-{n:04x}-{tablet}", "fields": fields}
                 for n, (entity, entity_id, fields) in enumerate(mutations[start:start + 1000])]
        results = sync.push(principal, tablet, batch, timedelta(minutes=5))
        assert {r.status for r in results} == {"applied"}, [r for r in results if r.status != "applied"][:3]
        db.session.commit()


@dataclass
class Crowded:
    scene: Scene
    files: list[uuid.UUID]


@contextmanager
def _before_the_cap() -> Iterator[None]:
    """Records as they could grow before sync bounded them (MAX_PER_INSPECTION): a load test left one
    inspection with 17,000 signatures. The pages must stay bounded for such records too."""
    kept = dict(MAX_PER_INSPECTION)
    MAX_PER_INSPECTION.update(dict.fromkeys(MAX_PER_INSPECTION, 10 ** 9))
    try:
        yield
    finally:
        MAX_PER_INSPECTION.update(kept)


@pytest.fixture
def crowded(scene: Scene) -> Crowded:
    with _before_the_cap():
        return _crowded(scene)


def _crowded(scene: Scene) -> Crowded:
    world, joint, start = scene.world, scene.joint, scene.start
    inspection = str(joint.id)
    item = str(world.check_items["m-licence"].id)
    _push(scene, "m-insp", "SCJG-TAB1", [
        ("signature", uuid.uuid4(), {"inspection_id": inspection, "signer_role": "witness",
                                     "signer_name": f"见证人{n:05d}", "signed_at": start.isoformat()})
        for n in range(SIGNATURES)] + [
        ("finding", uuid.uuid4(), {"inspection_id": inspection, "check_item_id": item, "result": "compliant",
                                   "note": f"抽查第 {n} 处",
                                   "recorded_at": (start + timedelta(seconds=n % 600)).isoformat()})
        for n in range(FINDINGS)])
    # The files' records come as tablets sync them; their stored copies (one small object for all) are
    # inserted in bulk: uploading 400 files through tus is tested in tests/server/uploads.
    files = [uuid.uuid4() for _ in range(FILES)]
    _push(scene, "m-insp", "SCJG-TAB1", [
        ("media", media_id, {"inspection_id": inspection, "sha256": scene.video.sha256, "size": scene.video.size,
                             "proves": "scene", "content_type": "video/mp4" if n % 2 else "image/jpeg",
                             "file_name": f"F{n:04d}.MP4" if n % 2 else f"IMG_{n:04d}.jpg",
                             "capture_start": (start + timedelta(seconds=n)).isoformat()})
        for n, media_id in enumerate(files)])
    db.session.execute(insert(Media), [
        {"id": media_id, "sha256": scene.video.sha256, "size": scene.video.size, "department_id": world.market.id,
         "task_id": world.task.id, "content_type": "video/mp4" if n % 2 else "image/jpeg",
         "file_name": f"F{n:04d}.MP4" if n % 2 else f"IMG_{n:04d}.jpg", "capture_start": start + timedelta(seconds=n),
         "uploaded_at": start, "verification_status": VerificationStatus.VERIFIED, "verification_reasons": []}
        for n, media_id in enumerate(files)])
    db.session.execute(insert(VerificationReport), [
        {"media_id": media_id, "status": "verified", "reasons": [], "attempts": 1, "analyser": "media/1",
         "measurements": {"duration": 1.0, "kind": "video"} if n % 2 else {"kind": "photo"},
         "detections": [{"kind": "certificate", "text": f"CERT-X-{n:04d}", "start": 0.1, "end": 0.5, "count": 1}],
         "started_at": start, "finished_at": start}
        for n, media_id in enumerate(files)])
    db.session.execute(insert(InspectionMedia), [
        {"inspection_id": joint.id, "media_id": media_id, "task_id": world.task.id, "source": "record",
         "attached_at": start} for media_id in files])
    # What the verification worker and the sync merge would leave for such a record, in bulk.
    db.session.execute(insert(InspectionFlag), [
        {"id": uuid.uuid4(), "inspection_id": joint.id, "task_id": world.task.id, "code": "lens-covered",
         "severity": "warning", "message": f"F{n:04d}.MP4 中有 1 段画面疑似镜头被遮挡", "media_id": files[n % FILES],
         "raised_at": start, "details": {"name": f"F{n:04d}.MP4", "intervals": [
             {"start": (start + timedelta(seconds=n)).isoformat(),
              "end": (start + timedelta(seconds=n + 1)).isoformat()}]}}
        for n in range(FLAGS)])
    db.session.execute(insert(SyncConflict), [
        {"id": uuid.uuid4(), "entity_id": joint.id, "task_id": world.task.id, "field": "place", "kept_value": f"甲{n}",
         "kept_hlc": "x", "lost_value": f"乙{n}", "lost_hlc": "y", "mutation_id": uuid.uuid4(), "detected_at": start}
        for n in range(CONFLICTS)])
    db.session.commit()
    supervisor = principal_of(world.people["m-sup"])
    for n in range(DECISIONS):
        service.decide(supervisor, joint.id, DecisionKind.RETURN, f"第 {n} 次退回：请补充")
    for _ in range(VIEWS):
        audit("inspection.view", object_type="inspection", object_id=inspection, actor=supervisor)
    db.session.commit()
    return Crowded(scene, files)
