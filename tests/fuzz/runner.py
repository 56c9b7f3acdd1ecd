"""Running fuzzed files through herostore in worker subprocesses, and classifying what happened.

A campaign writes each case as ``<work>/<n>/features/v.npy`` beside a ``labels.json`` and hands its folder to
one of several long-lived workers (``python -m tests.fuzz.runner``) over a pipe. A worker runs the case under
``RLIMIT_AS`` and a per-case ``signal.alarm`` through ``npyfile.load_dict`` + ``check_features`` ("load"),
``validate.validate_dataset`` ("validate") and, for some cases, ``convert.import_npy`` with one in-process
worker and the lossless preset ("import"), and answers with one JSON line. A worker that dies by a signal or
does not answer in time is replaced and the case is recorded as a crash or a hang.

Outcomes per step: ``ok`` (loaded and passes the spec checks), ``error`` (a herostore error, one line, naming
the file), ``crash`` (killed by a signal), ``hang`` (over the time limit), ``oom`` (MemoryError), ``traceback``
(any other exception, or a herostore error that does not name the file or is not one bounded line) and
``wrong`` (it loaded but broke a promise: an array not laid over its own bytes, more bytes than the file,
unbounded notes, or an import whose store differs from what ``load_features`` returned).
"""

from __future__ import annotations

import json
import os
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BAD = ("crash", "hang", "traceback", "oom", "wrong")
MAX_MESSAGE = 2000  # characters of one error or note
MAX_NOTES = 20
LABELS = '[{"video_id": "v", "emotion": "neutral"}]'


class _Timeout(BaseException):
    """Raised by the per-case alarm; a BaseException so library code cannot swallow it."""


# -- inside a worker ------------------------------------------------------------------------------------------


def _classify(step: Any) -> tuple[str, str]:
    """Run ``step()`` and classify it; ``step`` returns ``(outcome, detail)`` when it completes."""
    from herostore.errors import HerostoreError

    try:
        return step()
    except _Timeout:
        return "hang", "per-case alarm"
    except MemoryError:
        return "oom", "MemoryError"
    except HerostoreError as exc:
        return _judge_message(str(exc))
    except Exception:  # noqa: BLE001 - this is what the fuzzer looks for
        return "traceback", traceback.format_exc(limit=-4)[-MAX_MESSAGE:]


def _judge_message(text: str, name: str = "v.npy") -> tuple[str, str]:
    if name not in text:
        return "traceback", f"error does not name the file: {text[:300]}"
    if "\n" in text or len(text) > MAX_MESSAGE:
        return "traceback", f"error is not one bounded line ({len(text)} characters): {text[:300]}"
    return "error", text[:300]


def _owns_its_bytes(array: Any) -> bool:
    if array.size and not (array.flags.c_contiguous or array.flags.f_contiguous):
        return False
    if any(s <= 0 for s, n in zip(array.strides, array.shape) if n > 1):
        return False
    base = array
    while isinstance(getattr(base, "base", None), type(array)):
        base = base.base
    owner = base.base
    if isinstance(owner, memoryview):
        owner = owner.obj
    return owner is None or (isinstance(owner, (bytes, bytearray)) and len(owner) == array.nbytes)


def _load(path: Path) -> tuple[str, str]:
    import numpy as np

    from herostore.npyfile import load_dict
    from herostore.safepickle import SLACK
    from herostore.schema import FLOAT_DTYPES, check_features

    raw = load_dict(path)
    total = 0
    for key, value in raw.items():
        if isinstance(value, np.ndarray):
            if value.dtype.kind == "O" or not _owns_its_bytes(value):
                return "wrong", f"key {key[:50]!r}: an array not laid over its own bytes"
            total += value.nbytes
        elif isinstance(value, str):
            total += len(value.encode("utf-8"))
        else:
            return "wrong", f"key {key[:50]!r} holds a {type(value).__name__}"
    if total > path.stat().st_size + SLACK:
        return "wrong", f"{total} bytes decoded from a {path.stat().st_size}-byte file"
    checked = check_features(raw, source=str(path))
    if any(a.dtype not in FLOAT_DTYPES or a.size == 0 for a in checked.arrays.values()):
        return "wrong", "an array the spec checks should have refused"
    if len(checked.deviations) > MAX_NOTES or any(len(d) > MAX_MESSAGE for d in checked.deviations):
        return "wrong", f"{len(checked.deviations)} notes, longest {max(map(len, checked.deviations))} characters"
    return "ok", ""


