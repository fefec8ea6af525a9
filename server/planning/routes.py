"""Planning endpoints. Each route: parse (schema) -> one service call -> serialise."""
from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView

from server.api import BEARER, Blueprint
from server.auth.policy import Permission, current_principal, requires
from server.planning import schemas as s
from server.planning.approval import approve_dispatch, pending_approvals, reject_dispatch
from server.planning.conflicts import declare_conflict, get_conflict, list_conflicts
from server.planning.draws import get_draw, list_draws, run_draw, verify_draw_as
from server.planning.frequency import (
    decide_override,
    frequency_rule,
    get_override,
    list_overrides,
    request_override,
    set_frequency_rule,
)
from server.planning.joint_plans import create_joint_plan, get_joint_plan, list_joint_plans
from server.planning.plans import create_plan, get_plan, list_plans
from server.schemas import PageQuery

plans = Blueprint("plans", __name__, url_prefix="/api/v1/plans", description="Departments' spot-check plans (抽查计划)")
joint_plans = Blueprint("joint_plans", __name__, url_prefix="/api/v1/joint-plans",
                        description="Joint plans: several departments' plans merged, equivalent check items asked once")
draws = Blueprint("draws", __name__, url_prefix="/api/v1/draws",
                  description="Double-random draws (双随机): recorded, reproducible, verifiable")
approvals = Blueprint("task_approvals", __name__, url_prefix="/api/v1/tasks",
                      description="Approval of tasks by the head of every participating department")
conflicts = Blueprint("conflicts_of_interest", __name__, url_prefix="/api/v1/conflicts-of-interest",
                      description="Declared conflicts of interest: an inspector is never drawn for that enterprise")
overrides = Blueprint("frequency_overrides", __name__, url_prefix="/api/v1/frequency-overrides",
                      description="One more visit beyond the frequency cap: reason and the head's approval")
frequency = Blueprint("frequency_rule", __name__, url_prefix="/api/v1/frequency-rule",
                      description="The frequency cap of inspections per enterprise")

blueprints = [plans, joint_plans, draws, approvals, conflicts, overrides, frequency]

_ERRORS = ((401, "Not authenticated"), (403, "Role not allowed"), (422, "Invalid input"))


def _documented(blp: Blueprint, *extra: tuple[int, str]) -> Any:
    def decorate(fn: Any) -> Any:
        fn = blp.doc(security=BEARER)(fn)
        for status, text in (*_ERRORS, *extra):
            fn = blp.alt_response(status, description=text)(fn)
        return fn
    return decorate


_NOT_FOUND = (404, "Not found or not yours")


