"""Object-level authorization on every endpoint that takes an id.

Department-owned objects (people, certificates, devices) are invisible to
other departments: they answer 404, so ids cannot be probed. The shared
directory (departments, check items, enterprises) is readable by all, but
only its owners change it.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import World, assert_problem, login_body
from tests.server.planning.factories import PLANNING_KEYS, ecology_planning_objects


def _device_headers(client, world: World, name: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    created = world.devices[name]
    token = client.post("/api/v1/auth/device-token",
                        json={"device_id": created.device.id, "device_secret": created.secret}).get_json()
    return {"Authorization": "Bearer " + token["access_token"]}


def _ecology_upload_and_media(client, world: World) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """An unfinished upload and a stored media record, both sent by ecology's docking station."""
    import base64
    import hashlib

    headers = {**_device_headers(client, world, "e-dock"), **TUS}
    ids = []
    for data, body in ((b"segment-1", b""), (b"segment-2", b"segment-2")):
        meta = "sha256 " + base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode()
        response = client.post("/api/v1/uploads/", data=body, headers={
            **headers, "Upload-Length": str(len(data)), "Upload-Metadata": meta,
            "Content-Type": "application/offset+octet-stream"})
        assert response.status_code == 201, response.get_data(as_text=True)
        ids.append(response.headers["Location"].rsplit("/", 1)[1])
    found = client.get("/api/v1/media", query_string={"sha256": hashlib.sha256(b"segment-2").hexdigest()},
                       headers=headers).get_json()["items"]
    return ids[0], found[0]["id"]


def _ecology_hold(media_id: str) -> str:
    """A legal hold on ecology's stored file (placed by the operator)."""
    from server.archive.models import HeldObject
    from server.archive.retention import place_hold
    from server.auth.policy import SYSTEM
    from server.extensions import db

    hold = place_hold(SYSTEM, HeldObject.MEDIA, uuid.UUID(media_id), "证据保全")
    db.session.commit()
    return str(hold.id)


def _market_inspection(client, world: World) -> str:  # type: ignore[no-untyped-def]
    """The world task's joint inspection record, started by market regulation's tablet."""
    import time

    from server.sync.entities import inspection_id_for

    token = client.post("/api/v1/auth/token", json=login_body("m-insp")).get_json()  # on the tablet SCJG-TAB1
    inspection_id = str(inspection_id_for(world.task.id))
    mutation = {"id": str(uuid.uuid4()), "entity": "inspection", "entity_id": inspection_id, "op": "upsert",
                "base_version": 0, "hlc": f"{int(time.time() * 1000):013d}-0000-SCJG-TAB1",
                "fields": {"task_id": str(world.task.id), "place": "厂区"}}
    response = client.post("/api/v1/sync/push", json={"device_id": "SCJG-TAB1", "mutations": [mutation]},
                           headers={"Authorization": "Bearer " + token["access_token"]})
    assert response.get_json()["results"][0]["status"] == "applied", response.get_json()
    return inspection_id


def _ecology_decision_and_commitment(world: World) -> dict[str, str]:
    """Ecology's draft decision on the world task's approved joint record, and a commitment made to ecology."""
    from server.auth.policy import SYSTEM
    from server.decisions import service as decisions
    from server.extensions import db
    from tests.server.decisions.conftest import approved_inspection

    inspection = approved_inspection(world)
    decision = decisions.create_decision(SYSTEM, inspection.id, {
        "department_id": world.ecology.id, "kind": "penalty", "amount_yuan": 20000, "conclusion": "排污许可证过期",
        "legal_basis": "《排污许可管理条例》第三十三条"})
    commitment = decisions.create_commitment(SYSTEM, {
        "department_id": world.ecology.id, "enterprise_id": world.enterprise.id, "matter": "排污登记（告知承诺）",
        "promise": "已建设污水处理设施", "due_on": world.task.window_end.date()})
    db.session.commit()
    return {"decision": str(decision.id), "commitment": str(commitment.id)}


