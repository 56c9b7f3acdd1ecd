"""Feature files written by strangers: hostile ones are refused with one named line, legitimate ones load exactly."""

from __future__ import annotations

import io
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from herostore import SpecError, UnsafePickleError, safepickle
from herostore.npyfile import load_dict, load_features, read_dict
from herostore.schema import check_features
from tests.fuzz.crafted import Reduce, _reconstruct, npy_bytes, spec_dict
from tests.fuzz.runner import LABELS, _Worker
from tests.fuzz.seeds import legit_files

CRAFTED = Path(__file__).parent / "data" / "crafted"
AMPLIFIED = (r"decodes to 20\d{6} bytes of arrays and text from a 122081-byte file; "
             r"a feature file may not decode to more than its size plus 4096 bytes")
NDARRAY_CALL = r"the stream calls numpy\.ndarray directly; arrays may only be rebuilt through numpy's _reconstruct"

# every file in tests/data/crafted: the error class and the message after "<path>: "
EXPECTED = {
    "exec_as_the_file.npy": (UnsafePickleError, r"refusing to unpickle global 'builtins\.exec'"),
    "exec_in_value.npy": (UnsafePickleError, r"refusing to unpickle global 'builtins\.exec'"),
    "os_system_transcript.npy": (UnsafePickleError, r"refusing to unpickle global 'posix\.system'"),
    "subprocess_inside_array.npy": (UnsafePickleError, r"refusing to unpickle global 'subprocess\.call'"),
    "object_array_over_bytes.npy": (UnsafePickleError, NDARRAY_CALL),
    "object_array_in_dict.npy": (UnsafePickleError, NDARRAY_CALL),
    "object_frombuffer.npy": (UnsafePickleError, r"an object array \(_frombuffer of dtype object\)"),
    "deep_nested_key.npy": (SpecError, r"values nest deeper than 32 levels \(byte \d+\)"),
    "shared_reference_bomb.npy": (SpecError, r"a value expands to more than 131072 objects through shared references"),
    "stride_zero_array.npy": (UnsafePickleError, NDARRAY_CALL),
    "huge_key_by_memo.npy": (SpecError, r"a key of type tuple, expected str keys"),
    "long_key_name.npy": (SpecError, r"key 'k{40}'\.\.\. \(20000 characters\) is longer than 256 characters"),
    "uninitialised_array.npy": (UnsafePickleError, NDARRAY_CALL),
    "reconstruct_without_state.npy": (UnsafePickleError, r"_reconstruct with arguments numpy never writes"),
    "shared_buffer_between_keys.npy": (UnsafePickleError, r"two arrays built over the same bytes"),
    "shared_array_amplified.npy": (SpecError, AMPLIFIED),
    "float128_array.npy": (SpecError, r"key 'hubert' has dtype float128, expected \[T, 1024\] float32"),
    "empty_last_dim.npy": (SpecError, r"key 'bert' has an empty dimension \[3, 0\], expected \[T, 768\] float32"),
}


def test_every_crafted_file_is_listed():
    assert sorted(p.name for p in CRAFTED.glob("*.npy")) == sorted(EXPECTED)


