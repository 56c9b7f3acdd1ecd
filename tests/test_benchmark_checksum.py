"""Smoke test of the checksum benchmark: the quick mode runs end to end and its numbers hang together.

No timing is asserted: the numbers come from ``python -m benchmarks.checksum --full`` (docs/benchmarks.md).
"""

from __future__ import annotations

import json

from benchmarks import checksum


def test_quick_run_writes_both_stores_reads_them_alike_and_reports_every_workload(tmp_path, capsys):
    result = checksum.main(["--quick", "--out", str(tmp_path / "out"), "--workdir", str(tmp_path)])
    cfg = checksum.Config.quick()
    for workload, passes in (("first", cfg.rounds), ("later", cfg.epochs)):
        for fmt in ("v1", "current"):
            assert result["reads"][workload][fmt]["n"] == passes
            assert result["reads"][workload][fmt]["best"] > 0
    stored = result["stored_bytes"]
    assert stored["current"] - stored["format1"] == 4 * result["verify"]["1 core, in process"]["chunks"]  # a crc32c each
    scaled = result["verify"][f"2 workers, warm, {cfg.verify_scale}x store"]
    assert scaled["chunks"] > result["verify"]["2 workers, warm"]["chunks"] and scaled["bytes"] > 0
    assert result["verify"]["2 workers, end to end (starting them)"]["chunks"] == result["verify"]["2 workers, warm"][
        "chunks"]
    assert result["targets"][0]["met"] == "report"
    written = json.loads((tmp_path / "out" / "checksum.json").read_text())
    assert written["ratios"] == result["ratios"]
    assert "| later epochs, one process" in (tmp_path / "out" / "checksum.md").read_text()
    assert "Checksum cost" in capsys.readouterr().out
