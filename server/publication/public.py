"""What the public page and feed show: published results, and the double-random plans with their results.

Read-only, no log-in. Every field here is chosen, never a whole row: the draws' records hold the teams
drawn (inspectors), which are not public; only the enterprises drawn are.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import func, select

from server.directory.models import Department, Enterprise
from server.extensions import db
from server.planning.models import Draw, JointPlan, SpotCheckPlan
from server.publication.models import Publication, PublicationState

PAGE_SIZE = 20
MAX_PAGE = 10_000


@dataclass(frozen=True)
class Entry:
    """A decision's result as the public reads it: its current version and the versions it corrected."""

    current: Publication
    earlier: list[Publication]

    @property
    def corrected(self) -> bool:
        return self.current.version > 1

    @property
    def withdrawn(self) -> bool:
        return self.current.state is PublicationState.WITHDRAWN


@dataclass(frozen=True)
class DrawnTarget:
    enterprise_name: str
    credit_code: str
    results: list[Publication]  # current versions of the decisions published on the visit


@dataclass(frozen=True)
class PublicDraw:
    drawn_on: date
    candidates: int
    targets: list[DrawnTarget]


@dataclass(frozen=True)
class PublicPlan:
    kind: str  # "plan" or "joint_plan"
    id: uuid.UUID
    title: str
    departments: list[str]
    subject_kind: str
    period_start: date
    period_end: date
    sampling_ratio: float
    draws: list[PublicDraw] = field(default_factory=list)


@dataclass(frozen=True)
class Page:
    number: int
    items: list[Any]
    more: bool


def _office_day(draw: Draw) -> date:
    from server.db_types import office_day

    return office_day(draw.created_at)


def results(page: int) -> Page:
    """Current versions (published or withdrawn), newest first, with the versions each corrected."""
    query = (select(Publication).where(Publication.state != PublicationState.CORRECTED)
             .order_by(Publication.published_at.desc(), Publication.id.desc())
             .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1))
    rows = list(db.session.scalars(query))
    more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
    earlier: dict[uuid.UUID, list[Publication]] = {}
    if rows:
        for old in db.session.scalars(select(Publication).where(
                Publication.decision_id.in_([r.decision_id for r in rows]),
                Publication.state == PublicationState.CORRECTED).order_by(Publication.version.desc())):
            earlier.setdefault(old.decision_id, []).append(old)
    return Page(page, [Entry(r, earlier.get(r.decision_id, [])) for r in rows], more)


def _task_results(task_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Publication]]:
    from server.decisions.models import EnforcementDecision

    if not task_ids:
        return {}
    found: dict[uuid.UUID, list[Publication]] = {}
    for task_id, publication in db.session.execute(
            select(EnforcementDecision.task_id, Publication)
            .join(Publication, Publication.decision_id == EnforcementDecision.id)
            .where(EnforcementDecision.task_id.in_(task_ids), Publication.state != PublicationState.CORRECTED)
            .order_by(Publication.published_at)):
        found.setdefault(task_id, []).append(publication)
    return found


def _draws(draws: list[Draw]) -> list[PublicDraw]:
    enterprise_ids = {uuid.UUID(t["enterprise_id"]) for d in draws for t in d.result.get("targets", [])}
    enterprises = {e.id: e for e in db.session.scalars(select(Enterprise).where(Enterprise.id.in_(enterprise_ids)))
                   } if enterprise_ids else {}
    task_ids = [uuid.UUID(t) for d in draws for t in d.task_ids or []]
    by_task = _task_results(task_ids)
    out = []
    for draw in draws:
        targets = []
        tasks = [uuid.UUID(t) for t in draw.task_ids or []]
        for n, target in enumerate(draw.result.get("targets", [])):
            enterprise = enterprises.get(uuid.UUID(target["enterprise_id"]))
            if enterprise is None:
                continue
            # The draw's tasks are made in the order of its targets (server.planning.draws).
            results_ = by_task.get(tasks[n], []) if n < len(tasks) else []
            targets.append(DrawnTarget(enterprise.name, enterprise.credit_code, results_))
        out.append(PublicDraw(_office_day(draw), len(draw.inputs.get("candidates", [])), targets))
    return out


def plans(page: int) -> Page:
    """Spot-check plans and joint plans, newest first, with their draws: the enterprises drawn and results."""
    names = dict(db.session.execute(select(Department.id, Department.name)).all())
    joint = list(db.session.scalars(select(JointPlan).order_by(JointPlan.created_at.desc())))
    in_joint = {p.plan_id for j in joint for p in j.participants}
    single = [p for p in db.session.scalars(select(SpotCheckPlan).order_by(SpotCheckPlan.created_at.desc()))
              if p.id not in in_joint]
    everything: list[JointPlan | SpotCheckPlan] = sorted([*joint, *single], key=lambda p: p.created_at,
                                                         reverse=True)
    start = (page - 1) * PAGE_SIZE
    chosen = everything[start:start + PAGE_SIZE]
    out = []
    for plan in chosen:
        if isinstance(plan, JointPlan):
            departments = [names[plan.department_id]] + sorted(
                {names[p.department_id] for p in plan.plans} - {names[plan.department_id]})
            draws = list(db.session.scalars(select(Draw).where(Draw.joint_plan_id == plan.id)
                                            .order_by(Draw.created_at)))
            kind = "joint_plan"
        else:
            departments = [names[plan.department_id]]
            draws = list(db.session.scalars(select(Draw).where(Draw.plan_id == plan.id).order_by(Draw.created_at)))
            kind = "plan"
        out.append(PublicPlan(kind, plan.id, plan.title, departments, plan.subject_kind, plan.period_start,
                              plan.period_end, plan.sampling_ratio, _draws(draws)))
    return Page(page, out, len(everything) > start + PAGE_SIZE)


def counts() -> dict[str, int]:
    return {"results": db.session.scalar(select(func.count()).select_from(Publication).where(
        Publication.state != PublicationState.CORRECTED)) or 0}


def publication_json(publication: Publication) -> dict[str, Any]:
    return {"id": str(publication.id), "version": publication.version,
            "corrects": str(publication.corrects_id) if publication.corrects_id else None,
            "state": publication.state.value, "enforcement_body": publication.enforcement_body,
            "enterprise": {"name": publication.enterprise_name, "credit_code": publication.credit_code},
            "inspection_kind": publication.inspection_kind, "decision_kind": publication.decision_kind,
            "conclusion": publication.conclusion, "decided_on": publication.decided_on.isoformat(),
            "published_on": publication.published_on.isoformat(),
            "correction_note": publication.correction_note,
            "withdrawn_on": publication.withdrawn_on.isoformat() if publication.withdrawn_on else None,
            "withdrawal_reason": publication.withdrawal_reason}


def entry_json(entry: Entry) -> dict[str, Any]:
    return {**publication_json(entry.current), "corrected": entry.corrected, "withdrawn": entry.withdrawn,
            "earlier_versions": [publication_json(p) for p in entry.earlier]}


def plan_json(plan: PublicPlan) -> dict[str, Any]:
    return {"kind": plan.kind, "id": str(plan.id), "title": plan.title, "departments": plan.departments,
            "subject_kind": plan.subject_kind, "period_start": plan.period_start.isoformat(),
            "period_end": plan.period_end.isoformat(), "sampling_ratio": plan.sampling_ratio,
            "draws": [{"drawn_on": d.drawn_on.isoformat(), "candidates": d.candidates, "targets": [
                {"enterprise": {"name": t.enterprise_name, "credit_code": t.credit_code},
                 "results": [str(r.id) for r in t.results]} for t in d.targets]} for d in plan.draws]}
