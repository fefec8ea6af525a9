"""The task as the office API answers it, with its inspection code."""
from __future__ import annotations

import marshmallow as ma

from server.codes.service import issued_code
from server.schemas import PageMeta
from server.tasks.models import InspectionTask
from server.tasks.schemas import TaskSchema


class CodedTaskSchema(TaskSchema):
    inspection_code = ma.fields.Method("_code", metadata={
        "description": "The task's inspection code (涉企行政检查码) while it is dispatched or closed: {token, url, "
                       "expires_at}; null otherwise. See docs/inspection-codes.md"})

    def _code(self, task: InspectionTask) -> dict[str, str] | None:
        code = issued_code(task)
        if code is None:
            return None
        return {"token": code.token, "url": code.url, "expires_at": code.expires_at.isoformat()}


class CodedTaskPage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(CodedTaskSchema))
