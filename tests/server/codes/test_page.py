"""The inspection code as the enterprise meets it: pulled by the tablet, scanned, its page, its refusals."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np
from flask import Flask
from flask.testing import FlaskClient

from server.auth.policy import SYSTEM
from server.codes import service
from server.codes.token import Claims, sign, verify
from server.db_types import utcnow
from server.extensions import db
from server.tasks.models import TaskStatus
from tests.conftest import VALID_CODE, World
from tests.server.sync.test_pull import pull_all


def _code(app: Flask, task: Any) -> service.IssuedCode:
    with app.test_request_context("/"):
        code = service.issued_code(task)
    assert code is not None
    return code


def _page(client: FlaskClient, token: str, query: str = "") -> tuple[int, str, str]:
    response = client.get(f"/public/c/{token}{query}")
    html = response.get_data(as_text=True)
    state = re.search(r'data-testid="verdict" data-state="([^"]+)"', html)
    assert state, html[:500]
    return response.status_code, state.group(1), html


def test_the_tablet_pulls_the_code_and_its_page_shows_the_registered_visit(app: Flask, client: FlaskClient,
                                                                           world: World, auth) -> None:
    changes, _ = pull_all(client, auth.headers("m-insp"))
    task = next(c for c in changes if c["entity"] == "task")
    pulled = task["fields"]["inspection_code"]
    assert pulled["url"] == "http://localhost/public/c/" + pulled["token"]
    assert pulled["expires_at"] == world.task.window_end.isoformat()
    status, state, html = _page(client, pulled["token"])
    assert (status, state) == (200, "valid")
    assert "祁阳市浯溪食品有限公司" in html and "市场监管局、生态环境局" in html
    assert "营业执照公示" in html and "《排污许可管理条例》第十七条" in html  # the check items and their basis
    assert html.count('data-testid="inspector"') == 2 and "有效" in html
    assert "第 <strong>1</strong> 次检查" in html and "上限 2 次" in html
    for secret in ("CERT-M-001", "CERT-E-001", world.people["m-insp"].full_name, VALID_CODE):
        assert secret not in html
    response = client.get(f"/public/c/{pulled['token']}")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_anyone_can_check_a_code_with_the_published_key_alone(app: Flask, client: FlaskClient, world: World) -> None:
    from base64 import urlsafe_b64decode

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    code = _code(app, world.task)
    listed = client.get("/public/code-keys.json").get_json()
    keys = {k["id"]: Ed25519PublicKey.from_public_bytes(urlsafe_b64decode(k["public_key"] + "=="))
            for k in listed["keys"]}
    assert listed["algorithm"] == "Ed25519" and verify(code.token, keys).task_id == world.task.id
    # The printable code is the same URL, readable by a camera.
    svg = client.get(f"/public/c/{code.token}/qr.svg")
    assert svg.mimetype == "image/svg+xml"
    picture = _render_svg_qr(svg.get_data(as_text=True))
    # The plain detector misreads about one in five codes of this size; the ArUco-based one reads them all.
    decoded, _, _ = cv2.QRCodeDetectorAruco().detectAndDecode(picture)
    assert decoded == code.url


def _render_svg_qr(svg: str) -> np.ndarray:
    """segno's one-path SVG (moves and horizontal runs) drawn into pixels, with the quiet zone."""
    scale_match = re.search(r'scale\((\d+)\)', svg)
    size = int(re.search(r'width="(\d+)"', svg).group(1)) // int(scale_match.group(1))  # type: ignore[union-attr]
    grid = np.full((size, size), 255, np.uint8)
    path = re.search(r' d="([^"]+)"', svg).group(1)  # type: ignore[union-attr]
    x = y = 0.0
    for command, a, b in re.findall(r"([MmHhVv])(-?[\d.]+)(?:[ ,](-?[\d.]+))?", path):
        if command in "Mm":
            x, y = (float(a), float(b)) if command == "M" else (x + float(a), y + float(b))
        elif command in "Hh":
            end = float(a) if command == "H" else x + float(a)
            row = int(y - 0.5)
            grid[row, int(min(x, end)):int(max(x, end))] = 0
            x = end
    return cv2.resize(grid, (size * 8, size * 8), interpolation=cv2.INTER_NEAREST)


def test_forged_and_garbled_codes_are_refused_with_a_page_saying_so(app: Flask, client: FlaskClient,
                                                                    world: World) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    code = _code(app, world.task)
    body, signature = code.token.split(".")
    tampered = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + signature
    with app.app_context():
        claims = service.claims_for(world.task)
    forged = sign(Ed25519PrivateKey.generate(), claims)  # our key id, someone else's key
    for token, expected in ((tampered, {"forged", "malformed"}), (forged, {"forged"}), ("not-a-code", {"malformed"}),
                            ("abc.def", {"malformed"})):
        status, state, html = _page(client, token)
        assert status == 400 and state in expected, (token, state)
        assert "伪造" in html or "格式不正确" in html
        assert "祁阳市浯溪食品有限公司" not in html  # nothing read from a token we did not sign
    assert client.get(f"/public/c/{forged}/qr.svg").status_code == 400  # no printable QR of a forgery


