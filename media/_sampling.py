"""The sampling budget shared by the detectors: a rate limit and a cap on frames."""
from __future__ import annotations

import math


class SampleClock:
    """Decides which frames a detector looks at.

    At most one frame per ``interval`` seconds and at most ``max_samples`` frames; when the length
    is known up front the interval is stretched so the budget covers the whole file evenly, instead
    of spending it all on the first minutes.
    """

    def __init__(self, interval: float, max_samples: int, duration: float | None) -> None:
        if interval <= 0 or max_samples <= 0:
            raise ValueError("interval and max_samples must be positive")
        if duration and math.isfinite(duration):
            interval = max(interval, duration / max_samples)
        self.interval = interval
        self.max_samples = max_samples
        self.samples = 0
        self._next = 0.0

    def due(self, time_s: float) -> bool:
        """Whether the frame at ``time_s`` is to be sampled (then counts it)."""
        if self.samples >= self.max_samples or time_s + 1e-6 < self._next:
            return False
        self.samples += 1
        # Anchor on the schedule, not on the frame, so the rate does not drift with frame timing.
        self._next = max(self._next + self.interval, time_s + self.interval / 2)
        return True

    @property
    def exhausted(self) -> bool:
        """True when the budget is spent."""
        return self.samples >= self.max_samples
