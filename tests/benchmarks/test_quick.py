"""Benchmarks cannot rot: every script in ``benchmarks/`` runs in its quick mode, as a user would run it.

Each script is run as a subprocess with ``--quick`` (tiny sizes, seconds), on SQLite, fetching nothing
from the network; it fails the suite when it exits non-zero or prints no result. A benchmark reports
on its last ``result: {...}`` line (a JSON object); what a quick mode skipped for want of a tool it
names there under ``skipped``. No timing is asserted: a shared machine is no stopwatch.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))
# Scripts that keep work files between runs are given a folder of the test's own.
WORKDIR_SCRIPTS = {"upload.py", "upload_s3.py", "verify.py"}
QUICK_TIMEOUT_SECONDS = 180


def result_of(stdout: str) -> dict[str, Any] | None:
    """The JSON object of the last ``result:`` line, or None."""
    lines = [line for line in stdout.splitlines() if line.startswith("result: ")]
    if not lines:
        return None
    value = json.loads(lines[-1][len("result: "):])
    return value if isinstance(value, dict) else None


def test_every_benchmark_is_found() -> None:
    expected = {"load.py", "merge.py", "sync_push.py", "upload.py", "upload_s3.py", "verify.py"}
    assert expected <= {p.name for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_quick_mode_runs_and_reports(script: Path, tmp_path: Path) -> None:
    command = [sys.executable, str(script), "--quick"]
    if script.name in WORKDIR_SCRIPTS:
        command += ["--workdir", str(tmp_path / "work")]
    # The benchmark's own database (SQLite) and its own server settings, not the developer's.
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("INSPECT_ONCE_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=QUICK_TIMEOUT_SECONDS)
    output = f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    assert done.returncode == 0, f"{script.name} --quick exited {done.returncode}\n{output}"
    result = result_of(done.stdout)
    assert result is not None, f"{script.name} --quick printed no 'result: {{...}}' line\n{output}"
    assert result.get("quick") is True, f"{script.name}: the result does not say it is the quick mode\n{output}"
    for skipped in result.get("skipped", []):
        print(f"{script.name}: skipped {skipped}")  # shown with -rA; a missing tool is not a failure
