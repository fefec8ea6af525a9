"""The push envelope's fast mutation loader agrees with the documented MutationSchema."""
from __future__ import annotations

import uuid

import marshmallow as ma
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.sync.schemas import MutationField, MutationSchema

GOOD = {"id": str(uuid.uuid4()), "entity": "finding", "entity_id": str(uuid.uuid4()), "op": "upsert",
        "base_version": 0, "hlc": "1764120000000-0001-SCJG-TAB1", "fields": {"result": "compliant"}}

BAD_VALUES = {
    "id": ["x", 5, None, ""], "entity": ["", "x" * 65, 1, None], "entity_id": ["nope", [], None],
    "op": ["explode", None, 0], "base_version": [-1, "1", 1.5, True, None, 2**40],
    "hlc": ["yesterday", 1764120000000, None, "1764120000000-1-X"], "fields": [[], "x", {"": 1, 5: 2}],
}


def verdict_of_schema(value: object) -> bool:
    try:
        MutationSchema().load(value)  # type: ignore[arg-type]
        return True
    except ma.ValidationError:
        return False


def verdict_of_field(value: object) -> bool:
    try:
        MutationField().deserialize(value)
        return True
    except ma.ValidationError:
        return False


def test_good_mutation_loads_the_same() -> None:
    schema = MutationSchema().load(GOOD)
    fast = MutationField().deserialize(GOOD)
    assert {k: schema[k] for k in fast} == fast


@pytest.mark.parametrize("key, bad", [(k, v) for k, values in BAD_VALUES.items() for v in values])
def test_each_bad_value_is_refused_by_both(key: str, bad: object) -> None:
    value = {**GOOD, key: bad}
    assert verdict_of_schema(value) is verdict_of_field(value) is False


@pytest.mark.parametrize("missing", ["id", "entity", "entity_id", "op", "base_version", "hlc"])
def test_missing_keys_are_refused_by_both(missing: str) -> None:
    value = {k: v for k, v in GOOD.items() if k != missing}
    assert verdict_of_schema(value) is verdict_of_field(value) is False


def test_unknown_keys_and_non_objects_are_refused_by_both() -> None:
    for value in ({**GOOD, "extra": 1}, [GOOD], "text", None):
        assert verdict_of_schema(value) is verdict_of_field(value) is False


@settings(max_examples=300, database=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(sorted(GOOD) + ["other"]),
                       st.one_of(st.none(), st.integers(-2, 3), st.text(max_size=5),
                                 st.sampled_from(list(GOOD.values())))))
def test_random_objects_get_the_same_verdict(value: dict[str, object]) -> None:
    assert verdict_of_schema(value) is verdict_of_field(value)
