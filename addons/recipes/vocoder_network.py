"""The universal neural vocoder's network: log-mel frames to audio, cheap on a CPU.

Vocos-like (Siuzdak 2023): every layer runs at the frame rate, and the network predicts each
frame's short-time spectrum (log-magnitude and phase) for an inverse STFT, instead of
upsampling to the sample rate with transposed convolutions as HiFi-GAN does. Almost all of
the work is a few 1x1 convolutions over ~86 frames a second.

- **Bounded receptive field.** Convolutions are non-causal with a fixed kernel, and the
  inverse STFT adds each frame into its own window only. A sample of frame t depends on mel
  frames t - R .. t + R, R = `receptive_field` (the convolutions' reach plus the frames whose
  windows overlap it), so a chunk with R frames of context on each side gives exactly the
  audio of a one-shot run (tests/test_neural_vocoder.py).
- **Masking.** Each convolution's input is multiplied by the mask and padded frames add
  nothing to the overlap-add nor to its window normalisation: padding acts like the zero
  padding at an utterance's edge, so batched and static-shape calls give each item what it
  gets alone (the convention of every addon network, see tiny_networks.py).
- **Exportable with plain ops.** The inverse real DFT is two small real matmul stages and the
  overlap-add is four shifted adds, not `torch.istft`: no complex tensors in the exported
  graph (accelerator compilers often lack them), and the DFT tables are ordinary float
  buffers, which the archive's safety inspection (addons/archive.py) accepts like any weight.

Framing is blocks/library/mel.py's (centred frames, `torch.stft(center=True)`): frame t is
centred on sample t * hop, and T frames give T * hop samples, as the GriffinLim block gives.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from voicestack.blocks.library.mel import LOG_FLOOR, mel_filterbank

#: Log-mel values span about log(1e-5) = -11.5 (silence) to +2; this maps them to about [-1, 3]
#: before the first layer, so the network starts in a sensible range.
MEL_SHIFT, MEL_SCALE = 5.0, 0.25
#: Largest log-magnitude the network may output (exp(7) is far above any speech spectrum), so
#: an untrained or surprised network cannot overflow.
MAX_LOG_MAGNITUDE = 7.0


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (kernel k) -> LayerNorm -> 1x1 up (x3) -> GELU -> 1x1 down, residual.

    The depthwise convolution is the only layer that mixes frames: reach k // 2 each side."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.depthwise = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.up = nn.Linear(channels, 3 * channels)
        self.down = nn.Linear(3 * channels, channels)
        self.scale = nn.Parameter(torch.full((channels,), 0.1))
        self.reach = kernel // 2

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, C, T), mask (B, 1, T)."""
        y = self.depthwise(x * mask).transpose(1, 2)
        y = self.down(torch.nn.functional.gelu(self.up(self.norm(y))))
        return x + (self.scale * y).transpose(1, 2)