def _ecology_publication(world: World) -> str:
    """Ecology's made decision on the world task, published (by the operator)."""
    from datetime import date

    from server.auth.policy import SYSTEM
    from server.decisions.models import DecisionKind
    from server.extensions import db
    from server.publication import service as publication
    from tests.server.publication.conftest import made_decision

    decision = made_decision(world.task, world.ecology.id, DecisionKind.NO_IRREGULARITY, date(2026, 3, 2))
    published = publication.publish(SYSTEM, decision.id)
    db.session.commit()
    return str(published.id)


def _ecology_complaint(world: World) -> str:
    """The enterprise's complaint on the world task (market-led, ecology on the team), lodged on the public page."""
    from flask import current_app

    from tests.server.evaluations.conftest import lodge_complaint

    return lodge_complaint(current_app._get_current_object(), world)  # type: ignore[attr-defined]


def _ids(world: World, client=None, planning: bool = False,  # type: ignore[no-untyped-def]
         inspection_client=None, hold: bool = False, decisions: bool = False,
         publication: bool = False, complaint: bool = False) -> dict[str, str]:
    upload, media = _ecology_upload_and_media(client, world) if client is not None else ("", "")
    planned = ecology_planning_objects(world) if planning else dict.fromkeys(PLANNING_KEYS, "")
    return {
        "department": str(world.ecology.id),
        "check_item": str(world.check_items["e-permit"].id),
        "enterprise": str(world.enterprise.id),
        "user": str(world.people["e-insp"].id),
        "certificate": str(world.people["e-insp"].certificates[0].id),
        "device": world.devices["e-dock"].device.id,
        "task": str(world.task.id),
        "upload": upload,
        "media": media,
        "hold": _ecology_hold(media) if media and hold else "",
        "inspection": _market_inspection(inspection_client, world) if inspection_client is not None else "",
        **(_ecology_decision_and_commitment(world) if decisions else {"decision": "", "commitment": ""}),
        "publication": _ecology_publication(world) if publication else "",
        "complaint": _ecology_complaint(world) if complaint else "",
        **planned,
    }


# tus requests carry the protocol version; other endpoints ignore it.
TUS = {"Tus-Resumable": "1.0.0"}


