"""Throttling of failed credential checks, on the ``limits`` library.

Only failures count, per account and per client address, so an inspector who
types the right password is never slowed down by someone guessing elsewhere.
Storage is in memory by default and Redis (``redis://``) when several server
processes must share the counts.
"""
from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from server.errors import Problem


class FailureThrottle:
    def __init__(self, storage_uri: str, per_account: str, per_address: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._per_account = parse(per_account)
        self._per_address = parse(per_address)

    def _keys(self, scope: str, account: str, address: str) -> list[tuple[object, tuple[str, ...]]]:
        return [
            (self._per_account, (scope, "account", account.casefold())),
            (self._per_address, (scope, "address", address)),
        ]

    def check(self, scope: str, account: str, address: str) -> None:
        """Refuse with 429 while either failure budget is spent."""
        for item, ids in self._keys(scope, account, address):
            if not self._limiter.test(item, *ids):  # type: ignore[arg-type]
                stats = self._limiter.get_window_stats(item, *ids)  # type: ignore[arg-type]
                retry = max(1, math.ceil(stats.reset_time - time.time()))
                raise Problem(429, "too-many-failures", f"失败次数过多，请 {retry} 秒后再试",
                              headers={"Retry-After": str(retry)})

    def record_failure(self, scope: str, account: str, address: str) -> None:
        for item, ids in self._keys(scope, account, address):
            self._limiter.hit(item, *ids)  # type: ignore[arg-type]
