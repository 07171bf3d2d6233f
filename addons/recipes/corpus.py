"""The reference voices' training data, made offline: sentences, espeak-ng speech, the serving
front end's symbols, per-symbol durations in mel frames, and log-mels.

    python -m voicestack.addons.recipes.corpus [--train 3000] [--heldout 250] [--dest DIR]

Everything comes from what is installed:
- **Sentences** from `sentences()`: a seeded generator of grammatical English sentences
  (statements, questions, numbers, times, names, places), mixed for phonetic coverage with
  prose sentences from Python's own documentation (`pydoc_data.topics`, training only). The
  held-out set is generated from its own seed and no training sentence equals a held-out one.
- **Symbols** from the serving front end (`Frontend`: normalisation, then phonemizer over
  espeakng-loader's libespeak-ng 1.52), so a voice trained here is fed exactly these ids.
- **Speech** from the same libespeak-ng through ctypes (`Espeak`), initialised with phoneme
  events: its synth callback reports each phoneme with the sample at which it starts.
- **Durations** by `align`: the front end's phonemes are aligned to espeak's phoneme events
  (an edit-distance alignment, because phonemizer and the synthesiser can differ on a few
  phonemes across word boundaries) and each symbol gets the frames of its events. Stress marks
  and word separators get none; pauses go to the punctuation or word separator where they
  fall. Durations sum exactly to the log-mel's frame count.
- **Log-mels** from `blocks/library/mel.py`'s `MelAnalysis`, the analysis the GriffinLim block
  inverts.

Several espeak-ng voices (variants of en-us) can be generated, for a vocoder that should learn
more than one speaker; the acoustic models train on the first.

The corpus goes to a cache folder (default `$VOICESTACK_CACHE/corpus`), never into the
repository: one `<split>-<voice>.pt` per split and voice, plus `meta.json`.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SAMPLE_RATE, HOP, N_FFT, WIN, N_MELS = 22050, 256, 1024, 1024, 80


def audio_config() -> dict:
    """The `audio` of addon.json for a voice trained on this corpus's log-mels."""
    return {
        "sample_rate": SAMPLE_RATE,
        "hop_length": HOP,
        "n_mels": N_MELS,
        "n_fft": N_FFT,
        "win_length": WIN,
    }


#: Bumped when what the recipe makes changes, so a cached corpus is rebuilt.
CORPUS_VERSION = "1"
DEFAULT_VOICES = ("en-us", "en-us+f3", "en-us+m3", "en+klatt2")
HELDOUT_SEED, TRAIN_SEED = 20261127, 7
#: Training excludes this many held-out sentences, so any held-out set up to it stays unseen.
HELDOUT_MAX = 1000

# --- sentences ------------------------------------------------------------------------------