# (method, path template, body, actor, expected status); every object belongs to 生态环境局 (ecology).
CASES: list[tuple[str, str, Any, str, int]] = [
    ("GET", "/api/v1/departments/{department}", None, "m-insp", 200),
    ("GET", "/api/v1/check-items/{check_item}", None, "m-insp", 200),
    ("PATCH", "/api/v1/check-items/{check_item}", {"title": "改"}, "m-head", 403),
    ("PATCH", "/api/v1/check-items/{check_item}", {"title": "改"}, "e-insp", 403),
    ("PATCH", "/api/v1/check-items/{check_item}", {"title": "改"}, "e-head", 200),
    ("GET", "/api/v1/enterprises/{enterprise}", None, "e-insp", 200),
    ("PATCH", "/api/v1/enterprises/{enterprise}", {"industry": "食品"}, "e-insp", 403),
    ("PATCH", "/api/v1/enterprises/{enterprise}", {"industry": "食品"}, "e-sup", 200),
    ("GET", "/api/v1/users/{user}", None, "m-insp", 404),
    ("GET", "/api/v1/users/{user}", None, "m-head", 404),
    ("GET", "/api/v1/users/{user}", None, "e-sup", 200),
    ("GET", "/api/v1/users/{user}", None, "admin", 200),
    ("GET", "/api/v1/certificates/{certificate}", None, "m-head", 404),
    ("GET", "/api/v1/certificates/{certificate}", None, "e-insp", 200),
    ("POST", "/api/v1/certificates/{certificate}/status", {"status": "suspended", "reason": "r"}, "m-head", 404),
    ("POST", "/api/v1/certificates/{certificate}/status", {"status": "suspended", "reason": "r"}, "e-insp", 403),
    ("POST", "/api/v1/certificates/{certificate}/status", {"status": "suspended", "reason": "r"}, "e-sup", 403),
    ("POST", "/api/v1/certificates/{certificate}/status", {"status": "suspended", "reason": "r"}, "e-head", 200),
    ("POST", "/api/v1/certificates/{certificate}/status", {"status": "suspended", "reason": "r"}, "admin", 200),
    ("GET", "/api/v1/devices/{device}", None, "m-head", 404),
    ("GET", "/api/v1/devices/{device}", None, "m-insp", 404),
    ("GET", "/api/v1/devices/{device}", None, "e-insp", 200),
    # The task is led by market regulation, with one inspector of each department on the team.
    ("GET", "/api/v1/tasks/{task}", None, "e-insp2", 404),
    ("GET", "/api/v1/tasks/{task}", None, "e-insp", 200),
    ("GET", "/api/v1/tasks/{task}", None, "e-sup", 200),
    ("POST", "/api/v1/tasks/{task}/close", None, "e-insp2", 403),
    ("POST", "/api/v1/tasks/{task}/close", None, "e-sup", 403),
    ("POST", "/api/v1/tasks/{task}/close", None, "m-insp", 403),
    ("POST", "/api/v1/tasks/{task}/close", None, "e-head", 403),
    ("POST", "/api/v1/tasks/{task}/close", None, "m-sup", 200),
    ("POST", "/api/v1/tasks/{task}/cancel", {"reason": "企业停产"}, "e-insp2", 403),
    ("POST", "/api/v1/tasks/{task}/cancel", {"reason": "企业停产"}, "m-insp", 403),
    ("POST", "/api/v1/tasks/{task}/cancel", {"reason": "企业停产"}, "e-sup", 403),
    ("POST", "/api/v1/tasks/{task}/cancel", {"reason": "企业停产"}, "e-head", 403),
    ("POST", "/api/v1/tasks/{task}/cancel", {"reason": "企业停产"}, "m-head", 200),
    # The joint record and report: the team and the participating departments' offices only.
    ("GET", "/api/v1/tasks/{task}/joint-record", None, "e-insp2", 404),
    ("GET", "/api/v1/tasks/{task}/joint-record", None, "device:e-dock", 401),  # not a device's business
    ("GET", "/api/v1/tasks/{task}/joint-record", None, "e-insp", 200),
    ("GET", "/api/v1/tasks/{task}/joint-record", None, "e-head", 200),
    ("GET", "/api/v1/tasks/{task}/joint-report.html", None, "e-insp2", 404),
    ("GET", "/api/v1/tasks/{task}/joint-report.html", None, "m-sup", 200),
    ("GET", "/api/v1/tasks/{task}/joint-report.pdf", None, "e-insp2", 404),
    ("GET", "/api/v1/tasks/{task}/joint-report.pdf", None, "m-insp", 200),
    # Media and uploads sent by ecology's docking station ("device:" actors use a device token).
    ("GET", "/api/v1/media/{media}", None, "m-insp", 404),
    ("GET", "/api/v1/media/{media}", None, "m-head", 404),
    ("GET", "/api/v1/media/{media}", None, "device:m-cam", 404),
    ("GET", "/api/v1/media/{media}", None, "e-insp", 200),
    ("GET", "/api/v1/media/{media}", None, "device:e-dock", 200),
    ("GET", "/api/v1/media/{media}", None, "admin", 200),
    ("GET", "/api/v1/media/{media}/content", None, "m-insp", 404),
    ("GET", "/api/v1/media/{media}/content", None, "m-head", 404),
    ("GET", "/api/v1/media/{media}/content", None, "device:m-cam", 404),
    ("GET", "/api/v1/media/{media}/content", None, "e-insp", 200),
    ("GET", "/api/v1/media/{media}/content", None, "e-sup", 200),
    ("GET", "/api/v1/media/{media}/content", None, "device:e-dock", 200),
    ("GET", "/api/v1/media/{media}/content", None, "admin", 200),
    ("DELETE", "/api/v1/uploads/{upload}", None, "m-insp", 404),
    ("DELETE", "/api/v1/uploads/{upload}", None, "device:m-cam", 404),
    ("DELETE", "/api/v1/uploads/{upload}", None, "admin", 403),  # the role does not upload at all
    ("DELETE", "/api/v1/uploads/{upload}", None, "e-sup", 403),
    ("DELETE", "/api/v1/uploads/{upload}", None, "e-insp", 403),
    ("DELETE", "/api/v1/uploads/{upload}", None, "device:e-dock", 204),
    # The case file: offices of the task's departments; evidence deletion and legal holds: heads (and admins).
    ("GET", "/api/v1/inspections/{inspection}/case-file", None, "e-insp2", 404),
    ("GET", "/api/v1/inspections/{inspection}/case-file", None, "e-insp", 403),
    ("GET", "/api/v1/inspections/{inspection}/case-file", None, "e-sup", 200),
    ("POST", "/api/v1/media/{media}/deletion", {"reason": "r"}, "m-head", 404),
    ("POST", "/api/v1/media/{media}/deletion", {"reason": "r"}, "e-sup", 403),
    ("POST", "/api/v1/media/{media}/deletion", {"reason": "r"}, "e-head", 409),  # under retention
    ("GET", "/api/v1/legal-holds/{hold}", None, "m-sup", 404),
    ("GET", "/api/v1/legal-holds/{hold}", None, "e-sup", 200),
    ("POST", "/api/v1/legal-holds/{hold}/lift", {"reason": "r"}, "m-head", 404),
    ("POST", "/api/v1/legal-holds/{hold}/lift", {"reason": "r"}, "e-sup", 403),
    ("POST", "/api/v1/legal-holds/{hold}/lift", {"reason": "r"}, "e-head", 200),
    # Planning: plans are read across departments, written by their own; the pending task is ecology-led,
    # with market regulation taking part; the conflict is e-insp's, the override request e-sup's.
    # The assessment of the world task's inspection record: the team and its departments' offices.
    ("GET", "/api/v1/inspections/{inspection}/assessment", None, "e-insp2", 404),
    ("GET", "/api/v1/inspections/{inspection}/assessment", None, "e-insp", 200),
    ("GET", "/api/v1/inspections/{inspection}/assessment", None, "e-sup", 200),
    ("GET", "/api/v1/plans/{plan}", None, "m-insp", 403),
    ("GET", "/api/v1/plans/{plan}", None, "m-sup", 200),
    ("GET", "/api/v1/joint-plans/{joint_plan}", None, "e-insp", 403),
    ("GET", "/api/v1/joint-plans/{joint_plan}", None, "m-sup", 200),
    ("GET", "/api/v1/draws/{draw}", None, "e-insp", 403),
    ("GET", "/api/v1/draws/{draw}", None, "m-head", 200),
    ("GET", "/api/v1/draws/{draw}/verify", None, "e-insp", 403),
    ("GET", "/api/v1/draws/{draw}/verify", None, "m-sup", 200),
    ("POST", "/api/v1/tasks/{pending_task}/approve", None, "e-insp", 403),
    ("POST", "/api/v1/tasks/{pending_task}/approve", None, "e-sup", 403),
    ("POST", "/api/v1/tasks/{pending_task}/approve", None, "admin", 403),
    ("POST", "/api/v1/tasks/{pending_task}/approve", None, "m-head", 200),
    ("POST", "/api/v1/tasks/{pending_task}/approve", None, "e-head", 200),
    ("POST", "/api/v1/tasks/{pending_task}/reject", {"reason": "r"}, "m-sup", 403),
    ("POST", "/api/v1/tasks/{pending_task}/reject", {"reason": "r"}, "e-head", 200),
    ("GET", "/api/v1/conflicts-of-interest/{conflict}", None, "m-head", 404),
    ("GET", "/api/v1/conflicts-of-interest/{conflict}", None, "e-insp2", 404),
    ("GET", "/api/v1/conflicts-of-interest/{conflict}", None, "e-insp", 200),
    ("GET", "/api/v1/conflicts-of-interest/{conflict}", None, "e-head", 200),
    ("GET", "/api/v1/frequency-overrides/{override}", None, "m-sup", 404),
    ("GET", "/api/v1/frequency-overrides/{override}", None, "e-insp", 403),
    ("GET", "/api/v1/frequency-overrides/{override}", None, "e-sup", 200),
    ("POST", "/api/v1/frequency-overrides/{override}/approve", None, "m-head", 404),
    ("POST", "/api/v1/frequency-overrides/{override}/approve", None, "e-sup", 403),
    ("POST", "/api/v1/frequency-overrides/{override}/approve", None, "e-head", 200),
    ("POST", "/api/v1/frequency-overrides/{override}/reject", {"reason": "r"}, "m-head", 404),
    ("POST", "/api/v1/frequency-overrides/{override}/reject", {"reason": "r"}, "e-head", 200),
    # Ecology's decision on the market-led joint inspection (ecology on the team), and a commitment made to ecology.
    ("GET", "/api/v1/decisions/{decision}", None, "e-insp2", 404),
    ("GET", "/api/v1/decisions/{decision}", None, "m-insp", 200),
    ("GET", "/api/v1/decisions/{decision}", None, "e-sup", 200),
    ("PATCH", "/api/v1/decisions/{decision}", {"conclusion": "改"}, "m-sup", 403),
    ("PATCH", "/api/v1/decisions/{decision}", {"conclusion": "改"}, "m-head", 403),
    ("PATCH", "/api/v1/decisions/{decision}", {"conclusion": "改"}, "e-insp", 403),
    ("PATCH", "/api/v1/decisions/{decision}", {"conclusion": "改"}, "e-head", 200),
    ("GET", "/api/v1/commitments/{commitment}", None, "m-sup", 404),
    ("GET", "/api/v1/commitments/{commitment}", None, "e-insp", 403),
    ("GET", "/api/v1/commitments/{commitment}", None, "e-sup", 200),
    # Publishing ecology's decision (a draft: its own office hears it is not made yet), and ecology's published result.
    ("GET", "/api/v1/decisions/{decision}/publication", None, "e-insp2", 404),
    ("GET", "/api/v1/decisions/{decision}/publication", None, "e-sup", 409),
    ("POST", "/api/v1/decisions/{decision}/publication", None, "m-sup", 404),
    ("POST", "/api/v1/decisions/{decision}/publication", None, "e-insp", 403),
    ("POST", "/api/v1/decisions/{decision}/publication", None, "e-sup", 409),
    ("POST", "/api/v1/publications/{publication}/correction", {"note": "n"}, "m-sup", 404),
    ("POST", "/api/v1/publications/{publication}/correction", {"note": "n"}, "e-insp", 403),
    ("POST", "/api/v1/publications/{publication}/correction", {"note": "n"}, "e-sup", 201),
    ("POST", "/api/v1/publications/{publication}/withdrawal", {"reason": "r"}, "m-head", 404),
    ("POST", "/api/v1/publications/{publication}/withdrawal", {"reason": "r"}, "e-insp2", 403),
    ("POST", "/api/v1/publications/{publication}/withdrawal", {"reason": "r"}, "e-head", 200),
    # What the enterprise said of the world task's visit: the participating offices read it, never the team (nor an
    # inspector of theirs); heads and legal reviewers reply to a complaint.
    ("GET", "/api/v1/tasks/{task}/evaluations", None, "e-insp", 403),
    ("GET", "/api/v1/tasks/{task}/evaluations", None, "e-sup", 200),
    ("GET", "/api/v1/inspections/{inspection}/evaluations", None, "e-insp2", 403),
    ("GET", "/api/v1/inspections/{inspection}/evaluations", None, "e-head", 200),
    ("GET", "/api/v1/complaints/{complaint}", None, "m-insp", 403),
    ("GET", "/api/v1/complaints/{complaint}", None, "e-sup", 200),
    ("POST", "/api/v1/complaints/{complaint}/reply", {"reply": "已核实"}, "e-insp", 403),
    ("POST", "/api/v1/complaints/{complaint}/reply", {"reply": "已核实"}, "e-sup", 403),
    ("POST", "/api/v1/complaints/{complaint}/reply", {"reply": "已核实"}, "e-head", 200),
]

