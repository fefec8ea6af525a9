"""The joint record of a two-department visit, and the report made from it."""
from __future__ import annotations

import io
import random
import shutil
import subprocess
import time
from typing import Any

import pytest

from server.extensions import db
from server.joint import report
from server.joint.service import joint_record
from server.uploads.models import Media, MediaObject, VerificationStatus
from tests.conftest import assert_problem
from tests.server.joint import scenario as sc


@pytest.fixture
def visit(app) -> tuple[sc.JointTeam, list[sc.Tablet]]:  # type: ignore[no-untyped-def]
    """Two departments, two tablets each, a morning's work captured offline and synced."""
    team = sc.build_team(2, items_per_department=2)
    tablets = sc.tablets_for(team, int(time.time() * 1000) - 3_600_000, random.Random(7))
    a0, a1, b0, b1 = tablets  # JT0-TAB0, JT0-TAB1, JT1-TAB0, JT1-TAB1
    photo = a0.add_photo("ab" * 32, 2048, 1000)
    a0.record_finding(team.items["JT0"][0], "non_compliant", "营业执照未悬挂", 1000, evidence=[photo])
    a0.record_finding(team.items["JT0"][1], "compliant", None, 1000)
    b0.record_finding(team.items["JT1"][0], "compliant", "执照已公示", 1000)     # equivalent item: disagrees
    b0.record_finding(team.items["JT1"][1], "not_applicable", None, 1000)
    a1.add_soft_measure("现场提醒公示营业执照", 2000)
    b1.add_soft_measure("指导完善排污台账", 2000)
    b1.add_coercive_measure("seizure", "查封过期原料一批", 1000)
    a0.set_shared("conclusion", "责令限期整改", 3000)
    b0.set_shared("conclusion", "未发现问题", 1000)
    a1.set_shared("representative", "张经理", 1000)
    b1.sign("representative", "张经理", 1000)
    sc.sync_in_order(tablets, [])
    db.session.add(MediaObject(sha256="ab" * 32, size=2048, backend="local", key="ab/ab"))
    db.session.flush()
    db.session.add(Media(id=photo, sha256="ab" * 32, size=2048, department_id=team.departments[0].id,
                         task_id=team.task.id, verification_status=VerificationStatus.VERIFIED,
                         verification_reasons=[]))
    db.session.commit()
    return team, tablets


def test_the_record_merges_the_team(visit) -> None:  # type: ignore[no-untyped-def]
    team, _ = visit
    record = joint_record(team.task.id).to_dict()
    assert record["enterprise"]["name"] == "祁阳市联合检查示范有限公司"
    assert [(m["department"]["code"], m["certificate"]["number"]) for m in record["team"]] == [
        ("JT0", "CERT-JT0-0"), ("JT0", "CERT-JT0-1"), ("JT1", "CERT-JT1-0"), ("JT1", "CERT-JT1-1")]
    assert [g["department"]["code"] for g in record["findings"]] == ["JT0", "JT1"]
    assert [len(g["findings"]) for g in record["findings"]] == [2, 2]

    # The two "licence displayed" items are one question with both departments' attestations.
    (licence,) = [q for q in record["merged_findings"] if q["equivalence_group"] == "licence"]
    assert [i["code"] for i in licence["check_items"]] == ["JT0-00", "JT1-00"]
    assert [(a["department"]["code"], a["result"]) for a in licence["attestations"]] == [
        ("JT0", "non_compliant"), ("JT1", "compliant")]
    assert licence["disagreement"] is True and licence["result"] is None
    assert {"kind": "disagreement", "key": "group:licence", "departments": ["JT0", "JT1"],
            "results": ["compliant", "non_compliant"]} in record["flags"]
    others = [q for q in record["merged_findings"] if q["equivalence_group"] is None]
    assert len(others) == 2 and not any(q["disagreement"] for q in others)

    shared = record["inspection"]["fields"]
    assert shared["conclusion"]["value"] == "责令限期整改" and shared["conclusion"]["clock"].endswith("JT0-TAB0")
    assert shared["representative"]["value"] == "张经理"
    # Both tablets changed the conclusion without seeing each other: the loser is shown, not dropped.
    (conclusion,) = [c for c in record["conflicts"] if c["field"] == "conclusion"]
    assert [o["value"] for o in conclusion["overridden"]] == ["未发现问题"]
    assert {"kind": "conflict", "entity": "inspection", "entity_id": record["inspection"]["id"],
            "field": "conclusion"} in record["flags"]
    # Measures added on different tablets at once are all in the record, with their departments.
    assert sorted((m["measure"], [d["code"] for d in m["departments"]]) for m in record["soft_measures"]) == [
        ("指导完善排污台账", ["JT1"]), ("现场提醒公示营业执照", ["JT0"])]
    assert record["coercive_measures"][0]["measure"] == {"kind": "seizure", "description": "查封过期原料一批"}
    (evidence,) = record["evidence"]
    assert (evidence["sha256"], evidence["size"], evidence["verification"]["status"]) == ("ab" * 32, 2048, "verified")
    assert [(s["signer_role"], s["signer_name"]) for s in record["signatures"]] == [("representative", "张经理")]


