"""The store fuzzer (tests/fuzz): a short seeded campaign, the judge's evidence rule, and what it found.

The regression tests at the end each reproduce one class of damage the campaign found handled badly before (a
traceback, a hang, or different data without an error), built by hand on a small store.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from conftest import make_features

from herostore.errors import CorruptStoreError, StoreError
from herostore.info import store_info
from herostore.layout import seal_video
from herostore.read import ZarrReader, open_reader
from herostore.read.engine import plan_array
from herostore.store import FeatureStore
from herostore.validate import validate_dataset
from herostore.verify import verify_store
from tests.fuzz import store_steps
from tests.fuzz.__main__ import scratch_parent
from tests.fuzz.runner import BAD, UNDETECTABLE, finalize_store, run_store_campaign
from tests.fuzz.store_mutate import UNPROTECTED
from tests.fuzz.store_seeds import build_seeds


@pytest.fixture
def work(tmp_path):
    """Case folders in memory where possible: a campaign makes and removes many small files."""
    parent = scratch_parent()
    if parent is None:
        yield tmp_path
        return
    folder = Path(parent) / f"herostore-test-fuzz-{os.getpid()}-{tmp_path.name}"
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_seeded_store_campaign_has_no_crash_hang_oom_traceback_or_wrong_data(work):
    campaign = run_store_campaign(300, seed=21, workers=2, work=work, timeout=10, reference_share=0.1)
    assert campaign.cases == 300
    assert campaign.bad == [], campaign.summary()
    for step in ("read", "validate", "info", "dataset", "verify"):
        assert campaign.counts[step]["error"] > 0 and campaign.counts[step]["ok"] > 0, campaign.summary()
    assert campaign.counts["read"][UNDETECTABLE] > 0, campaign.summary()  # moved chunks, edited transcripts
    for kinds in campaign.undetectable:  # "format 2: moved+text": the kinds of an undetectable case
        version, found = kinds.split(": ")
        assert set(found.split("+")) <= UNPROTECTED[int(version.split()[1])] or "text" in found, kinds


# -- the judge ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return {seed.name: seed for seed in build_seeds(tmp_path_factory.mktemp("seeds"))}


def _case(seeds, tmp_path, name: str, mutate) -> dict:
    seed = seeds[name]
    root = tmp_path / "case"
    shutil.copytree(seed.root, root)
    mutate(root / "features")
    return {"id": 0, "kind": "store", "root": str(root), "expected": str(seed.expected_path),
            "format": seed.format_version, "reference": False, "steps": ["read"]}


def _swap(a: Path, b: Path) -> None:
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


def test_format_3_refuses_chunks_swapped_within_an_array(seeds, tmp_path):
    """Every chunk keeps a valid checksum, but the sealed video document lists which checksum belongs where."""
    case = _case(seeds, tmp_path, "v3-float16-chunks",
                 lambda store: _swap(store / "v0" / "video_mae" / "c" / "0" / "0",
                                     store / "v0" / "video_mae" / "c" / "1" / "0"))
    outcome, detail, _ = store_steps.read(store_steps.start(case))
    assert outcome == "error" and "video_mae/c/0/0" in detail and "moved or copied from elsewhere" in detail, detail


def test_format_1_chunks_swapped_between_videos_read_differently_and_the_evidence_shows_why(seeds, tmp_path):
    """Format 1 has no sealed document: two same-shaped chunks of different videos swapped keep every checksum, and
    the rows are read from the wrong video. zarr-python reads the same, so with a ``moved`` mutation it is
    undetectable, never ok."""
    case = _case(seeds, tmp_path, "v1-lossless",
                 lambda store: _swap(store / "video_0" / "clip" / "c" / "0" / "0",
                                     store / "video_1" / "clip" / "c" / "0" / "0"))
    context = store_steps.start(case)
    outcome, detail, evidence = store_steps.read(context)
    assert outcome == "wrong" and "video_0|clip|all" in evidence, detail
    reference = list(store_steps.reference(context))
    assert all(reference[2][key] == value for key, value in evidence.items())

    def judged(kinds: list[str], reference: list) -> str:
        results = {"read": ["wrong", detail, evidence]}
        finalize_store({**case, "kinds": kinds}, results, lambda steps: {"reference": reference})
        return results["read"][0]

    assert judged(["moved"], reference) == UNDETECTABLE
    assert judged(["moved", "meta"], reference) == "wrong"  # not every mutation is one the format cannot see
    tampered = [reference[0], reference[1], {**reference[2], "video_0|clip|all": "0" * 16}]
    assert judged(["moved"], tampered) == "wrong"  # zarr-python disagrees: herostore made it up
    assert "wrong" in BAD and UNDETECTABLE not in BAD


def test_a_changed_transcript_is_excused_by_a_text_mutation_and_only_the_transcript():
    case = {"reference": False, "format": 2, "kinds": ["meta+text"]}
    evidence = {"v0|transcript": "t", "v0|notes": "n", "v0|bert|all": "b"}

    def judged(found: dict) -> str:
        results = {"read": ["wrong", "", found]}
        finalize_store(case, results, lambda steps: {"reference": ["wrong", "", evidence]})
        return results["read"][0]

    assert judged({"v0|transcript": "t", "v0|notes": "n"}) == UNDETECTABLE
    assert judged({"v0|transcript": "t", "v0|bert|all": "b"}) == "wrong"  # an array: a meta edit could do that
    assert judged({"v0|transcript": "other"}) == "wrong"


# -- what the campaign found -------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    """Two videos in small chunks: video_mae spans 3 chunks of 4 rows, the last padded by 2."""
    from dataclasses import replace

    from herostore.presets import get_preset

    store = FeatureStore.create(tmp_path / "features", replace(get_preset("raw"), chunk_rows=4))
    store.write_video("v0", make_features(0, lengths=(10, 3, 8, 5), au=True))
    store.write_video("v1", make_features(1, lengths=(9, 2, 4, 1)))
    (tmp_path / "labels.json").write_text(json.dumps([{"video_id": v, "emotion": "sad"} for v in ("v0", "v1")]))
    return store


def _edit(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _resealed(path: Path, change) -> None:
    """Edit a video document and seal it again, as an editor who knows the format would: what the seal cannot
    catch, the checks behind it must."""
    document = json.loads(path.read_text())
    change(document)
    info = document["attributes"]["herostore"]
    path.write_bytes(seal_video(document, path.parent.name, info["chunks"]))


def _consolidated(store: FeatureStore, vid: str, modality: str, change, *, reseal: bool = True) -> None:
    edit = _resealed if reseal else _edit
    edit(store.path / vid / "zarr.json", lambda d: change(d["consolidated_metadata"]["metadata"][modality]))


@pytest.mark.parametrize("edit, why", [
    (lambda m: m.update(shape=[11, 1024]), "a shape grown into the last chunk's padding read a row of zeros"),
    (lambda m: m["codecs"][0].update(configuration={"endian": "big"}), "a byte order read every value swapped"),
])
def test_consolidated_metadata_edited_alone_is_an_error_not_other_data(store, edit, why):
    before = open_reader(store.path).read("v0", ["video_mae"]).arrays["video_mae"]
    _consolidated(store, "v0", "video_mae", edit, reseal=False)
    with pytest.raises(CorruptStoreError, match=r"video 'v0': zarr.json does not match its digest"):
        ZarrReader(store.path).read("v0", ["video_mae"])
    assert not verify_store(store.path, workers=1, progress=False).ok
    with pytest.raises(CorruptStoreError, match="does not match its digest"):
        ZarrReader(store.path).read("v0", ["hubert"])  # the whole document is in doubt, not only the edited array
    assert ZarrReader(store.path).read("v1", ["hubert"]).arrays["hubert"].shape == (4, 1024)
    assert before.shape == (10, 1024), why


def test_format_1_shape_edited_in_the_consolidated_metadata_is_an_error(tmp_path):
    shutil.copytree(Path(__file__).parent / "data" / "golden" / "v1" / "raw", tmp_path / "raw")
    _edit(tmp_path / "raw" / "video_1" / "zarr.json",
          lambda d: d["consolidated_metadata"]["metadata"]["hubert"].update(shape=[1, 1024]))  # was 2 rows
    with pytest.raises(CorruptStoreError, match="hubert/zarr.json disagrees"):
        open_reader(tmp_path / "raw").read("video_1")


def test_an_extension_field_in_array_metadata_is_refused(store):
    """Found with a byte order edited in both copies: zarr-python refuses the extension field, herostore read on."""
    _edit(store.path / "v1" / "bert" / "zarr.json", lambda m: m.update(extra={"must_understand": True}))
    _consolidated(store, "v1", "bert", lambda m: m.update(extra={"must_understand": True}))
    with pytest.raises(CorruptStoreError, match=r"video 'v1', modality 'bert': array metadata fields \['extra'\] "
                                                "that herostore never writes"):
        ZarrReader(store.path).read("v1", ["bert"])


@pytest.mark.parametrize("edit, found", [
    (lambda m: m["chunk_grid"]["configuration"].update(chunk_shape=[4.5, 1024]), r"chunk shape \[4.5, 1024\] is not"),
    (lambda m: m.update(shape=[True, 1024]), r"shape \[True, 1024\] is not a list of integers"),
    (lambda m: m.update(fill_value=[0]), r"fill value '\[0\]'; herostore writes 0"),
])
def test_metadata_zarr_python_refuses_is_refused_in_both_copies(store, edit, found):
    """Found with swapped chunks riding along: int() read 4.5 as 4 and True as 1, and no fill value was checked."""
    _edit(store.path / "v0" / "video_mae" / "zarr.json", edit)
    _consolidated(store, "v0", "video_mae", edit)
    with pytest.raises(CorruptStoreError, match=rf"video 'v0', modality 'video_mae': .*{found}"):
        ZarrReader(store.path).read("v0", ["video_mae"])


def test_a_video_document_of_another_zarr_format_is_refused(store):
    """Found by the oracle: zarr-python (v3) finds no group there, herostore read it as before."""
    _resealed(store.path / "v1" / "zarr.json", lambda d: d.update(zarr_format=2))
    with pytest.raises(CorruptStoreError, match=r"video 'v1': zarr.json is not a Zarr v3 group document"):
        ZarrReader(store.path).read("v1")


def test_an_array_left_out_of_the_modalities_list_is_an_error_not_a_missing_array(store):
    _resealed(store.path / "v0" / "zarr.json", lambda d: d["attributes"]["herostore"]["modalities"].remove("au"))
    with pytest.raises(CorruptStoreError, match=r"video 'v0': zarr.json holds the metadata of 'au' but lists"):
        ZarrReader(store.path).read("v0")


def test_info_counts_as_unreadable_a_video_whose_arrays_the_reader_refuses(store):
    _consolidated(store, "v1", "bert", lambda m: m["chunk_grid"]["configuration"].update(chunk_shape=[5, 768]))
    info = store_info(store.path)
    assert info["unreadable"] == ["v1"]
    assert info["modalities"]["bert"]["videos"] == 1


def test_a_shape_too_large_for_an_integer_is_an_error(store):
    """JSON reads 1e400 as infinity, which no sealed document can hold: the seal fails, no traceback."""
    _consolidated(store, "v0", "video_mae", lambda m: m.update(shape=["BIG", 1024]), reseal=False)
    path = store.path / "v0" / "zarr.json"
    path.write_text(path.read_text().replace('"BIG"', "1e400"))  # JSON for a number beyond any float
    with pytest.raises(CorruptStoreError, match="video 'v0': zarr.json does not match its digest"):
        ZarrReader(store.path).read("v0")
    document = json.loads(path.read_text())
    with pytest.raises(CorruptStoreError, match="v0, modality 'video_mae': array metadata herostore does not write"):
        plan_array("video_mae", document["consolidated_metadata"]["metadata"]["video_mae"], "v0", checksums=True,
                   preset=None)


def test_a_malformed_underflow_note_is_a_note_not_a_traceback(store, tmp_path):
    _resealed(store.path / "v0" / "zarr.json", lambda d: d["attributes"]["herostore"].update(float32_underflow="x"))
    report = validate_dataset(tmp_path)
    assert report.ok, report.render()
    assert [n.message for n in report.notes] == ["unreadable note float32_underflow: 'x'"]


@pytest.mark.parametrize("where", ["hubert/c", "hubert/c/0"])
def test_a_file_where_a_chunk_folder_should_be_is_an_error_naming_the_chunk(store, where):
    folder = store.path / "v0" / where
    shutil.rmtree(folder)
    folder.write_bytes(b"not a folder")
    with pytest.raises(CorruptStoreError, match=r"video 'v0', modality 'hubert', chunk hubert/c/0/0: the chunk is "
                                                r"below a file where a folder should be"):
        ZarrReader(store.path).read("v0", ["hubert"])


def test_readers_dropped_leave_no_open_descriptor(store):
    """Found when a long campaign ran out of descriptors: every location kept its store folder open for good."""
    import resource

    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_descriptors()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (before + 64, hard))
    try:
        for _ in range(300):
            assert open_reader(store.path).read("v1", ["bert"]).arrays["bert"].shape == (1, 768)
            FeatureStore(store.path).video_ids()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert open_descriptors() <= before + 2


def _alarm(signum, frame):
    raise TimeoutError("blocked")


@pytest.mark.parametrize("special", ["fifo", "dev zero", "loop", "link"])
def test_a_root_document_that_is_not_a_regular_file_is_refused_at_once(store, tmp_path, special):
    root = store.path / "zarr.json"
    (tmp_path / "copy.json").write_bytes(root.read_bytes())
    root.unlink()
    {"fifo": lambda: os.mkfifo(root), "dev zero": lambda: root.symlink_to("/dev/zero"),
     "loop": lambda: root.symlink_to("zarr.json"), "link": lambda: root.symlink_to(tmp_path / "copy.json")}[special]()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(5)
    try:
        with pytest.raises(StoreError, match=r"features/zarr.json (is a symbolic link|is not a regular file)"):
            FeatureStore(store.path)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_verify_reports_a_compressed_chunk_of_another_array_with_a_valid_checksum(tmp_path):
    store = FeatureStore.create(tmp_path / "lz4", "float16-lz4")
    store.write_video("v0", make_features(0, lengths=(10, 3, 8, 5)))
    video = store.path / "v0"
    chunk = video / "hubert" / "c" / "0" / "0"
    shutil.copyfile(video / "bert" / "c" / "0" / "0", chunk)
    _resealed(video / "zarr.json", lambda d: d["attributes"]["herostore"]["chunks"].update(
        hubert=[int.from_bytes(chunk.read_bytes()[-4:], "little")]))  # the document now lists the copy's checksum
    size = chunk.stat().st_size - 4
    messages = [p.render() for p in verify_store(store.path, workers=1, progress=False).problems]
    expected = (f"v0 [hubert] hubert/c/0/0: blosc header says 7680 bytes from {size}, the chunk is {size} bytes "
                "and must decode to 16384")
    assert messages == [expected]
