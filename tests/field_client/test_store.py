"""The local store: durable, atomic local changes; a killed process never leaves half a finding."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from field_client.engine import FieldClient
from field_client.store import SCHEMA_VERSION, Store, StoreError
from tests.field_client.conftest import MY_ITEM, TASK_ID

ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from field_client.engine import FieldClient

    store, inspection, item, evidence = sys.argv[1:5]
    client = FieldClient(store)
    n = int(client.store.get("crash_test_next", 0))
    while True:
        if n % 5 == 4:
            # A new file each time, so the vault keeps growing too.
            source = Path(evidence) / f"photo-{n}.jpg"
            source.write_bytes(f"photo {n} ".encode() * 5000)
            client.attach(inspection, source, "scene")
        else:
            client.record_finding(inspection, item, "compliant" if n % 2 else "non_compliant", note=f"第{n}次")
        with client.store.transaction():
            client.store.set("crash_test_next", n + 1)
        print(n, flush=True)
        n += 1
""")


def test_store_is_wal_with_full_sync_and_versioned(tmp_path: Path) -> None:
    store = Store(tmp_path / "a" / "field.db")
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"
    conn.close()
    store.close()


def test_a_failed_change_leaves_nothing_behind(tmp_path: Path) -> None:
    store = Store(tmp_path / "field.db")
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add_mutation(id="m1", entity="finding", entity_id="e1", user_id="u1", op="upsert", base_version=0,
                               hlc="1764120000000-0000-X", fields={"result": "compliant"}, now="t")
            store.set("hlc_last", "1764120000000-0000-X")
            raise RuntimeError("power cut")
    assert store.mutations() == [] and store.get("hlc_last") is None
    store.close()


def test_a_newer_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "field.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="升级"):
        Store(path)


def test_killed_mid_write_loses_no_committed_finding_and_stays_consistent(
        tmp_path: Path, offline_tablet: Callable[..., FieldClient]) -> None:
    path = tmp_path / "crash" / "field.db"
    client = offline_tablet(path)
    inspection = client.start_inspection(TASK_ID, place="车间")
    client.close()
    evidence = tmp_path / "camera"
    evidence.mkdir()

    acknowledged = -1
    for round_ in range(3):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), inspection, MY_ITEM, str(evidence)],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert writer.stdout is not None
        target = acknowledged + 15 + round_ * 7
        while acknowledged < target:
            line = writer.stdout.readline()
            assert line, writer.stderr.read() if writer.stderr else "writer died"
            acknowledged = int(line)
        time.sleep(0.003 * round_)  # land the kill at a different point of a write each round
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        assert writer.stderr is not None
        writer.stderr.close()

        store = Store(path)
        assert store.integrity_check() == "ok"
        mutations = store.mutations()
        findings = [m for m in mutations if m.entity == "finding"]
        media = [m for m in mutations if m.entity == "media"]
        # Every loop step acknowledged on stdout was committed before it was printed.
        assert len(findings) + len(media) >= acknowledged + 1
        # Whole rows only: each one parses and carries its fields; stamps strictly increase.
        for m in findings:
            assert m.fields["result"] in ("compliant", "non_compliant") and m.fields["note"].startswith("第")
        stamps = [m.hlc for m in mutations]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        # What was committed together is there together: the clock, the outbox and the local view.
        assert store.get("hlc_last") == stamps[-1]
        finding = store.entities("finding")[0]
        assert finding.view_fields is not None and finding.view_fields["note"] == findings[-1].fields["note"]
        # Every indexed evidence file is in the vault, complete, under its hash.
        for m in media:
            data = store.vault_path(m.fields["sha256"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == m.fields["sha256"] and len(data) == m.fields["size"]
        assert {e["sha256"] for e in store.vault_entries()} == {m.fields["sha256"] for m in media}
        store.close()

    reopened = FieldClient(path)
    assert len(reopened.inspection(inspection)["findings"]) == 1
    assert reopened.status().pending
    reopened.close()


def test_store_files_are_json_not_pickles(tmp_path: Path, offline_tablet: Callable[..., FieldClient]) -> None:
    client = offline_tablet()
    inspection = client.start_inspection(TASK_ID)
    client.record_finding(inspection, MY_ITEM, "compliant", note="营业执照已公示")
    row = client.store._conn.execute("SELECT fields FROM outbox ORDER BY seq DESC LIMIT 1").fetchone()
    assert json.loads(row[0])["note"] == "营业执照已公示"


CONCURRENT = textwrap.dedent("""
    import sys
    from field_client.engine import FieldClient

    store, inspection, item, who = sys.argv[1:5]
    client = FieldClient(store)
    for n in range(40):
        client.record_finding(inspection, item, "compliant", note=f"{who}-{n}")
""")


def test_two_processes_on_one_store_interleave_without_losing_or_reusing_stamps(
        tmp_path: Path, offline_tablet: Callable[..., FieldClient]) -> None:
    """The tablet app capturing while ``fieldsync`` runs on the same file."""
    path = tmp_path / "shared" / "field.db"
    client = offline_tablet(path)
    inspection = client.start_inspection(TASK_ID)
    client.close()
    writers = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(path), inspection, MY_ITEM, who], cwd=ROOT,
                                stderr=subprocess.PIPE, text=True) for who in ("app", "cli")]
    for writer in writers:
        _, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
    store = Store(path)
    notes = [m.fields.get("note") for m in store.mutations() if m.entity == "finding"]
    assert sorted(notes) == sorted([f"app-{n}" for n in range(40)] + [f"cli-{n}" for n in range(40)])
    stamps = [m.hlc for m in store.mutations()]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    store.close()
