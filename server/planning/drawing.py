"""The double-random draw (双随机) as a pure function of its recorded inputs.

No database and no clock here: whoever holds a draw record (seed, inputs,
result) can re-run ``compute_draw`` and must get the same result. Randomness
comes only from ``random.Random(seed)`` walking inputs sorted by id, never
from the global generator.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any


class DrawInfeasible(Exception):
    """Too few qualified inspectors in a department for a target."""

    def __init__(self, department_id: str, enterprise_id: str | None, available: int, needed: int) -> None:
        super().__init__(f"department {department_id}: {available} qualified inspectors, {needed} needed")
        self.department_id = department_id
        self.enterprise_id = enterprise_id
        self.available = available
        self.needed = needed


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def input_digest(seed: str, inputs: dict[str, Any]) -> str:
    """SHA-256 over the seed and every input: changing either changes the digest."""
    return sha256_hex(canonical_json({"seed": seed, "inputs": inputs}))


def result_digest(result: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(result))


def sample_size(ratio: float, population: int) -> int:
    # Rounded before the ceiling: 0.1 * 30 is 3.0000000000000004 in binary floating point.
    return math.ceil(round(ratio * population, 9))


def compute_draw(seed: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Targets at the sampling ratio, then a team per target from each department's qualified pool.

    ``inputs``: ``parameters`` (``sampling_ratio``, ``inspectors_per_department``,
    ``department_ids``), ``candidates`` (``enterprise_id``, ``eligible``),
    ``pools`` (department id -> inspectors with ``user_id`` and ``certificates``
    carrying ``valid_for_window``), ``conflicts`` (``user_id``, ``enterprise_id``).
    """
    rng = random.Random(seed)
    parameters = inputs["parameters"]
    per_department = int(parameters["inspectors_per_department"])
    departments = sorted(parameters["department_ids"])
    candidates = sorted(inputs["candidates"], key=lambda c: c["enterprise_id"])
    eligible = [c["enterprise_id"] for c in candidates if c["eligible"]]
    count = min(sample_size(float(parameters["sampling_ratio"]), len(candidates)), len(eligible))
    targets = sorted(rng.sample(eligible, count))

    qualified: dict[str, list[str]] = {}
    for department_id in departments:
        pool = inputs["pools"].get(department_id, [])
        qualified[department_id] = sorted(p["user_id"] for p in pool
                                          if any(c["valid_for_window"] for c in p["certificates"]))
        if len(qualified[department_id]) < per_department:
            raise DrawInfeasible(department_id, None, len(qualified[department_id]), per_department)
    conflicts = {(c["user_id"], c["enterprise_id"]) for c in inputs["conflicts"]}

    drawn = []
    for enterprise_id in targets:
        team: dict[str, list[str]] = {}
        for department_id in departments:
            free = [u for u in qualified[department_id] if (u, enterprise_id) not in conflicts]
            if len(free) < per_department:
                raise DrawInfeasible(department_id, enterprise_id, len(free), per_department)
            team[department_id] = sorted(rng.sample(free, per_department))
        drawn.append({"enterprise_id": enterprise_id, "team": team})
    return {"population": len(candidates), "eligible": len(eligible), "targets": drawn}


@dataclass(frozen=True)
class Verification:
    """What re-running a stored draw found."""

    draw_id: str
    reproduced: bool
    input_hash_matches: bool
    result_matches: bool
    stored_input_hash: str
    recomputed_input_hash: str
    problems: list[str]
    # Whether the hashes agree with those the audit log took down when the draw ran (None: not checked).
    matches_audit_log: bool | None = field(default=None)


def verify_record(draw_id: str, seed: str, inputs: dict[str, Any], input_hash: str,
                  result: dict[str, Any], result_hash: str) -> Verification:
    """Re-run a draw from its record; any edit of seed, inputs or result shows up."""
    problems: list[str] = []
    recomputed_hash = input_digest(seed, inputs)
    hash_ok = recomputed_hash == input_hash
    if not hash_ok:
        problems.append("输入摘要不符：抽取记录的种子或输入已被改动")
    if result_digest(result) != result_hash:
        problems.append("结果摘要不符：抽取记录的结果已被改动")
    try:
        rerun = compute_draw(seed, inputs)
        result_ok = canonical_json(rerun) == canonical_json(result)
    except (DrawInfeasible, KeyError, TypeError, ValueError, AttributeError, IndexError):
        result_ok = False
    if not result_ok:
        problems.append("以记录的种子和输入重新抽取，结果与记录不一致")
    reproduced = hash_ok and result_ok and not problems
    return Verification(draw_id, reproduced, hash_ok, result_ok, input_hash, recomputed_hash, problems)