# fmt: off
_NAMES = [
    "Maria", "John", "Aisha", "Peter", "Chen", "Olivia", "Samuel", "Fatima", "Lucas", "Emma",
    "Noah", "Grace", "Ahmed", "Sofia", "Daniel", "Hannah", "Ravi", "Julia", "Omar", "Chloe",
    "Victor", "Nina", "George", "Laura", "Kenji", "Martha", "Pablo", "Ingrid", "Tom", "Alice",
    "Ben", "Rosa", "Felix", "Clara", "Hugo", "Irene", "Leo", "Mia", "Oscar", "Ruth",
]
_PLACES = [
    "the station", "the old library", "the market", "the hospital", "the river", "the school",
    "the bakery", "the museum", "the harbour", "the airport", "the park", "the office",
    "the garden", "the village", "the mountains", "the beach", "the city centre", "the farm",
    "London", "Paris", "Chicago", "Tokyo", "Berlin", "Madrid", "Boston", "Sydney", "Toronto",
]
_THINGS = [
    "book", "letter", "bicycle", "umbrella", "ticket", "map", "key", "basket", "camera",
    "bottle", "chair", "lamp", "coat", "clock", "picture", "box", "phone", "cake", "guitar",
    "window", "newspaper", "sandwich", "jacket", "candle", "bridge", "engine", "violin", "shirt",
]
_ADJECTIVES = [
    "red", "small", "heavy", "quiet", "bright", "old", "new", "strange", "beautiful", "broken",
    "yellow", "wooden", "famous", "cold", "warm", "empty", "lovely", "dark", "clean", "tiny",
]
#: (base, past, third person)
_VERBS = [
    ("find", "found", "finds"), ("carry", "carried", "carries"), ("sell", "sold", "sells"),
    ("paint", "painted", "paints"), ("open", "opened", "opens"), ("bring", "brought", "brings"),
    ("buy", "bought", "buys"), ("lose", "lost", "loses"), ("fix", "fixed", "fixes"),
    ("clean", "cleaned", "cleans"), ("borrow", "borrowed", "borrows"), ("hide", "hid", "hides"),
    ("draw", "drew", "draws"), ("wrap", "wrapped", "wraps"), ("send", "sent", "sends"),
    ("keep", "kept", "keeps"), ("choose", "chose", "chooses"), ("watch", "watched", "watches"),
]
_MOTION = [("walk", "walked"), ("drive", "drove"), ("run", "ran"), ("travel", "travelled"),
           ("fly", "flew"), ("hurry", "hurried"), ("cycle", "cycled"), ("swim", "swam")]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]
_TIMES_OF_DAY = ["in the morning", "at night", "after lunch", "before dinner", "at noon",
                 "in the evening", "yesterday", "last week", "every day", "tomorrow"]
_FEELINGS = ["happy", "tired", "surprised", "worried", "hungry", "excited", "nervous", "calm"]
_WEATHER = ["raining", "snowing", "sunny", "windy", "foggy", "cloudy", "freezing", "warm"]
_JOBS = ["teacher", "doctor", "pilot", "farmer", "baker", "painter", "nurse", "driver",
         "engineer", "musician", "lawyer", "gardener", "writer", "chef", "scientist"]
# fmt: on


