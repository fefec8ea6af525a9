"""Evidence verification in background workers: each stored file is checked by ``media.verify_file``."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from server import events
    from server.jobs.queue import current_queue
    from server.verification import jobs

    queue = current_queue(app)
    queue.register(jobs.VERIFY_MEDIA, jobs.verify_media_job, retries=5, retry_delay=30)
    queue.register(jobs.ASSESS_INSPECTION, jobs.assess_inspection_job, retries=3, retry_delay=30)
    queue.register(jobs.ASSESS_INSPECTIONS, jobs.assess_inspections_job, retries=3, retry_delay=30)
    queue.register(jobs.REASSESS_HOLDER, jobs.reassess_holder_job, retries=3, retry_delay=30)
    queue.register(jobs.SWEEP, jobs.sweep_job, retries=0, retry_delay=0)
    queue.periodic(jobs.SWEEP, every_minutes=5)
    queue.on_start(jobs.SWEEP)  # a restarted worker takes up at once what a killed one left
    events.subscribe(app, events.Event.MEDIA_STORED, jobs.on_media_stored)
    events.subscribe(app, events.Event.INSPECTIONS_CHANGED, jobs.on_inspections_changed)
    events.subscribe(app, events.Event.CERTIFICATE_CHANGED, jobs.on_certificate_changed)
