"""Running fuzzed cases through herostore in worker subprocesses, and classifying what happened.

A campaign hands each case (a folder under its work directory and the steps to run on it) to one of several
long-lived workers (``python -m tests.fuzz.runner``) over a pipe. A worker runs each step under ``RLIMIT_AS`` and
its own ``signal.alarm`` and answers one JSON line per step, then one line ending the case. A worker that dies by
a signal or does not answer in time is replaced: the step it was running is recorded as a crash or a hang, and the
case's remaining steps go to the new worker.

What a case is and what its steps do depends on its kind: ``npy_steps`` (a fuzzed spec `.npy` file) or
``store_steps`` (a mutated store). Every step's outcome is one of:

- ``ok``: it completed and what it returned is right (for a store: bit-exact the data read before the mutation);
- ``error``: a herostore error, one bounded line naming the file (for a store: the store, and the video read);
- ``undetectable`` (stores only): different data without an error, where zarr-python, reading the mutated store
  through its per-array metadata, returns exactly the same data, and only what the store's format does not protect
  was mutated: every mutation of the case is of a kind in ``store_mutate.UNPROTECTED``, or the item is a
  transcript or notes and a mutation changed the video's text. The store is a different valid store, not a
  damaged one. Counted and reported, never mixed with ``ok``;
- the bad outcomes ``BAD``: ``crash`` (killed by a signal), ``hang`` (over the time limit), ``oom``
  (MemoryError), ``traceback`` (any other exception, or an error message that does not name the file or is not one
  bounded line) and ``wrong`` (different data without an error, or a broken promise).

The ``reference`` step (zarr-python's read of a store) is a comparison oracle: its outcomes are counted, never
judged.
"""

from __future__ import annotations

import importlib
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BAD = ("crash", "hang", "traceback", "oom", "wrong")
UNDETECTABLE = "undetectable"
UNJUDGED = ("reference",)  # steps whose outcomes are counted, never judged
MAX_MESSAGE = 2000  # characters of one error or note
KINDS = {"npy": "tests.fuzz.npy_steps", "store": "tests.fuzz.store_steps"}

# compatibility with tests written for the .npy campaign
LABELS = '[{"video_id": "v", "emotion": "neutral"}]'


class _Timeout(BaseException):
    """Raised by the per-step alarm; a BaseException so library code cannot swallow it."""


# -- inside a worker ------------------------------------------------------------------------------------------


def judge_message(text: str, names: Iterable[str]) -> tuple[str, str]:
    """A herostore error is an ``error`` when it is one bounded line naming one of ``names``."""
    names = tuple(names)
    if not any(name in text for name in names):
        return "traceback", f"error names none of {[n[-60:] for n in names]}: {text[:300]}"
    if "\n" in text or len(text) > MAX_MESSAGE:
        return "traceback", f"error is not one bounded line ({len(text)} characters): {text[:300]}"
    return "error", text[:300]


def classify(step: Callable[[], tuple], names: Iterable[str]) -> list[Any]:
    """Run ``step()`` and classify it: ``[outcome, detail, evidence]``."""
    from herostore.errors import HerostoreError

    try:
        result = tuple(step())
    except _Timeout:
        return ["hang", "per-step alarm", {}]
    except MemoryError:
        return ["oom", "MemoryError", {}]
    except HerostoreError as exc:
        return [*judge_message(str(exc), names), {}]
    except Exception:  # noqa: BLE001 - this is what the fuzzer looks for
        return ["traceback", traceback.format_exc(limit=-4)[-MAX_MESSAGE:], {}]
    return [*result, {}][:3]


def _stuck() -> tuple[str, str]:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(3600)
    return "ok", ""


def _spin() -> tuple[str, str]:
    while True:
        pass


_SELF_TESTS = {  # steps that misbehave on purpose, to test the harness's classification
    "selftest-crash": lambda context: os.kill(os.getpid(), signal.SIGSEGV),
    "selftest-spin": lambda context: _spin(),
    "selftest-stuck": lambda context: _stuck(),
    "selftest-raise": lambda context: 1 / 0,
}