# Path suffixes of actions: the object they act on is read at the path without them.
ACTIONS = ("/status", "/close", "/cancel", "/approve", "/reject", "/lift", "/deletion", "/correction", "/withdrawal",
           "/reply")


@pytest.mark.parametrize("method, template, body, actor, expected", CASES,
                         ids=[f"{m} {t} as {a}" for m, t, _, a, _ in CASES])
def test_object_level_access(client, world: World, auth, method: str, template: str, body: Any, actor: str,
                             expected: int) -> None:
    needs_media = "{upload}" in template or "{media}" in template or "{hold}" in template
    needs_planning = any("{" + key + "}" in template for key in PLANNING_KEYS)
    url = template.format(**_ids(world, client if needs_media else None, planning=needs_planning,
                                 inspection_client=client if "{inspection}" in template else None,
                                 hold="{hold}" in template,
                                 decisions="{decision}" in template or "{commitment}" in template,
                                 publication="{publication}" in template, complaint="{complaint}" in template))
    read_url = url
    for suffix in (*ACTIONS, "/verify"):
        read_url = read_url.removesuffix(suffix)

    def read() -> Any:
        if read_url.startswith("/api/v1/uploads/"):  # a tus upload is read with HEAD, as its owner
            answer = client.head(read_url, headers={**_device_headers(client, world, "e-dock"), **TUS})
            return answer.status_code, answer.headers.get("Upload-Offset")
        return client.get(read_url, headers=auth.headers("admin")).get_json()

    before = read()
    headers = _device_headers(client, world, actor[7:]) if actor.startswith("device:") else auth.headers(actor)
    response = client.open(url, method=method, json=body, headers={**headers, **TUS})
    if expected >= 400:
        assert_problem(response, expected)
        # A refused change leaves the object as it was.
        assert read() == before
    else:
        assert response.status_code == expected, response.get_data(as_text=True)


