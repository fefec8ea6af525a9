from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView

from server.api import BEARER, Blueprint
from server.auth.policy import Permission, current_principal, requires
from server.codes.schemas import CodedTaskPage, CodedTaskSchema
from server.schemas import PageQuery
from server.tasks import schemas as s
from server.tasks import service

blp = Blueprint("tasks", __name__, url_prefix="/api/v1/tasks", description="Inspection tasks dispatched to teams")


@blp.route("/")
class Tasks(MethodView):
    @requires(Permission.READ_TASKS)
    @blp.doc(security=BEARER)
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, CodedTaskPage)
    @blp.alt_response(401, description="Not authenticated")
    def get(self, query: dict[str, Any]) -> Any:
        """Tasks you are on (inspectors) or your department takes part in"""
        return service.list_tasks(current_principal(), query["limit"], query["after"])

    @requires(Permission.MANAGE_TASKS)
    @blp.doc(security=BEARER)
    @blp.arguments(s.TaskCreate)
    @blp.response(201, CodedTaskSchema)
    @blp.alt_response(403, description="Role not allowed")
    @blp.alt_response(422, description="Invalid input")
    def post(self, body: dict[str, Any]) -> Any:
        """Dispatch a task to a team"""
        return service.create_task(current_principal(), body)


@blp.route("/<uuid:task_id>")
class TaskItem(MethodView):
    @requires(Permission.READ_TASKS)
    @blp.doc(security=BEARER)
    @blp.response(200, CodedTaskSchema)
    @blp.alt_response(404, description="Not found or not yours")
    def get(self, task_id: uuid.UUID) -> Any:
        """Get a task"""
        return service.get_task(current_principal(), task_id)


@blp.route("/<uuid:task_id>/close")
class TaskClose(MethodView):
    @requires(Permission.MANAGE_TASKS)
    @blp.doc(security=BEARER)
    @blp.response(200, CodedTaskSchema)
    @blp.alt_response(404, description="Not found or not yours")
    @blp.alt_response(409, description="Not open")
    def post(self, task_id: uuid.UUID) -> Any:
        """Close a task; its records can no longer change"""
        return service.close_task(current_principal(), task_id)


@blp.route("/<uuid:task_id>/cancel")
class TaskCancel(MethodView):
    @requires(Permission.MANAGE_TASKS)
    @blp.doc(security=BEARER)
    @blp.arguments(s.TaskCancel)
    @blp.response(200, CodedTaskSchema)
    @blp.alt_response(403, description="Not the lead department")
    @blp.alt_response(404, description="Not found or not yours")
    @blp.alt_response(409, description="Neither waiting for approval nor dispatched")
    @blp.alt_response(422, description="No reason given")
    def post(self, body: dict[str, Any], task_id: uuid.UUID) -> Any:
        """Cancel a task, with a reason: its code then says cancelled and tablets drop it"""
        return service.cancel_task(current_principal(), task_id, body["reason"])