def run_step(kind: Any, context: Any, step: str, timeout: float) -> list[Any]:
    """One step of a case under its own alarm."""
    action = kind.STEPS.get(step) or _SELF_TESTS[step]
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return classify(lambda: action(context), kind.names(context))
    except _Timeout:
        return ["hang", "per-step alarm", {}]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def worker_main(timeout: float, mem_bytes: int, log: str, kinds: list[str]) -> None:
    """Read cases from stdin; answer one JSON line per step and one ending each case on stdout."""
    import faulthandler
    import resource

    answer = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the library prints goes to the log, not into the answers
    faulthandler.enable(open(log, "a"))  # noqa: SIM115 - lives as long as the worker
    modules = {kind: importlib.import_module(KINDS[kind]) for kind in kinds}
    for module in modules.values():
        module.prepare()  # imports happen before the memory limit
    resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))

    def alarm(signum: int, frame: Any) -> None:
        raise _Timeout

    signal.signal(signal.SIGALRM, alarm)
    for line in sys.stdin:
        case = json.loads(line)
        kind = modules[case["kind"]]
        context = kind.start(case)
        for step in case["steps"]:
            result = run_step(kind, context, step, timeout)
            answer.write(json.dumps({"step": step, "result": result}) + "\n")
        answer.write(json.dumps({"done": case["id"]}) + "\n")


# -- the campaign ---------------------------------------------------------------------------------------------


@dataclass
class Campaign:
    """The outcome counts of a campaign and the cases that went badly."""

    counts: dict[str, Counter] = field(default_factory=dict)
    bad: list[dict[str, Any]] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)  # errors of the first step by message shape: what is reached
    undetectable: Counter = field(default_factory=Counter)  # cases with an undetectable outcome, by mutation kinds
    examples: dict[str, list[str]] = field(default_factory=dict)  # a few of those cases per kinds
    drawn: Counter = field(default_factory=Counter)  # cases drawn for the reference: (zarr-python, herostore read)
    remade: list[str] = field(default_factory=list)  # mutations that could not be made: their cases were made again
    by_kind: dict[str, Counter] = field(default_factory=dict)  # the first step's outcomes by mutation kind in the case
    cases: int = 0
    seconds: float = 0.0

    def add(self, case: dict[str, Any], results: dict[str, list[Any]]) -> None:
        self.cases += 1
        first = case["steps"][0]
        for step, (outcome, detail, *_) in results.items():
            self.counts.setdefault(step, Counter())[outcome] += 1
            if step == first and outcome == "error":
                self.errors[_shape(detail, case)] += 1
            if outcome in BAD and step not in UNJUDGED:
                self.bad.append({"id": case["id"], "what": case["what"], "step": step, "outcome": outcome,
                                 "detail": detail})
        for kind in sorted(set(case.get("kinds", []))):
            key = f"format {case.get('format')}: {kind}"
            self.by_kind.setdefault(key, Counter())[results.get(first, ["none"])[0]] += 1
        if case.get("reference") and "reference" in results and "read" in results:
            drawn = f"zarr-python {results['reference'][0]}, herostore {results['read'][0]}"
            self.drawn[drawn] += 1
            shown = self.examples.setdefault(f"reference drawn: {drawn}", [])
            if len(shown) < 5:
                shown.append(f"case {case['id']} ({case['what']})")
        if any(r[0] == UNDETECTABLE for r in results.values()):
            kinds = f"format {case.get('format')}: {'+'.join(sorted(set(case.get('kinds', []))))}"
            self.undetectable[kinds] += 1
            shown = self.examples.setdefault(kinds, [])
            if len(shown) < 5:
                steps = ", ".join(s for s, r in results.items() if r[0] == UNDETECTABLE)
                shown.append(f"case {case['id']} ({case['what']}): {steps}")

    def summary(self) -> str:
        lines = [f"{self.cases} cases in {self.seconds:.1f} s ({self.cases / max(self.seconds, 1e-9):.1f}/s)"
                 + (f"; {len(self.remade)} made again (a mutation could not be made)" if self.remade else "")]
        for step, counts in self.counts.items():
            shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            note = " (reference, not judged)" if step in UNJUDGED else ""
            lines.append(f"  {step:<10} {sum(counts.values()):>6} runs: {shown}{note}")
        if self.undetectable:
            lines.append(f"  cases with an undetectable outcome, by mutation kind ({sum(self.undetectable.values())}):")
            lines += [f"    {count:>6}  {what}" for what, count in self.undetectable.most_common()]
        if self.by_kind:
            lines.append(f"  {case_step(self)} outcomes by a mutation kind the case holds:")
            lines += [f"    {what:<28} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
                      for what, c in sorted(self.by_kind.items())]
        if self.drawn:
            lines.append(f"  cases drawn for the reference read ({sum(self.drawn.values())}):")
            lines += [f"    {count:>6}  {what}" for what, count in self.drawn.most_common()]
        lines += [f"  BAD {b['outcome']} in {b['step']}: case {b['id']} ({b['what']}): {b['detail'][:300]}"
                  for b in self.bad[:30]]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"cases": self.cases, "seconds": round(self.seconds, 1),
                "counts": {k: dict(v) for k, v in self.counts.items()}, "bad": self.bad,
                "undetectable": dict(self.undetectable.most_common()), "examples": self.examples,
                "reference_drawn": dict(self.drawn.most_common()), "remade": self.remade,
                "first_step_by_kind": {k: dict(v) for k, v in sorted(self.by_kind.items())},
                "errors": dict(self.errors.most_common())}