def test_every_crafted_file_is_refused_in_a_limited_worker(tmp_path):
    """Under a time and memory limit, in a subprocess: load, validate and import each refuse with a named line."""
    worker = _Worker(timeout=20, mem_bytes=2 << 30, log=tmp_path / "worker.log")
    try:
        for name, (_, message) in EXPECTED.items():
            root = tmp_path / name
            (root / "features").mkdir(parents=True)
            shutil.copy(CRAFTED / name, root / "features" / "v.npy")
            (root / "labels.json").write_text(LABELS)
            results = worker.run({"id": name, "kind": "npy", "root": str(root), "steps": ["load", "validate", "import"],
                                  "what": name}, budget=60)
            assert {step: outcome for step, (outcome, *_) in results.items()} == dict.fromkeys(results, "error"), (
                name, results)
            assert re.search(message, results["load"][1]), (name, results["load"][1])
    finally:
        worker.stop()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_crafted_file_error_names_the_file_and_the_limit(name):
    error, message = EXPECTED[name]
    path = CRAFTED / name
    with pytest.raises(error, match=f"^{re.escape(str(path))}: {message}") as info:
        load_features(path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400 + len(str(path))


# -- legitimate files -----------------------------------------------------------------------------------------

LEGIT = legit_files()


@pytest.mark.parametrize("name", sorted(LEGIT))
def test_legitimate_files_load_exactly_as_numpy_does(name, tmp_path):
    """np.save of a dict; protocols 2-5; numpy 1.x module names; float16/64, big-endian, 3-D, Fortran order."""
    path = tmp_path / name
    path.write_bytes(LEGIT[name])
    ours, theirs = load_dict(path), np.load(path, allow_pickle=True).item()
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        if isinstance(value, np.ndarray):
            assert ours[key].dtype == value.dtype and ours[key].shape == value.shape
            assert ours[key].strides == value.strides and ours[key].tobytes("A") == value.tobytes("A")
        else:
            assert ours[key] == value and isinstance(ours[key], str)
    check_features(ours, source=name)


def test_load_dict_stays_as_fast_as_a_plain_unpickle(tmp_path):
    """The opcode scan skips payloads: a 6 MB file costs about what pickle.load costs (generous bound for CI)."""
    import time

    path = tmp_path / "big.npy"
    path.write_bytes(LEGIT["big.npy"])

    def best(fn) -> float:
        times = []
        for _ in range(15):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    ours = best(lambda: load_dict(path))
    theirs = best(lambda: np.load(path, allow_pickle=True))
    assert ours < 2 * theirs + 0.005, (ours, theirs)


# -- rules, one test each -------------------------------------------------------------------------------------


def _write(tmp_path: Path, stream: bytes, name: str = "v.npy") -> Path:
    path = tmp_path / name
    path.write_bytes(npy_bytes(stream))
    return path


def _saved(tmp_path: Path, d: dict, name: str = "v.npy") -> Path:
    path = tmp_path / name
    np.save(path, d, allow_pickle=True)
    return path


@pytest.mark.parametrize("dtype", [np.longdouble, np.complex64, np.int32, np.bool_, np.uint8])
def test_non_float_arrays_are_one_line_errors_naming_file_key_and_expected(tmp_path, dtype):
    path = _saved(tmp_path, spec_dict(bert=np.ones((2, 768), dtype)))
    expected = f"^{re.escape(str(path))}: key 'bert' has dtype {np.dtype(dtype)}, expected \\[T, 768\\] float32"
    with pytest.raises(SpecError, match=expected):
        load_features(path)


@pytest.mark.parametrize("shape", [(3, 0), (1, 3, 0), (2, 0, 1408)])
def test_empty_dimensions_are_refused_by_the_schema(shape):
    with pytest.raises(SpecError, match=r"^f\.npy: key 'clip' has an empty dimension \[.*\], expected \[T, 1408\]"):
        check_features(spec_dict(clip=np.ones(shape, np.float32)), source="f.npy")


def test_an_array_reconstructed_but_never_given_bytes_is_refused(tmp_path):
    empty = Reduce(_reconstruct, (np.ndarray, (0,), b"b"))
    path = _write(tmp_path, pickle.dumps(spec_dict(bert=empty), protocol=2))
    with pytest.raises(UnsafePickleError, match=r"v\.npy: key 'bert' holds an array with no data"):
        load_dict(path)


@pytest.mark.parametrize("raw, found", [(b"\0" * 10, "the file gives 10"), (b"\0" * 4000, "the file gives 4000")],
                         ids=["short", "long"])
def test_an_array_state_must_carry_exactly_its_bytes(tmp_path, raw, found):
    array = Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (1, 768), np.dtype("f4"), False, raw))
    path = _write(tmp_path, pickle.dumps(spec_dict(bert=array), protocol=2))
    with pytest.raises(UnsafePickleError, match=f"v.npy: an array of shape \\[1, 768\\] float32 needs 3072 bytes, "
                                                f"{found}"):
        load_dict(path)


def test_one_array_under_two_keys_counts_twice(tmp_path):
    small = np.ones((1, 256), np.float32)
    assert load_dict(_saved(tmp_path, spec_dict(video_mae=small, au=small)))["au"] is not None
    big = np.ones((2000, 1024), np.float32)
    path = _saved(tmp_path, spec_dict(video_mae=big, au=big), "big.npy")
    with pytest.raises(SpecError, match=r"big\.npy: decodes to 163\d{5} bytes of arrays and text from a 82\d{5}-byte"):
        load_dict(path)


