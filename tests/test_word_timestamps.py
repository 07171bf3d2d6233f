"""Word timestamps: every voice (espeak-duration, the Piper voice joe, espeak-attention)
reports when each word of the request's text starts and ends in its audio, as it is made.
Every word of the text is there once, in order, with its span in the text and what it was
read as ("$42.50" as "forty two dollars and fifty cents"); the times are monotonic; and where
the words say there is a pause, the audio's energy says so too, within 40 ms."""

from __future__ import annotations

import numpy as np
import pytest
from voicestack.addons.loader import load_addon
from voicestack.addons.search_path import find_voice
from voicestack.blocks.core.chunk import Chunk
from voicestack.blocks.text.words import AlignedWords, TextSpans, read_as, written_words
from voicestack.runtime.local import synthesize_events
from voicestack.runtime.voice import build_voice

TEXT = "Dr. Smith paid $42.50 on 3/4/2025, at 5pm. The U.S.A. is big!"
#: Its words as a stream reports them: each once, as written, punctuation around it trimmed.
TEXT_WORDS = [
    "Dr",
    "Smith",
    "paid",
    "$42.50",
    "on",
    "3/4/2025",
    "at",
    "5pm",
    "The",
    "U.S.A",
    "is",
    "big",
]
#: Sentences with pauses inside (commas) and between them.
PAUSED = [
    "One, two, three, four, five.",
    "Yes. No. Maybe, perhaps; certainly!",
    "The quick brown fox, which was hungry, jumped over the lazy dog.",
    "Well, I think so, but I am not sure.",
    "Apples, oranges, pears and plums were on the table.",
    "After lunch, we walked to the park, and then, we went home.",
]


@pytest.fixture(scope="module", params=["espeak-duration", "joe", "espeak-attention"])
def voice(request):
    return build_voice(load_addon(find_voice(request.param).path))


def spoken(voice, text: str) -> tuple[np.ndarray, list[dict]]:
    audio, words = [], []
    for event in synthesize_events(voice, text, seed=1):
        if isinstance(event, Chunk):
            audio.append(event.core[:, 0].numpy())
        else:
            words.append(event)
    return np.concatenate(audio), words


def test_every_word_of_the_text_is_there_once_in_order_with_its_span(voice):
    _, words = spoken(voice, TEXT)
    assert [w["word"] for w in words] == TEXT_WORDS
    for w in words:
        assert TEXT[w["text_start"] : w["text_end"]] == w["word"]
    if voice.name == "espeak-duration":  # its front end rewrites before espeak-ng reads
        read = {w["word"]: w["read_as"] for w in words}
        assert read["$42.50"] == "forty two dollars and fifty cents"
        assert read["Dr"] == "Doctor" and read["U.S.A"] == "USA"


def test_the_times_are_monotonic_and_within_the_audio(voice):
    audio, words = spoken(voice, " ".join(PAUSED))
    seconds = audio.size / voice.sample_rate
    times = [t for w in words for t in (w["start_s"], w["end_s"])]
    assert times == sorted(times)
    assert all(w["end_s"] > w["start_s"] for w in words)
    assert times[0] >= 0 and times[-1] <= seconds + 1e-6


