"""What makes a decision major (§4), as a plain function: no database, no HTTP."""
from __future__ import annotations

from decimal import Decimal

from server.decisions.models import DecisionKind
from server.decisions.service import ALL_CIRCUMSTANCES, MajorRule, major_assessment

DEFAULT = MajorRule(Decimal("10000"), ALL_CIRCUMSTANCES)


def test_seizure_and_transfer_are_always_major() -> None:
    none = MajorRule(Decimal("1000000"), frozenset())
    assert major_assessment(DecisionKind.SEIZURE, None, [], none) == (True, ["kind:seizure"])
    assert major_assessment(DecisionKind.TRANSFER_JUDICIAL, None, [], none) == (True, ["kind:transfer_judicial"])


def test_a_penalty_is_major_only_above_the_amount() -> None:
    assert major_assessment(DecisionKind.PENALTY, Decimal("10000.00"), [], DEFAULT) == (False, [])
    above = major_assessment(DecisionKind.PENALTY, Decimal("10000.01"), [], DEFAULT)
    assert above == (True, ["penalty_above:10000.00"])
    own = MajorRule(Decimal("2000"), ALL_CIRCUMSTANCES)
    assert major_assessment(DecisionKind.PENALTY, Decimal("5000"), [], own) == (True, ["penalty_above:2000.00"])


def test_a_circumstance_counts_where_the_department_counts_it() -> None:
    assert major_assessment(DecisionKind.RECTIFY_ORDER, None, ["after_hearing", "complex_case"], DEFAULT) == (
        True, ["circumstance:after_hearing", "circumstance:complex_case"])
    only_hearings = MajorRule(Decimal("10000"), frozenset({"after_hearing"}))
    assert major_assessment(DecisionKind.RECTIFY_ORDER, None, ["complex_case"], only_hearings) == (False, [])
    assert major_assessment(DecisionKind.LICENSING, None, ["after_hearing"], only_hearings)[0]


def test_an_ordinary_decision_has_no_reasons() -> None:
    assert major_assessment(DecisionKind.NO_IRREGULARITY, None, [], DEFAULT) == (False, [])
