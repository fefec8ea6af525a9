"""The review app's tablet page: list tablets, issue an enrolment code with its QR code, retire (issue 13)."""
from __future__ import annotations

import re

from sqlalchemy import select

from server.directory.models import Device, EnrolmentCode
from server.extensions import db
from tests.conftest import World
from tests.server.review.conftest import post_form

CODE = re.compile(r'data-testid="code"><strong>([2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4})</strong>')


def _tablets(page: str) -> list[str]:
    return re.findall(r'data-testid="tablet-row" data-device="([^"]+)"', page)


def test_a_head_sees_their_departments_tablets_in_chinese(review_as, world: World) -> None:
    page = review_as("m-head").get("/review/devices").get_data(as_text=True)
    assert _tablets(page) == ["SCJG-TAB1"]
    assert "平板管理" in page and "签发登记码" in page and "停用" in page
    assert 'href="/review/devices"' in page  # in the navigation
    admin = review_as("admin").get("/review/devices").get_data(as_text=True)
    assert sorted(_tablets(admin)) == ["SCJG-TAB1", "STHJ-TAB1", "STHJ-TAB2"]  # bodycams and docks are not listed


def test_issuing_shows_the_code_once_with_a_qr_code_of_the_apps_link(review_as, world: World, client) -> None:
    review_as("m-head")
    response = post_form(client, "/review/devices/codes", {"device_id": "", "label": "一中队 2 号"}, "/review/devices")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    code = CODE.search(page).group(1)
    assert f"http://localhost/field/#enrol={code}" in page
    qr = page.split('data-testid="qr">')[1].split("</div>")[0]
    assert qr.startswith("<svg") and "<script" not in qr and "平板登记二维码" in qr
    assert "SCJG-TAB02" in page and "只能使用一次" in page
    assert response.headers["Cache-Control"] == "no-store"
    row = db.session.scalar(select(EnrolmentCode))
    assert row.device_id == "SCJG-TAB02" and code not in (row.code_hash or "")
    # The page never shows the code again.
    assert code not in client.get("/review/devices").get_data(as_text=True)
    assert client.post("/api/v1/devices/enrol", json={"code": code}).status_code == 201


def test_an_administrator_issues_for_any_department(review_as, world: World, client) -> None:
    review_as("admin")
    page = post_form(client, "/review/devices/codes", {"department_id": str(world.ecology.id),
                                                       "device_id": "STHJ-TAB9"}, "/review/devices")
    assert page.status_code == 200 and CODE.search(page.get_data(as_text=True))
    assert db.session.get(Device, "STHJ-TAB9").department_id == world.ecology.id


def test_a_head_cannot_issue_for_another_department_or_a_bodycam(review_as, world: World, client) -> None:
    review_as("m-head")
    refused = post_form(client, "/review/devices/codes", {"department_id": str(world.ecology.id),
                                                          "device_id": "STHJ-TAB1"}, "/review/devices")
    # A head's department is their own whatever the form says: STHJ-TAB1 is not one of its tablets.
    assert refused.status_code == 409 and "已被其他部门使用" in refused.get_data(as_text=True)
    bodycam = post_form(client, "/review/devices/codes", {"device_id": "SCJG-BC01"}, "/review/devices")
    assert bodycam.status_code == 409 and "不是执法平板" in bodycam.get_data(as_text=True)
    bad = post_form(client, "/review/devices/codes", {"device_id": "no spaces"}, "/review/devices")
    assert bad.status_code == 422 and "设备编号" in bad.get_data(as_text=True)
    reserved = post_form(client, "/review/devices/codes", {"device_id": "server"}, "/review/devices")
    assert reserved.status_code == 422 and "系统保留" in reserved.get_data(as_text=True)
    nul_id = post_form(client, "/review/devices/codes", {"device_id": "TAB\x00"}, "/review/devices")
    assert nul_id.status_code == 422 and "设备编号" in nul_id.get_data(as_text=True)
    nul = post_form(client, "/review/devices/codes", {"label": "平板\x00"}, "/review/devices")
    assert nul.status_code == 422 and "空字符" in nul.get_data(as_text=True)
    assert db.session.scalar(select(EnrolmentCode)) is None


def test_retiring_from_the_page(review_as, world: World, client) -> None:
    review_as("m-head")
    response = post_form(client, "/review/devices/SCJG-TAB1/retire", {}, "/review/devices")
    assert response.status_code == 303
    page = client.get("/review/devices").get_data(as_text=True)
    assert "平板 SCJG-TAB1 已停用" in page and "已停用" in page
    db.session.expire_all()
    assert db.session.get(Device, "SCJG-TAB1").retired_at is not None
    # Another department's tablet: hidden.
    assert post_form(client, "/review/devices/STHJ-TAB1/retire", {}, "/review/devices").status_code == 404


def test_supervisors_and_inspectors_may_not(review_as, world: World, client) -> None:
    review_as("m-sup")
    assert client.get("/review/devices").status_code == 403
    assert 'href="/review/devices"' not in client.get("/review/").get_data(as_text=True)
    assert post_form(client, "/review/devices/SCJG-TAB1/retire", {}).status_code == 403
    db.session.expire_all()
    assert db.session.get(Device, "SCJG-TAB1").retired_at is None


def test_forms_without_the_csrf_token_are_refused(review_as, world: World, client) -> None:
    review_as("admin")
    assert client.post("/review/devices/codes", data={"device_id": "SCJG-TAB5"}).status_code == 400
    assert db.session.get(Device, "SCJG-TAB5") is None
