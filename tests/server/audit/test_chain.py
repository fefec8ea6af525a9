"""The audit log is a hash chain: appends link up, and tampering is found at the right entry."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from server.audit.models import AuditEntry
from server.audit.service import ANONYMOUS, GENESIS_HASH, entry_hash, record, verify_chain
from server.auth.policy import SYSTEM
from server.extensions import db


def _append(count: int) -> list[AuditEntry]:
    entries = [record("test.event", object_type="thing", object_id=str(i), details={"i": i}, actor=SYSTEM)
               for i in range(1, count + 1)]
    db.session.commit()
    return entries


def tamper(*statements: str) -> None:
    """Change the log behind the application's back, as someone with database access could."""
    postgres = db.engine.dialect.name == "postgresql"
    with db.engine.begin() as connection:
        if postgres:
            connection.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_append_only"))
        for statement in statements:
            connection.execute(text(statement))
        if postgres:
            connection.execute(text("ALTER TABLE audit_entry ENABLE TRIGGER audit_entry_append_only"))


def verify_cli(runner: Any) -> Any:
    return runner.invoke(args=["audit-verify"])


def test_appends_link_each_entry_to_the_one_before(app: Flask, runner: Any) -> None:
    entries = _append(5)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in zip(entries, entries[1:], strict=False):
        assert after.prev_hash == before.hash
    assert all(len(e.hash) == 64 and e.hash == entry_hash(e.__dict__) for e in entries)
    assert verify_chain() == verify_chain(page_size=2)
    assert verify_chain().ok and verify_chain().checked == 5
    result = verify_cli(runner)
    assert result.exit_code == 0, result.output
    assert "intact: 5 entries" in result.output


def test_an_empty_log_verifies(app: Flask, runner: Any) -> None:
    assert verify_chain().ok
    assert verify_cli(runner).exit_code == 0


@pytest.mark.parametrize("statements, broken, why", [
    (["UPDATE audit_entry SET actor_username = 'mallory' WHERE seq = 3"], 3, "altered"),
    (["UPDATE audit_entry SET outcome = 'denied' WHERE seq = 4"], 4, "altered"),
    (["UPDATE audit_entry SET object_id = '99' WHERE seq = 1"], 1, "altered"),
    (["DELETE FROM audit_entry WHERE seq = 3"], 3, "missing"),
    (["DELETE FROM audit_entry WHERE seq = 1"], 1, "missing"),
    (["DELETE FROM audit_entry WHERE seq >= 5"], 5, "cut short"),
    # Reordering: entries 2 and 3 swap places.
    (["UPDATE audit_entry SET seq = 1000 WHERE seq = 2", "UPDATE audit_entry SET seq = 2 WHERE seq = 3",
      "UPDATE audit_entry SET seq = 3 WHERE seq = 1000"], 2, "does not link"),
    # Renumbering after a deletion hides the gap but not the broken link.
    (["DELETE FROM audit_entry WHERE seq = 2", "UPDATE audit_entry SET seq = seq - 1 WHERE seq > 2"], 2,
     "does not link"),
], ids=["edit-username", "edit-outcome", "edit-first", "delete-middle", "delete-first", "delete-tail", "reorder",
        "delete-and-renumber"])
def test_tampering_is_found_at_the_first_broken_entry(app: Flask, runner: Any, statements: list[str], broken: int,
                                                      why: str) -> None:
    _append(6)  # the chain head remembers entry 6, so a cut-off tail shows
    tamper(*statements)
    db.session.expire_all()
    result = verify_chain(page_size=2)
    assert not result.ok
    assert result.first_broken_seq == broken, result
    assert why in (result.reason or "")
    cli = verify_cli(runner)
    assert cli.exit_code == 1
    assert f"BROKEN at entry {broken}:" in cli.output, cli.output


def test_an_edit_that_rehashes_its_entry_breaks_the_next_link(app: Flask) -> None:
    entries = _append(4)
    forged = {**{c: getattr(entries[1], c) for c in AuditEntry.__table__.columns.keys()}, "actor_username": "mallory"}
    tamper(f"UPDATE audit_entry SET actor_username = 'mallory', hash = '{entry_hash(forged)}' WHERE seq = 2")
    result = verify_chain()
    assert (result.ok, result.first_broken_seq, result.checked) == (False, 3, 2)


def test_entries_survive_the_rest_of_the_transaction_rolling_back_only_when_asked(app: Flask) -> None:
    record("test.event", actor=SYSTEM)
    db.session.rollback()
    assert db.session.scalar(select(AuditEntry).limit(1)) is None
    _append(2)
    assert verify_chain().ok  # the head moved back with the rollback: no gap


def test_secrets_never_reach_the_log(app: Flask) -> None:
    entry = record("auth.login_failed", outcome="failed", actor=ANONYMOUS,
                   details={"username": "u", "password": "hunter2", "nested": [{"refresh_token": "abc"}],
                            "Authorization": "Bearer x", "device_secret": "s", "n": float("nan"), "text": "a\x00b"})
    db.session.commit()
    stored = db.session.execute(select(AuditEntry.__table__.c.details)).scalar_one()
    assert "hunter2" not in str(stored) and "abc" not in str(stored) and "Bearer" not in str(stored)
    assert stored["username"] == "u" and stored["password"] == "[redacted]"
    assert entry.actor_kind.value == "anonymous" and entry.actor_id is None and entry.client_ip is None
    assert verify_chain().ok


def test_actions_are_dotted_names_and_outcomes_known(app: Flask) -> None:
    with pytest.raises(ValueError):
        record("Login", actor=SYSTEM)
    with pytest.raises(ValueError):
        record("auth.login", outcome="maybe", actor=SYSTEM)


def test_concurrent_appends_never_fork_the_chain(app: Flask) -> None:
    threads_count, per_thread = 6, 8
    errors: list[BaseException] = []
    start = threading.Barrier(threads_count)

    def work(n: int) -> None:
        try:
            with app.app_context():
                start.wait()
                for i in range(per_thread):
                    record("test.concurrent", object_id=f"{n}-{i}", actor=SYSTEM)
                    db.session.commit()
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    result = verify_chain(page_size=7)
    assert result.ok, result
    assert result.checked == threads_count * per_thread
    objects = db.session.scalars(select(AuditEntry.object_id)).all()
    assert len(set(objects)) == threads_count * per_thread


def test_postgresql_refuses_updates_and_deletes(app: Flask) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the append-only trigger exists on PostgreSQL only")
    from sqlalchemy.exc import DBAPIError

    _append(2)
    for statement in ("UPDATE audit_entry SET action = 'x.y' WHERE seq = 1", "DELETE FROM audit_entry WHERE seq = 2"):
        with pytest.raises(DBAPIError, match="append-only"):
            with db.engine.begin() as connection:
                connection.execute(text(statement))
    assert verify_chain().ok
