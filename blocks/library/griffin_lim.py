"""GriffinLim: a DSP vocoder, log-mel chunks to audio by phase reconstruction.

No trained weights: it inverts the mel filterbank (least squares) to a magnitude spectrogram and
iterates Griffin-Lim (with momentum, Perraudin et al. 2013) to find a phase. Iterative phase
reconstruction has no bounded receptive field, so a streamed chunk cannot equal a one-shot run
exactly; each chunk is reconstructed with `context_frames` of mel on each side and trimmed, and
the initial phase is a fixed function of the absolute frame index, so neighbouring chunks start
from the same phase where they overlap. tests/test_griffin_lim.py states the tolerance reached.
"""

from __future__ import annotations

from pydantic import Field
from voicestack.blocks.core.base import BlockConfig, BuildEnv
from voicestack.blocks.core.chunk import Chunk
from voicestack.blocks.core.streamable import ChunkwiseBlock


class GriffinLim(ChunkwiseBlock):
    consumes = "mel"
    produces = "audio"

    class Config(BlockConfig):
        n_iter: int = Field(default=32, ge=1)
        momentum: float = Field(default=0.99, ge=0, lt=1)
        context_frames: int = Field(default=16, ge=0)
        gain: float = Field(default=1.0, gt=0)

    config: Config

    def __init__(self, config: Config, env: BuildEnv, path: str = ""):
        import torch
        from voicestack.blocks.library.mel import mel_filterbank

        super().__init__(config, env, path)
        audio = env.require_addon(path).audio
        self.n_fft, self.hop, self.win = audio.n_fft, audio.hop_length, audio.win_length
        self.window = torch.hann_window(self.win)
        self.inverse = torch.linalg.pinv(
            mel_filterbank(
                audio.sample_rate, audio.n_fft, audio.n_mels, audio.f_min_hz, audio.f_max_hz
            )
        )

    @property
    def context(self) -> tuple[int, int]:
        return (self.config.context_frames, self.config.context_frames)

    @property
    def scale(self) -> int:
        return self.hop

    def _phase(self, start: int, frames: int):
        """A fixed pseudo-random initial phase per absolute frame index."""
        import torch

        bins = self.n_fft // 2 + 1
        t = torch.arange(start, start + frames, dtype=torch.float64)[None, :]
        k = torch.arange(bins, dtype=torch.float64)[:, None]
        return (
            torch.remainder(t * 0.6180339887 * 977 + k * k * 0.4142135623, 1.0).float()
            * 6.283185307
        )

    def vocode(self, log_mel, first_frame: int):
        """log_mel (frames, n_mels) -> audio (frames * hop,)."""
        import torch

        magnitude = torch.clamp(self.inverse @ torch.exp(log_mel).T, min=0)  # (bins, frames)
        frames = magnitude.shape[1]
        length = frames * self.hop

        def stft(x):
            s = torch.stft(x, self.n_fft, self.hop, self.win, self.window, return_complex=True)
            return s[:, :frames]

        def istft(s):
            return torch.istft(s, self.n_fft, self.hop, self.win, self.window, length=length)

        angles = torch.polar(torch.ones_like(magnitude), self._phase(first_frame, frames))
        previous = torch.zeros_like(angles)
        for _ in range(self.config.n_iter):
            rebuilt = stft(istft(magnitude * angles))
            accelerated = rebuilt - (self.config.momentum / (1 + self.config.momentum)) * previous
            angles = accelerated / accelerated.abs().clamp(min=1e-8)
            previous = rebuilt
        return istft(magnitude * angles) * self.config.gain

    def process(self, chunk: Chunk) -> Chunk:
        audio = self.vocode(chunk.frames, chunk.start - chunk.left)
        core = audio[chunk.left * self.hop : audio.shape[0] - chunk.right * self.hop]
        return Chunk(core.unsqueeze(-1), start=chunk.start * self.hop, is_last=chunk.is_last)
