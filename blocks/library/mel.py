"""Mel filterbank and log-mel analysis: the one definition of "mel" shared by the DSP vocoder
and the recipes that make training data, so a voice and its vocoder agree on the features.

Slaney-style mel scale and area-normalised triangles (as librosa's default and most neural
vocoders), natural-log magnitude with a floor. Written out here because torchaudio has no CPU
build on this project's platform and librosa would bring numba for twenty lines of arithmetic.
"""

from __future__ import annotations

import math

import torch

LOG_FLOOR = 1e-5


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """Slaney: linear below 1 kHz, logarithmic above."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return torch.where(
        hz < min_log_hz, hz / f_sp, min_log_mel + torch.log(hz / min_log_hz) / logstep
    )


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return torch.where(
        mel < min_log_mel, mel * f_sp, min_log_hz * torch.exp(logstep * (mel - min_log_mel))
    )


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Shape: (n_mels, n_fft // 2 + 1). Triangles normalised to equal area (Slaney)."""
    f_max = f_max if f_max is not None else sample_rate / 2
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    mels = torch.linspace(
        hz_to_mel(torch.tensor(f_min, dtype=torch.float64)).item(),
        hz_to_mel(torch.tensor(f_max, dtype=torch.float64)).item(),
        n_mels + 2,
        dtype=torch.float64,
    )
    hz = mel_to_hz(mels)
    lower = (freqs[None, :] - hz[:-2, None]) / (hz[1:-1, None] - hz[:-2, None])
    upper = (hz[2:, None] - freqs[None, :]) / (hz[2:, None] - hz[1:-1, None])
    weights = torch.clamp(torch.minimum(lower, upper), min=0)
    weights *= (2.0 / (hz[2:] - hz[:-2]))[:, None]
    return weights.float()


class MelAnalysis:
    """Audio to log-mel frames with the addon's audio parameters."""

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        win_length: int,
        n_mels: int,
        f_min: float = 0.0,
        f_max: float | None = None,
    ):
        self.n_fft, self.hop, self.win = n_fft, hop_length, win_length
        self.window = torch.hann_window(win_length)
        self.filters = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max)

    def magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """Shape: (samples,) -> (frames, n_fft // 2 + 1), frames = samples // hop (+1 centred)."""
        spec = torch.stft(
            audio, self.n_fft, self.hop, self.win, self.window, center=True, return_complex=True
        )
        return spec.abs().T

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """Shape: (samples,) -> (frames, n_mels)."""
        return torch.log(torch.clamp(self.magnitude(audio) @ self.filters.T, min=LOG_FLOOR))