def test_many_extra_keys_become_one_bounded_note(tmp_path):
    extras = {f"extra_{i:02d}_" + "x" * 200: "" for i in range(40)}
    checked = load_features(_saved(tmp_path, spec_dict() | extras))
    assert len(checked.deviations) == 1 and len(checked.deviations[0]) < 1500
    assert re.search(r"40 keys are not in the spec \('extra_00_x+'\.\.\. \(209 characters\), ", checked.deviations[0])


def test_too_many_keys_are_refused(tmp_path):
    path = _saved(tmp_path, spec_dict() | {f"k{i}": "" for i in range(300)})
    with pytest.raises(SpecError, match=r"v\.npy: holds 305 keys, at most 256 are allowed"):
        load_dict(path)


@pytest.mark.parametrize("value, message", [
    (7, "key 'fps' must be a numpy array or str, found int"),
    ([1.0], "key 'fps' must be a numpy array or str, found list"),
    (np.float32(1), "a numpy scalar of dtype float32; only str scalars are allowed"),
    (np.array(["a", "b"]), r"a str array of shape \[2\]; only 0-d str arrays are allowed"),
])
def test_only_arrays_and_strings_are_values(tmp_path, value, message):
    with pytest.raises((SpecError, UnsafePickleError), match=f"v.npy: {message}"):
        load_dict(_saved(tmp_path, spec_dict(fps=value)))


def test_text_must_be_valid_unicode(tmp_path):
    with pytest.raises(SpecError, match=r"v\.npy: key 'transcript' holds text that is not valid Unicode"):
        load_dict(_saved(tmp_path, spec_dict(transcript="a\ud800b")))
    bad = Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (), np.dtype("U1"), False, b"\xff\xff\xff\xff"))
    with pytest.raises(UnsafePickleError, match=r"w\.npy: a 0-d str array that is not valid Unicode"):
        load_dict(_write(tmp_path, pickle.dumps(spec_dict(transcript=bad), protocol=2), "w.npy"))


def test_opcodes_numpy_never_writes_are_refused(tmp_path):
    path = _write(tmp_path, pickle.dumps({"transcript": "x"}, protocol=0))
    with pytest.raises(UnsafePickleError, match=r"v\.npy: pickle opcode b'\(' is not allowed in a feature file|"
                                                r"v\.npy: pickle opcode b'd' is not allowed"):
        load_dict(path)


def test_a_corrupt_header_is_one_line_naming_the_error(tmp_path):
    data = bytearray(LEGIT["np_save.npy"])
    data[8] = 1  # the header length now ends inside the header dict
    (tmp_path / "v.npy").write_bytes(bytes(data))
    with pytest.raises(SpecError, match=r"v\.npy: not a \.npy file \(TokenError: \('EOF in multi-line statement'") as info:
        load_dict(tmp_path / "v.npy")
    assert "\n" not in str(info.value)


def test_a_memo_index_far_ahead_is_refused_before_unpickling(tmp_path):
    stream = b"\x80\x02}r\xff\xff\xff\x7f."  # LONG_BINPUT 2**31-1: the C unpickler would allocate a huge memo
    with pytest.raises(SpecError, match=r"v\.npy: corrupt pickled dict: memo index 2147483647 out of sequence"):
        load_dict(_write(tmp_path, stream))


def test_a_stream_that_is_not_seekable_is_read(tmp_path):
    data = LEGIT["protocol4.npy"]

    class Pipe(io.RawIOBase):
        def __init__(self):
            self.inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            return self.inner.readinto(b)

    d = read_dict(io.BufferedReader(Pipe()), "pipe")
    assert d["transcript"] == np.load(io.BytesIO(data), allow_pickle=True).item()["transcript"]


def test_a_file_changed_while_read_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "v.npy"
    path.write_bytes(LEGIT["np_save.npy"])
    stamps = iter([(1, 2, 3, 4), (1, 2, 3, 5)])
    monkeypatch.setattr(safepickle, "_fingerprint", lambda f: next(stamps))
    with pytest.raises(SpecError, match=r"v\.npy: the file changed while it was being read"):
        load_dict(path)
