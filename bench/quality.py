"""How intelligible and how close to espeak-ng the reference voices are, over the held-out set.

    .venv/bin/python bench/quality.py [--limit N] [--voice PATH ...] [--no-open] [--json OUT]
        [--service URL | --start-service] [--no-local] [--vocoder DIR]

Needs the corpus (`python -m voicestack.addons.recipes.corpus`) and the `bench` extra
(`pip install -e ".[bench]"`: pocketsphinx 5, jiwer, tqdm). Prints one markdown table, one row
per system:
- `espeak-ng audio`: the held-out sentences as espeak-ng (en-us) says them: the ceiling;
- `control: espeak-ng audio of another sentence`: each sentence scored against the audio of
  the next one: what the measures give for clear speech of the wrong words;
- `espeak-ng mel -> GriffinLim`: espeak-ng's log-mel through the GriffinLim block in one call
  (with the settings of the first voice that ends in it, else its defaults): the DSP vocoder's
  ceiling;
- `espeak-ng mel -> neural Vocoder`: the same through the trained universal vocoder
  (addons/recipes/vocoder.py) of the first voice that ends in a `Vocoder` block: its ceiling;
- with `--vocoder DIR` (a vocoder export: `vocoder.pt2` and `vocoder.json`), every voice is
  measured with that vocoder swapped in for its own (a copy of the addon, made by the recipe's
  `install`); its rows are named `<voice> + neural vocoder`;
- `<voice> one-shot`: the voice end to end, text to audio, the Upsampler handing the decoder
  the whole sentence as one chunk;
- `<voice> streamed`: the same voice through the local streaming runtime with the addon's own
  stack (chunks of 32 frames, each with its receptive field of context).
- `<voice>, streamed through the service` (with --service URL or --start-service): the same
  voice's audio fetched over HTTP from the Ray Serve service (`POST /v1/synthesize`, format
  `pcm`: 16-bit samples, as a client gets them), one request per sentence. --start-service
  starts a local Ray and Serve with the --voice addons (`tests/ray_service.py`,
  `running_service`, with SERVICE_PLACEMENT); --service URL uses one already running.

Columns:
- `MCD-DTW dB`: mel cepstral distortion against espeak-ng's audio of the same sentence after
  dynamic time warping. Both audios are analysed with `blocks/mel.py` (80 bands); cepstra are
  the cepstrum of the natural-log magnitude mel (`_cepstrum_matrix`: the DCT-II divided by the
  80 bands, the scale of SPTK's mel cepstra), coefficients 1 to 24 (c0, the level, left out),
  of the log-mel floored at 1e-4 (80 dB below full scale); per frame pair 10/ln(10) * sqrt(2 * sum of squared differences);
  averaged along the DTW path (steps (1,0), (0,1), (1,1)); mean over sentences. All frames
  count, pauses included.
- `dur ratio`: the system's audio length over espeak-ng's, mean over sentences.
- `open WER`: pocketsphinx 5 (its bundled US-English model and language model, audio resampled
  to 16 kHz) against the normalised text, scored by jiwer over all sentences.
- `sent-ID`: the same recogniser restricted to a JSGF grammar whose alternatives are the
  evaluated held-out sentences; the fraction recognised as exactly their own sentence.
- `words skipped / repeated` (attention voices): from the attention argmax of every decoder
  step (`AttentionWatch`), the words it never falls on, and the words it comes back to after
  having moved on. Local rows only: the service does not expose its decoder's attention.
- `RTF`: seconds of synthesis per second of audio, in this process, one request at a time
  (voices only; torch on the threads given by --threads). For the service row: the time of
  each whole HTTP request (sent to the last byte received) over the audio's duration.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

N_CEPSTRA = 24
#: Log-magnitude floor for MCD: 1e-4, 80 dB below full scale (speech peaks near 1). espeak-ng's
#: pauses are digital silence (the analysis floor, 1e-5); without a common floor, the faint
#: noise a vocoder leaves in a pause would dominate the distance.
MCD_LOG_FLOOR = math.log(1e-4)
RECOGNISER_RATE = 16000
#: Placement for --start-service: every block a tenth of a CPU (all fit the local Ray's 2), and
#: the voices' vocoder blocks in one universal deployment, as deploy/placements/ do.
SERVICE_PLACEMENT = {
    "default": {"num_cpus": 0.1},
    "blocks": {"GriffinLim": {"group": "universal"}, "Vocoder": {"group": "universal"}},
}


# --- measures ------------------------------------------------------------------------------------


def _cepstrum_matrix(n: int) -> torch.Tensor:
    """(n, n) matrix taking a log spectrum sampled at n band centres to cepstral coefficients
    on the usual scale, log|X(w)| = c0 + 2 * sum_k c_k cos(k w): c_k = 1/n sum_i x_i cos(pi k
    (i + 1/2) / n), a DCT-II divided by n. On mel bands this is the mel cepstrum that the
    standard MCD formula expects (SPTK's mcep is on the same scale, with an all-pass warp
    instead of the filterbank)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    return (torch.cos(math.pi / n * (i + 0.5) * k) / n).float()


