"""Feature extraction, offline: random-weight models of the spec's hidden sizes, clips generated here.

The models are built once per session (``herostore.testing.tiny_models``) and loaded through the
same ``from_pretrained`` / ``pipeline(...)`` paths real checkpoints use. One zarr run over the sample
folder is shared by the tests that only read its results.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from herostore import npyfile
from herostore.errors import ExtractionError, HerostoreError
from herostore.extract import (
    DEFAULT_MODELS,
    ExtractOptions,
    OutputSpec,
    RunSettings,
    decode_video,
    discover_videos,
    run_extraction,
    sample_indices,
)
from herostore.extract import output as output_module
from herostore.extract import runner as runner_module
from herostore.extract.media import decode_audio
from herostore.extract.models import ModelConfig, ModelLoadError, is_random_weight_model, resolve_model
from herostore.extract.runner import get_models
from herostore.schema import MODALITY_BY_NAME, check_features
from herostore.store import FeatureStore
from herostore.testing import TINY_AU_ID, build_tiny_models, write_sample_set
from herostore.validate import validate_dataset

REPO = Path(__file__).resolve().parents[1]
GOOD = ("speech_a", "portrait", "silent_video", "quiet_audio", "very_short", "odd_fps")
BAD = ("corrupt", "not_a_video", "empty")
F16 = {"rtol": 2e-3, "atol": 1e-5}  # the float16 preset's precision (~5e-4 relative), with margin
QUIET = RunSettings(progress=False)


def hubert_frames(samples: int) -> int:
    return (max(samples, 400) - 400) // 320 + 1


def write_labels(dataset_root: Path, video_ids) -> Path:
    path = dataset_root / "labels.json"
    path.write_text(json.dumps([{"video_id": vid, "emotion": "neutral"} for vid in sorted(video_ids)]), "utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_models(tmp_path_factory.mktemp("models"), languages=("en", "zh"), au=True)


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    return write_sample_set(tmp_path_factory.mktemp("videos"))


@pytest.fixture(scope="session")
def tiny_models(tiny_dir):
    """The default (English) models, loaded once: the same cached set ``zarr_run`` extracts with."""
    return get_models(ModelConfig(model_dir=str(tiny_dir)))


@pytest.fixture(scope="session")
def zarr_run(tiny_dir, clips, tmp_path_factory):
    """One zarr extraction over the whole sample folder (good and bad files)."""
    out = tmp_path_factory.mktemp("dataset_root") / "features"
    report = run_extraction(clips["speech_a"].parent, out, models=ModelConfig(model_dir=tiny_dir), settings=QUIET)
    return report, out


# ------------------------------------------------------------------------------------------- decoding


def test_sample_indices_are_uniform_and_pad_short_clips():
    assert sample_indices(160, 16).tolist() == list(range(5, 160, 10))
    assert sample_indices(3, 16).tolist() == [0] * 5 + [1] * 6 + [2] * 5
    assert sample_indices(25, 1).tolist() == [12]
    with pytest.raises(ValueError, match="total >= 1"):
        sample_indices(0, 16)


def test_decode_every_kind_of_clip(clips):
    speech = decode_video(clips["speech_a"])
    assert speech.frames.shape == (16, 240, 320, 3) and speech.frames.dtype == np.uint8
    assert speech.keyframes.shape == (1, 240, 320, 3)
    assert speech.audio is not None and abs(len(speech.audio) / 16000 - 1.5) < 0.1
    assert decode_video(clips["portrait"]).frames.shape == (16, 320, 240, 3)
    assert decode_video(clips["silent_video"]).audio is None
    short = decode_video(clips["very_short"], keyframes=2)
    assert short.num_frames == 3 and short.frames.shape[0] == 16 and short.keyframes.shape[0] == 2
    odd = decode_video(clips["odd_fps"])
    assert abs(odd.fps - 29.97) < 0.01 and odd.frames.shape == (16, 144, 176, 3)
    assert odd.info()["width"] == 176


def test_frames_moved_by_a_failed_decode_are_recorded(clips, tiny_dir, tiny_models, tmp_path, monkeypatch):
    import decord

    class TailFails(decord.VideoReader):
        """A container that over-reports its length: the last 10% of its frames do not decode."""

        def get_batch(self, indices):
            if max(indices) >= int(len(self) * 0.9):
                raise decord.DECORDError("Error reading frame")
            return super().get_batch(indices)

    assert decode_video(clips["speech_a"]).info()["frames_clamped"] is False
    monkeypatch.setattr(decord, "VideoReader", TailFails)
    video = decode_video(clips["speech_a"])
    assert video.frames.shape == (16, 240, 320, 3) and video.frames_clamped
    assert video.info()["frames_clamped"] is True
    out = tmp_path / "features"
    report = run_extraction(clips["speech_a"], out, models=ModelConfig(model_dir=tiny_dir), settings=QUIET)
    assert report.written == ["speech_a"] and report.frames_clamped == ["speech_a"]
    assert "1 video(s) had undecodable frames near the end" in report.summary()
    assert FeatureStore(out).video_meta("speech_a").notes["source"]["frames_clamped"]


@pytest.mark.parametrize("name, reason", [
    ("empty", r"empty\.mp4: empty file \(0 bytes\), expected a video"),
    ("not_a_video", r"not_a_video\.mp4: not a readable video \(Invalid data"),
    ("corrupt", r"corrupt\.mp4: not a readable video"),
])
def test_decode_bad_files_says_why(clips, name, reason):
    with pytest.raises(ExtractionError, match=reason):
        decode_video(clips[name])


def test_discover_videos(tmp_path, clips):
    folder = clips["speech_a"].parent
    items, refused = discover_videos(folder)
    assert [i.video_id for i in items] == sorted(GOOD + BAD) and not refused
    listing = tmp_path / "videos.txt"
    listing.write_text(f"# a comment\n\n{clips['portrait']}\nrelative.mp4\n")
    items, _ = discover_videos(listing)
    assert [i.path for i in items] == [clips["portrait"], tmp_path / "relative.mp4"]
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "dup.mp4").write_bytes(b"x")
    (tmp_path / "a" / "__bad.mp4").write_bytes(b"x")
    items, refused = discover_videos([tmp_path / "a", tmp_path / "b"])
    assert items == []
    assert "duplicate video id 'dup': 2 files" in refused["dup"]
    assert "starts with '__'" in refused["__bad"]
    with pytest.raises(ExtractionError, match="no such file or folder"):
        discover_videos(tmp_path / "missing")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ExtractionError, match="no video files found"):
        discover_videos(tmp_path / "empty_dir")


# --------------------------------------------------------------------------------------------- models


def test_model_resolution_and_language_switch(tmp_path, tiny_dir):
    assert ModelConfig(language="zh").model_ref("hubert") == "TencentGameMate/chinese-hubert-large"
    assert ModelConfig(language="zh").model_ref("bert") == "google-bert/bert-base-chinese"
    assert ModelConfig().model_ref("au") is None
    assert resolve_model("MCG-NJU/videomae-large", None, "video_mae") == "MCG-NJU/videomae-large"
    assert resolve_model("MCG-NJU/videomae-large", str(tiny_dir), "video_mae") == str(tiny_dir / "MCG-NJU/videomae-large")
    with pytest.raises(ModelLoadError, match=r"no folder .*nowhere/org/name under --model-dir; download it with `hf"):
        resolve_model("org/name", str(tmp_path / "nowhere"), "bert")
    for language in ("en", "zh"):
        for ref in DEFAULT_MODELS[language].values():
            assert is_random_weight_model(tiny_dir / ref)


def test_clip_tower_standalone_equals_full_checkpoint_and_wrong_checkpoint_fails(tmp_path, tiny_dir, clips):
    import torch
    from transformers import Blip2VisionModel

    from herostore.extract.encoders import ClipEncoder

    full = tiny_dir / DEFAULT_MODELS["en"]["clip"]
    tower = tmp_path / "tower"
    Blip2VisionModel.from_pretrained(full, key_mapping={r"^vision_model\.": ""}).save_pretrained(tower)
    keyframes = [decode_video(clips["speech_a"], keyframes=2).keyframes]
    a = ClipEncoder(ModelConfig(clip=str(full)))(keyframes)[0]
    b = ClipEncoder(ModelConfig(clip=str(tower)))(keyframes, cls_only=True)[0]
    assert a.shape == (2 * 257, 1408) and b.shape == (2, 1408)
    torch.testing.assert_close(b, a[[0, 257]])
    with pytest.raises(ModelLoadError, match=r"clip model .*bert-base-uncased.*could not load|weights missing"):
        ClipEncoder(ModelConfig(clip=str(tiny_dir / DEFAULT_MODELS["en"]["bert"])))


def test_transformers_lower_bound_has_dtype_and_key_mapping():
    """models.py passes ``dtype=`` (from_pretrained and pipeline: transformers 4.56+) and ``key_mapping=`` (4.50+)."""
    import tomllib

    import transformers
    from packaging.version import Version

    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]["dependencies"]
    bound = next(d for d in dependencies if d.startswith("transformers"))
    assert bound.startswith("transformers>=")
    assert Version(bound.split(">=", 1)[1]) >= Version("4.56")
    assert Version(transformers.__version__) >= Version(bound.split(">=", 1)[1])


def test_wrong_hidden_size_is_refused_at_load(tmp_path):
    from transformers import HubertConfig, HubertModel

    from herostore.extract.encoders import HubertEncoder

    small = tmp_path / "hubert-768"
    config = HubertConfig(hidden_size=768, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                          conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=16)
    HubertModel(config).save_pretrained(small)
    with pytest.raises(ModelLoadError, match=rf"hubert model '{small}': hidden size 768, expected 1024 "
                                             r"\(the spec's 'hubert' features are \[T, 1024\]\)"):
        HubertEncoder(ModelConfig(hubert=str(small)))


def test_image_processors_are_picked_without_the_torchvision_fallback_warning():
    from transformers.utils import is_torchvision_available

    from herostore.extract.loading import image_processor_class as _image_processor_class

    for name in ("BlipImageProcessor", "VideoMAEImageProcessor"):
        cls = _image_processor_class(name)
        assert cls.__name__.startswith(name)
        if not is_torchvision_available():
            import transformers

            assert cls is getattr(transformers, f"{name}Pil", cls)


def test_hubert_on_audio_longer_than_its_30s_window(tiny_models):
    samples = 480400
    audio = np.random.default_rng(0).uniform(-0.3, 0.3, samples).astype(np.float32)
    out = tiny_models.hubert(audio)
    assert out.shape == ((samples - 400) // 320 + 1, 1024) == (1501, 1024)
    assert out.dtype == np.float32 and np.isfinite(out).all()


def test_transcriber_chunks_audio_longer_than_30s(tiny_models):
    seconds = 35
    t = np.arange(seconds * 16000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    texts = tiny_models.asr([audio, audio[:16000]])
    assert len(texts) == 2 and all(isinstance(text, str) for text in texts)


def test_bert_truncates_a_long_text_to_512_positions(tiny_models):
    text = " ".join(["i", "am", "so", "happy", "today"] * 200)  # 1000 words
    long, short = tiny_models.bert([text, "hello world"])
    assert long.shape == (512, 768) and short.shape == (4, 768)


# ------------------------------------------------------------------------------------------ zarr run


def test_zarr_run_writes_every_key_with_spec_dims(zarr_run, clips):
    report, out = zarr_run
    assert sorted(report.written) == sorted(GOOD) and report.skipped == []
    assert sorted(report.failed) == sorted(BAD)
    assert report.random_weight_models and "random-weight test models" in report.summary()
    store = FeatureStore(out)
    assert store.preset.name == "float16" and sorted(store.video_ids()) == sorted(GOOD)
    for vid in GOOD:
        features = store.read_video(vid)
        checked = check_features({k: np.asarray(v, np.float32) if k != "transcript" else v
                                  for k, v in features.items()}, source=vid, strict=True)
        assert set(checked.arrays) == {"video_mae", "clip", "hubert", "bert"}  # no au without --au-model
        for key, array in checked.arrays.items():
            assert array.ndim == 2 and array.shape[1] == MODALITY_BY_NAME[key].dim, (vid, key, array.shape)
            assert np.isfinite(array).all()
        assert features["video_mae"].shape == (1568, 1024)
        assert features["clip"].shape == (257, 1408)
        assert features["bert"].shape[0] >= 2  # [CLS] ... [SEP]
        audio = decode_audio(clips[vid])
        expected_t = 1 if audio is None else hubert_frames(len(audio))
        assert features["hubert"].shape == (expected_t, 1024)
        notes = store.video_meta(vid).notes
        assert notes["extraction"]["models"]["video_mae"] == "MCG-NJU/videomae-large"
        assert notes["extraction"]["random_weight_test_models"] is True
        assert notes["source"]["file"] == f"{vid}.mp4" and notes["source"]["frames_clamped"] is False
    assert report.frames_clamped == []
    write_labels(out.parent, GOOD)
    validation = validate_dataset(out.parent)
    assert validation.format == "zarr" and validation.videos == len(GOOD) and validation.ok, validation.render()


def test_zarr_summary_ends_with_how_to_read_the_store(zarr_run, tmp_path, capsys):
    """A HERO user expects .npy files: the summary says what a store is, how to read it, how to get the files."""
    from herostore.cli import main

    report, out = zarr_run
    last = report.summary().splitlines()[-1]
    assert last.startswith(f"wrote a herostore Zarr store at {out} (not the spec's .npy files)"), last
    assert "herostore.compat.HERODataset" in last and "herostore.dataset.HeroDataset" in last
    assert "--format npy" in last
    command = last.split("`")[1]
    assert command == f"herostore export-npy {out} DATASET_ROOT"
    argv = command.replace("DATASET_ROOT", str(tmp_path / "npy_root")).split()[1:]
    assert main([*argv, "--workers", "1", "--quiet"]) == 0  # the command it names works as written
    assert npyfile.list_video_ids(tmp_path / "npy_root" / "features") == sorted(GOOD)
    capsys.readouterr()


def test_no_audio_and_no_speech_are_recognisable(zarr_run):
    _, out = zarr_run
    store = FeatureStore(out)
    silent = store.read_video("silent_video")
    notes = store.video_meta("silent_video").notes
    assert notes["audio"] == "missing" and notes["speech"] == "none" and notes["text_source"] == "transcript"
    assert silent["hubert"].shape == (1, 1024) and not silent["hubert"].any()
    assert silent["transcript"] == "" and silent["bert"].shape == (2, 768)
    quiet = store.read_video("quiet_audio")
    notes = store.video_meta("quiet_audio").notes
    assert notes["audio"] == "present" and notes["speech"] == "none"
    assert quiet["transcript"] == "" and quiet["hubert"].shape[0] > 1  # real HuBERT frames of the silence
    notes = store.video_meta("speech_a").notes
    assert notes["audio"] == "present" and notes["speech"] == "present"


def test_failures_are_recorded_with_reasons(zarr_run):
    report, _ = zarr_run
    assert "empty file (0 bytes)" in report.failed["empty"]
    assert "not a readable video" in report.failed["not_a_video"]
    assert "not a readable video" in report.failed["corrupt"]
    summary = report.summary()
    assert "3 failed:" in summary and "  empty: " in summary and "  corrupt: " in summary


def test_a_write_error_fails_that_video_and_the_run_goes_on(clips, tiny_dir, tmp_path, monkeypatch):
    real = output_module.Output.write

    def disk_full(self, video_id, *args, **kwargs):
        if video_id == "portrait":
            raise OSError(28, "No space left on device")
        return real(self, video_id, *args, **kwargs)

    monkeypatch.setattr(output_module.Output, "write", disk_full)
    out = tmp_path / "features"
    report = run_extraction([clips["portrait"], clips["very_short"]], out, models=ModelConfig(model_dir=tiny_dir),
                            settings=QUIET)
    assert report.written == ["very_short"] and not report.ok
    assert report.failed == {"portrait": f"{clips['portrait']}: could not write features "
                                         f"(OSError: [Errno 28] No space left on device)"}
    assert FeatureStore(out).video_ids() == ["very_short"]


def test_resume_skips_complete_videos_then_overwrite(zarr_run, clips, tiny_dir):
    _, out = zarr_run
    models = ModelConfig(model_dir=tiny_dir)
    again = run_extraction(clips["speech_a"].parent, out, models=models, settings=QUIET)
    assert again.written == [] and sorted(again.skipped) == sorted(GOOD) and sorted(again.failed) == sorted(BAD)
    assert "video_mae" not in again.timings  # nothing was run through the models
    before = FeatureStore(out).read_video("very_short")
    redo = run_extraction(clips["very_short"], OutputSpec(out, overwrite=True), models=models, settings=QUIET)
    assert redo.written == ["very_short"] and redo.ok
    after = FeatureStore(out).read_video("very_short")
    np.testing.assert_array_equal(before["video_mae"], after["video_mae"])  # deterministic
    with pytest.raises(HerostoreError, match="store exists with preset 'float16', asked for 'lossless'"):
        run_extraction(clips["very_short"], OutputSpec(out, preset="lossless"), models=models, settings=QUIET)


# ------------------------------------------------------------------------------------- npy and options


def test_npy_agrees_with_zarr_and_au_option(zarr_run, clips, tiny_dir, tmp_path):
    _, zarr_out = zarr_run
    out = tmp_path / "features"
    report = run_extraction([clips["speech_a"], clips["silent_video"]], OutputSpec(out, format="npy"),
                            models=ModelConfig(model_dir=tiny_dir, au=TINY_AU_ID), settings=QUIET)
    assert sorted(report.written) == ["silent_video", "speech_a"] and report.ok
    assert "Zarr store" not in report.summary()  # .npy files are what the spec's loaders read
    assert npyfile.list_video_ids(out) == ["silent_video", "speech_a"]
    store = FeatureStore(zarr_out)
    for vid in ("speech_a", "silent_video"):
        raw = np.load(out / f"{vid}.npy", allow_pickle=True).item()  # the spec's own way to read it
        assert set(raw) == {"video_mae", "clip", "hubert", "bert", "au", "transcript"}
        assert raw["au"].shape == (16, 1024) and raw["au"].dtype == np.float32
        stored = store.read_video(vid)
        assert raw["transcript"] == stored["transcript"]
        for key in ("video_mae", "clip", "hubert", "bert"):
            assert raw[key].dtype == np.float32
            np.testing.assert_allclose(raw[key], stored[key].astype(np.float32), **F16, err_msg=f"{vid} {key}")
    write_labels(tmp_path, report.written)
    validation = validate_dataset(tmp_path)
    assert validation.format == "npy" and validation.videos == 2 and validation.ok, validation.render()


def test_batches_of_three_match_single_videos_and_fall_back_per_video(zarr_run, clips, tiny_dir, tmp_path,
                                                                     monkeypatch):
    _, zarr_out = zarr_run
    batches = []
    real = runner_module.extract_batch

    def one_breaks_inference(models, videos, *args, **kwargs):
        batches.append([v.path.stem for v in videos])
        if any(v.path.stem == "very_short" for v in videos):
            raise RuntimeError("injected inference failure")
        return real(models, videos, *args, **kwargs)

    monkeypatch.setattr(runner_module, "extract_batch", one_breaks_inference)
    names = ["odd_fps", "portrait", "silent_video", "speech_a", "very_short"]  # landscape, portrait, no audio, ...
    out = tmp_path / "features"
    report = run_extraction([clips[n] for n in names], out, models=ModelConfig(model_dir=tiny_dir),
                            options=ExtractOptions(batch_size=3), settings=QUIET)
    assert batches == [names[:3], names[3:], ["speech_a"], ["very_short"]]  # the failed batch retried per video
    assert sorted(report.written) == names[:4]
    assert report.failed == {"very_short": f"{clips['very_short']}: model inference failed "
                                           f"(RuntimeError: injected inference failure)"}
    store, reference = FeatureStore(out), FeatureStore(zarr_out)
    for vid in names[:4]:
        got, want = store.read_video(vid), reference.read_video(vid)
        assert got["transcript"] == want["transcript"], vid
        for key in ("video_mae", "clip", "hubert", "bert"):
            assert got[key].shape == want[key].shape, (vid, key)
            np.testing.assert_allclose(got[key].astype(np.float32), want[key].astype(np.float32), **F16,
                                       err_msg=f"{vid} {key}")


def test_bfloat16_on_cpu_writes_float32_features_of_spec_shapes(clips, tiny_dir, tmp_path):
    out = tmp_path / "features"
    code = _cli(["--video_path", str(clips["very_short"]), "--output_dir", str(out), "--format", "npy",
                 "--model-dir", str(tiny_dir), "--device", "cpu", "--dtype", "bfloat16", "--quiet"])
    assert code == 0
    import torch

    assert get_models(ModelConfig(model_dir=str(tiny_dir), dtype="bfloat16")).video_mae.model.dtype == torch.bfloat16
    raw = np.load(out / "very_short.npy", allow_pickle=True).item()
    audio = decode_audio(clips["very_short"])
    expected = {"video_mae": (1568, 1024), "clip": (257, 1408), "hubert": (hubert_frames(len(audio)), 1024)}
    for key, shape in expected.items():
        assert raw[key].shape == shape and raw[key].dtype == np.float32, key
    assert raw["bert"].shape[1] == 768 and raw["bert"].dtype == np.float32
    assert isinstance(raw["transcript"], str)
    assert all(np.isfinite(raw[key]).all() for key in ("video_mae", "clip", "hubert", "bert"))


def test_labels_text_chinese_and_pooled_outputs(clips, tiny_dir, tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([{"video_id": "speech_a", "emotion": "happy", "text": "我今天很高兴"}],
                                 ensure_ascii=False), "utf-8")
    out = tmp_path / "features"
    report = run_extraction(clips["speech_a"], out, models=ModelConfig(model_dir=tiny_dir, language="zh"),
                            options=ExtractOptions(video_mae_output="temporal", clip_output="cls", keyframes=2),
                            labels=labels, settings=QUIET)
    assert report.written == ["speech_a"]
    assert report.models["hubert"] == "TencentGameMate/chinese-hubert-large"
    assert report.models["bert"] == "google-bert/bert-base-chinese"
    store = FeatureStore(out)
    features = store.read_video("speech_a")
    assert features["video_mae"].shape == (8, 1024)
    assert features["clip"].shape == (2, 1408)
    assert features["bert"].shape == (6 + 2, 768)  # six characters + [CLS] + [SEP]
    notes = store.video_meta("speech_a").notes
    assert notes["text_source"] == "labels" and notes["extraction"]["keyframes"] == 2


# ----------------------------------------------------------------------------- progress and benchmark


def test_extract_bench_quick_reports_speed_and_stage_times(tiny_dir, tiny_models, tmp_path, monkeypatch, capsys):
    from benchmarks import extract_bench

    monkeypatch.setattr(extract_bench, "build_tiny_models", lambda root, **kwargs: tiny_dir)
    result_path = tmp_path / "bench.json"
    assert extract_bench.main(["--quick", "--workdir", str(tmp_path), "--out", str(result_path)]) == 0
    printed = capsys.readouterr().out
    assert "4 clips of 1.0 s" in printed and "tiny random-weight" in printed
    assert "videos/s" in printed
    for stage in ("decode", "video_mae", "clip", "hubert", "asr", "bert", "write"):
        assert f"\n  {stage} " in printed, stage
    result = json.loads(result_path.read_text())
    assert result["videos"] == 4 and result["videos_per_s"] > 0
    assert {"decode", "video_mae", "clip", "hubert", "bert", "write"} <= set(result["stage_s"])


def test_full_size_random_models_have_the_real_architectures():
    """``build_tiny_models(full_size=True)`` / ``extract_bench --full-size``: checked on the meta device, never built."""
    import torch
    from transformers import BertModel, Blip2VisionModel, HubertModel, VideoMAEModel, WhisperForConditionalGeneration

    from herostore.extract.loading import fast_videomae_init
    from herostore.testing.tiny_models import model_configs

    configs = model_configs(full_size=True)
    classes = {"video_mae": VideoMAEModel, "clip": Blip2VisionModel, "hubert": HubertModel,
               "asr": WhisperForConditionalGeneration, "bert": BertModel}
    millions = {"video_mae": 304, "clip": 986, "hubert": 315, "asr": 809, "bert": 86}  # bert: small test vocab
    for role, cls in classes.items():
        with torch.device("meta"), fast_videomae_init():
            model = cls(configs[role])
        assert round(sum(p.numel() for p in model.parameters()) / 1e6) == millions[role], role
    for role in ("video_mae", "clip", "hubert", "bert", "au"):
        assert configs[role].hidden_size == MODALITY_BY_NAME[role].dim
    assert configs["asr"].num_mel_bins == 128 and configs["asr"].vocab_size == 51866
    assert model_configs()["video_mae"].num_hidden_layers == 1


# ------------------------------------------------------------------------------------------------ CLI


def _cli(argv: list[str]) -> int:
    from herostore.cli.extract import main

    return main(argv)


def test_cli_lists_failures_and_exits_1(clips, tiny_dir, tmp_path, capsys):
    listing = tmp_path / "bad.txt"
    listing.write_text("\n".join(str(clips[name]) for name in BAD) + f"\n{tmp_path / 'missing.mp4'}\n")
    out = tmp_path / "features"
    report_path = tmp_path / "report.json"
    code = _cli(["--video_path", str(listing), "--output_dir", str(out), "--format", "npy", "--model-dir",
                 str(tiny_dir), "--quiet", "--report", str(report_path)])
    printed = capsys.readouterr().out
    assert code == 1
    assert "0 written, 0 skipped (already complete), 4 failed" in printed
    assert "  empty: " in printed and "empty file (0 bytes)" in printed
    assert "  missing: " in printed and "no such file" in printed
    assert set(json.loads(report_path.read_text())["failed"]) == {*BAD, "missing"}


def test_cli_run_errors_are_one_line(tmp_path, capsys):
    code = _cli(["--video_path", str(tmp_path / "nothing"), "--output_dir", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("extract_features.py: error: --video_path"), err


def test_cli_interrupt_leaves_a_readable_store(clips, tiny_dir, tmp_path, capsys, monkeypatch):
    calls = []
    real = runner_module.extract_batch

    def interrupt_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner_module, "extract_batch", interrupt_second)
    out = tmp_path / "features"
    code = _cli(["--video_path", str(clips["odd_fps"]), str(clips["portrait"]), "--output_dir", str(out),
                 "--model-dir", str(tiny_dir), "--quiet"])
    assert code == 130
    printed = capsys.readouterr().out
    assert "interrupted" in printed
    assert printed.splitlines()[-1].startswith(f"wrote a herostore Zarr store at {out}")
    store = FeatureStore(out)
    assert store.video_ids() == ["odd_fps"] and store.read_video("odd_fps")["clip"].shape == (257, 1408)


def test_script_is_the_spec_invocation(clips, tiny_dir, tmp_path):
    out = tmp_path / "dataset_root" / "features"
    script = [sys.executable, str(REPO / "scripts" / "extract_features.py"), "--video_path", str(clips["empty"]),
              str(clips["very_short"]), "--output_dir", str(out), "--format", "npy", "--quiet"]
    done = subprocess.run([*script, "--model-dir", str(tiny_dir)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 1, done.stderr
    assert "1 written, 0 skipped (already complete), 1 failed" in done.stdout
    assert "  empty: " in done.stdout and "empty file (0 bytes)" in done.stdout
    # A fresh process loads every model: nothing from transformers leaks onto stderr mid-run.
    assert "torchvision" not in done.stderr and "[transformers]" not in done.stderr, done.stderr
    missing = subprocess.run([*script, "--model-dir", str(tmp_path / "no-models")], capture_output=True, text=True,
                             timeout=120, check=False)
    assert missing.returncode == 2
    assert "error: video_mae model 'MCG-NJU/videomae-large': no folder" in missing.stderr


def test_cli_defaults_come_from_the_library(clips, tmp_path, monkeypatch):
    """Flags left out mean the library's defaults: auto device, its dtype and batch size, one process, zarr."""
    import torch

    from herostore.cli.extract import build_extraction, build_parser

    out = tmp_path / "features"
    args = build_parser().parse_args(["--video_path", str(clips["very_short"]), "--output_dir", str(out)])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    job = build_extraction(args).job
    assert job.models == ModelConfig().resolved() and (job.models.device, job.models.dtype) == ("cpu", "float32")
    assert job.options == ExtractOptions().for_device("cpu") and job.options.batch_size == 1
    assert job.output == OutputSpec(out) and job.output.format == "zarr"
    assert build_extraction(args).settings == RunSettings()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # resolved only: nothing runs on the GPU
    job = build_extraction(args).job
    assert (job.models.device, job.models.dtype, job.options.batch_size) == ("cuda", "float16", 8)
    explicit = build_parser().parse_args(["--video_path", str(clips["very_short"]), "--output_dir", str(out),
                                          "--device", "cpu", "--batch-size", "3", "--dtype", "bfloat16"])
    job = build_extraction(explicit).job
    assert (job.models.device, job.models.dtype, job.options.batch_size) == ("cpu", "bfloat16", 3)