def case_step(campaign: Campaign) -> str:
    """The first step of the campaign's cases (the one counted by kind)."""
    return next(iter(campaign.counts), "first step")


def _shape(detail: str, case: dict[str, Any]) -> str:
    """An error message with its paths, numbers and quoted parts blanked: which check was reached."""
    text = detail.replace(case["root"], "")
    return re.sub(r"\d+|'[^']*'", "#", text.split("v.npy: ", 1)[-1])[:110]


class _Lines:
    """Lines from a pipe, with a time limit per line (a buffered file object would hide lines from select)."""

    def __init__(self, fd: int):
        self.fd, self.buffer = fd, b""

    def read(self, budget: float) -> str | None:
        """The next line, or None at end of file or after ``budget`` seconds without one."""
        deadline = time.monotonic() + budget
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


class _Worker:
    def __init__(self, timeout: float, mem_bytes: int, log: Path, kinds: Iterable[str] = ("npy",)):
        self.timeout, self.mem_bytes, self.log, self.kinds = timeout, mem_bytes, log, ",".join(kinds)
        self.proc: subprocess.Popen | None = None
        self.lines: _Lines | None = None

    def start(self) -> None:
        env = {**os.environ, "MALLOC_ARENA_MAX": "2", "PYTHONPATH": _pythonpath()}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.runner", str(self.timeout), str(self.mem_bytes), str(self.log),
             self.kinds],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.log, "ab"),  # noqa: SIM115
            cwd=_repo_root(), env=env, bufsize=0,
        )
        self.lines = _Lines(self.proc.stdout.fileno())

    def run(self, case: dict[str, Any], budget: float) -> dict[str, list[Any]]:
        """Every step of ``case``; ``budget``: seconds to wait for one step's answer."""
        results: dict[str, list[Any]] = {}
        todo = list(case["steps"])
        while todo:
            if self.proc is None or self.proc.poll() is not None:
                self.start()
            self.proc.stdin.write((json.dumps({**case, "steps": todo}) + "\n").encode())
            self.proc.stdin.flush()
            while True:
                line = self.lines.read(budget)
                if line is None:
                    results[todo.pop(0)] = self._lost(budget)
                    break
                answer = json.loads(line)
                if "done" in answer:
                    todo = []
                    break
                results[answer["step"]] = answer["result"]
                todo.remove(answer["step"])
        return results

    def _lost(self, budget: float) -> list[Any]:
        """The worker died or stopped answering: how, as the outcome of the step it was running."""
        proc = self.proc
        if proc.poll() is None:
            try:
                proc.wait(5)  # end of file: the worker is dying; let it finish so its exit status is known
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self.proc = None
                return ["hang", f"no answer in {budget:.0f} s", {}]
        code = proc.returncode
        self.proc = None
        name = signal.Signals(-code).name if code < 0 else f"exit {code}"
        return ["oom" if code == -signal.SIGKILL else "crash", name, {}]

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


FollowUp = Callable[[dict[str, Any], dict[str, list[Any]], Callable[[list[str]], dict[str, list[Any]]]], None]


