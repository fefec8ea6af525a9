"""load_authorized: load by id or 404, then authorize, in that order and with the policy's answers."""
from __future__ import annotations

import uuid

import pytest

from server.auth.policy import Permission, Principal, authorize_object
from server.directory.models import User
from server.errors import Problem
from server.extensions import db
from server.loading import load_authorized
from tests.conftest import new_department, new_user


def as_(user: User) -> Principal:
    return Principal("user", str(user.id), user.role.value, user.department_id)


def answer(problem: Problem) -> tuple[int | None, str, str | None, dict[str, list[str]] | None]:
    return problem.code, problem.slug, problem.detail, problem.errors


@pytest.fixture
def people(app: object) -> dict[str, User]:
    market, ecology = new_department("SCJG", "市场监管局"), new_department("STHJ", "生态环境局")
    return {"m-sup": new_user("m-sup", "supervisor", market), "m-head": new_user("m-head", "head", market),
            "e-insp": new_user("e-insp", "inspector", ecology)}


def test_a_missing_id_answers_404_with_the_callers_detail_and_nothing_is_refused(people: dict[str, User]) -> None:
    refused: list[User] = []
    with pytest.raises(Problem) as missing:
        load_authorized(as_(people["m-sup"]), User, uuid.uuid4(), Permission.READ_PEOPLE, not_found="人员不存在",
                        on_refused=refused.append)
    assert answer(missing.value) == (404, "not-found", "人员不存在", None)
    assert refused == []


def test_another_departments_object_gets_the_policys_404(people: dict[str, User]) -> None:
    caller, other = as_(people["m-sup"]), people["e-insp"]
    with pytest.raises(Problem) as hidden:
        load_authorized(caller, User, other.id, Permission.READ_PEOPLE, not_found="人员不存在")
    with pytest.raises(Problem) as policy:
        authorize_object(caller, Permission.READ_PEOPLE, other)
    assert answer(hidden.value) == answer(policy.value) and hidden.value.code == 404


def test_an_object_the_caller_sees_but_may_not_change_gets_403(people: dict[str, User]) -> None:
    with pytest.raises(Problem) as refused:
        load_authorized(as_(people["m-sup"]), User, people["m-head"].id, Permission.MANAGE_PEOPLE,
                        not_found="人员不存在", visible=Permission.READ_PEOPLE)
    assert (refused.value.code, refused.value.slug) == (403, "forbidden")


def test_an_allowed_object_is_the_loaded_row(people: dict[str, User]) -> None:
    head = people["m-head"]
    found = load_authorized(as_(people["m-sup"]), User, head.id, Permission.READ_PEOPLE, not_found="人员不存在")
    assert found is db.session.get(User, head.id) and found.username == "m-head"


def test_a_grant_beyond_the_policy_lets_in_and_a_refusal_is_reported_first(people: dict[str, User]) -> None:
    caller, other = as_(people["m-sup"]), people["e-insp"]
    granted = load_authorized(caller, User, other.id, Permission.READ_PEOPLE, not_found="人员不存在",
                              also_allowed=lambda user: user.username == "e-insp")
    assert granted.id == other.id
    refused: list[User] = []
    with pytest.raises(Problem) as still_hidden:
        load_authorized(caller, User, other.id, Permission.READ_PEOPLE, not_found="人员不存在",
                        also_allowed=lambda user: False, on_refused=refused.append)
    assert still_hidden.value.code == 404 and [u.id for u in refused] == [other.id]


def test_a_callers_own_rule_hides_an_object_exactly_as_a_missing_one(people: dict[str, User]) -> None:
    caller, other = as_(people["m-sup"]), people["e-insp"]
    with pytest.raises(Problem) as missing:
        load_authorized(caller, User, uuid.uuid4(), Permission.READ_PEOPLE, not_found="人员不存在", sees=lambda u: True)
    refused: list[User] = []
    with pytest.raises(Problem) as hidden:
        load_authorized(caller, User, other.id, Permission.READ_PEOPLE, not_found="人员不存在",
                        sees=lambda user: False, on_refused=refused.append)
    assert answer(hidden.value) == answer(missing.value) == (404, "not-found", "人员不存在", None)
    assert [u.id for u in refused] == [other.id]
    # The rule replaces the department scope, not the role's grant.
    assert load_authorized(caller, User, other.id, Permission.READ_PEOPLE, not_found="人员不存在",
                           sees=lambda user: True).id == other.id
    with pytest.raises(Problem) as no_grant:
        load_authorized(caller, User, other.id, Permission.MANAGE_PEOPLE, not_found="人员不存在", sees=lambda u: True)
    assert answer(no_grant.value) == answer(missing.value)


def test_a_callers_rule_does_not_mix_with_the_policys_options(people: dict[str, User]) -> None:
    with pytest.raises(TypeError):
        load_authorized(as_(people["m-sup"]), User, people["m-head"].id, Permission.READ_PEOPLE, not_found="人员不存在",
                        sees=lambda user: True, also_allowed=lambda user: True)
