import json
import subprocess
import sys

import numpy as np

from herostore.cli import main


def test_import_validate_export_info(npy_dataset, tmp_path, capsys):
    assert main(["import-npy", str(npy_dataset), str(tmp_path / "z"), "--preset", "lossless", "--workers", "1",
                 "--quiet"]) == 0
    assert "4 videos written" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "z")]) == 0
    assert "OK, no deviation" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "z"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main(["export-npy", str(tmp_path / "z"), str(tmp_path / "n"), "--workers", "1", "--quiet"]) == 0
    capsys.readouterr()
    original = np.load(npy_dataset / "features" / "video_002.npy", allow_pickle=True).item()
    again = np.load(tmp_path / "n" / "features" / "video_002.npy", allow_pickle=True).item()
    assert np.array_equal(original["video_mae"], again["video_mae"])
    assert main(["info", str(tmp_path / "z"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["videos"] == 4
    assert main(["stats", str(tmp_path / "z" / "features"), "--workers", "1", "--quiet"]) == 0
    assert "stats recorded" in capsys.readouterr().out


def test_user_mistakes_get_one_line_and_nonzero_exit(tmp_path, capsys):
    assert main(["import-npy", str(tmp_path / "missing"), str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"herostore import-npy: error: {tmp_path / 'missing'}: no such dataset root" in err
    assert main(["info", str(tmp_path)]) == 2
    assert "not a herostore store" in capsys.readouterr().err
    assert main(["import-npy", str(tmp_path), str(tmp_path / "z"), "--preset", "fp8"]) == 2
    assert "unknown preset 'fp8'" in capsys.readouterr().err


def test_failures_give_exit_1_and_a_summary(npy_dataset, tmp_path, capsys):
    (npy_dataset / "features" / "bad.npy").write_bytes(b"nope")
    assert main(["import-npy", str(npy_dataset), str(tmp_path / "z"), "--workers", "1", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "1 failed" in out and "bad: " in out
    assert main(["validate", str(npy_dataset)]) == 1
    assert "bad.npy" in capsys.readouterr().out


def test_module_entry_point_and_help():
    result = subprocess.run([sys.executable, "-m", "herostore", "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    for command in ("import-npy", "export-npy", "validate", "info", "stats", "labels", "demo"):
        assert command in result.stdout


def test_demo_runs_the_whole_pipeline(tmp_path):
    """The README's main job, as a newcomer runs it."""
    done = subprocess.run([sys.executable, "-m", "herostore", "demo", "--workdir", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "extract done: 6 written, 0 skipped (already complete), 0 failed" in out
    assert "RANDOM-WEIGHT test models" in out
    assert out.count("OK, no deviation from the spec") == 2
    assert "identical batches from every format" in out and "demo finished" in out
    store = tmp_path / "demo" / "dataset" / "features"
    assert json.loads((store / "silent_video" / "zarr.json").read_text())["attributes"]["herostore"]["audio"] == "missing"
    exported = np.load(tmp_path / "demo" / "npy" / "features" / "speech_a.npy", allow_pickle=True).item()
    assert exported["video_mae"].shape == (1568, 1024) and exported["clip"].shape == (257, 1408)
    assert exported["hubert"].shape[1] == 1024 and exported["bert"].shape[1] == 768
    assert isinstance(exported["transcript"], str)
