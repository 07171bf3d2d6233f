"""How far batching beside other streams moves a voice's audio from the same stream made alone,
in process: every decoder chunk run in one network call with 1 to 7 random other chunks (as a
Decoder replica batches the streams in flight), against the stream with each chunk alone.

Sets the cross-request tolerance of tests/same_audio.py for a Griffin-Lim voice; figures in
docs/reliability.md ("How close two requests for the same text must be").

    .venv/bin/python bench/batched_tolerance.py [--voice espeak-duration] [--rounds 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXTS = [
    "The weather is lovely today.",
    "Where did Maria put the 7 red books on Tuesday? I think she left them by the door.",
    "Hello there. How are you?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voice", default="espeak-duration")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    import numpy as np
    from voicestack.addons.loader import load_addon
    from voicestack.addons.search_path import find_voice
    from voicestack.runtime.local import synthesize
    from voicestack.runtime.pcm import pcm16
    from voicestack.runtime.voice import build_voice

    from tests.same_audio import batch_beside_other_streams, snr_db

    voice = build_voice(load_addon(find_voice(args.voice).path))
    decoder = voice.plan.segments[0].steps[0].block
    print("| text | round | max difference (LSB) | SNR (dB) |")
    print("|---|---|---|---|")
    for text in TEXTS:
        decoder.__dict__.pop("apply", None)  # each chunk alone, as the class does it
        alone = np.frombuffer(pcm16(synthesize(voice, text, seed=1)), "<i2")
        batch_beside_other_streams(decoder)
        for r in range(args.rounds):
            batched = np.frombuffer(pcm16(synthesize(voice, text, seed=1)), "<i2")
            assert batched.shape == alone.shape
            lsb = int(np.abs(batched.astype(int) - alone.astype(int)).max())
            print(f"| {text[:30]} | {r} | {lsb} | {snr_db(batched, alone):.1f} |", flush=True)


if __name__ == "__main__":
    main()