def _validate(root: Path) -> tuple[str, str]:
    from herostore.validate import validate_dataset

    report = validate_dataset(root)
    if report.ok:
        return "ok", ""
    for finding in report.errors:
        text = f"{finding.where}: {finding.message}"
        if "\n" in text or len(text) > MAX_MESSAGE:
            return "traceback", f"finding is not one bounded line: {text[:300]}"
    return _judge_message("\n".join(f"{f.where}: {f.message}" for f in report.errors).replace("\n", " | "))


def _import(root: Path) -> tuple[str, str]:
    import numpy as np

    from herostore.convert import import_npy
    from herostore.npyfile import load_features
    from herostore.store import FeatureStore

    path = root / "features" / "v.npy"
    out = root / "imported"
    report = import_npy(root, out, preset="lossless", workers=1, progress=False)
    if report.failed:
        detail = report.failed["v"]
        if not detail.startswith((str(path), "v: ")):
            return "traceback", detail[:MAX_MESSAGE]
        return _judge_message(detail.replace(str(path), "v.npy"), "v")
    expected = load_features(path)
    stored = FeatureStore(out / "features").read_video("v")
    if stored["transcript"] != expected.transcript or set(stored) - {"transcript"} != set(expected.arrays):
        return "wrong", "the store's keys or transcript differ from load_features"
    for key, array in expected.arrays.items():
        native = array.dtype.newbyteorder("=")
        if np.ascontiguousarray(array, native).tobytes() != np.ascontiguousarray(stored[key], native).tobytes():
            return "wrong", f"key {key!r}: the store differs from load_features"
    meta = (out / "features" / "v" / "zarr.json").stat().st_size
    if meta > 65536 + 6 * len(expected.transcript):
        return "wrong", f"the video's zarr.json is {meta} bytes"
    return "ok", ""


def _stuck() -> tuple[str, str]:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(3600)
    return "ok", ""


def _spin() -> tuple[str, str]:
    while True:
        pass


_SELF_TESTS = {  # steps that misbehave on purpose, to test the harness's classification
    "selftest-crash": lambda: os.kill(os.getpid(), signal.SIGSEGV),
    "selftest-spin": _spin,
    "selftest-stuck": _stuck,
    "selftest-raise": lambda: 1 / 0,
}


def run_case(root: Path, steps: list[str], timeout: float) -> dict[str, tuple[str, str]]:
    """Every step of one case, each under its own alarm."""
    actions = {"load": lambda: _load(root / "features" / "v.npy"), "validate": lambda: _validate(root),
               "import": lambda: _import(root), **_SELF_TESTS}
    results = {}
    for step in steps:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            results[step] = _classify(actions[step])
        except _Timeout:
            results[step] = ("hang", "per-case alarm")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return results


def worker_main(timeout: float, mem_bytes: int, log: str) -> None:
    """Read case folders from stdin, answer one JSON line each on stdout."""
    import faulthandler
    import resource

    answer = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the library prints goes to the log, not into the answers
    faulthandler.enable(open(log, "a"))  # noqa: SIM115 - lives as long as the worker
    import herostore.convert
    import herostore.validate  # imported before the memory limit

    del herostore
    resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))

    def alarm(signum: int, frame: Any) -> None:
        raise _Timeout

    signal.signal(signal.SIGALRM, alarm)
    for line in sys.stdin:
        case = json.loads(line)
        results = run_case(Path(case["root"]), case["steps"], timeout)
        answer.write(json.dumps({"id": case["id"], "results": results}) + "\n")


# -- the campaign ---------------------------------------------------------------------------------------------


