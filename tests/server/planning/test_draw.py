"""The double-random draw: ratio and filter, qualified inspectors only, conflicts, reproducible, tamper-evident."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from server.auth.policy import SYSTEM
from server.directory import service as directory
from server.directory.models import CertificateStatus, Enterprise
from server.errors import Problem
from server.extensions import db
from server.planning import drawing
from server.planning.conflicts import declare_conflict
from server.planning.draws import run_draw, verify_draw
from server.planning.models import Draw
from server.tasks.models import InspectionTask, TaskStatus
from tests.clock import office_today
from tests.conftest import World, new_user
from tests.server.planning.factories import add_enterprises, plan, principal, second_market_inspector, window


def _draw(world: World, source: object, *, seed: str = "seed-0001", per_department: int = 2, who: str = "m-sup",
          joint: bool = False, days_ahead: int = 10, length_days: int = 1) -> Draw:
    start, end = window(days_ahead, length_days)
    record = run_draw(principal(world.people[who]), {
        "plan_id": None if joint else source.id, "joint_plan_id": source.id if joint else None,  # type: ignore[attr-defined]
        "window_start": start, "window_end": end, "inspectors_per_department": per_department, "seed": seed})
    db.session.commit()
    return record


def _targets(record: Draw) -> list[str]:
    return [t["enterprise_id"] for t in record.result["targets"]]


def test_targets_match_the_filter_at_the_sampling_ratio(world: World) -> None:
    second_market_inspector(world)
    food = add_enterprises(world, 10, industry="食品")
    add_enterprises(world, 5, industry="化工", start=100)
    record = _draw(world, plan(world, "market", ratio=0.3, industries=["食品"]))
    targets = _targets(record)
    assert len(targets) == 3  # 30 % of the 10 food enterprises, not of all 16
    assert set(targets) <= {str(e.id) for e in food}
    assert record.result["population"] == 10
    assert targets == sorted(targets)
    tasks = [db.session.get(InspectionTask, uuid.UUID(t)) for t in record.task_ids]
    assert {str(t.enterprise_id) for t in tasks} == set(targets)


def test_the_ratio_rounds_up_and_a_district_filters_by_address(world: World) -> None:
    second_market_inspector(world)
    add_enterprises(world, 4, industry="食品", address="祁阳市白水镇")
    add_enterprises(world, 6, industry="食品", address="祁阳市浯溪街道", start=50)
    market = plan(world, "market", ratio=0.1)
    market.target_filter = {**market.target_filter, "address_contains": "白水镇"}
    db.session.commit()
    record = _draw(world, market)
    assert record.result["population"] == 4
    assert len(_targets(record)) == 1  # ceil(0.1 * 4)
    assert "白水镇" in db.session.get(Enterprise, uuid.UUID(_targets(record)[0])).address


@pytest.mark.around_office_midnight
def test_only_certificates_valid_for_the_whole_window_qualify(world: World) -> None:
    """Expiring inside the window, not yet valid at its start, suspended or revoked: not drawn."""
    add_enterprises(world, 3, industry="食品")
    start, end = window(10, length_days=5)
    today = office_today()
    qualified = second_market_inspector(world)
    new_user("m-expiring", "inspector", world.market, certificate="CERT-M-EXP",
             valid_until=today + timedelta(days=12))  # ends on the window's third day
    new_user("m-later", "inspector", world.market, certificate="CERT-M-LATE",
             valid_from=today + timedelta(days=11), valid_until=today + timedelta(days=400))
    for username, number, status in (("m-susp", "CERT-M-SUS", CertificateStatus.SUSPENDED),
                                     ("m-rev", "CERT-M-REV", CertificateStatus.REVOKED)):
        new_user(username, "inspector", world.market, certificate=number)
        directory.change_certificate_status(SYSTEM, directory.certificate_by_number(number), status, "停职")
    new_user("m-nocert", "inspector", world.market)
    db.session.commit()
    record = _draw(world, plan(world, "market", ratio=1.0), length_days=5)
    allowed = {str(world.people["m-insp"].id), str(qualified.id)}
    for target in record.result["targets"]:
        assert set(target["team"][str(world.market.id)]) == allowed
    pool = {p["user_id"]: p for p in record.inputs["pools"][str(world.market.id)]}
    assert len(pool) == 7  # every inspector is an input, with why they (do not) qualify
    assert [c["valid_for_window"] for p in pool.values() for c in p["certificates"]].count(True) == 2
    assert start < end


def test_at_least_two_qualified_inspectors_per_department_or_a_clear_refusal(world: World) -> None:
    add_enterprises(world, 2, industry="食品")
    market = plan(world, "market")
    with pytest.raises(Problem) as refused:
        _draw(world, market)  # market has one certificate holder
    assert refused.value.code == 422 and refused.value.slug == "not-enough-inspectors"
    assert "市场监管局" in refused.value.detail
    assert refused.value.extra["department_id"] == str(world.market.id)
    db.session.rollback()
    assert db.session.scalar(select(Draw.id)) is None  # nothing recorded
    second_market_inspector(world)
    record = _draw(world, market)
    assert all(len(t["team"][str(world.market.id)]) == 2 for t in record.result["targets"])


def test_declared_conflicts_of_interest_are_excluded(world: World) -> None:
    second_market_inspector(world)
    third = new_user("m-insp3", "inspector", world.market, certificate="CERT-M-003")
    targets = add_enterprises(world, 6, industry="食品")
    conflicted = targets[0]
    declare_conflict(principal(third), {"user_id": third.id, "enterprise_id": conflicted.id, "reason": "配偶任职"})
    db.session.commit()
    record = _draw(world, plan(world, "market", ratio=1.0, industries=["食品"]), seed="conflict-seed")
    teams = {t["enterprise_id"]: t["team"][str(world.market.id)] for t in record.result["targets"]}
    assert teams[str(conflicted.id)] == sorted([str(world.people["m-insp"].id), str(world.people["m-insp2"].id)])
    assert {"user_id": str(third.id), "enterprise_id": str(conflicted.id)} in record.inputs["conflicts"]
    assert any(str(third.id) in team for team in teams.values())  # elsewhere they can be drawn


def test_a_conflict_that_leaves_too_few_inspectors_names_the_department(world: World) -> None:
    second_market_inspector(world)
    [target] = add_enterprises(world, 1, industry="食品")
    declare_conflict(SYSTEM, {"user_id": world.people["m-insp2"].id, "enterprise_id": target.id, "reason": "曾任职"})
    db.session.commit()
    with pytest.raises(Problem) as refused:
        _draw(world, plan(world, "market", industries=["食品"]))
    assert refused.value.code == 422 and "市场监管局" in refused.value.detail
    assert refused.value.extra["enterprise_id"] == str(target.id)


def test_same_seed_same_inputs_same_draw() -> None:
    inputs = {
        "parameters": {"sampling_ratio": 0.5, "inspectors_per_department": 2, "department_ids": ["d2", "d1"]},
        "candidates": [{"enterprise_id": f"e{n:02d}", "eligible": n != 3} for n in range(20)],
        "pools": {d: [{"user_id": f"{d}-u{n}", "certificates": [{"valid_for_window": n != 0}]} for n in range(5)]
                  for d in ("d1", "d2")},
        "conflicts": [{"user_id": "d1-u1", "enterprise_id": "e05"}],
    }
    first = drawing.compute_draw("same-seed", inputs)
    reordered = {**inputs, "candidates": list(reversed(inputs["candidates"]))}
    assert drawing.compute_draw("same-seed", reordered) == first  # input order does not matter
    assert drawing.compute_draw("same-seed", inputs) == first
    assert drawing.compute_draw("other-seed", inputs) != first
    assert len(first["targets"]) == 10 and "e03" not in [t["enterprise_id"] for t in first["targets"]]
    assert all("d1-u0" not in t["team"]["d1"] for t in first["targets"])
    assert all("d1-u1" not in t["team"]["d1"] for t in first["targets"] if t["enterprise_id"] == "e05")


def test_a_past_draw_reproduces_from_its_record(world: World, runner) -> None:
    second_market_inspector(world)
    add_enterprises(world, 8, industry="食品")
    record = _draw(world, plan(world, "market", ratio=0.5), seed="reproduce-me")
    # Later changes to the directory do not matter: the record holds every input.
    add_enterprises(world, 4, industry="食品", start=200)
    db.session.expire_all()
    report = verify_draw(record.id)
    assert report.reproduced and report.input_hash_matches and report.result_matches and not report.problems
    stored = db.session.get(Draw, record.id)
    assert drawing.compute_draw(stored.seed, stored.inputs) == stored.result
    assert stored.input_hash == drawing.input_digest(stored.seed, stored.inputs)
    result = runner.invoke(args=["verify-draw", str(record.id)])
    assert result.exit_code == 0, result.output
    assert "verified" in result.output


@pytest.mark.parametrize("tamper", ["result", "inputs", "seed"])
def test_a_tampered_draw_record_is_detected(world: World, runner, tamper: str) -> None:
    second_market_inspector(world)
    new_user("m-insp3", "inspector", world.market, certificate="CERT-M-003")
    add_enterprises(world, 8, industry="食品")
    record = _draw(world, plan(world, "market", ratio=0.5), seed="tamper-test")
    draw_id = record.id
    if tamper == "result":  # swap a drawn enterprise for one that was not drawn
        result = dict(record.result)
        others = [c["enterprise_id"] for c in record.inputs["candidates"] if c["enterprise_id"] not in _targets(record)]
        result["targets"] = [{**result["targets"][0], "enterprise_id": others[0]}, *result["targets"][1:]]
        change = {"result": result}
    elif tamper == "inputs":  # pretend an unqualified inspector's certificate was valid
        inputs = dict(record.inputs)
        inputs["conflicts"] = [{"user_id": str(world.people["m-insp"].id), "enterprise_id": _targets(record)[0]}]
        change = {"inputs": inputs}
    else:
        change = {"seed": "another-seed"}
    db.session.execute(update(Draw).where(Draw.id == draw_id).values(**change))
    db.session.commit()
    db.session.expire_all()
    report = verify_draw(draw_id)
    assert not report.reproduced and report.problems
    if tamper != "result":
        assert not report.input_hash_matches
    else:
        assert report.input_hash_matches and not report.result_matches
    result = runner.invoke(args=["verify-draw", str(draw_id)])
    assert result.exit_code != 0
    assert "does not verify" in result.output
    assert runner.invoke(args=["verify-draw", str(uuid.uuid4())]).exit_code != 0
    assert runner.invoke(args=["verify-draw", "not-a-uuid"]).exit_code != 0


def test_a_draw_makes_tasks_that_wait_for_approval(world: World) -> None:
    second_market_inspector(world)
    add_enterprises(world, 2, industry="食品")
    record = _draw(world, plan(world, "market", industries=["食品"]))
    for task_id in record.task_ids:
        task = db.session.get(InspectionTask, uuid.UUID(task_id))
        assert task.status == TaskStatus.PENDING_APPROVAL
        assert {m.department_id for m in task.members} == {world.market.id}
        assert len(task.members) == 2
        assert [i.check_item_id for i in task.check_items] == [world.check_items["m-licence"].id]


@pytest.mark.around_office_midnight
def test_a_draw_window_must_lie_in_the_plan_period(world: World) -> None:
    second_market_inspector(world)
    with pytest.raises(Problem) as refused:
        _draw(world, plan(world, "market"), days_ahead=400)
    assert refused.value.code == 422 and "window_start" in refused.value.errors


def test_a_consistently_rewritten_draw_is_caught_by_the_audit_log(world: World, runner) -> None:
    """Someone with the database re-draws with another seed and rewrites hashes and result to match."""
    second_market_inspector(world)
    add_enterprises(world, 8, industry="食品")
    record = _draw(world, plan(world, "market", ratio=0.5), seed="original-seed")
    assert verify_draw(record.id).matches_audit_log is True
    seed = "rewritten-seed"
    result = drawing.compute_draw(seed, record.inputs)
    db.session.execute(update(Draw).where(Draw.id == record.id).values(
        seed=seed, input_hash=drawing.input_digest(seed, record.inputs), result=result,
        result_hash=drawing.result_digest(result)))
    db.session.commit()
    db.session.expire_all()
    report = verify_draw(record.id)
    assert report.input_hash_matches and report.result_matches  # self-consistent...
    assert report.matches_audit_log is False and not report.reproduced  # ...but not what was drawn
    assert runner.invoke(args=["verify-draw", str(record.id)]).exit_code != 0


@given(seed=st.text(min_size=1, max_size=20), ratio=st.floats(min_value=0.01, max_value=1.0),
       population=st.integers(min_value=0, max_value=30), pool=st.integers(min_value=2, max_value=6),
       conflicted=st.sets(st.integers(min_value=0, max_value=29), max_size=5))
def test_any_draw_keeps_every_rule(seed: str, ratio: float, population: int, pool: int, conflicted: set[int]) -> None:
    """Whatever the seed: targets eligible and sorted, teams of two qualified, conflict-free inspectors, repeatable."""
    inputs = {
        "parameters": {"sampling_ratio": ratio, "inspectors_per_department": 2, "department_ids": ["d1"]},
        "candidates": [{"enterprise_id": f"e{n:02d}", "eligible": n % 7 != 0} for n in range(population)],
        "pools": {"d1": [{"user_id": f"u{n}", "certificates": [{"valid_for_window": n != 1}]}
                         for n in range(pool + 2)]},
        "conflicts": [{"user_id": "u0", "enterprise_id": f"e{n:02d}"} for n in conflicted],
    }
    result = drawing.compute_draw(seed, inputs)
    targets = [t["enterprise_id"] for t in result["targets"]]
    eligible = [c["enterprise_id"] for c in inputs["candidates"] if c["eligible"]]
    assert targets == sorted(targets) and set(targets) <= set(eligible)
    assert len(targets) == min(len(eligible), drawing.sample_size(ratio, population))
    for target in result["targets"]:
        team = target["team"]["d1"]
        assert len(team) == 2 and len(set(team)) == 2 and "u1" not in team
        assert not ("u0" in team and int(target["enterprise_id"][1:]) in conflicted)
    assert drawing.compute_draw(seed, inputs) == result
    assert drawing.verify_record("d", seed, inputs, drawing.input_digest(seed, inputs), result,
                                 drawing.result_digest(result)).reproduced
