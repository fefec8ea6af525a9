"""Background jobs behind one small interface.

The default needs no extra service: Huey on a SQLite file under the var
directory. With ``REDIS_URL`` set, Huey on Redis, for several servers and
workers. Jobs are enqueued only when the transaction that asked for them
commits, so a worker never looks for a row that is not there yet, and a
rolled-back request leaves no job behind.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from flask import Flask
from huey import RedisHuey, SqliteHuey
from huey.api import Huey
from sqlalchemy import event
from sqlalchemy.orm import Session

from server.extensions import db

log = logging.getLogger(__name__)

JobFunction = Callable[..., None]


class JobQueue(Protocol):
    def register(self, name: str, function: JobFunction, *, retries: int, retry_delay: int) -> None: ...
    def periodic(self, name: str, *, every_minutes: int) -> None: ...
    def on_start(self, name: str) -> None: ...
    def enqueue(self, name: str, **kwargs: Any) -> None: ...
    def run_worker(self, workers: int) -> None: ...
    def run_pending(self) -> int: ...


@dataclass
class HueyQueue:
    """Huey with the app's context around every job."""

    huey: Huey
    app: Flask

    def __post_init__(self) -> None:
        self._tasks: dict[str, Any] = {}
        self._at_start: list[str] = []

    def register(self, name: str, function: JobFunction, *, retries: int = 5, retry_delay: int = 10) -> None:
        app = self.app

        def run(**kwargs: Any) -> None:
            with app.app_context():
                try:
                    function(**kwargs)
                    db.session.commit()
                except BaseException:
                    db.session.rollback()
                    raise
                finally:
                    db.session.remove()

        run.__name__ = name
        # retry_backoff doubles the delay on each retry: 10 s, 20 s, 40 s ...
        self._tasks[name] = self.huey.task(retries=retries, retry_delay=retry_delay, retry_backoff=2, name=name)(run)

    def periodic(self, name: str, *, every_minutes: int) -> None:
        """Run the registered job ``name`` every few minutes while a worker runs."""
        from huey import crontab

        task = self._tasks[name]

        def tick() -> None:
            task()

        tick.__name__ = f"{name}-every-{every_minutes}m"
        self.huey.periodic_task(crontab(minute=f"*/{every_minutes}"), name=tick.__name__)(tick)

    def enqueue(self, name: str, **kwargs: Any) -> None:
        self._tasks[name](**kwargs)

    def on_start(self, name: str) -> None:
        """Queue the registered job ``name`` whenever a worker starts (e.g. to pick up a dead worker's runs)."""
        self._at_start.append(name)

    def run_worker(self, workers: int) -> None:
        for name in self._at_start:
            self.enqueue(name)
        self.huey.create_consumer(workers=workers, worker_type="thread", periodic=True).run()

    def run_pending(self) -> int:
        """Run what is queued now, in this thread (tests, and `worker --once`)."""
        count = 0
        while True:
            task = self.huey.dequeue()
            if task is None:
                return count
            self.huey.execute(task)
            count += 1


def build_queue(app: Flask) -> HueyQueue:
    settings = app.config["SETTINGS"]
    if settings.redis_url:
        huey: Huey = RedisHuey("inspect-once", url=settings.redis_url)
    else:
        path = Path(settings.var_dir) / "jobs.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey("inspect-once", filename=str(path))
    return HueyQueue(huey, app)


def current_queue(app: Flask) -> JobQueue:
    return app.extensions["inspect_once.queue"]  # type: ignore[no-any-return]


def enqueue_after_commit(name: str, **kwargs: Any) -> None:
    """Ask for a job once the current transaction commits."""
    db.session.info.setdefault("jobs_after_commit", []).append((name, kwargs))


@event.listens_for(Session, "after_commit")
def _enqueue_committed(session: Session) -> None:
    jobs = session.info.pop("jobs_after_commit", None)
    if not jobs:
        return
    from flask import current_app

    queue = current_queue(current_app)
    for name, kwargs in jobs:
        try:
            queue.enqueue(name, **kwargs)
        except Exception:
            log.exception("could not enqueue %s; the sweeper will retry", name)


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back(session: Session) -> None:
    session.info.pop("jobs_after_commit", None)
