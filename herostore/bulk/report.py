"""What bulk work reports: one ``Outcome`` per video, the ``TaskResult`` of one task, the ``JobReport`` of a run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import HerostoreError

__all__ = ["COMPLETED_DURING_RUN", "Collector", "JobReport", "Outcome", "TaskResult", "guarded"]

# The detail of a video that a task found complete although it was not when the run started: an earlier attempt
# of the same task (on a worker that was lost after writing it) or another writer completed it. It counts as
# written by this run, never as skipped, so a run's counts do not depend on which workers were lost.
COMPLETED_DURING_RUN = "completed during this run (by an earlier attempt of its task, or another writer)"


@dataclass(slots=True)
class Outcome:
    """What happened to one video."""

    video_id: str
    status: str  # "written", "skipped", "done" or "failed"
    detail: str = ""
    notes: list[str] = field(default_factory=list)
    value: Any = None


@dataclass
class TaskResult:
    """What one task returns: an outcome for each of its videos, and facts about the task as a whole
    (``extra``: e.g. seconds per extraction stage) that the run's collector merges."""

    outcomes: list[Outcome]
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # the task's time on its worker
    worker: str = ""  # the worker's name; "" when run in this process


class Collector(Protocol):
    """Where a run's results go, as they come: ``add`` once per video, ``add_extra`` once per task."""

    def add(self, outcome: Outcome) -> None: ...

    def add_extra(self, extra: dict[str, Any], worker: str) -> None: ...


def guarded(func: Callable[..., Outcome], video_id: str, *args: Any) -> Outcome:
    """Run ``func`` for one video; any ``Exception`` becomes that video's failed outcome.

    One bad video (an unexpected ``KeyError`` from edited metadata, a ``TypeError`` from odd data) must not stop
    a run over a million; ``KeyboardInterrupt`` and ``SystemExit`` are not ``Exception`` and still propagate.
    Herostore's own errors already name the file and key; others are prefixed with their type.
    """
    try:
        return func(video_id, *args)
    except HerostoreError as exc:
        return Outcome(video_id, "failed", str(exc))
    except Exception as exc:  # noqa: BLE001 - see the docstring
        return Outcome(video_id, "failed", f"{type(exc).__name__}: {exc}")


@dataclass
class JobReport:
    """The outcomes of a run over many videos, in the order they finished."""

    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1  # worker processes the run used (1: this process)
    workers_lost: int = 0  # workers that left the cluster during the run (their tasks ran again elsewhere)
    interrupted: bool = False

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def add_extra(self, extra: dict[str, Any], worker: str) -> None:
        """Tasks of ``map_videos`` carry nothing beyond their outcomes."""

    def ids(self, status: str) -> list[str]:
        return [o.video_id for o in self.outcomes if o.status == status]

    @property
    def written(self) -> list[str]:
        return self.ids("written")

    @property
    def skipped(self) -> list[str]:
        return self.ids("skipped")

    @property
    def failed(self) -> dict[str, str]:
        return {o.video_id: o.detail for o in self.outcomes if o.status == "failed"}

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    def summary(self, what: str = "videos") -> str:
        rate = len(self.outcomes) / self.seconds if self.seconds > 0 else 0.0
        done = len(self.ids("done"))
        lines = [
            (
                f"{len(self.written)} {what} written, {len(self.skipped)} skipped (already complete), "
                f"{f'{done} done, ' if done else ''}{len(self.failed)} failed in {self.seconds:.1f} s ({rate:.1f}/s)"
            )
        ]
        again = sum(1 for o in self.outcomes if o.detail == COMPLETED_DURING_RUN)
        if self.workers_lost:
            lines.append(f"{self.workers_lost} worker(s) left the cluster during the run; the tasks they held ran "
                         f"again on the others")
        if again:
            lines.append(f"{again} of the written {what} were {COMPLETED_DURING_RUN}")
        noted = [o for o in self.outcomes if o.notes]
        if noted:
            count = sum(len(o.notes) for o in noted)
            lines.append(f"{count} deviation(s) from the spec in {len(noted)} {what} (kept faithfully):")
            lines += [f"  {note}" for o in noted[:20] for note in o.notes]
            if len(noted) > 20:
                lines.append(f"  ... and {len(noted) - 20} more {what}")
        if self.failed:
            lines.append("failed:")
            lines += [f"  {vid}: {reason}" for vid, reason in sorted(self.failed.items())]
        if self.interrupted:
            lines.append("interrupted: finished videos are complete; run again to resume")
        return "\n".join(lines)
