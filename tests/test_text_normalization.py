"""Text normalisation and sentence splitting: what the front end reads aloud, and where a
sentence ends. Pure text, no espeak."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from voicestack.blocks.text.text_normalization import (
    SPOKEN_PUNCTUATION,
    find_unknown_characters,
    normalize,
    split_sentences,
)

EXPANSIONS = [
    # cardinals, decimals, negatives, codes
    ("I have 3 cats.", "I have three cats."),
    ("It weighs 1,250 kilos", "It weighs one thousand two hundred and fifty kilos"),
    ("Pi is 3.14", "Pi is three point one four"),
    ("It was -5 outside", "It was minus five outside"),
    ("Agent 007", "Agent zero zero seven"),
    ("Count 1,2,3", "Count one, two, three"),
    # ordinals
    ("the 1st and 22nd and 3rd", "the first and twenty second and third"),
    ("his 101st birthday", "his one hundred and first birthday"),
    # years, read as years where they look like one
    ("Born in 1999.", "Born in nineteen ninety nine."),
    ("It was 1905", "It was nineteen oh five"),
    ("Since 2010 we", "Since twenty ten we"),
    ("2010 apples", "two thousand and ten apples"),
    ("the 1990s", "the nineteen nineties"),
    ("the '80s", "the eighties"),
    # currency
    ("It costs $5", "It costs five dollars"),
    ("It costs $1", "It costs one dollar"),
    ("It costs $3.50", "It costs three dollars and fifty cents"),
    ("It costs $0.99", "It costs ninety nine cents"),
    ("It costs £1.20", "It costs one pound and twenty pence"),
    ("It costs 5€", "It costs five euros"),
    ("a $2.5 billion deal", "a two point five billion dollars deal"),
    # percentages
    ("Up 50%", "Up fifty percent"),
    ("Up 3.5 %", "Up three point five percent"),
    # times
    ("At 10:30 we", "At ten thirty we"),
    ("At 10:05 we", "At ten oh five we"),
    ("At 9:00 we", "At nine o'clock we"),
    ("Meet at 3pm today", "Meet at three P-M today"),
    ("Meet at 7:15 a.m. today", "Meet at seven fifteen A-M today"),
    # abbreviations
    ("Mr. and Mrs. Jones", "Mister and Missus Jones"),
    ("Dr. Smith and Dr Who", "Doctor Smith and Doctor Who"),
    ("St. Louis", "Saint Louis"),
    ("on Baker St. today", "on Baker Street today"),
    ("apples, e.g. red ones, i.e. ripe", "apples, for example red ones, that is ripe"),
    ("cats vs. dogs", "cats versus dogs"),
    ("and so on, etc. The end", "and so on, et cetera. The end"),
    ("No. 5 is here", "number five is here"),
    ("No. I won't", "No. I won't"),
    ("in the U.S. Army", "in the US Army"),
    ("see example.com", "see example dot com"),
    # punctuation and symbols
    ("“Hello,” she said", '"Hello," she said'),
    ("it’s fine", "it's fine"),
    ("wait — no", "wait — no"),
    ("wait--no", "wait — no"),
    ("wait - no", "wait — no"),
    ("an x-ray", "an x-ray"),
    ("pages 10-20", "pages ten to twenty"),
    ("well... maybe", "well… maybe"),
    ("well…… maybe", "well… maybe"),
    ("What!!!", "What!"),
    ("Really?!", "Really?"),
    ("Yes ,no", "Yes, no"),
    ("you & me", "you and me"),
    ("100% sure", "one hundred percent sure"),
    ("[see] {this}", "(see) (this)"),
    ("*bold* text", "bold text"),
    ("Brand™ new", "Brand new"),
    ("MP3 and COVID-19", "MP three and COVID nineteen"),
    ("30°C", "thirty degrees Celsius"),
    ("1/2 cup", "one half cup"),
    ("  lots   of\tspace ", "lots of space"),
]


@pytest.mark.parametrize(("text", "spoken"), EXPANSIONS)
def test_numbers_abbreviations_and_punctuation_expand_as_spoken(text: str, spoken: str) -> None:
    assert normalize(text) == spoken


def test_numbers_use_the_language_of_the_voice() -> None:
    assert normalize("J'ai 5 chats", language="fr") == "J'ai cinq chats"
    assert normalize("Ich habe 21 Katzen", language="de") == "Ich habe einundzwanzig Katzen"


def test_a_language_num2words_does_not_know_keeps_its_digits_for_espeak() -> None:
    assert normalize("5 cats", language="xx") == "5 cats"


def test_paragraph_breaks_survive_normalisation() -> None:
    assert normalize("One\n\n\nTwo\nthree") == "One\n\nTwo three"


_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + " .,!?;:'\"-$%&/()£€…—" + "😀é",
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_normalising_twice_changes_nothing(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_normalised_english_has_no_digits_and_only_spoken_punctuation(text: str) -> None:
    normalized = normalize(text)
    assert not any(c.isdigit() for c in normalized)
    leftover = {c for c in normalized if not (c.isalnum() or c.isspace())}
    assert leftover <= set(SPOKEN_PUNCTUATION) | {"'", "-", "😀"}


SPLITS = [
    ("Dr. Smith arrived at 3.5 p.m. He left.", ["Dr. Smith arrived at 3.5 p.m.", "He left."]),
    ("Hello there! How are you? Fine.", ["Hello there!", "How are you?", "Fine."]),
    ('He said "Go." Then he left.', ['He said "Go."', "Then he left."]),
    ("Apples (red ones.) Pears.", ["Apples (red ones.)", "Pears."]),
    ("It costs 3.50 today. Yes.", ["It costs 3.50 today.", "Yes."]),
    ("Mr. and Mrs. Smith met e.g. Prof. Jones.", ["Mr. and Mrs. Smith met e.g. Prof. Jones."]),
    ("J. R. R. Tolkien wrote it.", ["J. R. R. Tolkien wrote it."]),
    ("Wait... what? Yes", ["Wait... what?", "Yes"]),
    ("Well… I think so.", ["Well… I think so."]),
    ("A; b; c.", ["A; b; c."]),
    ("Bring apples, pears, etc. The rest later.", ["Bring apples, pears, etc.", "The rest later."]),
    ("It is 5 p.m. in Paris.", ["It is 5 p.m. in Paris."]),
    ("First paragraph\n\nSecond paragraph", ["First paragraph", "Second paragraph"]),
    ("one line\nand the next.", ["one line and the next."]),
    ("he left. she stayed.", ["he left.", "she stayed."]),
]


@pytest.mark.parametrize(("text", "sentences"), SPLITS)
def test_sentences_split_at_ends_not_at_abbreviations_decimals_or_initials(
    text: str, sentences: list[str]
) -> None:
    assert split_sentences(text) == sentences


def test_splitting_normalised_text_keeps_the_sentence_ends() -> None:
    text = normalize("Dr. Smith arrived at 3.5 p.m. He left.")
    assert split_sentences(text) == [
        "Doctor Smith arrived at three point five P-M.",
        "He left.",
    ]


def test_empty_and_punctuation_only_sentences_are_dropped() -> None:
    assert split_sentences("Hi. ... !! ? (.) Bye.") == ["Hi.", "Bye."]
    assert split_sentences("   ") == []
    assert split_sentences("") == []


def test_sentences_of_unspeakable_characters_are_kept_for_the_front_end_to_report() -> None:
    assert split_sentences("Hi. 😀😀. Bye.") == ["Hi.", "😀😀.", "Bye."]


def test_unknown_characters_are_reported_with_their_position() -> None:
    text = normalize("Hello 😀 world 你好")
    assert find_unknown_characters(text) == [(6, "😀"), (14, "你"), (15, "好")]


def test_symbols_left_unnormalised_are_unknown() -> None:
    assert find_unknown_characters("a<b>") == [(1, "<"), (3, ">")]
    assert find_unknown_characters("5 €") == [(2, "€")]


def test_latin_letters_with_diacritics_are_english_letters() -> None:
    assert find_unknown_characters("café naïve Zürich Erdős façade, Fußball") == []
    assert find_unknown_characters("cafe\u0301") == []  # e + combining acute


def test_other_scripts_are_unknown_in_english_but_letters_in_their_language() -> None:
    assert find_unknown_characters("привет") == [(i, c) for i, c in enumerate("привет")]
    assert find_unknown_characters("привет", language="ru") == []


def test_spoken_punctuation_digits_and_word_marks_are_known() -> None:
    assert find_unknown_characters(SPOKEN_PUNCTUATION + "0123456789 don't x-ray\n") == []


def test_a_sentence_longer_than_the_limit_is_cut_after_a_clause_mark_or_a_space():
    from voicestack.blocks.text.text_normalization import MAX_SENTENCE_CHARS

    clause = "the river ran on past the mill and the old stone bridge"
    long = ", ".join([clause] * 12) + "."
    pieces = split_sentences(long)
    assert len(pieces) > 1 and all(len(p) <= MAX_SENTENCE_CHARS for p in pieces)
    assert all(p.endswith((",", ".")) for p in pieces)  # cut after commas, not inside clauses
    assert " ".join(pieces) == long


def test_one_enormous_word_is_cut_into_pieces_rather_than_refused():
    from voicestack.blocks.text.text_normalization import MAX_SENTENCE_CHARS

    pieces = split_sentences("a" * 5000)
    assert "".join(pieces) == "a" * 5000
    assert all(len(p) <= MAX_SENTENCE_CHARS for p in pieces)
