"""Piper's own text front end, for voices trained by Piper (VITS): text in, Piper's phoneme ids out.

A voice trained by Piper has only ever seen the ids that Piper's engine makes, so its front end
must be Piper's, not ours (`Frontend`): same espeak-ng clauses, same punctuation kept as phonemes,
same code points, same padding. This block reproduces Piper 1.8 (`PiperVoice.phonemize` and
`phonemes_to_ids`, `piper/phonemize_espeak.py`, `piper/phoneme_ids.py`):

- the text is cut at `[[ raw phonemes ]]` blocks (regex `(\\[\\[.*?\\]\\])`); a raw block's
  characters are phonemes as they stand, added to the sentence before it (with a " " on each
  side where the text has a space there), and the sentence after it joins that sentence;
- espeak-ng reads each other part clause by clause. Per clause: the language-switch flags
  `(en)` are removed (regex `\\([^)]+\\)`), the clause's terminator is appended ("." "?" "!"
  end a sentence; "," ":" ";" get a space after and end none; any other end appends nothing),
  and the result is NFD-decomposed into code points, one phoneme per code point. Clauses are
  grouped into sentences at sentence ends; `vowel_clusters` (if the voice has any) are merged
  per sentence;
- ids = `^ _` + `id _` per phoneme + `$`; a phoneme that the table lacks is skipped (Piper logs
  a warning; here it is an `UnknownSymbol`).

espeak-ng is the `libespeak-ng` that `espeakng-loader` bundles, used through ctypes, as a private
copy of the library (its global state is not shared with `Frontend`'s phonemizer or anything
else in the process), one per block, every use under the block's lock. Piper calls
`espeak_TextToPhonemesWithTerminator`, which that library (1.52.0) lacks; it has
`espeak_TextToPhonemes`, which reads one clause per call and advances the text pointer, so the
terminator is worked out here by replaying espeak-ng's own rules (`ReadClause` in readclause.c,
with the library's own Unicode punctuation properties and the C library's character classes)
over the text the clause consumed. See `_Espeak.terminator`.

Piper links its own espeak-ng, a development snapshot (2025-03-22) built with its own data; the
bundled library is the 1.52.0 release. Where their output differs:
- The linking [;] between an i-vowel and a vowel ("Maria", "coffee in"): the snapshot writes
  it "ʲ", 1.52.0 hides it. It is restored here (`_linking_j`), which takes a second reading of
  each text (as phoneme mnemonics).
- Other IPA that the phoneme data choose by the phoneme before: the snapshot always takes the
  choice for "no phoneme before". In English only [*] after [@-] is affected (rare); other
  languages may have more, not restored here.
- An emoji written against a word ("coffee😀") or followed by a variation selector ("❤️"): the
  snapshot spells the word out letter by letter or says "red heart", 1.52.0 reads the word or
  says "red". Dictionaries of other languages may differ in places too.

Other differences, by design:
- Piper diacritises Arabic text (espeak voice "ar") with its tashkeel model first; this block
  does not.
- A NUL, a lone surrogate (which Piper refuses with an exception) or U+FFFD (after which
  Piper's espeak-ng reads the rest of the text as Latin-1 bytes) is read as a space here and
  reported as unknown.
- Piper takes any part of the text that starts with "[[" for a raw block, also an unclosed one
  ("[[abc", read as the phonemes "a"); here only a complete `[[...]]` is, so that a sentence
  that starts with an unclosed "[[" reads the same alone as within its text.
- espeak-ng holds back the second dot of a text that ends in exactly two dots ("Main St..")
  and reads it first in the next text ("dot ..."); Piper's engine carries it from one call to
  the next. Here each text starts clean; within a text (from one part to the next, around a
  raw block) it is carried as Piper carries it.
- A sentence of punctuation only (Piper would give `^ _ . _ $`) raises `NothingToSayError`.

Host work only, no network. torch is imported in `__call__`, and espeak-ng is loaded when a block
is built, not when this module is imported.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import unicodedata
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from voicestack.blocks.core.base import BlockConfig, BuildEnv
from voicestack.blocks.core.sequence import Features
from voicestack.blocks.text.frontend import (
    TextFrontend,
    UnknownSymbol,
    _describe_character,
)

logger = logging.getLogger("voicestack.piper_frontend")

#: Piper's special symbols (piper/const.py): padding after every phoneme, begin and end.
PAD, BOS, EOS = "_", "^", "$"
WORD_SEPARATOR = " "
#: What Piper appends to a clause for its terminator. Not phonemes: a sentence of these only
#: has nothing to say.
TERMINATORS = (".", "?", "!", ",", ":", ";")
_NOT_PHONEMES = frozenset([WORD_SEPARATOR, *TERMINATORS, "ˈ", "ˌ"])

_PHONEME_BLOCK = re.compile(r"(\[\[.*?\]\])")  # piper/voice.py _PHONEME_BLOCK_PATTERN
_LANGUAGE_SWITCH = re.compile(r"\([^)]+\)")  # piper/phonemize_espeak.py

# espeak-ng's speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report a bad data path instead of exit(1)
_CHARS_AUTO = 0
_PHONEMES_IPA = 0x02
#: Bits 8-23 of the phoneme mode: a character written between phonemes. A private-use one.
_SEPARATOR = "\uf8ff"
_SEPARATOR_MODE = ord(_SEPARATOR) << 8

# espeak-ng's readclause.h: what ReadClause returns for a clause's end.
_INTONATION_TYPE = 0x00007000
_OPTIONAL_SPACE_AFTER = 0x00008000
_PUNCTUATION_IN_WORD = 0x00100000
_SPEAK_PUNCTUATION_NAME = 0x00200000
_INTONATION_FULL_STOP = 0x00000000
_INTONATION_COMMA = 0x00001000
_INTONATION_QUESTION = 0x00002000
_INTONATION_EXCLAMATION = 0x00003000
_INTONATION_NONE = 0x00004000
_TYPE_EOF = 0x00010000
_TYPE_CLAUSE = 0x00040000
_TYPE_SENTENCE = 0x00080000
CLAUSE_NONE = 0 | _INTONATION_NONE
CLAUSE_PARAGRAPH = 70 | _INTONATION_FULL_STOP | _TYPE_SENTENCE
CLAUSE_EOF = 40 | _INTONATION_FULL_STOP | _TYPE_SENTENCE | _TYPE_EOF
CLAUSE_PERIOD = 40 | _INTONATION_FULL_STOP | _TYPE_SENTENCE
CLAUSE_COMMA = 20 | _INTONATION_COMMA | _TYPE_CLAUSE
CLAUSE_QUESTION = 40 | _INTONATION_QUESTION | _TYPE_SENTENCE
CLAUSE_EXCLAMATION = 45 | _INTONATION_EXCLAMATION | _TYPE_SENTENCE
CLAUSE_COLON = 30 | _INTONATION_FULL_STOP | _TYPE_CLAUSE
CLAUSE_SEMICOLON = 30 | _INTONATION_COMMA | _TYPE_CLAUSE

# Piper's espeakbridge.c: the terminator, masked with 0x000FFFFF, to the text it appends.
_TERMINATOR_TEXT = {
    CLAUSE_PERIOD: ".",
    CLAUSE_QUESTION: "?",
    CLAUSE_EXCLAMATION: "!",
    CLAUSE_COMMA: ",",
    CLAUSE_COLON: ":",
    CLAUSE_SEMICOLON: ";",
}

# ucd-tools' ucd.h: the Unicode properties that clause_type_from_codepoint reads.
_P_INVERTED_TERMINAL_PUNCTUATION = 0x0010000000000000
_P_PUNCTUATION_IN_WORD = 0x0020000000000000
_P_OPTIONAL_SPACE_AFTER = 0x0040000000000000
_P_EXTENDED_DASH = 0x0080000000000000
_P_PARAGRAPH_SEPARATOR = 0x0100000000000000
_P_ELLIPSIS = 0x0200000000000000
_P_SEMI_COLON = 0x0400000000000000
_P_COLON = 0x0800000000000000
_P_COMMA = 0x1000000000000000
_P_EXCLAMATION_MARK = 0x2000000000000000
_P_QUESTION_MARK = 0x4000000000000000
_P_FULL_STOP = 0x8000000000000000
_P_CLAUSE_TYPE_MASK = 0xFFF0000000000000

# clause_type_from_codepoint (readclause.c), keyed by the masked properties.
_CLAUSE_TYPE_BY_PROPERTIES = {
    _P_FULL_STOP: CLAUSE_PERIOD,
    _P_FULL_STOP | _P_OPTIONAL_SPACE_AFTER: CLAUSE_PERIOD | _OPTIONAL_SPACE_AFTER,
    _P_QUESTION_MARK: CLAUSE_QUESTION,
    _P_QUESTION_MARK | _P_OPTIONAL_SPACE_AFTER: CLAUSE_QUESTION | _OPTIONAL_SPACE_AFTER,
    _P_QUESTION_MARK | _P_PUNCTUATION_IN_WORD: CLAUSE_QUESTION | _PUNCTUATION_IN_WORD,
    _P_EXCLAMATION_MARK: CLAUSE_EXCLAMATION,
    _P_EXCLAMATION_MARK | _P_OPTIONAL_SPACE_AFTER: CLAUSE_EXCLAMATION | _OPTIONAL_SPACE_AFTER,
    _P_EXCLAMATION_MARK | _P_PUNCTUATION_IN_WORD: CLAUSE_EXCLAMATION | _PUNCTUATION_IN_WORD,
    _P_COMMA: CLAUSE_COMMA,
    _P_COMMA | _P_OPTIONAL_SPACE_AFTER: CLAUSE_COMMA | _OPTIONAL_SPACE_AFTER,
    _P_COLON: CLAUSE_COLON,
    _P_COLON | _P_OPTIONAL_SPACE_AFTER: CLAUSE_COLON | _OPTIONAL_SPACE_AFTER,
    _P_SEMI_COLON: CLAUSE_SEMICOLON,
    _P_EXTENDED_DASH: CLAUSE_SEMICOLON,
    _P_SEMI_COLON | _P_OPTIONAL_SPACE_AFTER: CLAUSE_SEMICOLON | _OPTIONAL_SPACE_AFTER,
    _P_QUESTION_MARK | _P_OPTIONAL_SPACE_AFTER | _P_INVERTED_TERMINAL_PUNCTUATION: (
        CLAUSE_SEMICOLON | _OPTIONAL_SPACE_AFTER
    ),
    _P_EXCLAMATION_MARK | _P_OPTIONAL_SPACE_AFTER | _P_INVERTED_TERMINAL_PUNCTUATION: (
        CLAUSE_SEMICOLON | _OPTIONAL_SPACE_AFTER
    ),
    _P_ELLIPSIS: CLAUSE_SEMICOLON | _SPEAK_PUNCTUATION_NAME | _OPTIONAL_SPACE_AFTER,
    _P_PARAGRAPH_SEPARATOR: CLAUSE_PARAGRAPH,
}
_ROMAN_DIGITS = frozenset("IVXL")  # IsRomanU in readclause.c
_IGNORED = frozenset("\u00ad\u200c")  # chars_ignore_default in tr_languages.c
_BRACKETS = frozenset("()[]{}<>\"'`\u00ab\u00bb\u300a\u300b\ue03c")  # common.c


def _is_bracket(character: str) -> bool:
    """IsBracket in common.c."""
    return "\u2014" <= character <= "\u201f" or character in _BRACKETS


@dataclass(frozen=True)
class Clause:
    """One clause as espeak-ng reads it: its phonemes (espeak's IPA string, as Piper gets it),
    the characters `text[start:end]` that are the clause, and how it ended."""

    phonemes: str
    start: int
    end: int
    terminator: str
    ends_sentence: bool


@dataclass
class _Sentence:
    phonemes: list[str]
    start: int
    end: int


def _character_classes() -> tuple[Callable[[str], bool], Callable[[str], bool]]:
    """iswspace and iswalnum as espeak-ng calls them: the C library's, in the LC_CTYPE that
    espeak-ng's initialisation sets (C.UTF-8). Python's own where the C library has none."""
    try:
        libc = ctypes.CDLL(None) if sys.platform != "win32" else ctypes.cdll.msvcrt
        iswspace, iswalnum = libc.iswspace, libc.iswalnum
    except (OSError, AttributeError):  # pragma: no cover - no C library to ask
        return str.isspace, str.isalnum
    for function in (iswspace, iswalnum):
        function.argtypes = [ctypes.c_uint32]
        function.restype = ctypes.c_int
    return (lambda c: iswspace(ord(c)) != 0), (lambda c: iswalnum(ord(c)) != 0)


class EspeakError(RuntimeError):
    """espeak-ng cannot be loaded, or has no such voice."""


def _terminate(library: ctypes.CDLL) -> None:
    with contextlib.suppress(Exception):  # at interpreter shutdown
        library.espeak_Terminate()


def _linking_j(ipa: str, mnemonics: str) -> str:
    """The clause's IPA as Piper's espeak-ng writes it, from the IPA and the mnemonics that
    1.52.0 writes with a separator before each phoneme.

    espeak-ng inserts the linking phoneme [;] between an i-vowel and a following vowel
    ("Maria", "coffee in"). Its IPA is "ʲ" except after an i-vowel, where the phoneme data say
    not to show it. espeak-ng 1.52.0 follows that; Piper's snapshot, which stopped letting a
    phoneme look at the one before it when writing IPA, always writes "ʲ" (/mɚɹˈiːʲə/).

    Both strings list the same phonemes: words separated by " ", phonemes within a word by the
    separator, except that IPA starting with a modifier letter (such as a shown "ʲ") gets no
    separator, and neither does a phoneme that starts a word written without a space. A [;]
    whose IPA is empty is written "ʲ". If the two do not line up, the IPA is returned as
    1.52.0 wrote it.
    """
    plain = ipa.replace(_SEPARATOR, "")
    ipa_words, mnemonic_words = ipa.split(" "), mnemonics.split(" ")
    if len(ipa_words) != len(mnemonic_words):
        return plain
    words = []
    for ipa_word, mnemonic_word in zip(ipa_words, mnemonic_words, strict=True):
        pieces = ipa_word.split(_SEPARATOR)
        written = []
        index = 0
        for name in mnemonic_word.split(_SEPARATOR):
            if name == ";":
                if index < len(pieces) and pieces[index] == "":
                    written.append("ʲ")  # hidden by 1.52.0
                    index += 1
                continue  # else shown, joined to the phoneme before it
            if name.startswith(";"):  # [;] then a phoneme that starts a word without a space
                if index >= len(pieces):
                    return plain
                written.append("ʲ" + pieces[index])
                index += 1
                continue
            if index >= len(pieces):
                return plain
            written.append(pieces[index])
            index += 1
        if index != len(pieces):
            return plain
        words.append("".join(written))
    return " ".join(words)


class _Espeak:
    """A private copy of the bundled libespeak-ng, set to one voice, read clause by clause."""

    def __init__(self, voice: str):
        import espeakng_loader

        self.voice = voice
        self._lock = threading.Lock()
        original = os.path.realpath(espeakng_loader.get_library_path())
        data_path = espeakng_loader.get_data_path()
        # dlopen returns the already loaded library for a path it has seen, so a copy under
        # another path is the way to globals of our own (as phonemizer's EspeakAPI does).
        directory = tempfile.mkdtemp(prefix="voicestack-piper-espeak-")
        copy = os.path.join(directory, os.path.basename(original))
        try:
            shutil.copyfile(original, copy)
            library = ctypes.CDLL(copy)
        except OSError as error:
            shutil.rmtree(directory, ignore_errors=True)
            raise EspeakError(f"cannot load {original}: {error}") from error
        if sys.platform == "win32":  # pragma: no cover - a loaded DLL cannot be deleted
            weakref.finalize(self, shutil.rmtree, directory, True)
        else:
            shutil.rmtree(directory, ignore_errors=True)  # mapped; the file is not needed

        library.espeak_Initialize.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        library.espeak_Initialize.restype = ctypes.c_int
        library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        library.espeak_SetVoiceByName.restype = ctypes.c_int
        library.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_int,
            ctypes.c_int,
        ]
        library.espeak_TextToPhonemes.restype = ctypes.c_char_p
        library.ucd_lookup_category.argtypes = [ctypes.c_uint32]
        library.ucd_lookup_category.restype = ctypes.c_int
        library.ucd_properties.argtypes = [ctypes.c_uint32, ctypes.c_int]
        library.ucd_properties.restype = ctypes.c_uint64
        self._library = library
        self._clause_types: dict[str, int] = {}
        self._isspace, self._isalnum = _character_classes()

        with self._lock:
            rate = library.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT
            )
            if rate <= 0:
                raise EspeakError(f"espeak-ng could not be initialised with data {data_path}")
            weakref.finalize(self, _terminate, library)
            self._set_voice()
            # Languages with ordinal dots (de, hu, ...) do not end a clause at the dot after a
            # Roman number: "V. B" is one clause there, two in English.
            self.roman_dot_is_ordinal = len(self._read("V. B")) == 1

    def _set_voice(self) -> None:
        if self._library.espeak_SetVoiceByName(self.voice.encode()) != 0:
            raise EspeakError(f"espeak-ng has no voice {self.voice!r}")

    def clause_type(self, character: str) -> int:
        """clause_type_from_codepoint, with the library's own Unicode tables."""
        found = self._clause_types.get(character)
        if found is None:
            code = ord(character)
            category = self._library.ucd_lookup_category(code)
            properties = self._library.ucd_properties(code, category) & _P_CLAUSE_TYPE_MASK
            found = _CLAUSE_TYPE_BY_PROPERTIES.get(properties, CLAUSE_NONE)
            self._clause_types[character] = found
        return found

    def _read(self, text: str) -> list[tuple[str, int, int]]:
        """espeak_TextToPhonemes until the text is used up: (phonemes, start, end) per clause,
        with text[start:end] the clause's characters. Call with the lock held.

        Each call leaves the pointer after one character of look-ahead (espeak keeps it back
        and reads it first next time), except the last, which reaches the end: so a clause
        starts one character before where the pointer was and ends one before where it got to.

        The text is read twice, as IPA and as espeak's phoneme mnemonics, each phoneme behind a
        separator, to restore what Piper's newer espeak-ng shows and 1.52.0 hides (see
        `_linking_j`).
        """
        ipa = self._pass(text, _PHONEMES_IPA | _SEPARATOR_MODE)
        mnemonics = self._pass(text, _SEPARATOR_MODE)
        if [(start, end) for _, start, end in ipa] == [(s, e) for _, s, e in mnemonics]:
            return [
                (_linking_j(phonemes, names), start, end)
                for (phonemes, start, end), (names, _, _) in zip(ipa, mnemonics, strict=True)
            ]
        return [(phonemes.replace(_SEPARATOR, ""), start, end) for phonemes, start, end in ipa]

    def _pass(self, text: str, mode: int) -> list[tuple[str, int, int]]:
        self._forget()
        raw = text.encode("utf-8")
        character_at = {0: 0}
        offset = 0
        for index, character in enumerate(text, 1):
            offset += len(character.encode("utf-8"))
            character_at[offset] = index
        buffer = ctypes.create_string_buffer(raw)
        base = ctypes.addressof(buffer)
        pointer = ctypes.c_void_p(base)
        read: list[tuple[str, int, int]] = []
        start = 0
        while pointer.value is not None and len(read) <= len(text):
            phonemes = self._library.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_AUTO, mode)
            end = len(text) if pointer.value is None else character_at[pointer.value - base] - 1
            read.append(((phonemes or b"").decode("utf-8", "replace"), start, end))
            start = end
        return read

    def _forget(self) -> None:
        """Drop a character that espeak-ng may still hold back from the text before.

        A text that ends in exactly two dots ("Main St..") leaves the second one held back,
        and espeak-ng reads it first in the next text ("dot ..."). Piper's engine has that leak
        from one call to the next; here every reading starts as in a fresh engine (`clauses`
        carries it where Piper's reading of one text does). Reading an empty text consumes
        the character and holds nothing back.
        """
        empty = ctypes.create_string_buffer(b"")
        pointer = ctypes.c_void_p(ctypes.addressof(empty))
        while pointer.value is not None:
            self._library.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_AUTO, 0)

    def clauses(self, text: str, held_back: str = "") -> tuple[list[Clause], str]:
        """What Piper's espeakbridge.get_phonemes gives for `text`, with where each clause is,
        and the character espeak-ng holds back at the end (read first by the next text).

        `held_back`: the character the text before left held back: Piper reads it first.
        """
        read_text = held_back + text
        clauses = []
        shift = len(held_back)
        with self._lock:  # the Unicode tables that `terminator` asks are the library's too
            self._set_voice()  # as Piper does on every call
            read = self._read(read_text)
            last = len(read) - 1
            ends = [
                self.terminator(read_text, start, end, final=index == last)
                for index, (_, start, end) in enumerate(read)
            ]
        for (phonemes, start, end), (value, _) in zip(read, ends, strict=True):
            clauses.append(
                Clause(
                    phonemes,
                    max(start - shift, 0),
                    max(end - shift, 0),
                    _TERMINATOR_TEXT.get(value & 0x000FFFFF, ""),
                    bool(value & _TYPE_SENTENCE),
                )
            )
        return clauses, ends[-1][1]

    def terminator(self, text: str, start: int, end: int, final: bool) -> tuple[int, str]:
        """What ReadClause returned for the clause `text[start:end]` (where espeak-ng ended it),
        for the options Piper uses (no SSML, punctuation not spoken).

        ReadClause is replayed from the clause's start: a clause ends at a run of punctuation
        (the first mark counts, three dots or more are an ellipsis) followed by a space, a
        bracket or the end; or at a blank line; or at the end of the text; or, too long,
        anywhere. Whether a mark followed by a space ends the clause also depends on the
        language (abbreviations, ordinals); for every clause but the last that is known from
        where espeak-ng stopped, for the last one it is decided as ReadClause does at the end
        of a text.

        Also returns the character that espeak-ng still holds back after the clause, if any
        (see `_forget`), else "".
        """
        length = len(text)
        position = start  # the next character to read; `length` is the terminating NUL
        held: int | None = None  # a character read and put back (UngetC)

        def at_end() -> bool:  # Eof()
            return held is None and position > length

        def read() -> int:  # GetC()
            nonlocal position, held
            if held is not None:
                index, held = held, None
                return index
            position += 1
            return position - 1

        def put_back(index: int) -> None:  # UngetC(); putting back the NUL holds nothing
            nonlocal held
            held = index if index < length else None

        def held_back() -> str:
            return "" if held is None else text[held]

        def char(index: int) -> str:
            return text[index] if 0 <= index < length else ("\0" if index == length else " ")

        space = -1  # stands for a space that is in no text (ReadClause's initial c1, cprev)
        c1 = cprev = space
        c2 = length if at_end() else read()
        any_alnum = False
        while not at_end():
            cprev2, cprev, c1 = cprev, c1, c2
            c2 = space if at_end() else read()
            mark = char(c1)
            if mark in _IGNORED:
                continue
            if self._isalnum(mark):
                any_alnum = True
            if mark == "\n":
                blank_lines = 0
                while not at_end() and self._isspace(char(c2)):
                    blank_lines += char(c2) == "\n"
                    c2 = read()
                if blank_lines:
                    put_back(c2)
                    return (CLAUSE_PARAGRAPH - 30) + 30 * min(blank_lines, 3), held_back()
            if mark == "." and char(c2) == ".":
                following = c2
                while not at_end():
                    following = read()
                    if char(following) != ".":
                        break
                    mark, c2 = "\u2026", space
                if mark == "\u2026":
                    c2 = following
                else:
                    put_back(following)
            value = self.clause_type(mark)
            if value != CLAUSE_NONE:
                while not at_end() and self.clause_type(char(c2)) != CLAUSE_NONE:
                    c2 = read()  # the run of marks counts as its first
                if value & _PUNCTUATION_IN_WORD:
                    continue
                after = char(c2)
                if (
                    self._isspace(after)
                    or value & _OPTIONAL_SPACE_AFTER
                    or _is_bracket(after)
                    or after in ("?", "\x01")
                    or at_end()
                ):
                    newlines = 0
                    following = c2
                    if self._isspace(char(following)):
                        while not at_end() and self._isspace(char(following)):
                            newlines += char(following) == "\n"
                            following = read()
                    stop = following if 0 <= following < length else length
                    if final:
                        # the last clause: it ends here if espeak-ng has read the whole text,
                        # and the mark follows a letter or digit (and is no ordinal dot)
                        ordinal = (
                            mark == "."
                            and self.roman_dot_is_ordinal
                            and char(cprev) in _ROMAN_DIGITS
                            and (char(cprev2) in _ROMAN_DIGITS or self._isspace(char(cprev2)))
                        )
                        ends = position > length and (newlines > 0 or (any_alnum and not ordinal))
                    else:
                        ends = stop == end
                    if ends:
                        put_back(following)
                        if newlines > 1:
                            if value in (CLAUSE_QUESTION, CLAUSE_EXCLAMATION):
                                return value + 35, held_back()
                            return CLAUSE_PARAGRAPH, held_back()
                        return value, held_back()
                    if not at_end() and self._isspace(after):
                        put_back(following)
            if not final and c1 >= end - 1:
                return CLAUSE_NONE, held_back()  # espeak-ng cut a clause too long for its buffer
        return CLAUSE_EOF, held_back()


