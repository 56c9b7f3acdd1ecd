"""A real dask cluster for tests and benchmarks: a scheduler and workers started as separate processes.

``DaskProcesses`` runs ``dask scheduler`` and ``dask worker`` (``--nthreads 1``) on 127.0.0.1 with ports the
system picks, each in its own process group, with this herostore first on their ``PYTHONPATH``. A worker can be
killed with SIGKILL (its nanny too: a lost machine; or only the worker process, which its nanny restarts) and
started again. Also the small per-video functions the engine's tests send to workers (they must be importable
there, so they live here rather than in a test module).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import herostore

from ..bulk import Outcome, TaskResult

__all__ = ["DaskProcesses", "crash_on", "done_task", "no_op", "sleep_then"]

_REPO = str(Path(herostore.__file__).resolve().parent.parent)


class DaskProcesses:
    """A scheduler and named workers in separate processes; ``address`` is the scheduler's ``tcp://`` address."""

    def __init__(self, folder: str | os.PathLike, *, workers: int = 2, allowed_failures: int | None = 1,
                 resources: dict[str, str] | None = None, env: dict[str, str] | None = None,
                 nanny: bool = True, timeout: float = 120.0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.timeout, self.nanny = timeout, nanny
        self.env = dict(os.environ, **(env or {}))
        self.env["PYTHONPATH"] = os.pathsep.join([_REPO] + [p for p in self.env.get("PYTHONPATH", "").split(
            os.pathsep) if p and p != _REPO])
        if allowed_failures is not None:
            self.env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = str(allowed_failures)
        self.procs: dict[str, subprocess.Popen] = {}
        self.scheduler_file = self.folder / "scheduler.json"
        self.scheduler_file.unlink(missing_ok=True)
        self.address = ""
        try:
            self._spawn("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(self.scheduler_file)])
            self.address = self._wait_for_address()
            for i in range(workers):
                self.start_worker(f"w{i}", resources=(resources or {}).get(f"w{i}"))
            self.wait_for_workers(workers)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the process's life
        self.procs[name] = subprocess.Popen([_dask_command(), *args], env=env or self.env, stdout=log,
                                            stderr=subprocess.STDOUT, cwd=self.folder, start_new_session=True)
        log.close()

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
                return json.loads(self.scheduler_file.read_text())["address"]
            if self.procs["scheduler"].poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the dask scheduler did not start: {self.log('scheduler')}")

    def start_worker(self, name: str, *, resources: str | None = None, env: dict[str, str] | None = None) -> None:
        """Start worker ``name`` (e.g. ``resources="GPU=1"``, ``env={"CUDA_VISIBLE_DEVICES": "0"}``)."""
        args = ["worker", self.address, "--nthreads", "1", "--name", name, "--host", "127.0.0.1",
                "--no-dashboard", "--local-directory", str(self.folder / "workers"),
                "--nanny" if self.nanny else "--no-nanny"]
        if resources:
            args += ["--resources", resources]
        self._spawn(name, args, dict(self.env, **(env or {})))

    def client(self) -> Any:
        from distributed import Client

        return Client(self.address, timeout=f"{self.timeout}s")

    def wait_for_workers(self, count: int) -> None:
        with self.client() as client:
            client.wait_for_workers(count, timeout=self.timeout)

    def workers(self, client: Any = None) -> dict[str, dict[str, Any]]:
        """name -> {"address", "pid", "processing"}: the workers the scheduler knows now (``client``: one to
        ask through, else one is opened for the question)."""
        if client is None:
            with self.client() as opened:
                return self.workers(opened)
        info = client.scheduler_info(n_workers=-1)["workers"]
        pids = client.run(os.getpid)
        processing = client.processing()
        return {w["name"]: {"address": a, "pid": pids.get(a), "processing": len(processing.get(a, ()))}
                for a, w in info.items()}

    def kill_when(self, name: str, ready: Callable[[], bool], running: subprocess.Popen | Callable[[], bool], *,
                  poll: float = 0.05) -> bool:
        """SIGKILL worker ``name`` (and its nanny) once ``ready()`` holds and the worker is running a task, while
        the run goes on (``running``: its command, or a function saying whether it still runs); False if the run
        ended first."""
        still = running if callable(running) else lambda: running.poll() is None
        with self.client() as client:
            while still():
                if ready() and self.workers(client).get(name, {}).get("processing"):
                    self.kill(name)
                    return True
                time.sleep(poll)
        return False

    def kill(self, name: str) -> None:
        """SIGKILL worker ``name`` and its nanny at once: the machine is gone."""
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=self.timeout)

    def kill_worker_process(self, name: str) -> None:
        """SIGKILL only the worker process of ``name``; its nanny starts a new one."""
        os.kill(self.workers()[name]["pid"], signal.SIGKILL)

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in list(self.procs.items()):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            del self.procs[name]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _dask_command() -> str:
    """The ``dask`` command of this Python (beside its executable), else the one on ``PATH``."""
    beside = Path(sys.executable).with_name("dask")
    return str(beside) if beside.exists() else "dask"


# -- functions the tests run on workers --------------------------------------------------------------------------


def no_op(video_id: str, *args: Any) -> Outcome:
    """The dry run: nothing per video."""
    return Outcome(video_id, "done")


def crash_on(video_id: str, path: str, bad: frozenset[str] = frozenset(), how: str = "exit") -> Outcome:
    """Kill this process when ``video_id`` is in ``bad`` (``os._exit``, or a segfault with ``how="segv"``)."""
    if video_id in bad:
        if how == "segv":
            import ctypes

            ctypes.string_at(0)
        os._exit(3)
    return Outcome(video_id, "done", value=os.getpid())


def sleep_then(video_id: str, seconds: float = 0.05) -> Outcome:
    """Take ``seconds`` per video (a run long enough to lose a worker in)."""
    time.sleep(seconds)
    return Outcome(video_id, "done", value=os.getpid())


def done_task(items: list[tuple[str, ...]], tick: Callable[[Outcome], None] | None) -> TaskResult:
    """A bulk-engine task that does nothing to its items but say so."""
    return TaskResult([Outcome(item[0], "done") for item in items])
