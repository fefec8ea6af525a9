"""Jobs are enqueued when their transaction commits, run with the app's context, and retried."""
from __future__ import annotations

import os
import socket
import uuid

import pytest

from server.extensions import db
from server.jobs.queue import build_queue, current_queue, enqueue_after_commit
from server.tasks.models import InspectionTask
from tests.conftest import World


def test_a_job_runs_only_after_its_transaction_commits(app, world: World) -> None:
    seen: list[str] = []
    queue = current_queue(app)
    queue.register("remember-title",
                   lambda task_id: seen.append(db.session.get(InspectionTask, uuid.UUID(task_id)).title))

    enqueue_after_commit("remember-title", task_id=str(world.task.id))
    db.session.rollback()
    assert queue.run_pending() == 0

    world.task.title = "已改名"
    enqueue_after_commit("remember-title", task_id=str(world.task.id))
    assert queue.run_pending() == 0  # not committed yet
    db.session.commit()
    assert queue.run_pending() == 1
    assert seen == ["已改名"]


def test_a_failing_job_is_retried_with_backoff(app) -> None:
    attempts: list[int] = []
    queue = current_queue(app)

    def flaky() -> None:
        attempts.append(1)
        if len(attempts) < 2:
            raise RuntimeError("storage not ready")

    queue.register("flaky", flaky, retries=3, retry_delay=0)
    queue.enqueue("flaky")
    for _ in range(5):
        queue.run_pending()
    assert len(attempts) == 2


def test_the_worker_command_runs_queued_jobs(app, runner) -> None:
    ran: list[bool] = []
    current_queue(app).register("note", lambda: ran.append(True))
    current_queue(app).enqueue("note")
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0 and "ran 1 job" in result.output
    assert ran == [True]


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def test_with_redis_url_the_queue_runs_on_redis(app) -> None:
    if not _redis_up():
        if os.environ.get("CI"):
            pytest.fail("Redis is not answering on 127.0.0.1:6379 (package redis-server); .ci/run should start it")
        pytest.skip("no Redis on this machine")
    from dataclasses import replace

    from huey import RedisHuey

    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = replace(settings, redis_url="redis://127.0.0.1:6379/15")
    try:
        queue = build_queue(app)
        assert isinstance(queue.huey, RedisHuey)
        queue.huey.flush()
        ran: list[int] = []
        queue.register("add", lambda n: ran.append(n))
        queue.enqueue("add", n=7)
        assert queue.run_pending() == 1 and ran == [7]
        queue.huey.flush()
    finally:
        app.config["SETTINGS"] = settings
