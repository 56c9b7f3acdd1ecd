"""Decoding with decord: the frames each model expects and 16 kHz mono audio.

Sampling (see docs/extraction.md):

- VideoMAE gets ``num_frames`` (16) frames at the centres of equal segments of the
  clip, so they spread uniformly over it; a clip with fewer frames repeats frames.
- The global visual model (Blip-2's EVA ViT-g) gets ``keyframes`` frames, picked the
  same way (one keyframe = the middle frame).
- Audio is decoded by decord's ``AudioReader`` resampled to 16 kHz and mixed to mono.
  A file without an audio track gives ``audio=None``; the extractor turns that into a
  recognisable, spec-compliant result instead of failing.

Frames keep their native size and orientation (portrait stays portrait); resizing and
cropping belong to each model's image processor. When a container over-reports its frame
count and the sampled frames cannot all be decoded, the indices are clamped into the first
90% of the clip and ``DecodedVideo.frames_clamped`` (``"frames_clamped"`` in the stored
``source`` notes) says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExtractionError

__all__ = ["AUDIO_RATE", "DecodedVideo", "decode_audio", "decode_video", "sample_indices"]

AUDIO_RATE = 16000


@dataclass
class DecodedVideo:
    """What the models need from one video file."""

    path: Path
    frames: np.ndarray  # [num_frames, H, W, 3] uint8, for VideoMAE
    keyframes: np.ndarray  # [keyframes, H, W, 3] uint8, for the global visual model
    audio: np.ndarray | None  # [samples] float32, 16 kHz mono; None: no audio track
    fps: float
    num_frames: int  # frames in the file
    width: int
    height: int
    frames_clamped: bool = False  # some sampled frames failed to decode and were taken from earlier in the clip

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0

    def info(self) -> dict[str, Any]:
        """JSON-able facts about the source, kept with the features."""
        return {
            "file": self.path.name,
            "frames": self.num_frames,
            "fps": round(self.fps, 4),
            "width": self.width,
            "height": self.height,
            "duration_s": round(self.duration, 3),
            "audio_s": None if self.audio is None else round(len(self.audio) / AUDIO_RATE, 3),
            "frames_clamped": self.frames_clamped,
        }


def sample_indices(total: int, count: int) -> np.ndarray:
    """``count`` frame indices at the centres of ``count`` equal segments of ``total`` frames.

    Uniform over the clip; with ``total < count`` frames repeat (a 3-frame clip gives
    ``[0, 0, 0, 0, 0, 1, ...]`` for 16), so every clip yields exactly ``count`` frames.
    """
    if total < 1 or count < 1:
        raise ValueError(f"sample_indices needs total >= 1 and count >= 1, got {total}, {count}")
    centres = (np.arange(count) + 0.5) * total / count
    return np.minimum(centres.astype(np.int64), total - 1)


def _check_file(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ExtractionError(f"{path}: no such file") from None
    except OSError as exc:
        raise ExtractionError(f"{path}: cannot read ({exc.strerror})") from None
    if not path.is_file():
        raise ExtractionError(f"{path}: not a regular file, expected a video file")
    if size == 0:
        raise ExtractionError(f"{path}: empty file (0 bytes), expected a video")


def _short(exc: BaseException) -> str:
    """decord's messages carry a timestamp and a C++ source location; keep the reason."""
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    if "] " in text and text.startswith("["):
        text = text.split("] ", 1)[1]
    if ".cc:" in text:
        text = text.split(": ", 1)[-1]
    return text.rstrip(".") or type(exc).__name__


def _quiet_ffmpeg() -> None:
    """FFmpeg's own log lines (``moov atom not found``) would interleave with the progress bar;
    the reason is reported with the failure instead."""
    import decord.logging

    decord.logging.set_level(decord.logging.QUIET)


def _probe_reason(path: Path) -> str | None:
    """Why FFmpeg refuses a file, in its words (decord only says 'Error reading'); PyAV is used for this only."""
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "no video stream in the file"
    except Exception as exc:  # noqa: BLE001 - any error text is the reason we want
        text = str(exc)
        return text.split(": '")[0].split("] ", 1)[-1] if text else type(exc).__name__
    return None


def decode_video(path: str | os.PathLike, *, num_frames: int = 16, keyframes: int = 1,
                 num_threads: int = 0) -> DecodedVideo:
    """Decode the sampled frames and the audio of one file; ``ExtractionError`` says why not."""
    from decord import VideoReader, cpu

    path = Path(path)
    _check_file(path)
    _quiet_ffmpeg()
    try:
        reader = VideoReader(str(path), ctx=cpu(0), num_threads=num_threads)
    except Exception as exc:  # noqa: BLE001 - decord raises RuntimeError / DECORDError / more for bad input
        raise ExtractionError(f"{path}: not a readable video ({_probe_reason(path) or _short(exc)})") from None
    total = len(reader)
    if total < 1:
        raise ExtractionError(f"{path}: the video stream has no frames")
    fps = float(reader.get_avg_fps() or 0.0)
    frames, clamped = _read_frames(reader, path, total, sample_indices(total, num_frames))
    keys, keys_clamped = _read_frames(reader, path, total, sample_indices(total, keyframes))
    height, width = frames.shape[1:3]
    del reader
    return DecodedVideo(path, frames, keys, decode_audio(path), fps, total, int(width), int(height),
                        frames_clamped=clamped or keys_clamped)


def _read_frames(reader: Any, path: Path, total: int, indices: np.ndarray) -> tuple[np.ndarray, bool]:
    """The frames at ``indices``, and whether some had to be moved into the first 90% of the clip."""
    try:
        return reader.get_batch(indices.tolist()).asnumpy(), False
    except Exception as first:  # noqa: BLE001 - decord's errors have no common base
        # Containers sometimes over-report their frame count; retry within the first 90%. The caller
        # records that the sampling moved (``frames_clamped``), so it never passes unnoticed.
        shrunk = np.minimum(indices, max(0, int(total * 0.9) - 1))
        try:
            return reader.get_batch(shrunk.tolist()).asnumpy(), True
        except Exception:  # noqa: BLE001
            raise ExtractionError(
                f"{path}: could not decode frames {indices.min()}..{indices.max()} of {total} ({_short(first)})"
            ) from None


def decode_audio(path: str | os.PathLike) -> np.ndarray | None:
    """16 kHz mono float32 samples, or ``None`` if the file has no audio track (or an empty one)."""
    from decord import AudioReader, cpu

    path = Path(path)
    try:
        reader = AudioReader(str(path), ctx=cpu(0), sample_rate=AUDIO_RATE, mono=True)
    except Exception as exc:  # noqa: BLE001 - DECORDError is all decord raises, for every cause
        if "find audio stream" in str(exc):
            return None
        raise ExtractionError(f"{path}: the audio track could not be decoded ({_short(exc)})") from None
    samples = reader[:].asnumpy() if reader.shape[-1] > 0 else np.zeros((1, 0), np.float32)
    audio = np.ascontiguousarray(samples.reshape(-1), dtype=np.float32)
    if audio.size == 0:
        return None
    if not np.isfinite(audio).all():
        raise ExtractionError(f"{path}: the decoded audio holds NaN or infinite samples")
    return audio