@dataclass
class Campaign:
    """The outcome counts of a campaign and the cases that went badly."""

    counts: dict[str, Counter] = field(default_factory=dict)
    bad: list[dict[str, Any]] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)  # load errors by message shape: what the fuzzer reaches
    cases: int = 0
    seconds: float = 0.0

    def add(self, case: dict[str, Any], results: dict[str, tuple[str, str]]) -> None:
        self.cases += 1
        for step, (outcome, detail) in results.items():
            self.counts.setdefault(step, Counter())[outcome] += 1
            if step == "load" and outcome == "error":
                self.errors[re.sub(r"\d+|'[^']*'", "#", detail.split("v.npy: ", 1)[-1])[:90]] += 1
            if outcome in BAD:
                self.bad.append({"id": case["id"], "what": case["what"], "step": step, "outcome": outcome,
                                 "detail": detail})

    def summary(self) -> str:
        lines = [f"{self.cases} cases in {self.seconds:.1f} s ({self.cases / max(self.seconds, 1e-9):.1f}/s)"]
        for step, counts in self.counts.items():
            shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            lines.append(f"  {step:<9} {sum(counts.values()):>6} runs: {shown}")
        lines += [f"  BAD {b['outcome']} in {b['step']}: case {b['id']} ({b['what']}): {b['detail'][:300]}"
                  for b in self.bad[:30]]
        return "\n".join(lines)


class _Worker:
    def __init__(self, timeout: float, mem_bytes: int, log: Path):
        self.timeout, self.mem_bytes, self.log = timeout, mem_bytes, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "MALLOC_ARENA_MAX": "2", "PYTHONPATH": _pythonpath()}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.runner", str(self.timeout), str(self.mem_bytes), str(self.log)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.log, "ab"),  # noqa: SIM115
            cwd=_repo_root(), env=env, text=True, bufsize=1,
        )

    def run(self, case: dict[str, Any], budget: float) -> dict[str, tuple[str, str]]:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        proc = self.proc
        proc.stdin.write(json.dumps(case) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], budget)
        line = proc.stdout.readline() if ready else ""
        if line:
            return {k: tuple(v) for k, v in json.loads(line)["results"].items()}
        if ready:  # end of file: the worker is dying; let it finish so its exit status is known
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:  # no answer in time: stuck where the alarm cannot reach
            proc.kill()
            proc.wait()
            outcome = ("hang", f"no answer in {budget:.0f} s")
        else:
            code = proc.returncode
            name = signal.Signals(-code).name if code < 0 else f"exit {code}"
            outcome = ("oom" if code == -signal.SIGKILL else "crash", name)
        self.proc = None
        return {step: outcome for step in case["steps"]}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _repo_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def _pythonpath() -> str:
    return os.pathsep.join(p for p in (_repo_root(), os.environ.get("PYTHONPATH", "")) if p)


def run_campaign(
    cases: int,
    *,
    seed: int = 0,
    workers: int = 2,
    work: str | os.PathLike,
    timeout: float = 10.0,
    mem_gib: float = 2.0,
    import_share: float = 0.1,
    keep: str | os.PathLike | None = None,
) -> Campaign:
    """Fuzz ``cases`` files made from the legitimate seeds; ``keep`` gets a copy of every bad case."""
    import random

    from .mutate import Mutator
    from .seeds import legit_files

    seeds = {name: data for name, data in legit_files().items() if len(data) < 200_000}
    mutator = Mutator(seeds, seed)
    choose = random.Random(seed + 1)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    todo: queue.Queue = queue.Queue(maxsize=4 * workers)
    campaign, lock = Campaign(), threading.Lock()

    def serve(index: int) -> None:
        worker = _Worker(timeout, int(mem_gib * (1 << 30)), work / f"worker{index}.log")
        try:
            while (case := todo.get()) is not None:
                results = worker.run(case, timeout * len(case["steps"]) + 10)
                with lock:
                    campaign.add(case, results)
                    if keep is not None and any(o in BAD for o, _ in results.values()):
                        Path(keep).mkdir(parents=True, exist_ok=True)
                        shutil.copy(Path(case["root"]) / "features" / "v.npy", Path(keep) / f"case{case['id']}.npy")
                shutil.rmtree(case["root"], ignore_errors=True)
        finally:
            worker.stop()

    start = time.perf_counter()
    threads = [threading.Thread(target=serve, args=(i,), daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    for n in range(cases):
        data, what = mutator.case()
        root = work / f"case{n}"
        (root / "features").mkdir(parents=True, exist_ok=True)
        (root / "features" / "v.npy").write_bytes(data)
        (root / "labels.json").write_text(LABELS)
        steps = ["load", "validate"] + (["import"] if choose.random() < import_share else [])
        todo.put({"id": n, "root": str(root), "steps": steps, "what": what})
    for _ in threads:
        todo.put(None)
    for t in threads:
        t.join()
    campaign.seconds = time.perf_counter() - start
    return campaign


if __name__ == "__main__":
    worker_main(float(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
