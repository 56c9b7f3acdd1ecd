import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from herostore import SpecError, UnsafePickleError
from herostore.npyfile import list_video_ids, load_dict, load_features, save_features, spec_dict
from herostore.testing.features import sample_features


def test_written_files_load_with_plain_numpy(tmp_path):
    save_features(tmp_path / "a.npy", sample_features(0))
    save_features(tmp_path / "b.npy", sample_features(1, au=True))
    a = np.load(tmp_path / "a.npy", allow_pickle=True).item()
    b = np.load(tmp_path / "b.npy", allow_pickle=True).item()
    assert set(a) == {"video_mae", "clip", "hubert", "bert", "transcript"}
    assert set(b) == set(a) | {"au"}
    for key, dim in [("video_mae", 1024), ("clip", 1408), ("hubert", 1024), ("bert", 768)]:
        assert a[key].ndim == 2 and a[key].shape[1] == dim and a[key].dtype == np.float32
    assert type(a["transcript"]) is str
    assert list_video_ids(tmp_path) == ["a", "b"]


def test_safe_reader_equals_numpy(tmp_path):
    save_features(tmp_path / "a.npy", sample_features(3, au=True))
    ours, theirs = load_dict(tmp_path / "a.npy"), np.load(tmp_path / "a.npy", allow_pickle=True).item()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert np.array_equal(ours[key], theirs[key])


def test_protocol_2_pickles_are_read(tmp_path):
    features = sample_features(0)
    with open(tmp_path / "old.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(np.array(features, dtype=object), f, protocol=2)
    back = load_dict(tmp_path / "old.npy")
    assert np.array_equal(back["clip"], features["clip"]) and back["transcript"] == features["transcript"]


class _Exploit:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize(
    "func, name",
    [(os.system, "posix.system"), (eval, "builtins.eval"), (print, "builtins.print")],
)
def test_crafted_pickles_are_refused_and_never_run(tmp_path, func, name):
    marker = tmp_path / "pwned"
    payload = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w')"
    features = sample_features(0)
    features["video_mae"] = _Exploit(func, payload)
    np.save(tmp_path / "evil.npy", features, allow_pickle=True)
    with pytest.raises(UnsafePickleError, match=f"evil.npy: refusing to unpickle global '{name}'"):
        load_dict(tmp_path / "evil.npy")
    assert not marker.exists()


def test_refuses_a_global_hidden_inside_an_array(tmp_path):
    import subprocess

    inner = np.array([_Exploit(subprocess.call, "true")], dtype=object)
    np.save(tmp_path / "nested.npy", {"video_mae": inner, "transcript": ""}, allow_pickle=True)
    with pytest.raises(UnsafePickleError, match="subprocess.call"):
        load_dict(tmp_path / "nested.npy")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: np.save(p, np.zeros((3, 4), np.float32)), r"holds a float32 array of shape \[3, 4\], expected a pickled dict"),
        (lambda p: np.save(p, np.array([1, 2], dtype=object), allow_pickle=True), "expected a pickled dict"),
        (lambda p: np.save(p, np.array("text", dtype=object), allow_pickle=True), "holds a pickled str, expected a dict"),
        (lambda p: p.write_bytes(b"not numpy at all"), "not a .npy file"),
        (lambda p: p.write_bytes(b""), "not a .npy file"),
    ],
)
def test_bad_files_are_named(tmp_path, make, message):
    path = tmp_path / "bad.npy"
    make(path)
    with pytest.raises(SpecError, match=message) as info:
        load_dict(path)
    assert "bad.npy" in str(info.value)


