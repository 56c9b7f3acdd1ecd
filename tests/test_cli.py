import json
import subprocess
import sys

import numpy as np
import pytest

from herostore.cli import main
from herostore.presets import PRESETS


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


def _command_paths(parser, prefix=()):
    """Every command and subcommand of a parser, e.g. ("import-npy",), ("labels", "mer")."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _command_paths(sub, prefix + (name,))


def test_every_commands_help_prints_cleanly(capsys):
    from herostore.cli import build_parser

    commands = list(_command_paths(build_parser()))
    assert ("import-npy",) in commands and ("labels", "mer") in commands
    for command in commands:
        with pytest.raises(SystemExit) as done:
            main([*command, "--help"])
        assert done.value.code == 0, command
        out = capsys.readouterr().out
        assert out.startswith("usage: herostore " + " ".join(command)), command
        assert "option_strings" not in out and "%%" not in out, (command, out)
        if "--preset" in out:  # descriptions are printed as written, '%' included
            assert " ".join(PRESETS["float16-lz4"].description.split()[:4]) in " ".join(out.split()), command


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


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"herostore {command}: error: "), err
    return err


def test_paths_in_the_way_are_one_line_errors(npy_dataset, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    assert main(["import-npy", str(npy_dataset), str(afile), "--workers", "1", "--quiet"]) == 2
    err = _one_line_error(capsys, "import-npy")
    assert f"{afile}: cannot create the destination dataset root: {afile} is a file, not a folder" in err
    assert main(["import-npy", str(npy_dataset), str(tmp_path / "z"), "--workers", "1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export-npy", str(tmp_path / "z"), str(afile), "--workers", "1", "--quiet"]) == 2
    err = _one_line_error(capsys, "export-npy")
    assert f"{afile / 'features'}: cannot create the export's features folder: {afile} is a file" in err
    labels = tmp_path / "l.csv"
    labels.write_text("video_id,emotion\nv1,happy\n")
    assert main(["labels", "csv", str(labels), "--out", str(afile)]) == 2
    assert f"error: {afile}: exists and is not a folder" in _one_line_error(capsys, "labels")
    assert main(["labels", "csv", str(labels), "--out", str(afile / "sub")]) == 2
    assert (f"error: {afile / 'sub'}: cannot create the dataset root: {afile} is a file, not a folder"
            in _one_line_error(capsys, "labels"))
    assert afile.read_text() == "not a folder"


def test_any_os_error_is_a_one_line_error_naming_the_path(npy_dataset, tmp_path, capsys, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "z" / "labels.json"))

    monkeypatch.setattr("herostore.convert.copy_label_files", denied)
    assert main(["import-npy", str(npy_dataset), str(tmp_path / "z"), "--workers", "1", "--quiet"]) == 2
    err = _one_line_error(capsys, "import-npy")
    assert err == f"herostore import-npy: error: {tmp_path / 'z' / 'labels.json'}: Permission denied\n"


def test_stray_folders_in_a_store_are_not_videos(npy_dataset, tmp_path, capsys):
    assert main(["import-npy", str(npy_dataset), str(tmp_path / "z"), "--preset", "lossless", "--workers", "1",
                 "--quiet"]) == 0
    (tmp_path / "z" / "features" / "stray").mkdir()
    capsys.readouterr()
    assert main(["info", str(tmp_path / "z")]) == 0
    assert "videos  4" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "z")]) == 1
    out = capsys.readouterr().out
    assert "1 problem(s)" in out
    assert "stray: a folder in the store without zarr.json, so not a video group" in out
    assert main(["export-npy", str(tmp_path / "z"), str(tmp_path / "n"), "--workers", "1", "--quiet"]) == 0
    assert "4 videos written, 0 skipped (already complete), 0 failed" in capsys.readouterr().out
    assert not (tmp_path / "n" / "features" / "stray.npy").exists()


def test_export_reports_a_video_with_edited_metadata_and_goes_on(npy_dataset, tmp_path, capsys):
    assert main(["import-npy", str(npy_dataset), str(tmp_path / "z"), "--workers", "1", "--quiet"]) == 0
    meta_path = tmp_path / "z" / "features" / "video_001" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    del meta["attributes"]["herostore"]
    meta_path.write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["export-npy", str(tmp_path / "z"), str(tmp_path / "n"), "--workers", "1", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "3 videos written, 0 skipped (already complete), 1 failed" in out
    assert "  video_001: " in out and "video 'video_001': zarr.json has no 'herostore' attribute" in out


def test_info_text_shows_ratio_and_length_statistics(npy_dataset, tmp_path, capsys):
    assert main(["import-npy", str(npy_dataset), str(tmp_path / "z"), "--preset", "lossless", "--workers", "1",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "z")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert main(["info", str(tmp_path / "z"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "videos  4" in lines
    size = next(line for line in lines if line.startswith("size "))
    assert size.endswith(f"(ratio {info['ratio_vs_float32']:.3f})")
    assert 0.5 < info["ratio_vs_float32"] < 1.2  # lossless blosc on random data: about the float32 size
    header = next(line for line in lines if line.startswith("modality"))
    assert header.split()[-2:] == ["length", "min/median/mean/max"] and "ratio" in header
    rows = {line.split()[0]: line.split() for line in lines[lines.index(header) + 1:] if line.strip()}
    # make_npy_dataset: video_mae 16+i, hubert 40+3i, bert 7+i rows for i < 4; au on videos 1 and 3
    assert rows["video_mae"][-1] == "16/17.5/17.5/19"
    assert rows["hubert"][-1] == "40/44.5/44.5/49"
    assert rows["bert"][-1] == "7/8.5/8.5/10"
    assert rows["au"][1] == "2" and rows["au"][-1] == "17/18/18/19"
    for key, row in rows.items():
        assert row[-2] == f"{info['modalities'][key]['ratio_vs_float32']:.3f}"