class Cepstra:
    """Mel cepstra of audio with the voices' mel analysis."""

    def __init__(self) -> None:
        from voicestack.addons.recipes import corpus
        from voicestack.blocks.mel import MelAnalysis

        self.analysis = MelAnalysis(
            corpus.SAMPLE_RATE, corpus.N_FFT, corpus.HOP, corpus.WIN, corpus.N_MELS
        )
        self.dct = _cepstrum_matrix(corpus.N_MELS)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        log_mel = self.analysis.log_mel(torch.from_numpy(np.ascontiguousarray(audio, np.float32)))
        log_mel = torch.clamp(log_mel, min=MCD_LOG_FLOOR)
        return (log_mel @ self.dct.T)[:, 1 : N_CEPSTRA + 1].numpy().astype(np.float64)


def mcd_dtw(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean MCD (dB) along the DTW path between two cepstral sequences (frames, coefficients)."""
    const = 10.0 / math.log(10.0) * math.sqrt(2.0)
    diff = reference[:, None, :] - other[None, :, :]
    cost = const * np.sqrt((diff**2).sum(-1))
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    steps = np.zeros((n + 1, m + 1))
    total[0, 0] = 0.0
    for i in range(1, n + 1):
        row, prev = cost[i - 1], total[i - 1]
        prev_steps = steps[i - 1]
        # (1,1) and (1,0) moves are vectorised; the (0,1) move runs along the row.
        diag, up = prev[:-1], prev[1:]
        best = np.where(diag <= up, diag, up)
        best_steps = np.where(diag <= up, prev_steps[:-1], prev_steps[1:])
        current, current_steps = total[i], steps[i]
        left, left_steps = np.inf, 0.0
        for j in range(m):
            if left < best[j]:
                value, count = left, left_steps
            else:
                value, count = best[j], best_steps[j]
            left, left_steps = value + row[j], count + 1
            current[j + 1], current_steps[j + 1] = left, left_steps
    return float(total[n, m] / steps[n, m])


def words_of(text: str) -> str:
    """Lower-case words of a normalised sentence, as the recogniser's dictionary writes them."""
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower().replace("-", " ")).split())


