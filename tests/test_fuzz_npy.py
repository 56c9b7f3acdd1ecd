"""The fuzzer of spec `.npy` dicts (tests/fuzz): a short seeded campaign, and the harness's own classification."""

from __future__ import annotations

from tests.fuzz.runner import BAD, LABELS, _Worker, run_campaign


def test_a_seeded_campaign_has_no_crash_hang_oom_traceback_or_wrong_data(tmp_path):
    campaign = run_campaign(300, seed=11, workers=2, work=tmp_path / "work", timeout=10, import_share=0.15)
    assert campaign.cases == 300
    assert campaign.bad == [], campaign.summary()
    assert not any(campaign.counts[step][outcome] for step in campaign.counts for outcome in BAD)
    assert campaign.counts["load"]["ok"] > 0 and campaign.counts["load"]["error"] > 0
    assert campaign.counts["import"]["ok"] + campaign.counts["import"]["error"] > 0


def test_the_harness_tells_crashes_hangs_and_tracebacks_apart(tmp_path):
    root = tmp_path / "case"
    (root / "features").mkdir(parents=True)
    (root / "labels.json").write_text(LABELS)
    worker = _Worker(timeout=1, mem_bytes=2 << 30, log=tmp_path / "worker.log")
    try:
        def run(step: str) -> str:
            return worker.run({"id": 0, "kind": "npy", "root": str(root), "steps": [step], "what": step}, budget=8)[step][0]

        assert run("selftest-raise") == "traceback"
        assert run("selftest-spin") == "hang"  # the per-case alarm
        assert run("selftest-crash") == "crash"  # SIGSEGV; the next case gets a fresh worker
        assert run("selftest-stuck") == "hang"  # no answer in time: the worker is killed
        assert run("load") == "error"  # no v.npy: a herostore error naming it
    finally:
        worker.stop()