def test_the_package_imports_without_torch_or_transformers():
    code = ("import sys, herostore.extract, herostore.cli.extract; "
            "print(sorted({'torch', 'transformers', 'distributed'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_main_cli_has_the_extract_subcommand():
    from herostore.cli import build_parser
    from herostore.cli.extract import run

    args = build_parser().parse_args(["extract", "--video_path", "v.mp4", "--output_dir", "out"])

    assert args.func is run and args.format == "zarr"


# ----------------------------------------------------------------------------------------------- dask


def _assert_matches_reference(out: Path, reference: Path, video_ids) -> None:
    store, want_store = FeatureStore(out), FeatureStore(reference)
    for vid in video_ids:
        got, want = store.read_video(vid), want_store.read_video(vid)
        for key in ("video_mae", "clip", "hubert", "bert"):
            assert got[key].shape == want[key].shape
            np.testing.assert_allclose(got[key].astype(np.float32), want[key].astype(np.float32), **F16)


def test_dask_default_local_cluster_two_workers_relative_paths(zarr_run, clips, tiny_dir, tmp_path, monkeypatch):
    """``workers=2`` without ``scheduler``: a LocalCluster of two processes writing into one store."""
    import os

    _, zarr_out = zarr_run
    monkeypatch.chdir(tmp_path)
    relative = {name: os.path.relpath(clips[name]) for name in ("speech_a", "portrait", "empty")}
    assert not any(Path(p).is_absolute() for p in relative.values())
    report = run_extraction(list(relative.values()), "features", models=ModelConfig(model_dir=tiny_dir),
                            settings=RunSettings(workers=2, progress=False))
    assert sorted(report.written) == ["portrait", "speech_a"]
    # Workers got absolute paths: the failure names the file as the worker opened it.
    assert report.failed == {"empty": f"{os.path.abspath(relative['empty'])}: empty file (0 bytes), "
                                      f"expected a video"}
    assert report.timings["video_mae"] > 0
    _assert_matches_reference(tmp_path / "features", zarr_out, ["speech_a", "portrait"])


def test_dask_existing_scheduler(zarr_run, clips, tiny_dir, tmp_path):
    """``scheduler=ADDRESS``; an in-process cluster keeps it quick (the test above starts worker processes)."""
    from distributed import LocalCluster

    _, zarr_out = zarr_run
    out = tmp_path / "features"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        report = run_extraction([clips["speech_a"], clips["portrait"], clips["empty"]], out,
                                models=ModelConfig(model_dir=tiny_dir),
                                settings=RunSettings(scheduler=cluster.scheduler_address, progress=False))
    assert sorted(report.written) == ["portrait", "speech_a"]
    assert list(report.failed) == ["empty"] and "empty file" in report.failed["empty"]
    assert report.timings["video_mae"] > 0
    _assert_matches_reference(out, zarr_out, ["speech_a", "portrait"])


def test_on_a_cluster_a_failing_task_fails_its_video_and_a_model_load_error_stops_the_run(clips, tmp_path,
                                                                                           monkeypatch):
    """Through the bulk engine: a task that fails outside the per-video handling is run again one video per task,
    so only the video that breaks it fails; ``ModelLoadError`` stops the run. The task is replaced (an in-process
    cluster sees the replacement); no model runs."""
    from distributed import LocalCluster

    from herostore.bulk import Outcome, TaskResult
    from herostore.extract import extraction as extraction_module

    def task(items, tick, *, job, on_worker):
        if any(item.video_id == "portrait" for item in items):
            raise RuntimeError("worker died")
        return TaskResult([Outcome(item.video_id, "written") for item in items], {"device": "cpu"})

    def models_fail(items, tick, *, job, on_worker):
        raise ModelLoadError("video_mae model 'x': could not load")

    sources = [clips["speech_a"], clips["portrait"]]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        settings = RunSettings(scheduler=cluster.scheduler_address, progress=False)
        monkeypatch.setattr(extraction_module, "extract_task", task)
        report = run_extraction(sources, tmp_path / "features", models=ModelConfig(device="cpu"), settings=settings)
        monkeypatch.setattr(extraction_module, "extract_task", models_fail)
        with pytest.raises(ModelLoadError, match="could not load"):
            run_extraction(sources, tmp_path / "features", models=ModelConfig(device="cpu"), settings=settings)
    assert report.written == ["speech_a"]
    assert report.failed == {"portrait": f"{clips['portrait']}: its task failed (RuntimeError: worker died)"}


