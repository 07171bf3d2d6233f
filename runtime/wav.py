"""Writing float audio as 16-bit PCM WAV (stdlib `wave`: no dependency for a 44-byte header)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def to_pcm16(audio: np.ndarray) -> bytes:
    """Float samples in [-1, 1] (clipped) to little-endian 16-bit PCM."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(to_pcm16(audio))