class InverseSTFT(nn.Module):
    """Per-frame spectra (real, imaginary) to audio: windowed inverse real DFT, overlap-add,
    division by the sum of squared windows of the frames present (mask), as torch.istft with
    center=True does. Needs hop to divide n_fft.

    The inverse DFT is factored in two stages (Cooley-Tukey, n_fft = n1 * n2, 32 * 32 for
    1024): two small DFT matrices and a twiddle table instead of one (n_fft + 2, n_fft) basis,
    so the archive stores 8 thousand numbers instead of a million (4 MB) and a frame costs
    about 200 thousand multiply-adds instead of a million."""

    def __init__(self, n_fft: int, hop: int, window: torch.Tensor):
        super().__init__()
        if n_fft % hop:
            raise ValueError(f"hop {hop} must divide n_fft {n_fft}")
        self.n_fft, self.hop, self.overlap = n_fft, hop, n_fft // hop
        self.n1 = 2 ** (int(math.log2(n_fft)) // 2)
        self.n2 = n_fft // self.n1
        if self.n1 * self.n2 != n_fft:
            raise ValueError(f"n_fft {n_fft} must be a power of two")

        def rotation(rows: int, cols: int, period: int) -> torch.Tensor:
            """exp(2 pi i r c / period) for r < rows, c < cols: (2, rows, cols), real and imag."""
            angle = (
                2 * math.pi / period * torch.outer(torch.arange(rows), torch.arange(cols)).double()
            )
            return torch.stack([torch.cos(angle), torch.sin(angle)]).float()

        self.register_buffer("stage1", rotation(self.n1, self.n1, self.n1))  # [n1 out, k1]
        self.register_buffer("twiddle", rotation(self.n1, self.n2, n_fft))  # [n1, k2]
        self.register_buffer("stage2", rotation(self.n2, self.n2, self.n2))  # [k2, n2 out]
        self.register_buffer("window_frames", (window / n_fft).float())
        self.register_buffer("window_square", (window**2).reshape(self.overlap, hop).float())

    @property
    def reach(self) -> tuple[int, int]:
        """Frames before and after t whose windows overlap samples t*hop .. (t+1)*hop - 1."""
        half = self.overlap // 2
        return half - 1, half

    def inverse_dft(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        """(B, T, bins) half spectrum -> (B, T, n_fft) real signal times n_fft, as
        torch.fft.irfft(X) * n_fft (imaginary parts at DC and Nyquist ignored)."""
        # The full spectrum by Hermitian symmetry, X[N - k] = conj(X[k]).
        re = torch.cat([real, real[..., 1:-1].flip(-1)], dim=-1)
        im = torch.cat([imag, -imag[..., 1:-1].flip(-1)], dim=-1)
        b, t = re.shape[0], re.shape[1]
        # k = n2 * k1 + k2: rows k1, columns k2.
        re = re.reshape(b, t, self.n1, self.n2)
        im = im.reshape(b, t, self.n1, self.n2)
        c1, s1 = self.stage1[0], self.stage1[1]
        a_re = c1 @ re - s1 @ im  # [n1, k2]
        a_im = c1 @ im + s1 @ re
        cw, sw = self.twiddle[0], self.twiddle[1]
        b_re = a_re * cw - a_im * sw
        b_im = a_re * sw + a_im * cw
        # x[n1 + n1_count * n2] = Re(sum_k2 B[n1, k2] exp(2 pi i k2 n2 / n2_count))
        x = b_re @ self.stage2[0] - b_im @ self.stage2[1]  # [n1, n2]
        return x.transpose(-1, -2).reshape(b, t, self.n_fft)

    def overlap_add(self, segments: torch.Tensor) -> torch.Tensor:
        """(B, T, overlap, hop) -> (B, T * hop): segment s of frame t lands in block t + s - half,
        where block b holds samples b*hop .. (b+1)*hop - 1; blocks outside 0 .. T-1 are dropped."""
        frames = segments.shape[1]
        shifted = [
            torch.nn.functional.pad(segments[:, :, s], (0, 0, s, self.overlap - 1 - s))
            for s in range(self.overlap)
        ]
        total = shifted[0]
        for more in shifted[1:]:
            total = total + more
        half = self.overlap // 2
        return total[:, half : half + frames].reshape(segments.shape[0], -1)

    def forward(self, real: torch.Tensor, imag: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """real, imag (B, T, bins); mask (B, T) -> audio (B, T * hop)."""
        m = mask.unsqueeze(-1)
        frames = self.inverse_dft(real * m, imag * m) * self.window_frames
        b, t = frames.shape[0], frames.shape[1]
        audio = self.overlap_add(frames.reshape(b, t, self.overlap, self.hop))
        envelope = self.overlap_add(mask[:, :, None, None] * self.window_square)
        return audio / torch.clamp(envelope, min=1e-3)


class NeuralVocoder(nn.Module):
    """mel (B, T, n_mels) log-mel, mask (B, T) -> audio (B, T * hop).

    Conv in (kernel 3) -> ConvNeXt blocks -> LayerNorm -> per-frame log-magnitude and phase of
    n_fft // 2 + 1 bins -> inverse STFT. The log-magnitude is a correction to a fixed prior: the
    least-squares inverse of the mel filterbank (what GriffinLim starts from), which gives the
    network the spectral envelope from its first step."""

    def __init__(
        self,
        sample_rate: int = 22050,
        n_fft: int = 1024,
        hop: int = 256,
        n_mels: int = 80,
        channels: int = 256,
        blocks: int = 6,
        kernel: int = 5,
        f_min: float = 0.0,
        f_max: float | None = None,
    ):
        super().__init__()
        self.hop, self.bins = hop, n_fft // 2 + 1
        self.conv_in = nn.Conv1d(n_mels, channels, 3, padding=1)
        self.blocks = nn.ModuleList(ConvNeXtBlock(channels, kernel) for _ in range(blocks))
        self.norm = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, 2 * self.bins)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        fb = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max)
        self.register_buffer("inverse_mel", torch.linalg.pinv(fb).T.contiguous())  # (mels, bins)
        self.istft = InverseSTFT(n_fft, hop, torch.hann_window(n_fft))
        before, after = self.istft.reach
        self.convolution_reach = 1 + sum(block.reach for block in self.blocks)
        #: Frames of context each side that make a chunk's audio equal a one-shot run's.
        self.receptive_field = self.convolution_reach + max(before, after)

    def spectra(self, mel: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each frame's real and imaginary parts, (B, T, bins) each, before masking."""
        m = mask.unsqueeze(1)
        x = self.conv_in(((mel + MEL_SHIFT) * MEL_SCALE).transpose(1, 2) * m)
        for block in self.blocks:
            x = block(x, m)
        log_magnitude, phase = self.head(self.norm(x.transpose(1, 2))).split(self.bins, dim=-1)
        prior = torch.log(torch.clamp(torch.exp(mel) @ self.inverse_mel, min=LOG_FLOOR))
        magnitude = torch.exp(torch.clamp(prior + log_magnitude, max=MAX_LOG_MAGNITUDE))
        return magnitude * torch.cos(phase), magnitude * torch.sin(phase)

    def forward(self, mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        real, imag = self.spectra(mel, mask)
        return self.istft(real, imag, mask)
