"""The Frontend block: sentences in, ids of the voice's symbol table out, with word boundaries,
and everything it cannot speak reported rather than dropped."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
from string import ascii_letters

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from voicestack.addons.build_env import AddonBuildEnv
from voicestack.blocks.errors import StackError
from voicestack.blocks.text.frontend import (
    Frontend,
    NothingToSayError,
    UnknownSymbol,
    UnknownSymbolError,
)
from voicestack.blocks.text.phonemes import (
    ENGLISH_SYMBOLS,
    G2P,
    PAD,
    STRESS_MARKS,
    WORD_SEPARATOR,
)
from voicestack.blocks.text.text_normalization import SPOKEN_PUNCTUATION


class FakeAddon:
    """Just what the Frontend reads from an addon: its symbol table."""

    def __init__(self, symbols: list[str]):
        self.symbols = symbols
        self.name = "fake"
        self.placement = None


@pytest.fixture(scope="module")
def frontend() -> Frontend:
    return Frontend(Frontend.Config(), AddonBuildEnv())


@pytest.fixture(scope="module")
def strict() -> Frontend:
    return Frontend(Frontend.Config(on_unknown="error"), AddonBuildEnv())


def decode(frontend: Frontend, ids: torch.Tensor) -> list[str]:
    return [frontend.symbols[i] for i in ids.tolist()]


def test_english_symbols_start_with_the_pad_then_the_word_separator_and_are_unique() -> None:
    assert ENGLISH_SYMBOLS[0] == PAD == "_"
    assert ENGLISH_SYMBOLS[1] == WORD_SEPARATOR == " "
    assert len(set(ENGLISH_SYMBOLS)) == len(ENGLISH_SYMBOLS)
    assert set(SPOKEN_PUNCTUATION) | set(STRESS_MARKS) <= set(ENGLISH_SYMBOLS)


def test_importing_the_block_imports_neither_torch_nor_phonemizer() -> None:
    code = (
        "import sys, voicestack.blocks.text.frontend as f; f.Frontend; "
        "heavy = {'torch', 'phonemizer', 'num2words'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_frontend_builds_and_speaks_in_a_process_that_never_set_up_espeak() -> None:
    code = (
        "from voicestack.addons.build_env import AddonBuildEnv; "
        "from voicestack.blocks.text.frontend import Frontend; "
        "f = Frontend(Frontend.Config(), AddonBuildEnv()); "
        "print(len(f({'text': 'Hello.'})['symbols']))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert int(out.stdout) > 0


def test_the_block_reads_text_and_adds_symbols_word_starts_words_and_unknown(frontend) -> None:
    assert frontend.inputs == ("text",)
    assert frontend.outputs == ("symbols", "word_starts", "words", "unknown")
    out = frontend({"text": "Hello there."})
    assert set(frontend.outputs) <= set(out)


def test_config_rejects_unknown_keys_and_unknown_policies() -> None:
    with pytest.raises(ValidationError):
        Frontend.Config(langauge="en-us")
    with pytest.raises(ValidationError):
        Frontend.Config(on_unknown="ignore")


def test_sentences_normalise_then_split(frontend) -> None:
    assert frontend.sentences("Dr. Smith arrived at 3.5 p.m. He left.") == [
        "Doctor Smith arrived at three point five P-M.",
        "He left.",
    ]


def test_symbols_are_long_ids_into_the_symbol_table(frontend) -> None:
    out = frontend({"text": "Hello there, Doctor Smith!"})
    symbols = out["symbols"]
    assert symbols.dtype == torch.long and symbols.dim() == 1
    # fmt: off
    assert decode(frontend, symbols) == [
        "h", "ə", "l", "ˈ", "oʊ", " ", "ð", "ˈ", "ɛɹ", ",", " ",
        "d", "ˈ", "ɑː", "k", "t", "ɚ", " ", "s", "m", "ˈ", "ɪ", "θ", "!",
    ]
    # fmt: on
    assert symbols.tolist() == [ENGLISH_SYMBOLS.index(s) for s in decode(frontend, symbols)]
    assert out["unknown"] == []


def test_the_word_separator_sits_between_words_and_word_starts_point_at_each_first_symbol(
    frontend,
) -> None:
    out = frontend({"text": "The quick brown fox jumps over the lazy dog."})
    symbols, starts = decode(frontend, out["symbols"]), out["word_starts"].tolist()
    assert out["word_starts"].dtype == torch.long
    assert starts[0] == 0
    assert len(starts) == 9
    assert symbols[0] != WORD_SEPARATOR and symbols[-1] != WORD_SEPARATOR
    assert [i for i, s in enumerate(symbols) if s == WORD_SEPARATOR] == [s - 1 for s in starts[1:]]
    ends = [*starts[1:], len(symbols) + 1]
    words = ["".join(symbols[a : b - 1]) for a, b in zip(starts, ends, strict=True)]
    assert words[3] == "fˈɑːks"
    assert words[-1] == "dˈɑːɡ."


def test_punctuation_and_stress_marks_are_symbols_of_their_own(frontend) -> None:
    symbols = decode(
        frontend, frontend({"text": 'He said: "Yes; no (maybe)… fine — ok?"'})["symbols"]
    )
    for mark in ':";()…—?':
        assert mark in symbols
    assert "ˈ" in symbols
    assert all(s in ENGLISH_SYMBOLS for s in symbols)


def test_unknown_characters_are_reported_with_their_position_and_skipped(frontend, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="voicestack.frontend"):
        out = frontend({"text": "Hello 😀 world"})
    assert out["unknown"] == [
        UnknownSymbol(
            "😀",
            "character 6 of 'Hello 😀 world'",
            "no reading for U+1F600 GRINNING FACE in en-us",
        )
    ]
    assert decode(frontend, out["symbols"]) == decode(
        frontend, frontend({"text": "Hello world"})["symbols"]
    )
    # What and why are logged; the request's text is not.
    assert "😀" in caplog.text and "GRINNING FACE" in caplog.text
    assert "Hello" not in caplog.text


def test_the_log_shows_where_in_the_text_only_when_asked(frontend, caplog, monkeypatch) -> None:
    monkeypatch.setenv("VOICESTACK_LOG_TEXT", "1")
    with caplog.at_level(logging.WARNING, logger="voicestack.frontend"):
        frontend({"text": "Hello 😀 world"})
    assert "character 6 of 'Hello 😀 world'" in caplog.text


def test_unknown_characters_raise_when_the_voice_asks_for_errors(strict) -> None:
    with pytest.raises(UnknownSymbolError, match="你") as raised:
        strict({"text": "Hello 你好 world"})
    assert [u.what for u in raised.value.unknown] == ["你", "好"]
    assert isinstance(raised.value, ValueError)


def test_a_symbol_table_missing_a_phoneme_reports_it(caplog) -> None:
    table = [s for s in ENGLISH_SYMBOLS if s != "θ"]
    frontend = Frontend(Frontend.Config(), AddonBuildEnv(FakeAddon(table)))
    with caplog.at_level(logging.WARNING, logger="voicestack.frontend"):
        out = frontend({"text": "Doctor Smith."})
    assert [(u.what, u.where) for u in out["unknown"]] == [
        ("θ", "word 1 /smˈɪθ./ of 'Doctor Smith.'")
    ]
    assert "symbol table has no such symbol" in out["unknown"][0].why
    assert decode(frontend, out["symbols"])[-5:] == ["s", "m", "ˈ", "ɪ", "."]
    assert "θ" in caplog.text


def test_a_symbol_table_missing_a_phoneme_raises_when_the_voice_asks_for_errors() -> None:
    table = [s for s in ENGLISH_SYMBOLS if s != "θ"]
    frontend = Frontend(Frontend.Config(on_unknown="error"), AddonBuildEnv(FakeAddon(table)))
    with pytest.raises(UnknownSymbolError, match="θ"):
        frontend({"text": "Doctor Smith."})


def test_the_frontend_uses_the_addons_symbol_table() -> None:
    table = [PAD, WORD_SEPARATOR, *reversed(ENGLISH_SYMBOLS[2:])]
    frontend = Frontend(Frontend.Config(), AddonBuildEnv(FakeAddon(table)))
    assert frontend.symbols == table
    out = frontend({"text": "Hello there."})
    ids = out["symbols"].tolist()
    assert [table[i] for i in ids] == ["h", "ə", "l", "ˈ", "oʊ", " ", "ð", "ˈ", "ɛɹ", "."]
    assert ids[0] == table.index("h") != ENGLISH_SYMBOLS.index("h")


def test_a_symbol_table_without_a_word_separator_is_a_build_error() -> None:
    with pytest.raises(StackError, match="word separator"):
        Frontend(Frontend.Config(), AddonBuildEnv(FakeAddon([PAD, "a", "b"])), path="frontend")


def test_a_language_espeak_does_not_have_is_a_build_error_naming_the_key() -> None:
    with pytest.raises(StackError) as raised:
        Frontend(Frontend.Config(language="xx-nowhere"), AddonBuildEnv(), path="frontend")
    assert raised.value.problems[0].key == "frontend.language"


def test_a_sentence_with_nothing_to_say_raises_nothing_to_say(frontend) -> None:
    with pytest.raises(NothingToSayError, match="nothing to say"):
        frontend({"text": "😀"})
    with pytest.raises(NothingToSayError):
        frontend({"text": "?!"})
    assert issubclass(NothingToSayError, ValueError)


def test_raw_text_gives_the_same_symbols_as_its_normalised_sentence(frontend) -> None:
    raw = "It costs $3.50, Dr. Jones."
    normalised = frontend.sentences(raw)[0]
    assert torch.equal(
        frontend({"text": raw})["symbols"], frontend({"text": normalised})["symbols"]
    )


def test_the_same_sentence_gives_the_same_ids_whatever_came_before(frontend) -> None:
    first = frontend({"text": "A sentence."})["symbols"]
    frontend({"text": "Something entirely different, with 42 numbers!"})
    assert torch.equal(frontend({"text": "A sentence."})["symbols"], first)


def test_glued_phonemes_from_espeak_are_split_into_symbols_of_the_table() -> None:
    g2p = G2P("en-us")
    # espeak leaves out the separator in "ææ" and doubles the length mark of "wii".
    for text in ["aaaaaaabbbbbbbb", "wii"]:
        assert all(s in ENGLISH_SYMBOLS for word in g2p.words(text) for s in word)


_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore!",
    "How much wood would a woodchuck chuck?",
    "Dr. Nguyen flew from Zürich to Reykjavík on Jan. 5th, 2021.",
    "The croissant, the rendezvous and the déjà vu were très chic.",
    "Tchaikovsky's sforzando startled the gnocchi-eating audience.",
    "It cost $1,299.99 — roughly 20% more than in 1999.",
    "At 10:45 p.m. the 3rd train left platform 9 3/4.",
    "Llanfairpwllgwyngyll is in Wales; Loch Ness is in Scotland.",
    "Schadenfreude, angst and zeitgeist came from German.",
    "Whether the weather is warm or whether it's hot, we'll weather it.",
    "Thought through, though tough, the thorough plough ploughed on.",
    "An hour's power outage caused our flowers to wilt.",
    "He read the lead article aloud, then led the reading.",
    "Beijing, Kyiv, Tbilisi, Ouagadougou and Xochimilco.",
    'Yes… no… maybe (who knows?) "quoted" words: fine.',
    "The NASA and FBI and UNESCO reports, vs. the BBC's.",
    "I'm, you're, they'd, shouldn't've, y'all, o'clock.",
    "Psychology, pneumonia, mnemonic, gnome, knight and wrist.",
    "Queue, quay, quiche, cuisine, and the colonel's choir.",
]


def _varied_sentences(n: int) -> list[str]:
    """The sentences above, then shuffles of their words (a fixed seed: reproducible)."""
    rng = random.Random(0)
    words = " ".join(_SENTENCES).split()
    extra = [" ".join(rng.sample(words, rng.randint(3, 12))) for _ in range(n - len(_SENTENCES))]
    return _SENTENCES + extra


def test_every_symbol_over_hundreds_of_varied_sentences_is_an_english_symbol(frontend) -> None:
    produced = set()
    for text in _varied_sentences(300):
        for sentence in frontend.sentences(text):
            out = frontend({"text": sentence})
            assert out["unknown"] == [], sentence
            produced.update(decode(frontend, out["symbols"]))
    assert produced <= set(ENGLISH_SYMBOLS)
    assert len(produced) > 50


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.text(alphabet=ascii_letters + "'", min_size=1, max_size=12), min_size=1, max_size=6)
)
def test_every_symbol_of_made_up_words_is_an_english_symbol(frontend, words: list[str]) -> None:
    text = " ".join(words) + "."
    try:
        out = frontend({"text": text})
    except NothingToSayError:
        return  # only apostrophes
    assert out["unknown"] == []
    assert set(decode(frontend, out["symbols"])) <= set(ENGLISH_SYMBOLS)
