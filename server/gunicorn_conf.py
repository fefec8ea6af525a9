"""Gunicorn settings for `flask --app server serve` (production).

Threads, not processes, carry most of the concurrency: uploads spend their
time waiting on sockets and disks. The app is loaded once in the master and
shared by the workers (copy-on-write); everything loaded then is frozen out
of the cyclic garbage collector, which otherwise walks it on every collection.
"""
from __future__ import annotations

import ctypes
import ctypes.util
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


# Each thread that allocates the 1 MiB upload buffers can get a glibc heap ("arena") of its own, and
# each keeps freed pages: with 8 threads a worker's memory creeps up with the uploads it has seen.
# Two arenas keep it flat without slowing uploads (a fixed mmap threshold would, by a third).
_M_ARENA_MAX = -8


def post_fork(server: object, worker: object) -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):  # not glibc: its own allocator decides
        pass