def _merge_vowel_clusters(phonemes: Sequence[str], clusters: set[tuple[str, ...]]) -> list[str]:
    """piper/phonemize_espeak.py _merge_known_vowel_clusters: longest known cluster first."""
    longest = max(len(cluster) for cluster in clusters)
    merged: list[str] = []
    index = 0
    while index < len(phonemes):
        match = None
        for size in range(min(longest, len(phonemes) - index), 1, -1):
            candidate = tuple(phonemes[index : index + size])
            if candidate in clusters:
                match = candidate
                break
        if match is not None:
            merged.append("".join(match))
            index += len(match)
        else:
            merged.append(phonemes[index])
            index += 1
    return merged


class PiperFrontend(TextFrontend):
    """Text to Piper's phoneme ids, exactly as Piper 1.8 makes them (see the module docstring).

    The symbol table is the voice's (`addon.symbols`): index = Piper phoneme id; it must hold
    Piper's "_", "^" and "$".

    Features: reads `text` (one sentence as `sentences` returns it; text of several sentences
    is read as one utterance), adds
    - `symbols`: torch.long (N,), `^ _ p1 _ p2 _ ... $`, as Piper gives the model;
    - `word_starts`: torch.long (W,), the index in `symbols` of each word's first phoneme id
      (words are separated by the " " phoneme);
    - `unknown`: list[UnknownSymbol], phonemes the table lacks (skipped, as Piper does) and
      characters espeak-ng cannot be given (read as spaces).
    Raises `NothingToSayError` for text without a phoneme (only punctuation, or nothing espeak
    reads), and `UnknownSymbolError` when `on_unknown="error"` and anything is unknown.
    """

    class Config(BlockConfig):
        #: The espeak-ng voice, as the Piper voice's config has it (`espeak.voice`).
        espeak_voice: str = "en-us"
        #: What to do with what cannot be spoken: log it and skip it, or raise.
        on_unknown: Literal["warn", "error"] = "warn"
        #: The Piper voice's `vowel_clusters`: phoneme sequences merged into one phoneme.
        vowel_clusters: list[list[str]] | None = None

    config: Config

    def __init__(self, config: Config, env: BuildEnv, path: str = "", **children: Any):
        super().__init__(config, env, path=path, **children)
        from voicestack.blocks.errors import Problem, StackError

        where = self.path or path or type(self).__name__
        if env.addon is None:
            raise StackError([Problem(where, "needs the voice's symbol table (an addon)")])
        self.symbols: list[str] = list(env.addon.symbols)
        self._ids: dict[str, int] = {}
        for index, symbol in enumerate(self.symbols):
            self._ids.setdefault(symbol, index)
        missing = [
            f"{name} {symbol!r}"
            for name, symbol in (("pad", PAD), ("begin", BOS), ("end", EOS))
            if symbol not in self._ids
        ]
        if missing:
            raise StackError(
                [Problem(where, f"the symbol table lacks Piper's {', '.join(missing)}")]
            )
        self._clusters: set[tuple[str, ...]] | None = (
            {tuple(cluster) for cluster in config.vowel_clusters} if config.vowel_clusters else None
        )
        if config.espeak_voice == "ar":
            logger.warning(
                "%s: Piper diacritises Arabic with its tashkeel model first; this front end "
                "does not, so an Arabic Piper voice hears other phonemes than in Piper",
                where,
            )
        try:
            self._espeak = _Espeak(config.espeak_voice)
        except EspeakError as error:
            raise StackError([Problem(f"{where}.espeak_voice", str(error))]) from error

    def sentences(self, text: str) -> list[str]:
        """The text of each sentence Piper would synthesize, in order: reading one of them alone
        gives the ids Piper gives that sentence within the whole text."""
        clean, _ = self._speakable(text)
        return [text[s.start : s.end] for s in self._phonemize(clean) if s.phonemes]

    def phonemize(self, text: str) -> list[list[str]]:
        """Phonemes per sentence, as Piper's `PiperVoice.phonemize` gives them."""
        clean, _ = self._speakable(text)
        return [s.phonemes for s in self._phonemize(clean)]

    def __call__(self, features: Features) -> dict[str, Any]:

        text = features["text"]
        clean, unknown = self._speakable(text)
        phonemes = [p for s in self._phonemize(clean) for p in s.phonemes]

        ids = [self._ids[BOS], self._ids[PAD]]
        pad = self._ids[PAD]
        spoken_words: list[tuple[int, int]] = []  # (first id, after its last phoneme's pad)
        new_word = True
        has_phoneme = False
        for index, phoneme in enumerate(phonemes):
            id_ = self._ids.get(phoneme)
            if id_ is None:
                unknown.append(
                    UnknownSymbol(
                        phoneme,
                        f"phoneme {index} of /{''.join(phonemes)}/ from {text!r}",
                        "espeak-ng produced it, but the voice's symbol table has no such "
                        "symbol (Piper skips it too)",
                    )
                )
                continue
            if phoneme == WORD_SEPARATOR:
                new_word = True
            elif new_word:
                spoken_words.append((len(ids), len(ids) + 2))
                new_word = False
            ids += [id_, pad]
            if phoneme not in _NOT_PHONEMES:
                has_phoneme = True
                if spoken_words and not new_word:
                    spoken_words[-1] = (spoken_words[-1][0], len(ids))
        ids.append(self._ids[EOS])

        return self._features(text, ids, spoken_words, unknown, has_phoneme)

    def _read_alone(self, word: str) -> list[int]:
        counts: list[int] = []
        new_word = True
        for phoneme in (p for s in self._phonemize(self._speakable(word)[0]) for p in s.phonemes):
            if phoneme == WORD_SEPARATOR or phoneme not in self._ids:
                new_word = new_word or phoneme == WORD_SEPARATOR
                continue
            if new_word:
                counts.append(0)
                new_word = False
            counts[-1] += 2  # the phoneme and the pad after it
        return counts

    def _speakable(self, text: str) -> tuple[str, list[UnknownSymbol]]:
        """The text with what cannot be handed to espeak-ng replaced by a space, so that
        positions stay those of `text`: a NUL (it would end the text) or a lone surrogate (not
        UTF-8; Piper raises), and U+FFFD (from there on espeak-ng would read the text's UTF-8
        bytes as Latin-1 characters)."""
        unknown = []
        characters = list(text)
        for index, character in enumerate(characters):
            if character in "\0\ufffd" or 0xD800 <= ord(character) <= 0xDFFF:
                characters[index] = " "
                unknown.append(
                    UnknownSymbol(
                        character,
                        f"character {index} of {text!r}",
                        f"espeak-ng cannot be given {_describe_character(character)}",
                    )
                )
        return "".join(characters), unknown

    def _phonemize(self, text: str) -> list[_Sentence]:
        """piper/voice.py PiperVoice.phonemize, keeping where each sentence is in `text`."""
        sentences: list[_Sentence] = []
        parts = _PHONEME_BLOCK.split(text)
        previous_was_raw = False
        held_back = ""  # what espeak-ng holds back from one part to the next
        end = 0
        for index, part in enumerate(parts):
            start, end = end, end + len(part)
            if index % 2:  # Piper: part.startswith("[[") (see the module docstring)
                # [[ raw phonemes ]]: added as they stand to the sentence before
                previous_was_raw = True
                if not sentences:
                    sentences.append(_Sentence([], start, start))
                last = sentences[-1]
                if index > 0 and parts[index - 1].endswith(" "):
                    last.phonemes.append(" ")
                last.phonemes.extend(part[2:-2].strip())
                if index < len(parts) - 1 and parts[index + 1].startswith(" "):
                    last.phonemes.append(" ")
                last.end = end
                continue
            read, held_back = self._phonemize_espeak(part, start, held_back)
            if previous_was_raw and read:
                # the sentence after a raw block continues it
                first = read.pop(0)
                sentences[-1].phonemes.extend(first.phonemes)
                sentences[-1].end = first.end
            sentences.extend(read)
            previous_was_raw = False
        if sentences and not sentences[-1].phonemes:
            sentences.pop()
        return sentences

    def _phonemize_espeak(
        self, text: str, offset: int, held_back: str
    ) -> tuple[list[_Sentence], str]:
        """piper/phonemize_espeak.py EspeakPhonemizer.phonemize, with positions, and what
        espeak-ng holds back for the next part."""
        sentences: list[_Sentence] = []
        phonemes: list[str] = []
        start: int | None = None
        clauses, held_back = self._espeak.clauses(text, held_back)
        for clause in clauses:
            if start is None:
                start = clause.start
            read = _LANGUAGE_SWITCH.sub("", clause.phonemes) + clause.terminator
            if clause.terminator in (",", ":", ";"):
                read += " "  # not a sentence boundary
            phonemes.extend(unicodedata.normalize("NFD", read))
            if clause.ends_sentence:
                if self._clusters:
                    phonemes = _merge_vowel_clusters(phonemes, self._clusters)
                sentences.append(_Sentence(phonemes, offset + start, offset + clause.end))
                phonemes, start = [], None
        if phonemes:  # text without a final sentence terminator
            if self._clusters:
                phonemes = _merge_vowel_clusters(phonemes, self._clusters)
            first = start if start is not None else 0
            sentences.append(_Sentence(phonemes, offset + first, offset + len(text)))
        return sentences, held_back
