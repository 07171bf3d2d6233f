"""Any text, any JSON-like body: the front ends and the request models either accept it or say
why with a ValueError (a pydantic ValidationError for the models), never another exception.
No Ray: the two real front ends (the espeak duration voice's `Frontend`, joe's `PiperFrontend`)
built from their addons, and the two request models of the HTTP API."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from voicestack.addons.loader import load_addon
from voicestack.addons.search_path import find_voice
from voicestack.blocks.text.frontend import NothingToSayError
from voicestack.runtime.voice import build_voice

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Text as requests bring it: letters, punctuation, digits, emoji, spaces, mixed.
MIXED = st.lists(
    st.one_of(
        st.characters(categories=["Lu", "Ll"]),
        st.sampled_from(list(".,;:!?-'\"()[]…—")),
        st.characters(categories=["Nd"]),
        st.sampled_from(["😀", "🎉", "👍🏽", "❤️", "🇫🇷"]),
        st.sampled_from([" ", "\n", "\t", "\n\n"]),
        st.sampled_from(["$", "%", "&", "@", "#", "/", "<", ">", "\0", "\ufffd", "\u200f"]),
    ),
    max_size=200,
).map("".join)
#: All of Unicode, lone surrogates (JSON's "\ud800") and control characters more often than
#: st.text() draws them (it draws no surrogate at all).
ANY = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.one_of(
            st.characters(),
            st.characters(categories=["Cs"]),
            st.characters(categories=["Cc"]),
            st.sampled_from(list("Hello world. ")),
        ),
        max_size=200,
    ).map("".join),
)


@pytest.fixture(scope="module", params=["espeak-duration", "joe"])
def voice(request):
    return build_voice(load_addon(find_voice(request.param).path))


def check_text(voice, text: str) -> None:
    try:
        sentences = voice.sentences(text)
    except ValueError:  # NothingToSayError included: a 400 naming the problem
        return
    assert isinstance(sentences, list)
    table = len(voice.frontend.symbols)
    for sentence in sentences:
        assert isinstance(sentence, str) and sentence
        try:
            features = voice.frontend({"text": sentence})
        except NothingToSayError:  # a sentence of nothing speakable: skipped
            continue
        symbols = features["symbols"].tolist()
        assert symbols and all(0 <= s < table for s in symbols), (sentence, symbols)
        starts = features["word_starts"].tolist()
        assert all(a < b for a, b in zip(starts, starts[1:], strict=False)), starts
        assert all(0 <= s < len(symbols) for s in starts)
        for _word, start, end, first, last in features["words"]:
            # Spans in the sentence as the front end read it (normalised: at most as long as
            # the normalised sentence, which `sentences` already gave).
            assert 0 <= start <= end, (sentence, features["words"])
            assert end <= max(len(sentence), len(features.get("text", sentence))) + 64
            assert 0 <= first <= last <= len(symbols), (sentence, features["words"])


@SETTINGS
@given(text=ANY)
def test_any_unicode_text_is_read_or_refused_with_a_value_error(voice, text):
    check_text(voice, text)


@SETTINGS
@given(text=MIXED)
def test_mixed_letters_punctuation_digits_and_emoji_are_read_or_refused(voice, text):
    check_text(voice, text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " \n\t ",
        "...!!!???",
        "😀😀 🎉",
        "a\0b\x01c\x7f",
        "\ud800 lone \udfff",
        "Hello wor\ud800ld.",
        "שלום עולם \u202e reversed",
        "e\u0301\u0301\u0301 n\u0303",
        "你好世界。 مرحبا بالعالم नमस्ते दुनिया",
        "x" * 5000,
        "." * 20000,
        "9" * 2000,
        "<speak>Hello <break time='1s'/> there.</speak>",
    ],
    ids=[
        "empty",
        "whitespace",
        "punctuation",
        "emoji",
        "control",
        "surrogates",
        "surrogate-in-word",
        "rtl",
        "combining",
        "scripts",
        "long-word",
        "dots",
        "digits",
        "ssml",
    ],
)
def test_each_catalogued_text_is_read_or_refused_with_a_value_error(voice, text):
    check_text(voice, text)


# --- the request models --------------------------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
SYNTHESIZE_KEYS = ["voice", "text", "format", "sample_rate", "with_mel", "seed", "speaker", "speed"]
SPEECH_KEYS = [
    "model",
    "input",
    "voice",
    "response_format",
    "speed",
    "instructions",
    "stream_format",
    "timestamps",
    "seed",
    "speaker",
    "sample_rate",
]


def bodies(keys: list[str]):
    known = st.dictionaries(st.sampled_from(keys), JSON, max_size=len(keys))
    return st.one_of(known, st.dictionaries(st.text(max_size=8), JSON, max_size=4), JSON)


def check_model(model, body) -> None:
    """Valid, or a ValidationError; any other exception fails the test."""
    with contextlib.suppress(ValidationError):
        model.model_validate(body)


@SETTINGS
@given(body=bodies(SYNTHESIZE_KEYS))
def test_a_synthesize_body_validates_or_raises_a_validation_error(body):
    from voicestack.serve_app.ingress import SynthesizeRequest

    check_model(SynthesizeRequest, body)


@SETTINGS
@given(body=bodies(SPEECH_KEYS))
def test_a_speech_body_validates_or_raises_a_validation_error(body):
    from voicestack.serve_app.openai_api import SpeechRequest

    check_model(SpeechRequest, body)