def _number(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.5:
        return str(rng.randint(2, 99))
    if kind < 0.8:
        return str(rng.randint(100, 999))
    return f"{rng.randint(1, 9)},{rng.randint(0, 999):03d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(1, 12)}:{rng.choice(['00', '15', '30', '45', '05', '20', '50'])}"


def _plural(thing: str) -> str:
    if thing.endswith(("x", "ch", "sh")):
        return thing + "es"
    if thing == "knife":
        return "knives"
    return thing + "s"


def _sentence(rng: random.Random) -> str:
    n1, n2 = rng.sample(_NAMES, 2)
    place, thing, adj = rng.choice(_PLACES), rng.choice(_THINGS), rng.choice(_ADJECTIVES)
    base, past, third = rng.choice(_VERBS)
    move, moved = rng.choice(_MOTION)
    when, day, month = rng.choice(_TIMES_OF_DAY), rng.choice(_DAYS), rng.choice(_MONTHS)
    num, job = _number(rng), rng.choice(_JOBS)
    templates = [
        lambda: f"{n1} {past} the {adj} {thing} near {place} {when}.",
        lambda: f"Did {n1} {base} the {adj} {thing} on {day}?",
        lambda: f"Where did {n2} {base} the {thing}?",
        lambda: f"{n1} and {n2} {moved} to {place} on {day} {when}.",
        lambda: f"There are {num} {adj} {_plural(thing)} in {place}.",
        lambda: f"How many {_plural(thing)} did {n1} {base} last {month}?",
        lambda: f"The {job} {past} {num} {_plural(thing)} before {_time(rng)}.",
        lambda: f"Why is {n1} so {rng.choice(_FEELINGS)} today?",
        lambda: f"My train leaves {place} at {_time(rng)} on {day}.",
        lambda: f"It was {rng.choice(_WEATHER)} when {n1} {moved} to {place}.",
        lambda: f"{n1} {third} a {adj} {thing} every {day}.",
        lambda: f"Could you {base} the {thing} for {n2}, please?",
        lambda: f"The {adj} {thing} costs {num} dollars.",
        lambda: f"On {month} {rng.randint(1, 28)}, {n1} met a {job} from {place}.",
        lambda: f"{n1} told {n2} that the {thing} was {adj}.",
        lambda: f"Is the {thing} in {place} really {adj}?",
        lambda: f"We waited {num} minutes for {n1} at {place}.",
        lambda: f"After the storm, {n1} {past} a {adj} {thing} by {place}.",
        lambda: f"Who wants to {move} to {place} with {n2}?",
        lambda: f"In {rng.randint(1950, 2030)}, {n1} became a {job} in {place}.",
        lambda: f"{n2} asked whether the {job} had {past} the {thing}.",
        lambda: f"Please {base} {num} {_plural(thing)} before {day}.",
        lambda: f"When will {n1} {move} home from {place}?",
        lambda: f"The {job} was {rng.choice(_FEELINGS)}, but {n1} was {rng.choice(_FEELINGS)}.",
        lambda: f"{n1} never {third} {_plural(thing)} {when}.",
        lambda: f"Have you seen the {adj} {thing} that {n2} {past}?",
        lambda: (
            f"Room {rng.randint(2, 999)} is on the {rng.choice(['first', 'second', 'third', 'fifth', 'tenth'])} floor."
        ),
        lambda: f"{n1} was born on {month} {rng.randint(1, 28)}, {rng.randint(1930, 2020)}.",
        lambda: f"What time does the {job} {move} to {place}?",
        lambda: f"Yes, {n1} {past} it, and {n2} {past} the {thing}.",
    ]
    return rng.choice(templates)()


def _prose_sentences() -> list[str]:
    """Plain-prose sentences of Python's documentation (shipped with Python), for coverage of
    words and phonemes that the templates lack. Code and symbols are left out."""
    from pydoc_data.topics import topics

    found = []
    plain = re.compile(r"^[A-Z][A-Za-z ,']+[.?]$")
    for text in topics.values():
        for piece in re.split(r"(?<=[.?])\s+", " ".join(text.split())):
            words = piece.split()
            if 5 <= len(words) <= 18 and plain.match(piece):
                found.append(piece)
    return sorted(set(found))


def sentences(split: str, n: int) -> list[str]:
    """`n` distinct sentences of a split: "heldout" (generator only, fixed seed) or "train"
    (generator and documentation prose, none equal to a held-out sentence)."""
    if split == "heldout":
        if n > HELDOUT_MAX:
            raise ValueError(f"at most {HELDOUT_MAX} held-out sentences, not {n}")
        rng = random.Random(HELDOUT_SEED)
        out: list[str] = []
        while len(out) < n:
            s = _sentence(rng)
            if s not in out:
                out.append(s)
        return out
    if split != "train":
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    # Held-out sets are prefixes of one seeded sequence: excluding the longest excludes all.
    heldout = set(sentences("heldout", HELDOUT_MAX))
    rng = random.Random(TRAIN_SEED)
    prose = [s for s in _prose_sentences() if s not in heldout]
    rng.shuffle(prose)
    out_set: dict[str, None] = dict.fromkeys(prose[: n // 4])
    while len(out_set) < n:
        s = _sentence(rng)
        if s not in heldout:
            out_set[s] = None
    out = list(out_set)
    rng.shuffle(out)
    return out


# --- espeak-ng through ctypes ----------------------------------------------------------------

_EVENT_WORD, _EVENT_SENTENCE, _EVENT_END, _EVENT_PHONEME = 1, 2, 5, 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS, _INITIALIZE_PHONEME_IPA, _INITIALIZE_DONT_EXIT = 0x1, 0x2, 0x8000
_CHARS_UTF8 = 1


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """espeak_EVENT of speak_lib.h."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class PhonemeEvent:
    """One phoneme espeak-ng spoke: its IPA (stress marks removed; "" for a pause) and the
    sample at which it starts."""

    phoneme: str
    sample: int
    stress: str = ""


#: espeak-ng's default speaking rate, and its parameter number (espeakRATE).
DEFAULT_WPM, _PARAMETER_RATE = 175, 1


class Espeak:
    """espeakng-loader's libespeak-ng, synthesising to memory with phoneme events.

    One per process: the library keeps global state. Not thread-safe.
    """

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS,
            0,
            espeakng_loader.get_data_path().encode(),
            _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA | _INITIALIZE_DONT_EXIT,
        )
        if rate != SAMPLE_RATE:
            raise RuntimeError(f"libespeak-ng reports {rate} Hz, expected {SAMPLE_RATE}")
        self._chunks: list[np.ndarray] = []
        self._events: list[PhonemeEvent] = []
        # Kept on self: ctypes must not collect the callback while the library holds it.
        self._callback = _CALLBACK(self._on_synth)
        self._lib.espeak_SetSynthCallback(self._callback)
        self._voice = ""

    def _on_synth(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != 0:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                name = event.id.string.decode("utf-8", "replace")
                stress = "".join(c for c in name if c in "ˈˌ")
                self._events.append(
                    PhonemeEvent(name.replace("ˈ", "").replace("ˌ", ""), event.sample, stress)
                )
            i += 1
        return 0

    def synth(
        self, text: str, voice: str = "en-us", words_per_minute: int = DEFAULT_WPM
    ) -> tuple[np.ndarray, list[PhonemeEvent]]:
        """Audio (float32 in [-1, 1], 22050 Hz) of `text` and its phoneme events, spoken at
        `words_per_minute` (espeak-ng's rate; the corpus is made at its default)."""
        self._lib.espeak_SetParameter(_PARAMETER_RATE, int(words_per_minute), 0)
        if voice != self._voice:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            self._voice = voice
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        status = self._lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status} on {text!r}")
        self._lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio.astype(np.float32) / 32768.0, list(self._events)


# --- alignment --------------------------------------------------------------------------------


def frame_count(samples: int) -> int:
    """Frames of `MelAnalysis.log_mel` (centred STFT) for audio of `samples` samples."""
    return samples // HOP + 1


@dataclass(frozen=True)
class Alignment:
    durations: list[int]  # frames per symbol, summing to frame_count(samples)
    matched: int  # front-end phonemes matched to an identical espeak phoneme
    substituted: int  # ... to a different one
    missing: int  # front-end phonemes espeak did not speak (0 frames)
    extra: int  # espeak phonemes the front end does not have (merged into a neighbour)


def _edit_alignment(a: list[str], b: list[str]) -> list[tuple[int | None, int | None]]:
    """Levenshtein alignment of a and b as (index in a or None, index in b or None) pairs."""
    n, m = len(a), len(b)
    cost = np.zeros((n + 1, m + 1), dtype=np.int32)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(
                cost[i - 1, j - 1] + (a[i - 1] != b[j - 1]),
                cost[i - 1, j] + 1,
                cost[i, j - 1] + 1,
            )
    pairs: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i, j] == cost[i - 1, j - 1] + (a[i - 1] != b[j - 1]):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            pairs.append((i - 1, None))
            i -= 1
        else:
            pairs.append((None, j - 1))
            j -= 1
    return pairs[::-1]


def align(symbols: list[str], events: list[PhonemeEvent], samples: int) -> Alignment:
    """Frames per symbol of the front end's `symbols` for espeak audio of `samples` samples
    whose phonemes are `events`. Sums exactly to `frame_count(samples)`."""
    from voicestack.blocks.text.phonemes import PAD, STRESS_MARKS, WORD_SEPARATOR
    from voicestack.blocks.text.text_normalization import SPOKEN_PUNCTUATION

    not_phoneme = {PAD, WORD_SEPARATOR, *STRESS_MARKS, *SPOKEN_PUNCTUATION}
    pause_holders = {WORD_SEPARATOR, *SPOKEN_PUNCTUATION}
    phonemes = [i for i, s in enumerate(symbols) if s not in not_phoneme]
    spoken = [j for j, e in enumerate(events) if e.phoneme]
    if not phonemes:
        raise ValueError(f"no phoneme among the symbols {symbols}")

    # Owner symbol of each event.
    owner: list[int | None] = [None] * len(events)
    matched = substituted = missing = extra = 0
    for p, q in _edit_alignment(
        [symbols[i] for i in phonemes], [events[j].phoneme for j in spoken]
    ):
        if p is not None and q is not None:
            owner[spoken[q]] = phonemes[p]
            if symbols[phonemes[p]] == events[spoken[q]].phoneme:
                matched += 1
            else:
                substituted += 1
        elif p is not None:
            missing += 1
        else:
            extra += 1
    # Extra phonemes: the previous owner (the next one at the start).
    previous = None
    for j, e in enumerate(events):
        if e.phoneme and owner[j] is None:
            owner[j] = previous
        if owner[j] is not None:
            previous = owner[j]
    first_owner = next((o for o in owner if o is not None), phonemes[0])
    for j, e in enumerate(events):
        if e.phoneme and owner[j] is None:
            owner[j] = first_owner
    # Pauses: the first separator or punctuation mark after the previous spoken phoneme's
    # symbol and before the next phoneme; else that phoneme itself.
    previous = None
    for j, e in enumerate(events):
        if e.phoneme:
            previous = owner[j]
            continue
        start = 0 if previous is None else previous + 1
        holder = None
        for i in range(start, len(symbols)):
            if symbols[i] in pause_holders:
                holder = i
                break
            if symbols[i] not in not_phoneme:
                break
        owner[j] = holder if holder is not None else (previous if previous is not None else 0)
        previous = owner[j]

    # Samples per symbol: each event runs to the next event (the last to the end); audio
    # before the first event belongs to the first owner.
    length = [0] * len(symbols)
    for j, e in enumerate(events):
        end = events[j + 1].sample if j + 1 < len(events) else samples
        start = 0 if j == 0 else e.sample
        length[owner[j]] += max(0, min(end, samples) - min(start, samples))  # type: ignore[index]  # every event has its owner by now
    if not events:
        length[phonemes[0]] = samples
    # Owners are in symbol order, so cumulative sample boundaries are monotone; round them to
    # frames and make the last one the log-mel's frame count.
    total = frame_count(samples)
    bounds = np.round(np.cumsum(length) / HOP).astype(np.int64)
    bounds[-1] = total
    bounds = np.minimum(bounds, total)
    durations = np.diff(np.concatenate([[0], bounds])).tolist()
    return Alignment(durations, matched, substituted, missing, extra)


# --- the corpus --------------------------------------------------------------------------------


def default_dest() -> Path:
    from voicestack.addons.search_path import cache_dir

    return cache_dir() / "corpus"


@dataclass
class Utterance:
    text: str  # the normalised sentence the front end and espeak were given
    symbols: torch.Tensor  # (N,) int64 ids into ENGLISH_SYMBOLS
    durations: torch.Tensor  # (N,) int64 frames, summing to mel.shape[0]
    mel: torch.Tensor  # (T, 80) float32 log-mel
    audio: torch.Tensor | None  # (samples,) float32, kept for held-out sentences


def make_utterances(
    texts: list[str],
    voice: str,
    keep_audio: bool,
    progress: str | None = None,
) -> tuple[list[Utterance], dict[str, int]]:
    """Utterances of `texts` in espeak voice `voice`, and alignment counts. Texts the front end
    cannot speak as one sentence are skipped (counted in `skipped`)."""
    from voicestack.addons.build_env import AddonBuildEnv
    from voicestack.blocks.library.mel import MelAnalysis
    from voicestack.blocks.text.frontend import Frontend

    frontend = Frontend(Frontend.Config(language="en-us", on_unknown="error"), AddonBuildEnv())
    espeak = _espeak()
    analysis = MelAnalysis(SAMPLE_RATE, N_FFT, HOP, WIN, N_MELS)
    stats = dict(matched=0, substituted=0, missing=0, extra=0, skipped=0, frames=0)
    out = []
    shown = texts
    if progress is not None:  # tqdm is the `voices` extra's; tests run without it
        from tqdm import tqdm

        shown = tqdm(texts, desc=progress, mininterval=2)
    for text in shown:
        parts = frontend.sentences(text)
        if len(parts) != 1:
            stats["skipped"] += 1
            continue
        sentence = parts[0]
        try:
            ids = frontend({"text": sentence})["symbols"]
        except ValueError:
            stats["skipped"] += 1
            continue
        audio, events = espeak.synth(sentence, voice)
        result = align([frontend.symbols[i] for i in ids.tolist()], events, len(audio))
        wave = torch.from_numpy(audio)
        mel = analysis.log_mel(wave)
        assert mel.shape[0] == sum(result.durations)
        for key in ("matched", "substituted", "missing", "extra"):
            stats[key] += getattr(result, key)
        stats["frames"] += mel.shape[0]
        out.append(
            Utterance(
                sentence,
                ids,
                torch.tensor(result.durations, dtype=torch.long),
                mel,
                wave if keep_audio else None,
            )
        )
    return out, stats


_ESPEAK: Espeak | None = None


def _espeak() -> Espeak:
    global _ESPEAK
    if _ESPEAK is None:
        _ESPEAK = Espeak()
    return _ESPEAK


def corpus_file(dest: Path, split: str, voice: str) -> Path:
    return dest / f"{split}-{voice.replace('+', '_')}.pt"


def load_split(dest: Path, split: str, voice: str = DEFAULT_VOICES[0]) -> list[Utterance]:
    data = torch.load(corpus_file(dest, split, voice), weights_only=True)
    return [Utterance(**u) for u in data["utterances"]]


def build_corpus(
    dest: Path, n_train: int, n_heldout: int, voices: tuple[str, ...] = DEFAULT_VOICES
) -> dict:
    """Make every split for every voice under `dest` (skipping what is already there for the
    same settings); returns meta.json's content."""
    dest.mkdir(parents=True, exist_ok=True)
    settings = {
        "version": CORPUS_VERSION,
        "train": n_train,
        "heldout": n_heldout,
        "voices": list(voices),
        "audio": {"sample_rate": SAMPLE_RATE, "hop_length": HOP, "n_fft": N_FFT, "n_mels": N_MELS},
    }
    meta_path = dest / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if meta.get("settings") != settings:
        meta = {"settings": settings, "splits": {}}
    texts = {"train": sentences("train", n_train), "heldout": sentences("heldout", n_heldout)}
    for voice in voices:
        for split in ("heldout", "train"):
            key = f"{split}-{voice}"
            file = corpus_file(dest, split, voice)
            if key in meta["splits"] and file.is_file():
                continue
            started = time.perf_counter()
            utterances, stats = make_utterances(
                texts[split], voice, keep_audio=split == "heldout", progress=key
            )
            torch.save({"utterances": [u.__dict__ for u in utterances]}, file)
            seconds = round(time.perf_counter() - started, 1)
            meta["splits"][key] = {**stats, "utterances": len(utterances), "seconds": seconds}
            meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dest", type=Path, default=None, help="default: $VOICESTACK_CACHE/corpus")
    parser.add_argument("--train", type=int, default=3000, help="training sentences")
    parser.add_argument("--heldout", type=int, default=250, help="held-out sentences (>= 200)")
    parser.add_argument(
        "--voices", default=",".join(DEFAULT_VOICES), help="espeak-ng voices, the first trains"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    meta = build_corpus(
        args.dest or default_dest(), args.train, args.heldout, tuple(args.voices.split(","))
    )
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