@plans.route("/")
class Plans(MethodView):
    @requires(Permission.READ_PLANS)
    @_documented(plans)
    @plans.arguments(s.PlanQuery, location="query")
    @plans.response(200, s.PlanPage)
    def get(self, query: dict[str, Any]) -> Any:
        """List spot-check plans (optionally of one department)"""
        return list_plans(current_principal(), query["department_id"], query["limit"], query["after"])

    @requires(Permission.MANAGE_PLANS)
    @_documented(plans)
    @plans.arguments(s.PlanCreate)
    @plans.response(201, s.PlanSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Write a spot-check plan for your department"""
        return create_plan(current_principal(), body)


@plans.route("/<uuid:plan_id>")
class PlanItem(MethodView):
    @requires(Permission.READ_PLANS)
    @_documented(plans, _NOT_FOUND)
    @plans.response(200, s.PlanSchema)
    def get(self, plan_id: uuid.UUID) -> Any:
        """Get a spot-check plan"""
        return get_plan(current_principal(), plan_id)


@joint_plans.route("/")
class JointPlans(MethodView):
    @requires(Permission.READ_PLANS)
    @_documented(joint_plans)
    @joint_plans.arguments(PageQuery, location="query")
    @joint_plans.response(200, s.JointPlanPage)
    def get(self, query: dict[str, Any]) -> Any:
        """List joint plans"""
        return list_joint_plans(current_principal(), query["limit"], query["after"])

    @requires(Permission.MANAGE_JOINT_PLANS)
    @_documented(joint_plans, (409, "A plan already joined another joint plan"))
    @joint_plans.arguments(s.JointPlanCreate)
    @joint_plans.response(201, s.JointPlanSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Merge departments' plans into a joint plan, declaring equivalent check items"""
        return create_joint_plan(current_principal(), body)


@joint_plans.route("/<uuid:joint_plan_id>")
class JointPlanItem(MethodView):
    @requires(Permission.READ_PLANS)
    @_documented(joint_plans, _NOT_FOUND)
    @joint_plans.response(200, s.JointPlanSchema)
    def get(self, joint_plan_id: uuid.UUID) -> Any:
        """Get a joint plan"""
        return get_joint_plan(current_principal(), joint_plan_id)


@draws.route("/")
class Draws(MethodView):
    @requires(Permission.READ_PLANS)
    @_documented(draws)
    @draws.arguments(PageQuery, location="query")
    @draws.response(200, s.DrawPage)
    def get(self, query: dict[str, Any]) -> Any:
        """List draws"""
        return list_draws(current_principal(), query["limit"], query["after"])

    @requires(Permission.RUN_DRAWS)
    @_documented(draws, (409, "Frequency cap reached"))
    @draws.arguments(s.DrawCreate)
    @draws.response(201, s.DrawSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Draw targets and teams for a plan; the tasks wait for the heads' approval"""
        return run_draw(current_principal(), body)


@draws.route("/<uuid:draw_id>")
class DrawItem(MethodView):
    @requires(Permission.READ_PLANS)
    @_documented(draws, _NOT_FOUND)
    @draws.response(200, s.DrawSchema)
    def get(self, draw_id: uuid.UUID) -> Any:
        """Get a draw with its seed, inputs, hashes and result"""
        return get_draw(current_principal(), draw_id)


@draws.route("/<uuid:draw_id>/verify")
class DrawVerify(MethodView):
    @requires(Permission.READ_PLANS)
    @_documented(draws, _NOT_FOUND)
    @draws.response(200, s.DrawVerificationSchema)
    def get(self, draw_id: uuid.UUID) -> Any:
        """Re-run a draw from its record: does it reproduce, is the record intact?"""
        return verify_draw_as(current_principal(), draw_id)


@approvals.route("/pending-approval")
class PendingApprovals(MethodView):
    @requires(Permission.APPROVE_TASKS)
    @_documented(approvals)
    @approvals.response(200, s.TaskList)
    def get(self) -> Any:
        """Tasks waiting for your department's approval"""
        return {"items": pending_approvals(current_principal())}


@approvals.route("/<uuid:task_id>/approve")
class TaskApprove(MethodView):
    @requires(Permission.APPROVE_TASKS)
    @_documented(approvals, _NOT_FOUND, (409, "Not waiting for your approval"))
    @approvals.response(200, s.TaskWithApprovals)
    def post(self, task_id: uuid.UUID) -> Any:
        """Approve dispatching a task for your department"""
        return approve_dispatch(task_id, current_principal())


@approvals.route("/<uuid:task_id>/reject")
class TaskReject(MethodView):
    @requires(Permission.APPROVE_TASKS)
    @_documented(approvals, _NOT_FOUND, (409, "Not waiting for your approval"))
    @approvals.arguments(s.ReasonIn)
    @approvals.response(200, s.TaskWithApprovals)
    def post(self, body: dict[str, Any], task_id: uuid.UUID) -> Any:
        """Refuse a task, with a reason; it is not dispatched"""
        return reject_dispatch(task_id, current_principal(), body["reason"])


@conflicts.route("/")
class Conflicts(MethodView):
    @requires(Permission.DECLARE_CONFLICTS)
    @_documented(conflicts)
    @conflicts.arguments(PageQuery, location="query")
    @conflicts.response(200, s.ConflictOfInterestPage)
    def get(self, query: dict[str, Any]) -> Any:
        """Your declarations (inspectors) or your department's"""
        return list_conflicts(current_principal(), query["limit"], query["after"])

    @requires(Permission.DECLARE_CONFLICTS)
    @_documented(conflicts, (404, "No such person in your department"), (409, "Already declared"))
    @conflicts.arguments(s.ConflictOfInterestCreate)
    @conflicts.response(201, s.ConflictOfInterestSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Declare a conflict of interest (yourself, or as the head for your department's people)"""
        return declare_conflict(current_principal(), body)


@conflicts.route("/<uuid:conflict_id>")
class ConflictItem(MethodView):
    @requires(Permission.DECLARE_CONFLICTS)
    @_documented(conflicts, _NOT_FOUND)
    @conflicts.response(200, s.ConflictOfInterestSchema)
    def get(self, conflict_id: uuid.UUID) -> Any:
        """Get a declaration"""
        return get_conflict(current_principal(), conflict_id)


@overrides.route("/")
class Overrides(MethodView):
    @requires(Permission.REQUEST_FREQUENCY_OVERRIDE)
    @_documented(overrides)
    @overrides.arguments(PageQuery, location="query")
    @overrides.response(200, s.OverridePage)
    def get(self, query: dict[str, Any]) -> Any:
        """Your department's requests to exceed the frequency cap"""
        return list_overrides(current_principal(), query["limit"], query["after"])

    @requires(Permission.REQUEST_FREQUENCY_OVERRIDE)
    @_documented(overrides)
    @overrides.arguments(s.OverrideCreate)
    @overrides.response(201, s.OverrideSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Ask for one more visit to an enterprise beyond the cap, with a reason"""
        return request_override(current_principal(), body)


@overrides.route("/<uuid:override_id>")
class OverrideItem(MethodView):
    @requires(Permission.REQUEST_FREQUENCY_OVERRIDE)
    @_documented(overrides, _NOT_FOUND)
    @overrides.response(200, s.OverrideSchema)
    def get(self, override_id: uuid.UUID) -> Any:
        """Get a request, with who decided it and when"""
        return get_override(current_principal(), override_id)


@overrides.route("/<uuid:override_id>/approve")
class OverrideApprove(MethodView):
    @requires(Permission.APPROVE_FREQUENCY_OVERRIDE)
    @_documented(overrides, _NOT_FOUND, (409, "Already decided"))
    @overrides.response(200, s.OverrideSchema)
    def post(self, override_id: uuid.UUID) -> Any:
        """Approve the request (the department's head)"""
        return decide_override(current_principal(), override_id, approve=True)


@overrides.route("/<uuid:override_id>/reject")
class OverrideReject(MethodView):
    @requires(Permission.APPROVE_FREQUENCY_OVERRIDE)
    @_documented(overrides, _NOT_FOUND, (409, "Already decided"))
    @overrides.arguments(s.ReasonIn)
    @overrides.response(200, s.OverrideSchema)
    def post(self, body: dict[str, Any], override_id: uuid.UUID) -> Any:
        """Refuse the request, with a reason (the department's head)"""
        return decide_override(current_principal(), override_id, approve=False, reason=body["reason"])


@frequency.route("/")
class Frequency(MethodView):
    @requires(Permission.READ_PLANS)
    @_documented(frequency)
    @frequency.response(200, s.FrequencyRuleSchema)
    def get(self) -> Any:
        """The cap in force (defaults until an administrator sets it)"""
        return frequency_rule()

    @requires(Permission.MANAGE_FREQUENCY_RULE)
    @_documented(frequency)
    @frequency.arguments(s.FrequencyRuleSchema)
    @frequency.response(200, s.FrequencyRuleSchema)
    def put(self, body: dict[str, Any]) -> Any:
        """Set the cap (administrator)"""
        return set_frequency_rule(current_principal(), body)
