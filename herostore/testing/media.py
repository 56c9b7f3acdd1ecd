"""Small synthetic video clips for tests, the demo and the benchmark.

Every clip is generated with PyAV: moving colour bars and a bouncing square for the
picture, a sine tone with a little noise for the sound. Nothing is downloaded.
``write_sample_set`` makes the standard set: clips with and without audio, a portrait
one, a very short one, an odd frame rate, plus the bad inputs the extractor must
report (a corrupt file, a file that is not a video, a zero-length file).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["SAMPLE_RATE", "write_clip", "write_sample_set"]

SAMPLE_RATE = 16000


def _frame(i: int, width: int, height: int, fps: float) -> np.ndarray:
    t = i / fps
    x = np.arange(width, dtype=np.float32)[None, :]
    y = np.arange(height, dtype=np.float32)[:, None]
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = (128 + 127 * np.sin(x / 17.0 + 3 * t)).astype(np.uint8)
    img[..., 1] = (128 + 127 * np.sin(y / 23.0 - 2 * t)).astype(np.uint8)
    img[..., 2] = (128 + 127 * np.sin((x + y) / 31.0 + t)).astype(np.uint8)
    size = max(8, min(width, height) // 5)
    cx = int((width - size) * (0.5 + 0.5 * np.sin(2 * t)))
    cy = int((height - size) * (0.5 + 0.5 * np.cos(3 * t)))
    img[cy : cy + size, cx : cx + size] = (255, 255, 255)
    return img


def _tone(n_samples: int, rate: int, freq: float, seed: int, volume: float) -> np.ndarray:
    t = np.arange(n_samples) / rate
    rng = np.random.default_rng(seed)
    wave = 0.4 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    wave += 0.05 * rng.standard_normal(n_samples)
    return np.clip(volume * wave, -1, 1).astype(np.float32)


def write_clip(
    path: str | os.PathLike,
    *,
    seconds: float = 1.5,
    fps: float | Fraction = 25,
    width: int = 320,
    height: int = 240,
    audio: bool = True,
    audio_rate: int = 44100,
    freq: float = 440.0,
    volume: float = 1.0,
    seed: int = 0,
) -> Path:
    """Write one mp4 clip: H.264 video, AAC stereo audio unless ``audio=False`` (``volume=0``: digital silence)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    n_frames = max(1, round(seconds * float(rate)))
    with av.open(str(path), mode="w") as container:
        vstream = container.add_stream("libx264", rate=rate)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        vstream.options = {"preset": "ultrafast"}
        astream = None
        if audio:
            astream = container.add_stream("aac", rate=audio_rate)
            astream.layout = "stereo"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(_frame(i, width, height, float(rate)), format="rgb24")
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            samples = _tone(int(n_frames / float(rate) * audio_rate), audio_rate, freq, seed, volume)
            stereo = np.stack([samples, samples * 0.8])
            block = 1024
            for start in range(0, stereo.shape[1], block):
                chunk = np.ascontiguousarray(stereo[:, start : start + block])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate = audio_rate
                frame.pts = start
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path


def write_sample_set(folder: str | os.PathLike, *, bad: bool = True) -> dict[str, Path]:
    """Write the standard sample clips into ``folder``; returns ``{video_id: path}``.

    Good clips: ``speech_a`` (320x240, 25 fps, 1.5 s, a tone standing in for speech),
    ``portrait`` (240x320, 1 s), ``silent_video`` (no audio track), ``quiet_audio`` (an
    audio track of digital silence), ``very_short`` (3 frames), ``odd_fps`` (176x144 at
    29.97 fps). With ``bad``: ``corrupt`` (a truncated mp4), ``not_a_video`` (text with
    a .mp4 name), ``empty`` (zero bytes).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clips = {
        "speech_a": write_clip(folder / "speech_a.mp4", seconds=1.5, freq=440, seed=1),
        "portrait": write_clip(folder / "portrait.mp4", seconds=1.0, width=240, height=320, freq=330, seed=2),
        "silent_video": write_clip(folder / "silent_video.mp4", seconds=1.0, audio=False),
        "quiet_audio": write_clip(folder / "quiet_audio.mp4", seconds=1.0, volume=0.0),
        "very_short": write_clip(folder / "very_short.mp4", seconds=0.12, fps=25, freq=550, seed=3),
        "odd_fps": write_clip(folder / "odd_fps.mp4", seconds=1.2, fps=Fraction(30000, 1001), width=176,
                              height=144, freq=660, seed=4),
    }
    if bad:
        good = clips["speech_a"].read_bytes()
        corrupt = folder / "corrupt.mp4"
        corrupt.write_bytes(good[: len(good) // 3])
        clips["corrupt"] = corrupt
        not_video = folder / "not_a_video.mp4"
        not_video.write_text("this is a text file, not a video\n" * 20)
        clips["not_a_video"] = not_video
        empty = folder / "empty.mp4"
        empty.write_bytes(b"")
        clips["empty"] = empty
    return clips
