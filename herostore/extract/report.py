"""What a run did: ids written, skipped and failed, time per stage, and the summary printed at the end."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, fields
from typing import Any

from .output import how_to_read

__all__ = ["STAGES", "ExtractionReport"]

STAGES = ("decode", "video_mae", "clip", "au", "hubert", "asr", "bert", "write")


@dataclass
class ExtractionReport:
    """What a run did: ids written, skipped (already complete) and failed (id -> reason)."""

    output: str
    format: str
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # seconds per stage
    elapsed: float = 0.0
    models: dict[str, str] = field(default_factory=dict)
    random_weight_models: bool = False
    interrupted: bool = False
    frames_clamped: list[str] = field(default_factory=list)  # ids whose sampled frames moved (see media.py)
    workers: int = 1  # worker processes that ran it (1: this process)
    workers_lost: int = 0  # workers that left the cluster during the run; their tasks ran again elsewhere
    completed_elsewhere: list[str] = field(default_factory=list)  # written ones an earlier attempt completed
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # "worker (device)" -> tasks, videos, busy_s

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    @property
    def videos_per_s(self) -> float:
        return len(self.written) / self.elapsed if self.elapsed > 0 else 0.0

    def merge(self, other: ExtractionReport) -> None:
        """Add a part of the run (one chunk of videos) to this report."""
        self.written += other.written
        self.skipped += other.skipped
        self.failed.update(other.failed)
        self.frames_clamped += other.frames_clamped
        for stage, seconds in other.timings.items():
            self.timings[stage] += seconds
        self.models = self.models or other.models
        self.random_weight_models |= other.random_weight_models
        self.completed_elsewhere += other.completed_elsewhere
        for where, entry in other.devices.items():
            mine = self.devices.setdefault(where, {k: 0 for k in entry})
            for key, value in entry.items():
                mine[key] = mine.get(key, 0) + value

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: every field, plus ``videos_per_s``."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["timings"] = dict(self.timings)
        data["videos_per_s"] = self.videos_per_s
        return data

    def summary(self) -> str:
        """Human-readable lines: counts, speed, where the time went, every failure, and how to read the output."""
        state = "interrupted" if self.interrupted else "done"
        head = (f"extract {state}: {len(self.written)} written, {len(self.skipped)} skipped (already complete), "
                f"{len(self.failed)} failed in {self.elapsed:.1f} s ({self.videos_per_s:.2f} videos/s) "
                f"-> {self.output} ({self.format})")
        lines = [head]
        busy = {k: v for k, v in self.timings.items() if v > 0}
        if busy:
            lines.append("time per stage (s, summed over workers): "
                         + ", ".join(f"{k} {busy[k]:.2f}" for k in STAGES if k in busy))
        if len(self.devices) > 1:
            lines.append("per worker: " + ", ".join(
                f"{where} {entry['videos']} videos in {entry['busy_s']:.1f} s" for where, entry in
                sorted(self.devices.items())))
        if self.workers_lost:
            lines.append(f"{self.workers_lost} worker(s) left the cluster during the run; the tasks they held ran "
                         f"again on the others")
        if self.completed_elsewhere:
            lines.append(f"{len(self.completed_elsewhere)} of the written videos were completed during this run by "
                         f"an earlier attempt of their task (whose worker was lost) or by another writer")
        if self.random_weight_models:
            lines.append("WARNING: random-weight test models were used; these features are meaningless")
        if self.frames_clamped:
            lines.append(f"{len(self.frames_clamped)} video(s) had undecodable frames near the end; their frames "
                         f"were sampled from the first 90% (frames_clamped): "
                         f"{', '.join(sorted(self.frames_clamped)[:10])}")
        if self.failed:
            lines.append(f"{len(self.failed)} failed:")
            lines += [f"  {vid}: {reason}" for vid, reason in sorted(self.failed.items())]
        if self.interrupted:
            lines.append("interrupted: finished videos are complete in the output; run again to resume")
        usage = how_to_read(self.output, self.format) if self.written or self.skipped else None
        if usage:
            lines.append(usage)
        return "\n".join(lines)
