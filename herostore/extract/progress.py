"""The extraction's progress display: videos done, videos/s, ETA and failures, on stderr."""

from __future__ import annotations

import math
import sys
import time

__all__ = ["Progress"]


class Progress:
    """tqdm when installed, else one refreshed line on stderr (at most once a second); nothing when disabled."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.done, self.failed = total, enabled and total > 0, 0, 0
        self.start = self.last = time.perf_counter()
        self.bar = None
        if self.enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="video", desc="extract", file=sys.stderr, dynamic_ncols=True,
                                smoothing=0.1)
            except ImportError:
                pass

    def update(self, n: int = 1, *, failed: bool = False) -> None:
        """Count ``n`` more videos as finished (``failed`` ones too: they are done with)."""
        self.done += n
        self.failed += n if failed else 0
        if not self.enabled or n == 0:
            return
        if self.bar is not None:
            self.bar.update(n)
            if failed:
                self.bar.set_postfix(failed=self.failed)
            return
        now = time.perf_counter()
        if now - self.last >= 1.0 or self.done == self.total:
            self.last = now
            rate = self.done / (now - self.start) if now > self.start else 0.0
            eta = (self.total - self.done) / rate if rate > 0 else math.inf
            eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?"
            sys.stderr.write(f"\rextract {self.done}/{self.total} videos, {rate:.2f} videos/s, ETA {eta_text}, "
                             f"{self.failed} failed ")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\n")