def test_the_html_report_is_in_chinese(visit) -> None:  # type: ignore[no-untyped-def]
    team, _ = visit
    html = report.render_html(joint_record(team.task.id))
    for text in ("联合检查记录", "祁阳市联合检查示范有限公司", "CERT-JT1-0", "营业执照未悬挂", "各部门认定不一致",
                 "指导完善排污台账", "查封", "ab" * 32, "校验通过", "企业代表"):
        assert text in html, text


def _fonts(pdf: Any) -> set[str]:
    names = set()
    for page in pdf.pages:
        for font in (page.get("/Resources") or {}).get("/Font", {}).values():
            names.add(str(font.get_object().get("/BaseFont")))
    return names


def test_the_pdf_report_embeds_a_cjk_font(visit, client, auth) -> None:  # type: ignore[no-untyped-def]
    from pypdf import PdfReader

    # The report is for the enterprise and the file: without the font it would be empty boxes, so fail, never skip.
    fc_list = shutil.which("fc-list")
    assert fc_list, f"fontconfig is missing: install the apt package {report.CJK_FONT_PACKAGE} (.ci/run does)"
    listed = subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True, text=True, check=False).stdout
    assert "Noto Sans CJK" in listed, f"the CJK font is missing: install the apt package {report.CJK_FONT_PACKAGE}"
    team, _ = visit
    response = client.get(f"/api/v1/tasks/{team.task.id}/joint-report.pdf", headers=auth.headers("jt1-insp0"))
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    body = response.get_data()
    assert body.startswith(b"%PDF-")
    pdf = PdfReader(io.BytesIO(body))
    text = "".join(page.extract_text() for page in pdf.pages)
    assert "祁阳市联合检查示范有限公司" in text
    assert "营业执照未悬挂" in text and "指导完善排污台账" in text
    fonts = _fonts(pdf)
    assert any("Noto" in f and "CJK" in f for f in fonts), (
        f"no Noto CJK font embedded ({sorted(fonts)}): install the apt package {report.CJK_FONT_PACKAGE}")
    html = client.get(f"/api/v1/tasks/{team.task.id}/joint-report.html", headers=auth.headers("jt0-insp1"))
    assert html.status_code == 200 and html.mimetype == "text/html" and "联合检查记录" in html.get_data(as_text=True)


def test_without_the_cjk_font_the_pdf_is_refused_not_rendered_as_boxes(visit, client, auth, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(report, "chinese_font_families", lambda: {"DejaVu Sans"})
    team, _ = visit
    response = client.get(f"/api/v1/tasks/{team.task.id}/joint-report.pdf", headers=auth.headers("jt1-insp0"))
    body = assert_problem(response, 503, "report-unavailable")
    assert report.CJK_FONT_PACKAGE in body["detail"]
    html = client.get(f"/api/v1/tasks/{team.task.id}/joint-report.html", headers=auth.headers("jt1-insp0"))
    assert html.status_code == 200  # the HTML report does not depend on the server's fonts


def test_check_system_names_the_package_to_install(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()
    assert "system packages: ok" in runner.invoke(args=["check-system"]).output
    monkeypatch.setattr(report, "chinese_font_families", lambda: set())
    result = runner.invoke(args=["check-system"])
    assert result.exit_code == 0 and "apt-get install fonts-noto-cjk" in result.output