def test_truncated_file_is_reported(tmp_path):
    save_features(tmp_path / "v.npy", sample_features(0))
    data = (tmp_path / "v.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(SpecError, match="cut.npy: corrupt pickled dict"):
        load_dict(tmp_path / "cut.npy")


def _wild(tmp_path, **changes):
    features = sample_features(0)
    features.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del features[key]
    np.save(tmp_path / "w.npy", features, allow_pickle=True)
    return tmp_path / "w.npy"


def test_wild_variants_are_normalised_or_kept_and_reported(tmp_path):
    rng = np.random.default_rng(0)
    path = _wild(
        tmp_path,
        video_mae=rng.standard_normal((1, 16, 768)).astype(np.float32),  # batch axis + VideoMAE-base
        clip=rng.standard_normal((4, 257, 1024)).astype(np.float32),  # reference extractor's CLIP-L
        hubert=rng.standard_normal((40, 1024)),  # float64
        bert=rng.standard_normal((7, 768)).astype(np.float16),
    )
    checked = load_features(path)
    assert checked.arrays["video_mae"].shape == (16, 768)
    assert checked.arrays["clip"].shape == (4, 257, 1024)
    assert checked.arrays["hubert"].dtype == np.float64
    assert checked.arrays["bert"].dtype == np.float16
    text = "\n".join(checked.deviations)
    assert "'video_mae' has a leading batch axis [1, 16, 768]; squeezed to 2-D" in text
    assert "'video_mae' has last dim 768, spec says 1024; kept as stored" in text
    assert "'clip' is 3-D [4, 257, 1024]" in text
    assert "'hubert' has dtype float64, spec says float32" in text
    assert "'bert' has dtype float16" in text
    with pytest.raises(SpecError, match="w.npy: key 'video_mae' has a leading batch axis.*strict mode"):
        load_features(path, strict=True)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"hubert": None}, "missing required key 'hubert'"),
        ({"transcript": None}, "missing required key 'transcript'"),
        ({"transcript": 5}, "'transcript' must be str, found int"),
        ({"bert": [[0.0] * 768]}, "'bert' must be a numpy array"),
        ({"bert": np.zeros(768, np.float32)}, r"'bert' has shape \[768\], expected \[T, 768\] float32"),
        ({"bert": np.zeros((0, 768), np.float32)}, "'bert' has no rows"),
        ({"bert": np.zeros((3, 768), np.int64)}, "'bert' has dtype int64"),
        ({"bert": np.zeros((3, 768), np.longdouble)}, r"w\.npy: key 'bert' has dtype float128, expected \[T, 768\] float32"),
        ({"bert": np.zeros((3, 768), np.complex64)}, r"key 'bert' has dtype complex64, expected \[T, 768\] float32"),
        ({"bert": np.zeros((3, 0), np.float32)}, r"w\.npy: key 'bert' has an empty dimension \[3, 0\], expected \[T, 768\]"),
    ],
)
def test_what_cannot_be_stored_is_an_error(tmp_path, changes, message):
    with pytest.raises(SpecError, match=message):
        load_features(_wild(tmp_path, **changes))


def test_extra_keys_are_reported(tmp_path):
    checked = load_features(_wild(tmp_path, speaker=np.zeros(3)))
    assert checked.extra_keys == ["speaker"]
    assert any("'speaker' is not in the spec" in d for d in checked.deviations)


def test_missing_file_error(tmp_path):
    from herostore import VideoNotFoundError

    with pytest.raises(VideoNotFoundError, match="nope.npy: no such feature file"):
        load_dict(tmp_path / "nope.npy")


def test_non_string_transcript_error_names_the_source(tmp_path):
    features = sample_features(0)
    features["transcript"] = 5
    path = tmp_path / "v.npy"
    with pytest.raises(SpecError, match=f"^{re.escape(str(path))}: key 'transcript' must be str, found int$"):
        save_features(path, features)
    with pytest.raises(SpecError, match=r"^store: video 'v': key 'transcript' must be str, found int$"):
        save_features(path, features, source="store: video 'v'")
    with pytest.raises(SpecError, match=r"^from x: key 'transcript' must be str, found NoneType$"):
        spec_dict({k: v for k, v in features.items() if k != "transcript"}, source="from x")
    assert not path.exists() and list(tmp_path.iterdir()) == []


CRAFTED = Path(__file__).parent / "data" / "crafted"


@pytest.mark.parametrize(
    "name, global_name",
    [
        ("exec_in_value.npy", "builtins.exec"),
        ("os_system_transcript.npy", "posix.system"),
        ("subprocess_inside_array.npy", "subprocess.call"),
        ("exec_as_the_file.npy", "builtins.exec"),
    ],
)
def test_kept_crafted_files_are_refused(name, global_name, monkeypatch):
    """Crafted files kept on disk: every later version must refuse them without running anything."""
    monkeypatch.delenv("HEROSTORE_CRAFTED_RAN", raising=False)
    with pytest.raises(UnsafePickleError, match=f"{name}: refusing to unpickle global '{global_name}'"):
        load_dict(CRAFTED / name)
    assert "HEROSTORE_CRAFTED_RAN" not in os.environ


def test_the_kept_crafted_files_do_run_code_under_plain_numpy():
    """What the files above guard against: plain np.load(allow_pickle=True) runs the payload."""
    code = ("import os, numpy as np; np.load(os.environ['CRAFTED'], allow_pickle=True); "
            "print(os.environ.get('HEROSTORE_CRAFTED_RAN'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "CRAFTED": str(CRAFTED / "exec_as_the_file.npy")})
    assert done.stdout.strip() == "1", done.stderr