@pytest.mark.parametrize("template", sorted({t for _, t, _, _, _ in CASES}))
def test_unknown_ids_answer_404(client, world: World, auth, template: str) -> None:
    ids = {k: (str(uuid.uuid4()) if k != "device" else "NO-SUCH-DEVICE") for k in _ids(world)}
    method = "POST" if template.endswith(ACTIONS) else "GET"
    body = {"status": "suspended", "reason": "r"} if template.endswith("/status") else {"reason": "r"}
    if template.endswith("/correction"):
        body = {"note": "n"}
    if template.endswith("/reply"):
        body = {"reply": "r"}
    if method == "GET" or template.endswith(("/close", "/approve")):
        body = None
    # Approvals are the heads' alone, not even an administrator's.
    headers = auth.headers("e-head" if template.endswith(("/approve", "/reject")) else "admin")
    if template.startswith("/api/v1/uploads/"):  # tus: no GET; only the uploader may touch an upload
        method, headers = "DELETE", {**_device_headers(client, world, "e-dock"), **TUS}
    assert_problem(client.open(template.format(**ids), method=method, json=body, headers=headers), 404)


def test_listings_are_scoped_to_the_department(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    users = {u["username"] for u in client.get("/api/v1/users/?limit=200", headers=headers).get_json()["items"]}
    assert users == {"admin", "m-head", "m-sup", "m-insp"}
    devices = {d["id"] for d in client.get("/api/v1/devices/", headers=headers).get_json()["items"]}
    assert devices == {"SCJG-BC01", "SCJG-TAB1"}
    numbers = {c["number"] for c in client.get("/api/v1/certificates/", headers=headers).get_json()["items"]}
    assert numbers == {"CERT-M-001"}
    everyone = client.get("/api/v1/users/?limit=200", headers=auth.headers("admin")).get_json()["items"]
    assert len(everyone) == len(world.people)


def test_every_endpoint_with_an_id_is_covered_here(app) -> None:
    """A new endpoint that takes an id must be added to CASES."""
    covered = {t.replace("{", "<").split("<")[0] for _, t, _, _, _ in CASES}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.arguments and "docs" not in rule.rule:
            assert rule.rule.split("<")[0] in covered, f"{rule.rule} lacks object-level authorization tests"


def test_every_api_route_declares_its_permission(app) -> None:
    public = {"auth.token", "auth.refresh", "auth.logout", "auth.device_token", "device_keys.enrol",
              "api-docs.openapi_json", "api-docs.openapi_swagger_ui",
              "archive.archive_key"}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.endpoint in public or "docs" in rule.rule:
            continue
        view: Callable[..., Any] = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        methods = [getattr(view_class, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}] if view_class else [view]
        for method in methods:
            assert hasattr(method, "_required_permission"), f"{rule.endpoint} {method.__name__} has no @requires"
