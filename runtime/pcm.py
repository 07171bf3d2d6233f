"""Float audio as 16-bit PCM: the one conversion every output uses (HTTP bodies, Wyoming, files
the CLI writes, the benches), so a sample becomes the same integer whichever way it leaves.

Here in runtime/ because both the local runtime's users and the service (serve_app/) may import
it; only numpy is imported.
"""

from __future__ import annotations

import numpy as np

#: Full scale: 1.0 is 32767 and -1.0 is -32767 (symmetric, so a sign flip is exact).
PCM16_SCALE = 32767.0


def pcm16(audio: np.ndarray) -> bytes:
    """Float mono samples in [-1, 1] as little-endian signed 16-bit PCM bytes.

    Values outside [-1, 1] are clipped (infinities too), NaN becomes silence, and each sample
    is scaled by 32767 and rounded to the nearest integer, ties to even (so the round trip
    error is at most 0.5/32767). A network can emit NaN or inf; a cast alone would turn them
    into whatever the platform makes of them.
    """
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected mono audio of shape (samples,), got shape {samples.shape}")
    samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.rint(np.clip(samples, -1.0, 1.0) * PCM16_SCALE).astype("<i2").tobytes()
