"""``flask --app server decisions-list``: the operator's listing of decisions and what awaits legal review."""
from __future__ import annotations

from tests.server.decisions.conftest import NOTICE, PENALTY, Case, record


def test_the_operator_lists_decisions_and_those_awaiting_review(client, auth, case: Case, runner) -> None:
    major = record(client, auth, case, "e-sup", PENALTY).get_json()
    ordinary = record(client, auth, case, "m-sup", NOTICE).get_json()
    everything = runner.invoke(args=["decisions-list"])
    assert everything.exit_code == 0, everything.output
    lines = {line.split("\t")[0]: line.split("\t") for line in everything.stdout.splitlines()}
    assert lines[major["id"]][1:5] == ["STHJ", case.world.enterprise.credit_code, "penalty", "draft"]
    assert lines[major["id"]][7] == "major:penalty_above:10000.00" and lines[ordinary["id"]][7] == "ordinary"
    waiting = runner.invoke(args=["decisions-list", "--awaiting-review"])
    assert [line.split("\t")[0] for line in waiting.stdout.splitlines()] == [major["id"]]
    assert runner.invoke(args=["decisions-list", "--status", "nonsense"]).exit_code == 2