def drive(cases: Iterable[dict[str, Any]], *, kinds: Iterable[str], workers: int, work: Path, timeout: float,
          mem_gib: float, keep: str | os.PathLike | None, keep_case: Callable[[dict[str, Any], Path], None],
          follow_up: FollowUp | None = None) -> Campaign:
    """Run ``cases`` on ``workers`` worker processes; ``follow_up(case, results, run)`` may run more steps."""
    kinds = tuple(kinds)
    todo: queue.Queue = queue.Queue(maxsize=4 * workers)
    campaign, lock = Campaign(), threading.Lock()
    budget = timeout + 10

    def serve(index: int) -> None:
        worker = _Worker(timeout, int(mem_gib * (1 << 30)), work / f"worker{index}.log", kinds)
        try:
            while (case := todo.get()) is not None:
                results = worker.run(case, budget)
                if follow_up is not None:
                    follow_up(case, results, lambda steps: worker.run({**case, "steps": steps}, budget))
                with lock:
                    campaign.add(case, results)
                    if keep is not None and any(r[0] in BAD and s not in UNJUDGED for s, r in results.items()):
                        Path(keep).mkdir(parents=True, exist_ok=True)
                        keep_case(case, Path(keep))
                shutil.rmtree(case["root"], ignore_errors=True)
        finally:
            worker.stop()

    start = time.perf_counter()
    threads = [threading.Thread(target=serve, args=(i,), daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    for case in cases:
        todo.put(case)
    for _ in threads:
        todo.put(None)
    for t in threads:
        t.join()
    campaign.seconds = time.perf_counter() - start
    return campaign


def run_campaign(cases: int, *, seed: int = 0, workers: int = 2, work: str | os.PathLike, timeout: float = 10.0,
                 mem_gib: float = 2.0, import_share: float = 0.1, keep: str | os.PathLike | None = None) -> Campaign:
    """Fuzz ``cases`` `.npy` files made from the legitimate seeds; ``keep`` gets a copy of every bad case."""
    from . import npy_steps

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    return drive(npy_steps.cases(cases, seed=seed, work=work, import_share=import_share), kinds=("npy",),
                 workers=workers, work=work, timeout=timeout, mem_gib=mem_gib, keep=keep,
                 keep_case=npy_steps.keep_case)


STORE_STEPS = ["read", "validate", "info", "dataset", "verify"]


def finalize_store(case: dict[str, Any], results: dict[str, list[Any]],
                   run: Callable[[list[str]], dict[str, list[Any]]]) -> None:
    """Run the reference read where a step returned different data (and on the cases drawn for it), then give
    ``undetectable`` to each such step whose every differing item zarr-python reads the same and that only
    mutations the format cannot protect could have changed: any item when every mutation of the case is of a kind
    the case's format does not protect (``store_mutate.UNPROTECTED``); a transcript or notes also when a mutation
    changed the video's text."""
    from .store_mutate import UNPROTECTED

    if not case["reference"] and not any(r[0] == "wrong" for r in results.values()):
        return
    results.update(run(["reference"]))
    reference = results["reference"]
    if reference[0] in BAD and not reference[2]:
        return
    kinds = set(case["kinds"])
    unprotected = kinds <= UNPROTECTED[case["format"]]
    text = any("text" in kind.split("+") for kind in kinds)

    def excused(key: str, digest: str) -> bool:
        is_text = key.endswith(("|transcript", "|notes"))
        return reference[2].get(key) == digest and (unprotected or (text and is_text))

    for step, (outcome, detail, found) in list(results.items()):
        if step not in UNJUDGED and outcome == "wrong" and found and all(excused(k, v) for k, v in found.items()):
            results[step] = [UNDETECTABLE, detail, found]


def run_store_campaign(cases: int, *, seed: int = 0, workers: int = 2, work: str | os.PathLike,
                       timeout: float = 10.0, mem_gib: float = 3.0, reference_share: float = 0.1,
                       steps: list[str] | None = None, keep: str | os.PathLike | None = None) -> Campaign:
    """Fuzz ``cases`` mutated copies of the seed stores; ``keep`` gets a copy of every bad case."""
    from . import store_mutate, store_steps
    from .store_seeds import build_seeds

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    seeds = build_seeds(work / "seeds")
    remade: list[str] = []
    generated = store_mutate.cases(cases, seed=seed, work=work, seeds=seeds, steps=steps or STORE_STEPS,
                                   reference_share=reference_share, failures=remade)
    campaign = drive(generated, kinds=("store",), workers=workers, work=work, timeout=timeout, mem_gib=mem_gib,
                     keep=keep, keep_case=store_steps.keep_case, follow_up=finalize_store)
    campaign.remade = remade
    return campaign


if __name__ == "__main__":
    worker_main(float(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4].split(","))
