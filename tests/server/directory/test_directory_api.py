"""The directory as its users see it through the API."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from server.auth.policy import SYSTEM
from server.db_types import office_day, utcnow
from server.directory import service
from server.directory.models import Certificate, CertificateStatus, CheckItem, Device, User
from server.extensions import db
from tests.conftest import PASSWORD, World, assert_problem


def _count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def test_enterprise_lifecycle(client, world: World, auth) -> None:
    headers = auth.headers("e-sup")
    created = client.post("/api/v1/enterprises/", headers=headers, json={
        "credit_code": "91110000600037341L", "name": "祁阳市绿野生态养殖专业合作社", "address": "祁阳市八宝镇湘江路3号",
        "industry": "畜禽养殖", "risk_level": "high"})
    assert created.status_code == 201
    enterprise = created.get_json()
    assert enterprise["supervising_department_ids"] == [str(world.ecology.id)]
    found = client.get("/api/v1/enterprises/?q=绿野", headers=auth.headers("m-insp")).get_json()
    assert [e["id"] for e in found["items"]] == [enterprise["id"]]
    by_code = client.get("/api/v1/enterprises/?q=91110000600037341L", headers=headers).get_json()
    assert len(by_code["items"]) == 1
    patched = client.patch(f"/api/v1/enterprises/{enterprise['id']}", json={"address": "祁阳市八宝镇湘江路5号"},
                           headers=headers)
    assert patched.status_code == 200 and patched.get_json()["address"].endswith("5号")
    # A department that does not supervise the enterprise cannot rewrite it.
    refused = client.patch(f"/api/v1/enterprises/{enterprise['id']}", json={"name": "改名"},
                           headers=auth.headers("m-sup"))
    assert_problem(refused, 403)
    assert (client.get(f"/api/v1/enterprises/{enterprise['id']}", headers=headers).get_json()["name"]
            == "祁阳市绿野生态养殖专业合作社")


def test_search_treats_wildcards_literally(client, world: World, auth) -> None:
    assert client.get("/api/v1/enterprises/?q=%25", headers=auth.headers("m-insp")).get_json()["items"] == []


def test_listing_pages_through_everything_once(client, world: World, auth) -> None:
    from server.directory.credit_code import make_credit_code
    for n in range(7):
        service.create_enterprise(SYSTEM, {"credit_code": make_credit_code("9", "1", "431121", f"MA{n:06d}"),
                                           "name": f"企业{n}", "address": "祁阳市"}, [world.market])
    db.session.commit()
    headers = auth.headers("m-insp")
    seen: list[str] = []
    after = None
    while True:
        page = client.get("/api/v1/enterprises/?limit=3" + (f"&after={after}" if after else ""),
                          headers=headers).get_json()
        seen += [e["id"] for e in page["items"]]
        after = page["next_after"]
        if not after:
            break
    assert len(seen) == len(set(seen)) == 8


def test_check_items(client, world: World, auth) -> None:
    headers = auth.headers("m-head")
    created = client.post("/api/v1/check-items/", headers=headers, json={
        "department_id": str(world.market.id), "code": "SCJG-09", "title": "明码标价",
        "legal_basis": "《价格法》第十三条"})
    assert created.status_code == 201
    item_id = created.get_json()["id"]
    listed = client.get(f"/api/v1/check-items/?department_id={world.market.id}",
                        headers=auth.headers("e-insp")).get_json()
    assert item_id in [i["id"] for i in listed["items"]]
    patched = client.patch(f"/api/v1/check-items/{item_id}", json={"active": False}, headers=headers)
    assert patched.get_json()["active"] is False
    before = _count(CheckItem)
    dup = client.post("/api/v1/check-items/", headers=headers, json={
        "department_id": str(world.market.id), "code": "SCJG-09", "title": "x", "legal_basis": "y"})
    assert_problem(dup, 409, "duplicate")
    other_department = client.post("/api/v1/check-items/", headers=headers, json={
        "department_id": str(world.ecology.id), "code": "X-1", "title": "x", "legal_basis": "y"})
    assert_problem(other_department, 403)
    inspector = client.post("/api/v1/check-items/", headers=auth.headers("m-insp"), json={
        "department_id": str(world.market.id), "code": "X-2", "title": "x", "legal_basis": "y"})
    assert_problem(inspector, 403)
    assert _count(CheckItem) == before


def test_head_creates_an_inspector_with_a_certificate(client, world: World, auth) -> None:
    headers = auth.headers("m-head")
    response = client.post("/api/v1/users/", headers=headers, json={
        "username": "m-new", "full_name": "新同志", "password": "long-enough-1", "role": "inspector",
        "department_id": str(world.market.id),
        "certificate": {"number": "CERT-M-900", "valid_from": "2026-01-01", "valid_until": "2028-12-31"}})
    assert response.status_code == 201, response.get_json()
    user = response.get_json()
    assert user["certificates"][0]["number"] == "CERT-M-900" and user["certificates"][0]["status"] == "valid"
    assert "password" not in user and "password_hash" not in user
    assert client.post("/api/v1/auth/token", json={"username": "m-new", "password": "long-enough-1"}).status_code == 200


def test_user_creation_refusals_store_nothing(client, world: World, auth) -> None:
    headers = auth.headers("m-head")
    users, certificates = _count(User), _count(Certificate)
    base = {"username": "m-x", "full_name": "某", "password": "long-enough-1", "role": "inspector",
            "department_id": str(world.market.id)}
    assert_problem(client.post("/api/v1/users/", headers=headers, json={**base, "password": "short"}), 422)
    assert_problem(client.post("/api/v1/users/", headers=headers, json={**base, "role": "emperor"}), 422)
    assert_problem(client.post("/api/v1/users/", headers=headers, json={**base, "username": "m-insp"}), 409)
    assert_problem(client.post("/api/v1/users/", headers=headers, json={**base, "role": "admin"}), 403)
    assert_problem(client.post("/api/v1/users/", headers=headers,
                               json={**base, "department_id": str(world.ecology.id)}), 403)
    bad_window = {**base, "certificate": {"number": "CERT-9", "valid_from": "2027-01-01", "valid_until": "2026-01-01"}}
    assert "certificate.valid_until" in assert_problem(
        client.post("/api/v1/users/", headers=headers, json=bad_window), 422)["errors"]
    taken = {**base, "certificate": {"number": "CERT-M-001", "valid_from": "2026-01-01", "valid_until": "2027-01-01"}}
    assert_problem(client.post("/api/v1/users/", headers=headers, json=taken), 409)
    assert (_count(User), _count(Certificate)) == (users, certificates)


def test_certificate_status_history(client, world: World, auth) -> None:
    certificate = world.people["m-insp"].certificates[0]
    headers = auth.headers("m-head")
    url = f"/api/v1/certificates/{certificate.id}/status"
    assert_problem(client.post(url, json={"status": "suspended"}, headers=headers), 422)
    suspended = client.post(url, json={"status": "suspended", "reason": "调查期间暂扣"}, headers=headers)
    assert suspended.status_code == 200 and suspended.get_json()["status"] == "suspended"
    assert_problem(client.post(url, json={"status": "suspended", "reason": "again"}, headers=headers), 409, "no-change")
    client.post(url, json={"status": "valid", "reason": "调查结束"}, headers=headers)
    client.post(url, json={"status": "revoked", "reason": "调离"}, headers=headers)
    assert_problem(client.post(url, json={"status": "valid", "reason": "x"}, headers=headers), 409,
                   "certificate-revoked")
    history = client.get(f"/api/v1/certificates/{certificate.id}", headers=headers).get_json()["history"]
    assert [h["status"] for h in history] == ["valid", "suspended", "valid", "revoked"]
    assert history[1]["reason"] == "调查期间暂扣"
    assert history[1]["changed_by_id"] == str(world.people["m-head"].id)


@pytest.mark.around_office_midnight
def test_certificate_validity_on_a_day_uses_history(world: World) -> None:
    certificate = world.people["m-insp"].certificates[0]
    today = office_day(utcnow())  # days are the offices' days, whatever the server's time zone
    assert service.certificate_valid_on(certificate, today)
    assert not service.certificate_valid_on(certificate, certificate.valid_until + timedelta(days=1))
    service.change_certificate_status(SYSTEM, certificate, CertificateStatus.SUSPENDED, "暂扣")
    db.session.commit()
    assert not service.certificate_valid_on(certificate, today)
    # An inspection yesterday was done while the certificate was in force.
    assert service.certificate_valid_on(certificate, today - timedelta(days=1))
    assert service.certificate_status_on(certificate, today) == "suspended"
    assert service.certificate_status_on(certificate, certificate.valid_until + timedelta(days=1)) == "expired"
    assert service.certificate_status_on(certificate, certificate.valid_from - timedelta(days=1)) == "not-yet-valid"


def test_devices_secret_is_shown_once(client, world: World, auth) -> None:
    headers = auth.headers("m-head")
    created = client.post("/api/v1/devices/", headers=headers, json={
        "id": "SCJG-BC99", "kind": "bodycam", "department_id": str(world.market.id),
        "inspector_id": str(world.people["m-insp"].id)})
    assert created.status_code == 201
    secret = created.get_json()["secret"]
    shown = client.get("/api/v1/devices/SCJG-BC99", headers=headers).get_json()
    assert "secret" not in shown and shown["inspector_id"] == str(world.people["m-insp"].id)
    assert client.post("/api/v1/auth/device-token",
                       json={"device_id": "SCJG-BC99", "device_secret": secret}).status_code == 200
    before = _count(Device)
    wrong_inspector = client.post("/api/v1/devices/", headers=headers, json={
        "id": "SCJG-BC98", "kind": "bodycam", "department_id": str(world.market.id),
        "inspector_id": str(world.people["e-insp"].id)})
    assert "inspector_id" in assert_problem(wrong_inspector, 422)["errors"]
    assert_problem(client.post("/api/v1/devices/", headers=headers, json={
        "id": "BAD_ID", "kind": "bodycam", "department_id": str(world.market.id)}), 422)
    assert_problem(client.post("/api/v1/devices/", headers=headers, json={
        "id": "SCJG-BC99", "kind": "bodycam", "department_id": str(world.market.id)}), 409)
    assert _count(Device) == before


def test_password_never_appears_in_listings(client, world: World, auth) -> None:
    text = client.get("/api/v1/users/", headers=auth.headers("admin")).get_data(as_text=True)
    assert PASSWORD not in text and "argon2" not in text


def test_a_supervisor_finds_another_departments_inspectors_to_form_a_joint_team(client, world, auth) -> None:
    ecology = str(world.ecology.id)
    listed = client.get(f"/api/v1/users/?department_id={ecology}", headers=auth.headers("m-sup"))
    assert listed.status_code == 200, listed.get_json()
    people = listed.get_json()["items"]
    assert sorted(p["username"] for p in people) == ["e-insp", "e-insp2"]  # inspectors only, not e-sup/e-head
    assert {p["department_id"] for p in people} == {ecology}
    # Their own department as before, filtered or not.
    own = client.get(f"/api/v1/users/?department_id={world.market.id}", headers=auth.headers("m-sup"))
    assert {p["username"] for p in own.get_json()["items"]} >= {"m-sup", "m-head", "m-insp"}
    # Asking for another department's supervisors, as an inspector, or for a department that does not exist.
    assert_problem(client.get(f"/api/v1/users/?department_id={ecology}&role=supervisor",
                              headers=auth.headers("m-sup")), 403)
    assert_problem(client.get(f"/api/v1/users/?department_id={ecology}", headers=auth.headers("m-insp")), 403)
    assert_problem(client.get(f"/api/v1/users/?department_id={uuid.uuid4()}", headers=auth.headers("m-sup")), 404)
    assert_problem(client.get("/api/v1/users/?department_id=nope", headers=auth.headers("m-sup")), 422)
