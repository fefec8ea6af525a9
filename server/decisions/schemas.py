"""The decisions API at the edge: what comes in is validated here, what goes out is serialised here."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import marshmallow as ma

from server.decisions.models import Circumstance, CommitmentResult, DecisionKind, DecisionStatus, ReviewOutcome
from server.schemas import PageMeta, PageQuery, StrictSchema

KINDS = [k.value for k in DecisionKind]
CIRCUMSTANCES = [c.value for c in Circumstance]
TEXT_MAX = 10_000
# Money as a decimal string ("20000.00"): never a binary float.
_MONEY = {"type": "string", "pattern": r"^\d+\.\d{2}$", "description": "Yuan, as a decimal string"}


MONEY_MAX = Decimal(10) ** 11


def _in_money_range(value: Decimal) -> None:
    # A plain function, not ma.validate.Range: the description documents money as a decimal string, and a
    # numeric minimum/maximum on a string would make it contradict itself.
    if not Decimal(0) <= value <= MONEY_MAX:
        raise ma.ValidationError("金额应在 0 到 1000 亿元之间")


def _money(metadata: dict[str, Any] | None = None, **kwargs: Any) -> ma.fields.Decimal:
    return ma.fields.Decimal(places=2, as_string=True, metadata={**_MONEY, **(metadata or {})},
                             validate=_in_money_range, **kwargs)


def _text(required: bool = True, maximum: int = TEXT_MAX) -> ma.fields.String:
    options: dict[str, Any] = {"required": True} if required else {}
    return ma.fields.String(validate=ma.validate.Length(min=1, max=maximum, error=f"应为 1 到 {maximum} 个字符"),
                            **options)


class LegalReviewSchema(ma.Schema):
    id = ma.fields.UUID()
    decision_id = ma.fields.UUID()
    reviewer_id = ma.fields.UUID()
    reviewer_name = ma.fields.Method("_reviewer", metadata={"type": "string", "nullable": True})
    opinion = ma.fields.String()
    outcome = ma.fields.String(attribute="outcome.value", metadata={"enum": [o.value for o in ReviewOutcome]})
    reviewed_on = ma.fields.Date()
    created_at = ma.fields.AwareDateTime()

    def _reviewer(self, review: Any) -> str | None:
        from server.decisions.service import user_name

        return user_name(review.reviewer_id)


class DecisionSchema(ma.Schema):
    id = ma.fields.UUID()
    inspection_id = ma.fields.UUID()
    task_id = ma.fields.UUID()
    department_id = ma.fields.UUID()
    enterprise_id = ma.fields.UUID()
    kind = ma.fields.String(attribute="kind.value", metadata={"enum": KINDS})
    conclusion = ma.fields.String()
    legal_basis = ma.fields.String()
    rectify_by = ma.fields.Date(allow_none=True)
    amount_yuan = ma.fields.Decimal(places=2, as_string=True, allow_none=True, metadata={**_MONEY, "nullable": True})
    circumstances = ma.fields.List(ma.fields.String(metadata={"enum": CIRCUMSTANCES}))
    major = ma.fields.Boolean()
    major_reasons = ma.fields.List(ma.fields.String())
    legal_review_id = ma.fields.UUID(allow_none=True)
    signed_off = ma.fields.Method("_signed_off", metadata={"type": "boolean",
                                  "description": "An approved legal review of the draft as it stands"})
    status = ma.fields.String(attribute="status.value", metadata={"enum": [s.value for s in DecisionStatus]})
    decided_on = ma.fields.Date(allow_none=True)
    served_on = ma.fields.Date(allow_none=True)
    created_by_id = ma.fields.UUID(allow_none=True)
    created_at = ma.fields.AwareDateTime()
    updated_at = ma.fields.AwareDateTime()
    made_by_id = ma.fields.UUID(allow_none=True)
    made_at = ma.fields.AwareDateTime(allow_none=True)

    def _signed_off(self, decision: Any) -> bool:
        from server.decisions.service import signed_off

        return signed_off(decision)


class DecisionDetailSchema(DecisionSchema):
    legal_reviews = ma.fields.Method("_reviews", metadata={
        "type": "array", "items": {"$ref": "#/components/schemas/LegalReview"}})

    def _reviews(self, decision: Any) -> list[dict[str, Any]]:
        from server.decisions.service import reviews_of

        return LegalReviewSchema(many=True).dump(reviews_of(decision.id))


class DecisionList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DecisionSchema))


class DecisionPage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(DecisionSchema))


class DecisionQuery(PageQuery):
    status = ma.fields.String(load_default=None, validate=ma.validate.OneOf([s.value for s in DecisionStatus]))
    awaiting_review = ma.fields.Boolean(load_default=False,
                                        metadata={"description": "Major drafts without a legal review yet"})


class _Particulars(StrictSchema):
    rectify_by = ma.fields.Date(allow_none=True, metadata={"description": "rectify_order: the deadline"})
    amount_yuan = _money(allow_none=True)
    circumstances = ma.fields.List(ma.fields.String(validate=ma.validate.OneOf(CIRCUMSTANCES, error="未知的情形")),
                                   validate=ma.validate.Length(max=len(CIRCUMSTANCES)),
                                   metadata={"description": "Seed §4 circumstances that apply to the case"})


class DecisionCreate(_Particulars):
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf(KINDS, error="未知的决定种类"))
    conclusion = _text()
    legal_basis = _text()
    department_id = ma.fields.UUID(load_default=None, allow_none=True,
                                   metadata={"description": "Defaults to your department (administrators name it)"})


class DecisionUpdate(_Particulars):
    kind = ma.fields.String(validate=ma.validate.OneOf(KINDS, error="未知的决定种类"))
    conclusion = _text(required=False)
    legal_basis = _text(required=False)


class LegalReviewCreate(StrictSchema):
    outcome = ma.fields.String(required=True, validate=ma.validate.OneOf([o.value for o in ReviewOutcome],
                                                                          error="应为 approved 或 rejected"))
    opinion = _text()
    reviewed_on = ma.fields.Date(required=True)


class MakeBody(StrictSchema):
    decided_on = ma.fields.Date(required=True)


class ServeBody(StrictSchema):
    served_on = ma.fields.Date(required=True)


class RuleSchema(ma.Schema):
    department_id = ma.fields.UUID()
    major_penalty_above_yuan = ma.fields.Decimal(places=2, as_string=True, metadata=_MONEY)
    circumstances = ma.fields.List(ma.fields.String(metadata={"enum": CIRCUMSTANCES}))
    configured = ma.fields.Boolean(metadata={"description": "False: the department takes the defaults"})


class RuleUpdate(StrictSchema):
    major_penalty_above_yuan = _money(load_default=None, allow_none=True,
                                      metadata={**_MONEY, "description": "null: the configured default"})
    circumstances = ma.fields.List(ma.fields.String(validate=ma.validate.OneOf(CIRCUMSTANCES, error="未知的情形")),
                                   required=True, validate=ma.validate.Length(max=len(CIRCUMSTANCES)))


class CommitmentSchema(ma.Schema):
    id = ma.fields.UUID()
    enterprise_id = ma.fields.UUID()
    department_id = ma.fields.UUID()
    matter = ma.fields.String()
    promise = ma.fields.String()
    due_on = ma.fields.Date()
    task_id = ma.fields.UUID(allow_none=True)
    result = ma.fields.Method("_result", metadata={"type": "string", "nullable": True,
                                                   "enum": [r.value for r in CommitmentResult] + [None]})
    result_note = ma.fields.String(allow_none=True)
    checked_on = ma.fields.Date(allow_none=True)
    result_by_id = ma.fields.UUID(allow_none=True)
    created_at = ma.fields.AwareDateTime()

    def _result(self, commitment: Any) -> str | None:
        return None if commitment.result is None else commitment.result.value


class CommitmentPage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(CommitmentSchema))


class CommitmentQuery(PageQuery):
    enterprise_id = ma.fields.UUID(load_default=None)
    result = ma.fields.String(load_default=None,
                              validate=ma.validate.OneOf(["pending", *(r.value for r in CommitmentResult)]))


class CommitmentCreate(StrictSchema):
    enterprise_id = ma.fields.UUID(required=True)
    matter = _text(maximum=200)
    promise = _text()
    due_on = ma.fields.Date(required=True)
    task_id = ma.fields.UUID(load_default=None, allow_none=True,
                             metadata={"description": "The inspection task that is its follow-up check"})
    department_id = ma.fields.UUID(load_default=None, allow_none=True,
                                   metadata={"description": "Defaults to your department"})


class CommitmentResultBody(StrictSchema):
    result = ma.fields.String(required=True, validate=ma.validate.OneOf([r.value for r in CommitmentResult],
                                                                         error="应为 true 或 untrue"))
    note = ma.fields.String(load_default=None, allow_none=True, validate=ma.validate.Length(max=TEXT_MAX))
    checked_on = ma.fields.Date(required=True)
