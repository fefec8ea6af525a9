"""Gunicorn settings for `flask --app server serve` (production).

Threads, not processes, carry most of the concurrency: uploads spend their
time waiting on sockets and disks. The app is loaded once in the master and
shared by the workers (copy-on-write); everything loaded then is frozen out
of the cyclic garbage collector, which otherwise walks it on every collection.
"""
from __future__ import annotations

import gc

from server.config import load_settings

_settings = load_settings()
bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
worker_class = "gthread"
threads = _settings.threads
preload_app = True
# gthread workers heartbeat from their main loop, so a long upload in a thread is not killed;
# this bounds only a stuck worker.
timeout = 120
# One instance per machine is not a rule of ours: no control socket in the home directory.
control_socket_disable = True
graceful_timeout = 30
keepalive = 15
accesslog = "-"
errorlog = "-"
# Never log request bodies or headers (tokens); the default access log line has neither.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(D)sus'


def when_ready(server: object) -> None:
    gc.freeze()
