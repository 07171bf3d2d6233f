"""Train the universal neural vocoder (vocoder_network.py) and export it for the voices.

    python -m voicestack.addons.recipes.vocoder [--minutes 40] [--steps 20000] [--threads 1]
    python -m voicestack.addons.recipes.vocoder --from-checkpoint ~/.cache/voicestack/train/vocoder.ckpt

Data: the corpus recipe's (`corpus.py`) training sentences in all of its espeak-ng voices
(`DEFAULT_VOICES`: three en-us variants and a British Klatt voice), so the vocoder is not
tied to one speaker. The corpus keeps audio for held-out sentences only, so the first
`--sentences` training sentences of each voice are synthesised again here and analysed with
blocks/library/mel.py; the held-out sentences are not read.

Training: random segments of `--segment-frames` mel frames and their audio, batches of
`--frames-per-batch` frames; losses on the vocoder's audio, all re-analysed from it, so they
ask for a waveform whose spectrogram is consistent and not only for plausible spectra:
- log-mel L1 (blocks/library/mel.py's analysis: the features the voices make and MCD measures);
- multi-resolution STFT (FFT 512, 1024, 2048): spectral convergence plus log-magnitude L1.
No adversarial loss: a discriminator would triple each step, and this recipe is meant to run
in well under an hour on one CPU thread. AdamW with warm-up and cosine decay; the schedule
follows whichever of `--steps` and `--minutes` runs out first.

Output (default under $VOICESTACK_CACHE): the checkpoint `train/vocoder.ckpt`, and
`vocoder/vocoder.pt2` (torch.export, dynamic batch up to 64 and dynamic length) with
`vocoder/vocoder.json`: its addon.json network declaration and how it was trained. `install`
makes it an addon's vocoder (bench/quality.py --vocoder swaps it into the voices that way);
the same file in several addons is loaded once per process (addons/loader.py shares by
digest). The bundled voices keep GriffinLim: docs/benchmarks.md has the figures and why.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch
from voicestack.addons.recipes import corpus
from voicestack.addons.recipes.addon_files import export, tensor, training_parser
from voicestack.addons.recipes.vocoder_network import NeuralVocoder
from voicestack.blocks.library.mel import LOG_FLOOR

#: The network's shape: a few ConvNeXt blocks at frame rate. Sized to keep the exported file
#: under 4.5 MB (a voice addon must stay under 15 MB) and a training run under an hour.
ARCHITECTURE = {"channels": 144, "blocks": 6, "kernel": 5}
MAX_BATCH, MAX_FRAMES = 64, 8192
FILE = "vocoder.pt2"
#: (n_fft, hop) of the multi-resolution STFT loss.
RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))


def default_export_dir() -> Path:
    from voicestack.addons.search_path import cache_dir

    return cache_dir() / "vocoder"


def default_checkpoint() -> Path:
    from voicestack.addons.search_path import cache_dir

    return cache_dir() / "train" / "vocoder.ckpt"


def build_network() -> NeuralVocoder:
    return NeuralVocoder(
        corpus.SAMPLE_RATE, corpus.N_FFT, corpus.HOP, corpus.N_MELS, **ARCHITECTURE
    )


# --- data -------------------------------------------------------------------------------------


def load_audio(dest: Path, voices: tuple[str, ...], sentences: int) -> list[tuple]:
    """(log-mel (T, 80), audio (T * hop,)) of the first `sentences` training sentences of each
    voice, the audio zero-padded to T * hop samples (the vocoder's output length).

    The log-mel is analysed from the audio made here, not taken from the corpus: libespeak-ng
    carries state from one sentence to the next (a sentence said twice in a row differs by a few
    samples), so the corpus's mel is of slightly different audio."""
    from tqdm import tqdm
    from voicestack.blocks.library.mel import MelAnalysis

    espeak = corpus._espeak()
    analysis = MelAnalysis(corpus.SAMPLE_RATE, corpus.N_FFT, corpus.HOP, corpus.WIN, corpus.N_MELS)
    pairs = []
    for voice in voices:
        utterances = corpus.load_split(dest, "train", voice)[:sentences]
        for u in tqdm(utterances, desc=f"audio {voice}", mininterval=5):
            audio, _ = espeak.synth(u.text, voice)
            wave = torch.from_numpy(audio)
            mel = analysis.log_mel(wave)
            padded = torch.zeros(mel.shape[0] * corpus.HOP)
            padded[: wave.shape[0]] = wave
            pairs.append((mel, padded))
    return pairs


def sample_batch(pairs: list[tuple], frames: int, count: int, rng: random.Random):
    """`count` random segments of `frames` frames: mel (B, frames, 80), audio (B, frames * hop).
    Utterances are drawn in proportion to their length, so every frame is equally likely."""
    weights = [max(1, m.shape[0] - frames + 1) for m, _ in pairs]
    mels, audios = [], []
    for index in rng.choices(range(len(pairs)), weights=weights, k=count):
        mel, audio = pairs[index]
        start = rng.randrange(max(1, mel.shape[0] - frames + 1))
        m = mel[start : start + frames]
        a = audio[start * corpus.HOP : (start + frames) * corpus.HOP]
        if m.shape[0] < frames:  # a short utterance: silence after it
            m = torch.cat([m, m.new_full((frames - m.shape[0], m.shape[1]), math.log(1e-5))])
            a = torch.cat([a, a.new_zeros(frames * corpus.HOP - a.shape[0])])
        mels.append(m)
        audios.append(a)
    return torch.stack(mels), torch.stack(audios)


# --- losses -----------------------------------------------------------------------------------


class Losses(torch.nn.Module):
    """Log-mel L1 and multi-resolution STFT loss between two batches of audio (B, samples)."""

    def __init__(self) -> None:
        super().__init__()
        from voicestack.blocks.library.mel import mel_filterbank

        self.register_buffer(
            "filters",
            mel_filterbank(corpus.SAMPLE_RATE, corpus.N_FFT, corpus.N_MELS),
        )
        for n_fft, _ in RESOLUTIONS:
            self.register_buffer(f"window_{n_fft}", torch.hann_window(n_fft))

    def magnitude(self, audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
        window = getattr(self, f"window_{n_fft}")
        spec = torch.stft(audio, n_fft, hop, n_fft, window, center=True, return_complex=True)
        return torch.sqrt(spec.real**2 + spec.imag**2 + 1e-9)  # (B, bins, frames)

    def forward(self, audio: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        def log(x: torch.Tensor) -> torch.Tensor:
            return torch.log(torch.clamp(x, min=LOG_FLOOR))

        out = {}
        sc = mag = 0.0
        for n_fft, hop in RESOLUTIONS:
            a, t = self.magnitude(audio, n_fft, hop), self.magnitude(target, n_fft, hop)
            if (n_fft, hop) == (corpus.N_FFT, corpus.HOP):
                out["mel_l1"] = (log(self.filters @ a) - log(self.filters @ t)).abs().mean()
            sc = sc + torch.linalg.norm(a - t) / torch.linalg.norm(t).clamp(min=1e-5)
            mag = mag + (log(a) - log(t)).abs().mean()
        out["stft_sc"] = sc / len(RESOLUTIONS)
        out["stft_log_mag"] = mag / len(RESOLUTIONS)
        return out


# --- training ---------------------------------------------------------------------------------


def train(
    pairs: list[tuple],
    steps: int,
    minutes: float | None,
    segment_frames: int,
    frames_per_batch: int,
    seed: int = 0,
) -> tuple[NeuralVocoder, dict]:
    from tqdm import tqdm

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model, losses = build_network(), Losses()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.99), weight_decay=1e-6)
    warmup = min(300, steps // 10)
    budget = minutes * 60 if minutes else None
    batch = max(1, frames_per_batch // segment_frames)
    started = time.perf_counter()

    def progress_now(step: int) -> float:
        """Fraction of the run done: the further of steps and minutes."""
        done = step / steps
        if budget is not None:
            done = max(done, (time.perf_counter() - started) / budget)
        return done

    model.train()
    averages: dict[str, float] = {}
    step = 0
    bar = tqdm(total=steps, desc="train vocoder", mininterval=5)
    while (done := progress_now(step)) < 1.0:
        scale = (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * done))
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 * max(scale, 0.02)
        mel, target = sample_batch(pairs, segment_frames, batch, rng)
        audio = model(mel, torch.ones(mel.shape[:2]))
        parts = losses(audio, target)
        loss = parts["mel_l1"] + parts["stft_sc"] + parts["stft_log_mag"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        for key, value in parts.items():
            averages[key] = 0.98 * averages.get(key, value.item()) + 0.02 * value.item()
        step += 1
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix({k: f"{v:.3f}" for k, v in averages.items()})
    bar.close()
    model.eval()
    report = {
        "architecture": ARCHITECTURE,
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": step,
        "segment_frames": segment_frames,
        "segments_per_batch": batch,
        "train_seconds": round(time.perf_counter() - started, 1),
        **{f"final_{k}": round(v, 4) for k, v in averages.items()},
        "threads": torch.get_num_threads(),
    }
    return model, report


# --- export -----------------------------------------------------------------------------------


def network_entry(receptive_field: int, file: str = FILE) -> dict:
    """The vocoder's declaration in a voice's addon.json `networks`."""
    return {
        "file": file,
        "role": "vocoder",
        "inputs": [
            tensor("mel", ["batch", "length", corpus.N_MELS]),
            tensor("mask", ["batch", "length"]),
        ],
        "outputs": [tensor("audio", ["batch", f"length*{corpus.HOP}"])],
        "receptive_field_frames": receptive_field,
    }


def export_vocoder(model: NeuralVocoder, folder: Path, report: dict) -> Path:
    """Write `vocoder.pt2` and `vocoder.json` (network declaration and training report)."""
    folder.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    frames = torch.export.Dim("frames", min=1, max=MAX_FRAMES)
    with torch.no_grad():
        export(
            model,
            (torch.randn(2, 20, corpus.N_MELS) - 5, torch.ones(2, 20)),
            {"mel": {0: batch, 1: frames}, "mask": {0: batch, 1: frames}},
            folder / FILE,
        )
    described = {"network": network_entry(model.receptive_field), "training": report}
    (folder / "vocoder.json").write_text(json.dumps(described, indent=2) + "\n")
    return folder / FILE


def read_export(folder: Path) -> tuple[Path, dict]:
    """The exported vocoder file and its addon.json declaration, for a voice recipe to copy."""
    file, meta = folder / FILE, folder / "vocoder.json"
    if not file.is_file() or not meta.is_file():
        raise FileNotFoundError(
            f"no vocoder in {folder}: train it with python -m voicestack.addons.recipes.vocoder"
        )
    return file, json.loads(meta.read_text())


def copy_into(folder: Path, export_dir: Path) -> dict:
    """Copy the exported vocoder into the addon folder `folder`; return its declaration for
    addon.json's `networks` (as network `vocoder`, which the Vocoder block reads)."""
    import shutil

    file, described = read_export(export_dir)
    shutil.copyfile(file, folder / FILE)
    return described["network"]


def install(folder: Path, export_dir: Path) -> dict:
    """Make the exported vocoder the vocoder of the addon in `folder`: its file is copied in,
    declared as network `vocoder`, and the stack's last block (the vocoder: GriffinLim or
    Vocoder) becomes `{"type": "Vocoder"}`. Returns the new addon.json."""
    config_file = folder / "addon.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config["stack"][-1].get("type") not in ("GriffinLim", "Vocoder"):
        raise ValueError(f"{folder}: the stack does not end in a vocoder block")
    config["networks"]["vocoder"] = copy_into(folder, export_dir)
    config["stack"][-1] = {"type": "Vocoder"}
    config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return config


def load_checkpoint(path: Path) -> tuple[NeuralVocoder, dict]:
    """The network and training report saved by a training run (our own file: plain tensors,
    read with weights_only)."""
    saved = torch.load(path, weights_only=True)
    model = build_network()
    model.load_state_dict(saved["model"])
    return model.eval(), saved["report"]


def main() -> None:
    parser = training_parser(__doc__, "vocoder", steps=20000)
    # Not an addon of its own: exported into the cache, for the voice recipes to install.
    parser.set_defaults(dest=default_export_dir(), checkpoint=default_checkpoint())
    parser.set_defaults(frames_per_batch=768)
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long")
    parser.add_argument("--segment-frames", type=int, default=48)
    parser.add_argument("--sentences", type=int, default=1000, help="per espeak-ng voice")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.from_checkpoint is not None:
        model, report = load_checkpoint(args.from_checkpoint)
    else:
        dest = args.corpus or corpus.default_dest()
        pairs = load_audio(dest, corpus.DEFAULT_VOICES, args.sentences)
        model, report = train(
            pairs, args.steps, args.minutes, args.segment_frames, args.frames_per_batch
        )
        report["sentences_per_voice"] = args.sentences
        report["voices"] = list(corpus.DEFAULT_VOICES)
        report["audio_hours"] = round(
            sum(a.shape[0] for _, a in pairs) / corpus.SAMPLE_RATE / 3600, 2
        )
        args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "report": report}, args.checkpoint)
    print(export_vocoder(model, args.dest, report))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
