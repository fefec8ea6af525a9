"""The joint record is the same whatever order the team's tablets sync in.

Hypothesis draws a team of 2–3 departments (two tablets each), random
offline work on every tablet — findings and their edits and deletions, shared
fields set on several tablets at once, measures, photos, signatures — and
several random interleavings of their pushes (batch sizes, which tablet goes
next). Every interleaving goes through the real push service on a server that
has forgotten the previous one; all must give byte-identical joint records.
"""
from __future__ import annotations

import random
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.joint import scenario as sc

ADVANCE = st.integers(0, 3000)  # 0: same millisecond, the HLC counter moves instead
OPS = st.one_of(
    st.tuples(st.just("finding"), st.integers(0, 2), st.sampled_from(sc.RESULTS), st.sampled_from(sc.NOTES), ADVANCE),
    st.tuples(st.just("shared"), st.sampled_from(sorted(sc.SHARED_VALUES)), st.integers(0, 2), ADVANCE),
    st.tuples(st.just("soft"), st.sampled_from(sc.SOFT), ADVANCE),
    st.tuples(st.just("coercive"), st.sampled_from(("seizure", "closure")), ADVANCE),
    st.tuples(st.just("delete"), st.integers(0, 2), ADVANCE),
    st.tuples(st.just("photo"), st.integers(1, 5000), ADVANCE),
    st.tuples(st.just("sign"), st.sampled_from(("inspector", "representative")), ADVANCE),
)
SCHEDULE = st.lists(st.tuples(st.integers(0, 5), st.integers(1, 3)), max_size=40)


@pytest.fixture
def team(app) -> sc.JointTeam:  # type: ignore[no-untyped-def]
    return sc.build_team(3)


def _capture(team: sc.JointTeam, departments: int, work: list[list[Any]], seed: int) -> list[sc.Tablet]:
    codes = [d.code for d in team.departments[:departments]]
    tablets = [t for t in sc.tablets_for(team, int(time.time() * 1000) - 3_600_000, random.Random(seed))
               if t.department.code in codes]
    for tablet, ops in zip(tablets, work, strict=False):
        items = team.items[tablet.department.code]
        for op in ops:
            kind, advance = op[0], op[-1]
            if kind == "finding":
                tablet.record_finding(items[op[1]], op[2], op[3], advance)
            elif kind == "shared":
                values = sc.SHARED_VALUES[op[1]]
                tablet.set_shared(op[1], values[op[2] % len(values)], advance)
            elif kind == "soft":
                tablet.add_soft_measure(op[1], advance)
            elif kind == "coercive":
                tablet.add_coercive_measure(op[1], "现场措施", advance)
            elif kind == "delete":
                tablet.delete_finding(items[op[1]], advance)
            elif kind == "photo":
                tablet.add_photo(f"{op[1]:064x}", op[1], advance)
            else:
                tablet.sign(op[1], tablet.user.full_name, advance)
    return tablets


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
          deadline=None)
@given(departments=st.integers(2, 3), work=st.lists(st.lists(OPS, max_size=7), min_size=6, max_size=6),
       schedules=st.lists(SCHEDULE, min_size=2, max_size=3), seed=st.integers(0, 2**32))
def test_any_sync_order_gives_the_same_joint_record(team: sc.JointTeam, departments: int, work: list[list[Any]],
                                                    schedules: list[list[tuple[int, int]]], seed: int) -> None:
    tablets = _capture(team, departments, work, seed)
    records = []
    # First each tablet in turn, whole outbox at once; then the drawn interleavings, and one in reverse.
    for tablets_in_order, schedule in [(tablets, []), *((tablets, s) for s in schedules), (tablets[::-1], [])]:
        sc.reset_sync_state()
        sc.sync_in_order(tablets_in_order, schedule)
        records.append(sc.merged_bytes(team))
    assert all(r == records[0] for r in records[1:])