def test_the_code_expires_with_the_window_and_is_not_yet_valid_before_it(app: Flask, client: FlaskClient,
                                                                         world: World, clock) -> None:
    code = _code(app, world.task)
    clock.move_to(world.task.window_end + timedelta(minutes=1))
    status, state, html = _page(client, code.token)
    assert (status, state) == (410, "expired") and "不能再凭此码入企检查" in html
    clock.move_to(world.task.window_start - timedelta(minutes=1))
    assert _page(client, code.token)[:2] == (200, "not-yet-valid")


def test_a_changed_or_cancelled_task_voids_its_old_code(app: Flask, client: FlaskClient, world: World) -> None:
    old = _code(app, world.task)
    world.task.window_end = world.task.window_end + timedelta(hours=1)
    db.session.commit()
    new = _code(app, world.task)
    assert new.token != old.token
    assert _page(client, old.token)[:2] == (409, "superseded")
    assert _page(client, new.token)[:2] == (200, "valid")
    world.task.status = TaskStatus.CANCELLED
    db.session.commit()
    status, state, html = _page(client, new.token)
    assert (status, state) == (410, "cancelled") and "检查任务已取消" in html
    with app.test_request_context("/"):
        assert service.issued_code(world.task) is None  # tablets are sent no code for it


def test_a_code_signed_for_a_task_this_server_does_not_know(app: Flask, client: FlaskClient, world: World) -> None:
    import uuid

    with app.app_context():
        claims = service.claims_for(world.task)
        unknown = sign(service._key(), Claims(**{**claims.__dict__, "task_id": uuid.uuid4()}))
    assert _page(client, unknown)[:2] == (404, "unknown-task")


def test_the_enterprise_checks_that_the_code_is_its_own(app: Flask, client: FlaskClient, world: World) -> None:
    from server.directory import service as directory
    from server.directory.credit_code import make_credit_code
    from server.tasks.service import create_task

    own = _code(app, world.task)
    status, _, html = _page(client, own.token, f"?credit_code={VALID_CODE.lower()}")
    assert status == 200 and 'data-own="match"' in html
    neighbour = directory.create_enterprise(SYSTEM, {"credit_code": make_credit_code("9", "1", "431121", "NB000001"),
                                                     "name": "祁阳市邻家商贸有限公司", "address": "祁阳市"},
                                            [world.market])
    now = utcnow()
    other_task = create_task(SYSTEM, {"title": "邻家检查", "enterprise_id": neighbour.id, "window_start": now,
                                      "window_end": now + timedelta(hours=4), "member_ids": [world.people["m-insp"].id],
                                      "check_item_ids": [], "lead_department_id": world.market.id})
    db.session.commit()
    # The neighbour's code shown at this enterprise: the page says whose it is, and that it is not this one's.
    status, _, html = _page(client, _code(app, other_task).token, f"?credit_code={VALID_CODE}")
    assert status == 409 and 'data-own="mismatch"' in html and "不是发给贵企业的" in html
    assert "祁阳市邻家商贸有限公司" in html
    status, _, html = _page(client, own.token, "?credit_code=123")
    assert status == 200 and 'data-own="invalid"' in html


def test_the_code_url_uses_the_configured_public_address(app: Flask, world: World) -> None:
    from dataclasses import replace

    app.config["SETTINGS"] = replace(app.config["SETTINGS"], public_url="https://zf.example.gov.cn")
    code = _code(app, world.task)
    assert urlsplit(code.url)._replace(path="").geturl() == "https://zf.example.gov.cn"
    assert code.url.endswith("/public/c/" + code.token)


def test_the_office_api_answers_a_task_with_its_code_and_warns_of_the_last_visit_the_cap_allows(
        client: FlaskClient, world: World, auth) -> None:
    headers = auth.headers("m-sup")
    task = client.get(f"/api/v1/tasks/{world.task.id}", headers=headers).get_json()
    assert task["inspection_code"]["url"].endswith("/public/c/" + task["inspection_code"]["token"])
    assert task["frequency"] == {"visit_number": 1, "cap": 2, "period_days": 365, "warning": None}
    listed = client.get("/api/v1/tasks/", headers=headers).get_json()["items"]
    assert [t["inspection_code"] for t in listed if t["id"] == str(world.task.id)] == [task["inspection_code"]]
    start = world.task.window_start + timedelta(days=60)
    second = client.post("/api/v1/tasks/", headers=headers, json={
        "title": "复查：浯溪食品", "enterprise_id": str(world.enterprise.id), "window_start": start.isoformat(),
        "window_end": (start + timedelta(hours=4)).isoformat(), "member_ids": [str(world.people["m-insp"].id)]})
    assert second.status_code == 201, second.get_json()
    answer = second.get_json()
    assert answer["status"] == "pending_approval" and answer["inspection_code"] is None  # not yet approved
    assert answer["frequency"]["visit_number"] == 2 and "已达上限 2 次" in answer["frequency"]["warning"]
    third = client.post("/api/v1/tasks/", headers=headers, json={
        "title": "再查：浯溪食品", "enterprise_id": str(world.enterprise.id),
        "window_start": (start + timedelta(days=60)).isoformat(),
        "window_end": (start + timedelta(days=60, hours=4)).isoformat(),
        "member_ids": [str(world.people["m-insp"].id)]})
    assert third.status_code == 409 and third.get_json()["type"] == "/problems/frequency-cap-reached"
