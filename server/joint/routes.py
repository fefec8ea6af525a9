"""The joint record of a task and its report, for the team and the participating offices."""
from __future__ import annotations

import logging
import uuid
from typing import Any

import marshmallow as ma
from flask import Response

from server.api import BEARER, Blueprint
from server.auth.policy import Permission, current_principal, requires
from server.errors import Problem
from server.joint import report
from server.joint.service import canonical_json, joint_record_for

log = logging.getLogger(__name__)

blp = Blueprint("joint", __name__, url_prefix="/api/v1/tasks",
                description="The joint inspection record merged from the whole team, and its report")


class JointRecordSchema(ma.Schema):
    """The merged record (documentation; the body is the canonical record, keys sorted)."""

    task = ma.fields.Dict()
    enterprise = ma.fields.Dict()
    departments = ma.fields.List(ma.fields.Dict())
    team = ma.fields.List(ma.fields.Dict(), metadata={"description": "Members with department and certificate"})
    inspection = ma.fields.Dict(metadata={"description": "Shared fields, each {value, clock}"})
    findings = ma.fields.List(ma.fields.Dict(), metadata={"description": "Per department"})
    merged_findings = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "One per question: equivalent check items merged, every department's attestation"})
    soft_measures = ma.fields.List(ma.fields.Dict())
    coercive_measures = ma.fields.List(ma.fields.Dict())
    evidence = ma.fields.List(ma.fields.Dict())
    signatures = ma.fields.List(ma.fields.Dict())
    conflicts = ma.fields.List(ma.fields.Dict())
    flags = ma.fields.List(ma.fields.Dict())
    totals = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer(), metadata={
        "description": "Records of each kind (finding, media, signature) the inspection holds; the lists show "
                       "at most 500 findings, 2,000 files and 50 signatures"})


@blp.get("/<uuid:task_id>/joint-record")
@requires(Permission.READ_TASKS)
@blp.doc(security=BEARER)
@blp.response(200, JointRecordSchema)
@blp.alt_response(404, description="Not found, or not on the team nor an office of a participating department")
def joint_record(task_id: uuid.UUID) -> Any:
    """The task's joint inspection record, the same whatever order the team synced in"""
    record = joint_record_for(current_principal(), task_id)
    return Response(canonical_json(record.to_dict()), mimetype="application/json")


@blp.get("/<uuid:task_id>/joint-report.html")
@requires(Permission.READ_TASKS)
@blp.doc(security=BEARER, responses={"200": {"content": {"text/html": {"schema": {"type": "string"}}}}})
@blp.response(200, content_type="text/html", description="The joint report as an HTML page")
@blp.alt_response(404, description="Not found, or not on the team nor an office of a participating department")
def joint_report_html(task_id: uuid.UUID) -> Any:
    """The joint report (HTML, Simplified Chinese)"""
    record = joint_record_for(current_principal(), task_id)
    return Response(report.render_html(record), mimetype="text/html")


@blp.get("/<uuid:task_id>/joint-report.pdf")
@requires(Permission.READ_TASKS)
@blp.doc(security=BEARER, responses={
    "200": {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}}})
@blp.response(200, content_type="application/pdf", description="The joint report as PDF")
@blp.alt_response(404, description="Not found, or not on the team nor an office of a participating department")
@blp.alt_response(503, description="The server lacks the CJK font (fonts-noto-cjk): no PDF rather than boxes")
def joint_report_pdf(task_id: uuid.UUID) -> Any:
    """The joint report (PDF with embedded CJK font), for the enterprise and the file"""
    record = joint_record_for(current_principal(), task_id)
    try:
        pdf = report.render_pdf(record)
    except report.ReportUnavailable as exc:
        log.error("joint report PDF refused: %s", exc)
        raise Problem(503, "report-unavailable",
                      f"服务器缺少中文字体（请管理员安装 Debian 软件包 {report.CJK_FONT_PACKAGE}），"
                      "暂时无法生成 PDF 报告；"
                      "网页版报告（joint-report.html）可用", title="PDF 报告暂时无法生成") from None
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="joint-report-{task_id}.pdf"'})