def test_where_the_words_pause_the_audio_is_silent_within_40_ms(voice):
    """At every pause the words show (100 ms or more between a word's end and the next one's
    start), the audio's energy (5 ms RMS) falls below -40 dB of its peak and rises again; the
    last loud frame before the pause and the first after it are compared with the words'
    times."""
    errors = []
    for text in PAUSED:
        audio, words = spoken(voice, text)
        hop = int(0.005 * voice.sample_rate)
        frames = audio[: audio.size // hop * hop].reshape(-1, hop)
        rms = np.sqrt(np.mean(frames**2, axis=1))
        loud = rms >= 0.01 * rms.max()
        for word, following in zip(words, words[1:], strict=False):
            if following["start_s"] - word["end_s"] < 0.1:
                continue
            middle = int((word["end_s"] + following["start_s"]) / 2 / 0.005)
            before = np.flatnonzero(loud[:middle])
            after = np.flatnonzero(loud[middle:]) + middle
            errors += [
                (before[-1] + 1) * 0.005 - word["end_s"],
                after[0] * 0.005 - following["start_s"],
            ]
    errors = np.abs(np.array(errors))
    assert errors.size >= 20  # the sample has pauses to compare
    if voice.name == "espeak-duration":
        assert errors.max() <= 0.040
    elif voice.name == "espeak-attention":
        # Its alignment is the attention's most attended symbol frame by frame, which lags a
        # word's edge now and then: 20 of 24 edges within 40 ms, the worst 106 ms (measured).
        assert np.mean(errors <= 0.040) >= 0.8 and errors.max() <= 0.15
    else:
        # VITS's predicted durations give a voiced stop after a pause its silent closure (the
        # "b" of "so, but": measured 212 ms before it sounds) and a word-final vowel a fading
        # tail: most boundaries agree within 40 ms (measured 31 of 34), none by more than 250.
        assert np.mean(errors <= 0.040) >= 0.85 and errors.max() <= 0.25


def test_an_attention_voice_reports_each_word_before_the_chunk_it_ends_in():
    """Its alignment is known only as it decodes: each word comes once the frames have passed
    its last symbol, before the chunk holding that frame, with every word of the text once."""
    voice = build_voice(load_addon(find_voice("espeak-attention").path))
    made_s, words = 0.0, []
    for event in synthesize_events(voice, TEXT, seed=1):
        if isinstance(event, Chunk):
            made_s += event.core.shape[0] / voice.sample_rate
        else:
            assert event["end_s"] >= made_s - 1e-4  # its end is not yet in the audio sent (rounded)
            words.append(event)
    assert [w["word"] for w in words] == TEXT_WORDS
    times = [t for w in words for t in (w["start_s"], w["end_s"])]
    assert times == sorted(times) and times[-1] <= made_s + 1e-6


def test_attention_words_follow_the_attended_symbols():
    # Two words: symbols 0-2 and 3-5. Frames attend 0,1,1,2,3,3,4,5,5 (and glance back once).
    words = [("a", 0, 1, 0, 3), ("b", 2, 3, 3, 6)]
    align = AlignedWords(words, 0.01, 1.0, lambda n: (2 * n, 2 * n + 1), "a b")
    first = align.feed([0, 1, 1, 2])
    assert first == []  # "a" has not ended yet
    second = align.feed([3, 2, 3, 4])
    assert [(w["word"], w["start_s"], w["end_s"]) for w in second] == [("a", 1.0, 1.04)]
    last = align.feed([5, 5]) + align.finish()
    assert [(w["word"], w["start_s"], w["end_s"]) for w in last] == [("b", 1.04, 1.1)]


def test_written_words_are_runs_with_a_letter_or_digit_less_their_punctuation():
    assert written_words('"Hello," she said -- 42!') == [
        ("Hello", 1, 6),
        ("she", 9, 12),
        ("said", 13, 17),
        ("42", 21, 23),
    ]


def test_spoken_words_go_to_written_ones_by_how_each_reads_alone():
    # "42" reads alone as two spoken words; "a" as one: three spoken words in all.
    words = read_as("a 42", [(0, 2), (3, 6), (7, 9)], {"a": [2], "42": [3, 2]}.__getitem__)
    assert [(w.text, w.first, w.last) for w in words] == [("a", 0, 2), ("42", 3, 9)]


def test_when_the_counts_disagree_the_closest_symbol_counts_decide():
    # Read in context as one word each, though "42" alone makes two: sizes decide.
    words = read_as(
        "a 42 b", [(0, 2), (3, 9), (10, 12)], {"a": [2], "42": [3, 3], "b": [2]}.__getitem__
    )
    assert [(w.first, w.last) for w in words] == [(0, 2), (3, 9), (10, 12)]


def test_text_spans_map_rewritten_words_to_the_words_they_came_from():
    rewrite = {"Dr.": "Doctor", "$5": "five dollars"}.get
    spans = TextSpans(
        "Dr. Who paid $5.", ["Doctor Who paid five dollars."], lambda w: rewrite(w, w)
    )
    text = "Dr. Who paid $5."
    found = [spans.span(0, n) for n in range(5)]
    assert [text[a:b] for a, b in found] == ["Dr", "Who", "paid", "$5", "$5"]


def test_written_words_read_together_share_the_spoken_word_by_their_sizes():
    # espeak-ng reads "I am" as one word: "I" and "am" split its symbols as they read alone.
    words = read_as("I am", [(0, 8)], {"I": [2], "am": [6]}.__getitem__)
    assert [(w.first, w.last) for w in words] == [(0, 2), (2, 8)]