def to_recogniser(audio: np.ndarray, rate: int) -> bytes:
    """16 kHz 16-bit PCM by band-limited (FFT) resampling of a whole utterance."""
    n = audio.shape[0]
    m = round(n * RECOGNISER_RATE / rate)
    spectrum = np.fft.rfft(audio.astype(np.float64))
    kept = np.zeros(m // 2 + 1, dtype=complex)
    k = min(kept.shape[0], spectrum.shape[0])
    kept[:k] = spectrum[:k]
    out = np.fft.irfft(kept, m) * (m / n)
    return (np.clip(out, -1.0, 1.0) * 32767).astype(np.int16).tobytes()


class Recogniser:
    """pocketsphinx 5 with its bundled US-English model: open vocabulary, and restricted to a
    grammar of the candidate sentences."""

    def __init__(self, candidates: list[str]):
        import pocketsphinx

        self.open = pocketsphinx.Decoder(samprate=RECOGNISER_RATE, loglevel="FATAL")
        self.grammar = pocketsphinx.Decoder(samprate=RECOGNISER_RATE, loglevel="FATAL")
        missing = sorted(
            {w for s in candidates for w in s.split() if self.grammar.lookup_word(w) is None}
        )
        if missing:
            raise ValueError(f"words missing from pocketsphinx's dictionary: {missing}")
        alternatives = " | ".join(f"( {s} )" for s in sorted(set(candidates)))
        self.grammar.add_jsgf_string(
            "heldout", f"#JSGF V1.0;\ngrammar heldout;\npublic <sentence> = {alternatives} ;\n"
        )
        self.grammar.activate_search("heldout")

    @staticmethod
    def _decode(decoder, pcm: bytes) -> str:
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    def transcribe(self, pcm: bytes) -> str:
        return self._decode(self.open, pcm)

    def identify(self, pcm: bytes) -> str:
        return self._decode(self.grammar, pcm)


class Scorer:
    """Scores audio of the held-out sentences against espeak-ng's: MCD-DTW, duration ratio,
    open-vocabulary hypothesis (unless `open_vocabulary` is off), sentence identification."""

    def __init__(self, heldout: list, open_vocabulary: bool = True):
        self.heldout = heldout
        self.references = [words_of(u.text) for u in heldout]
        self.recogniser = Recogniser(self.references)
        self.cepstra = Cepstra()
        self.reference_cepstra = [self.cepstra(u.audio.numpy()) for u in heldout]
        self.open_vocabulary = open_vocabulary

    def __call__(self, row: Row, index: int, audio: np.ndarray, rate: int) -> None:
        row.mcd.append(mcd_dtw(self.reference_cepstra[index], self.cepstra(audio)))
        row.ratio.append(audio.shape[0] / self.heldout[index].audio.shape[0])
        pcm = to_recogniser(audio, rate)
        if self.open_vocabulary:
            row.hypotheses.append(self.recogniser.transcribe(pcm))
        row.identified.append(self.recogniser.identify(pcm) == self.references[index])


# --- systems --------------------------------------------------------------------------------------


@dataclass
class Row:
    system: str
    mcd: list[float] = field(default_factory=list)
    ratio: list[float] = field(default_factory=list)
    hypotheses: list[str] = field(default_factory=list)
    identified: list[bool] = field(default_factory=list)
    words: int = 0
    skipped_words: int = 0
    repeated_words: int = 0
    synth_seconds: float = 0.0
    audio_seconds: float = 0.0

    def summary(self, references: list[str]) -> dict:
        import jiwer

        out = {
            "system": self.system,
            "sentences": len(self.mcd),
            "mcd_dtw_db": round(float(np.mean(self.mcd)), 2),
            "duration_ratio": round(float(np.mean(self.ratio)), 3),
            "sentence_id": round(float(np.mean(self.identified)), 3),
        }
        if self.hypotheses:
            out["open_wer"] = round(float(jiwer.wer(references, self.hypotheses)), 3)
        if self.words:
            out["words"] = self.words
            out["skipped_words"] = self.skipped_words
            out["repeated_words"] = self.repeated_words
        if self.synth_seconds:
            out["rtf"] = round(self.synth_seconds / self.audio_seconds, 3)
        return out


def _one_shot(addon):
    """The same addon (sharing its loaded networks) with the Upsampler making one chunk."""
    from voicestack.addons.loader import Addon

    data = addon.config.model_dump(mode="json")

    def widen(node):
        if isinstance(node, dict):
            if node.get("type") == "Upsampler":
                node["chunk_frames"] = node["max_frames"] = 20000
                node.pop("first_chunk_frames", None)
            if node.get("type") == "AttentionDecoder":
                node["chunk_frames"] = 20000
            for value in node.values():
                widen(value)
        elif isinstance(node, list):
            for value in node:
                widen(value)

    widen(data["stack"])
    changed = Addon(addon.root, type(addon.config).model_validate(data))
    changed._networks = addon._networks
    return changed


class AttentionWatch:
    """Records where an attention voice's decoder looks, to count skipped and repeated words.

    Wraps the AttentionDecoder block's network so that every step's attention argmax is kept.
    A word is skipped when no step's argmax falls on any of its symbols; repeated when the
    argmax comes back to it after having moved on to a later word.
    """

    def __init__(self, voice) -> None:
        blocks = [b for b in voice.stack.walk() if type(b).__name__ == "AttentionDecoder"]
        self.active = bool(blocks)
        self.argmax: list[int] = []
        if not self.active:
            return
        network = blocks[0].network
        run = network.run

        def recording_run(inputs, boundaries=None):
            out = run(inputs, boundaries)
            self.argmax.append(int(out["weights"].argmax()))
            return out

        network.run = recording_run
        self.frontend = voice.frontend

    def count(self, text: str) -> tuple[int, int, int]:
        """(words, skipped, repeated) of the sentence synthesised since the last call."""
        features = self.frontend({"text": self.frontend.sentences(text)[0]})
        starts = features["word_starts"].tolist()
        n = features["symbols"].shape[0]
        bounds = [*starts[1:], n + 1]
        word_of = {}
        for w, (a, b) in enumerate(zip(starts, bounds, strict=True)):
            for i in range(a, b - 1 if b <= n else n):
                word_of[i] = w
        visits = [word_of[i] for i in self.argmax if i in word_of]
        self.argmax = []
        seen, repeated = set(visits), 0
        skipped = sum(1 for w in range(len(starts)) if w not in seen)
        left: set[int] = set()
        previous = None
        for w in visits:
            if previous is not None and w != previous:
                left.add(previous)
                if w in left:
                    repeated += 1
            previous = w
        return len(starts), skipped, repeated


def vocoder_ceilings(addons) -> list[tuple[str, Callable[[torch.Tensor], np.ndarray]]]:
    """The vocoders to measure on espeak-ng's own mel, by row name: GriffinLim (the settings of
    the first voice that ends in it, else its defaults) and the neural Vocoder of the first
    voice that ends in one, each in one call on the whole sentence."""
    from voicestack.blocks.base import BuildEnv
    from voicestack.blocks.griffin_lim import GriffinLim
    from voicestack.blocks.vocoder import Vocoder

    ends = [(addon, dict(addon.config.stack[-1])) for addon in addons]
    addon, node = next(((a, n) for a, n in ends if n.get("type") == "GriffinLim"), (addons[0], {}))
    settings = {k: v for k, v in node.items() if k != "type"}
    griffin_lim = GriffinLim(GriffinLim.Config(**settings), BuildEnv(addon))
    out = [("espeak-ng mel -> GriffinLim", lambda mel: griffin_lim.vocode(mel, 0).numpy())]
    neural = next(((a, n) for a, n in ends if n.get("type") == "Vocoder"), None)
    if neural is not None:
        settings = {k: v for k, v in neural[1].items() if k != "type"}
        network = Vocoder(Vocoder.Config(**settings), BuildEnv(neural[0])).network
        out.append(
            (
                "espeak-ng mel -> neural Vocoder",
                lambda mel: network.run({"mel": mel})["audio"].numpy(),
            )
        )
    return out


@contextmanager
def swapped_vocoder(voices: list[Path], export_dir: Path | None) -> Iterator[list[Path]]:
    """Copies of the addon folders with the neural vocoder in `export_dir` installed as their
    vocoder (addons/recipes/vocoder.py's `install`); the folders themselves if None."""
    import shutil
    import tempfile

    if export_dir is None:
        yield voices
        return
    from voicestack.addons.recipes.vocoder import install

    with tempfile.TemporaryDirectory(prefix="quality-vocoder-") as scratch:
        copies = []
        for voice in voices:
            copy = Path(scratch) / voice.name
            shutil.copytree(voice, copy)
            install(copy, export_dir)
            copies.append(copy)
        yield copies


@contextmanager
def service_client(url: str | None, start_with: list[Path] | None) -> Iterator:
    """An HTTP client for the service: at `url`, or (`start_with`: addon folders) a local Ray
    and Serve started here and shut down afterwards; None when neither is asked for."""
    import httpx

    if start_with:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.ray_service import running_service

        with running_service([str(p) for p in start_with], SERVICE_PLACEMENT) as service:
            yield service["client"]
    elif url:
        with httpx.Client(base_url=url, timeout=300) as client:
            yield client
    else:
        yield None


def fetch(client, voice: str, text: str) -> tuple[np.ndarray, int]:
    """The service's audio of `text` (float samples in [-1, 1]) and its sample rate."""
    response = client.post("/v1/synthesize", json={"voice": voice, "text": text, "format": "pcm"})
    response.raise_for_status()
    samples = np.frombuffer(response.content, dtype="<i2")
    return samples.astype(np.float32) / 32767, int(response.headers["X-Sample-Rate"])


def measure_all(args, folders: list[Path], score: Scorer) -> list[Row]:
    """Every row: espeak-ng's audio and the control, the vocoders' ceilings, and the voices in
    the addon `folders` (local one-shot and streamed, and through the service if asked)."""
    from tqdm import tqdm
    from voicestack.addons.loader import load_addon
    from voicestack.addons.recipes import corpus
    from voicestack.runtime.local import synthesize
    from voicestack.runtime.voice import build_voice

    heldout, rate = score.heldout, corpus.SAMPLE_RATE
    addons = [load_addon(p) for p in folders]
    suffix = " + neural vocoder" if args.vocoder is not None else ""
    rows: list[Row] = []
    if not args.no_references:
        espeak = Row("espeak-ng audio")
        for i, u in enumerate(tqdm(heldout, desc=espeak.system)):
            score(espeak, i, u.audio.numpy(), rate)
        rows.append(espeak)
        # Control: each sentence's audio replaced by the next sentence's. Shows what the
        # measures give for speech of the wrong words (open WER skipped: slow, and moot here).
        control = Row("control: espeak-ng audio of another sentence")
        for i in tqdm(range(len(heldout)), desc=control.system):
            other = heldout[(i + 1) % len(heldout)].audio.numpy()
            control.mcd.append(mcd_dtw(score.reference_cepstra[i], score.cepstra(other)))
            control.ratio.append(other.shape[0] / heldout[i].audio.shape[0])
            control.identified.append(
                score.recogniser.identify(to_recogniser(other, rate)) == score.references[i]
            )
        rows.append(control)

    # The vocoders' ceilings: espeak-ng's own mel through each vocoder the voices use.
    for name, vocode in [] if args.no_references else vocoder_ceilings(addons):
        row = Row(name)
        for i, u in enumerate(tqdm(heldout, desc=row.system)):
            score(row, i, vocode(u.mel), rate)
        rows.append(row)

    for addon in [] if args.no_voices or args.no_local else addons:
        for mode, variant in (("one-shot", _one_shot(addon)), ("streamed", addon)):
            voice = build_voice(variant)
            watch = AttentionWatch(voice)
            row = Row(f"{addon.name}{suffix} {mode}")
            for i, u in enumerate(tqdm(heldout, desc=row.system)):
                started = time.perf_counter()
                audio = synthesize(voice, u.text)
                row.synth_seconds += time.perf_counter() - started
                if watch.active:
                    words, skipped, repeated = watch.count(u.text)
                    row.words += words
                    row.skipped_words += skipped
                    row.repeated_words += repeated
                row.audio_seconds += audio.shape[0] / rate
                score(row, i, audio, rate)
            rows.append(row)

    with service_client(args.service, folders if args.start_service else None) as client:
        for addon in [] if client is None or args.no_voices else addons:
            row = Row(f"{addon.name}{suffix}, streamed through the service")
            for i, u in enumerate(tqdm(heldout, desc=row.system)):
                started = time.perf_counter()
                audio, audio_rate = fetch(client, addon.name, u.text)
                row.synth_seconds += time.perf_counter() - started
                if audio_rate != rate:
                    sys.exit(f"{addon.name}: the service sends {audio_rate} Hz, not {rate}")
                row.audio_seconds += audio.shape[0] / rate
                score(row, i, audio, rate)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", type=Path, default=None, help="default: $VOICESTACK_CACHE/corpus"
    )
    parser.add_argument(
        "--voice",
        type=Path,
        action="append",
        default=None,
        help="addon folder (repeatable; default: every addon in addons/voices/)",
    )
    parser.add_argument("--limit", type=int, default=None, help="first N held-out sentences")
    parser.add_argument("--no-open", action="store_true", help="skip open-vocabulary WER (slow)")
    parser.add_argument(
        "--no-references",
        action="store_true",
        help="skip the espeak-ng and vocoder-ceiling rows (when another run measures them)",
    )
    parser.add_argument(
        "--no-voices", action="store_true", help="only the espeak-ng, control and vocoder rows"
    )
    parser.add_argument(
        "--no-local", action="store_true", help="skip the voices' local one-shot and streamed rows"
    )
    service = parser.add_mutually_exclusive_group()
    service.add_argument(
        "--service", default=None, help="also score each voice fetched from the service at URL"
    )
    service.add_argument(
        "--start-service",
        action="store_true",
        help="start the service (local Ray + Serve) with the voices and score each through it",
    )
    parser.add_argument(
        "--vocoder",
        type=Path,
        default=None,
        help="a neural vocoder export (vocoder.pt2, vocoder.json) to swap into every voice",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from voicestack.addons.recipes import corpus
    from voicestack.addons.search_path import BUNDLED

    heldout = corpus.load_split(args.corpus or corpus.default_dest(), "heldout")
    if args.limit:
        heldout = heldout[: args.limit]
    score = Scorer(heldout, open_vocabulary=not args.no_open)
    references = score.references
    voices = args.voice or sorted(p.parent for p in BUNDLED.glob("*/addon.json"))
    if not voices:
        sys.exit("no voice to measure: train one (make voices) or pass --voice")
    with swapped_vocoder(voices, args.vocoder) as folders:
        rows = measure_all(args, folders, score)

    summaries = [r.summary(references) for r in rows]
    print(f"\n{len(heldout)} held-out sentences, {torch.get_num_threads()} torch thread(s)\n")
    print(
        "| system | MCD-DTW dB | dur ratio | open WER | sent-ID | RTF | words skipped / repeated |"
    )
    print("|---|---|---|---|---|---|---|")
    for s in summaries:
        attention = (
            f"{s['skipped_words']} / {s['repeated_words']} of {s['words']}" if "words" in s else "-"
        )
        print(
            f"| {s['system']} | {s['mcd_dtw_db']:.2f} | {s['duration_ratio']:.3f} | "
            f"{s.get('open_wer', '-')} | {s['sentence_id']:.3f} | "
            f"{s.get('rtf', '-')} | {attention} |"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps({"sentences": len(heldout), "rows": summaries}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
