"""The Python engine against the shared protocol vectors (tests/protocol/vectors.json).

The JavaScript app runs the same file (field_client/web/test/vectors.test.js); both engines passing every
vector is how the two keep the same protocol rules: HLC format, order, tick and receive; what a pulled change
makes the clock see; which mutations a refused batch names; and push: one mutation per entity a batch,
per-mutation results (applied, duplicate, conflict, rejected, unknown) and rebasing on our own confirmed writes.
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from tests.protocol.build_vectors import PATH, build, render
from tests.protocol.engine import RUNNERS

DOCUMENT = json.loads(PATH.read_text(encoding="utf-8"))
VECTORS: list[dict[str, Any]] = DOCUMENT["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[f"{v['kind']}: {v['name']}" for v in VECTORS])
def test_the_python_engine_gives_what_the_vector_expects(vector: dict[str, Any]) -> None:
    assert RUNNERS[vector["kind"]](vector["input"]) == vector["expect"]


def test_the_file_is_what_the_builder_writes() -> None:
    """A case changed in build_vectors.py without rebuilding (or the file edited by hand) fails here."""
    assert PATH.read_text(encoding="utf-8") == render(build()), "run: python -m tests.protocol.build_vectors"


def test_the_format_describes_every_kind_and_every_kind_has_vectors() -> None:
    kinds = {v["kind"] for v in VECTORS}
    assert kinds == set(DOCUMENT["format"]["kinds"]) == set(RUNNERS)
    names = [(v["kind"], v["name"]) for v in VECTORS]
    assert len(names) == len(set(names)), "vector names are unique within a kind"
    scenarios = {v["name"] for v in VECTORS if v["kind"] == "push.scenario"}
    results = {r["status"] for v in VECTORS if v["kind"] == "push.scenario" for rnd in v["input"]["rounds"]
               if isinstance(rnd["answer"], list) for r in rnd["answer"]}
    assert {"applied", "duplicate", "conflict", "rejected"} <= results and len(scenarios) >= 8
