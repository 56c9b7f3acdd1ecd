"""The one progress display of bulk work: videos done of the total, videos/s, ETA and failures so far, on stderr.

The clock starts when the workers are ready, so the rate is the run's own; on a cluster, counts move when a
task's results arrive (a few seconds of work each), not per video.
"""

from __future__ import annotations

import math
import sys
import time

__all__ = ["Progress"]


class Progress:
    """tqdm when installed, else one refreshed line on stderr (at most once a second); nothing when disabled."""

    def __init__(self, total: int, enabled: bool, desc: str = "videos", *, where: str = ""):
        self.total, self.enabled, self.desc, self.where = total, enabled and total > 0, desc, where
        self.done = self.failed = 0
        self.start = self.last = time.perf_counter()
        self.bar = None
        if self.enabled:
            try:
                from tqdm import tqdm

                # smoothing=0: the rate and ETA are the whole run's average, not the last few tasks' (which jump
                # when results arrive a task at a time)
                self.bar = tqdm(total=total, unit="video", desc=desc, file=sys.stderr, dynamic_ncols=True,
                                smoothing=0)
                self._postfix()
            except ImportError:
                pass

    def update(self, n: int = 1, *, failed: int | bool = 0) -> None:
        """Count ``n`` more videos as finished, ``failed`` of them failed (``True``: all ``n``)."""
        failed = n if failed is True else int(failed)
        self.done += n
        self.failed += failed
        if not self.enabled or n == 0:
            return
        if self.bar is not None:
            self.bar.update(n)
            if failed:
                self._postfix()
            return
        now = time.perf_counter()
        if now - self.last >= 1.0 or self.done == self.total:
            self.last = now
            rate = self.done / (now - self.start) if now > self.start else 0.0
            eta = (self.total - self.done) / rate if rate > 0 else math.inf
            eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?"
            sys.stderr.write(f"\r{self.desc} {self.done}/{self.total} videos, {rate:.2f} videos/s, ETA {eta_text}, "
                             f"{self.failed} failed{self.where and ', ' + self.where} ")
            sys.stderr.flush()

    def set_where(self, where: str) -> None:
        """What runs the work, e.g. ``2 workers`` (shown after the counts)."""
        if where != self.where:
            self.where = where
            if self.bar is not None:
                self._postfix()

    def _postfix(self) -> None:
        self.bar.set_postfix_str(f"{self.failed} failed{self.where and ', ' + self.where}", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\n")
