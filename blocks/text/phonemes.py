"""Grapheme-to-phoneme conversion for the front end, and the default English symbol inventory.

`G2P` turns one normalised sentence into words of symbols through phonemizer's EspeakBackend,
driving the libespeak-ng that the `espeakng-loader` package bundles: one pinned espeak-ng
(1.52) with its data, so that a voice trained on these symbols sees at serving time exactly
the symbols it was trained on, whatever espeak the machine has installed.

Symbols:
- a phoneme is one espeak-ng phoneme as IPA, possibly several characters ("oʊ", "tʃ", "ɑːɹ");
  the length mark "ː" stays on its vowel, because espeak treats "iː" and "i" as two phonemes;
- the stress marks "ˈ" and "ˌ" are symbols of their own, placed before the stressed vowel.
  Separate marks keep the inventory small (each vowel once, not three times) and let a model
  learn stress as one thing across vowels;
- punctuation marks (`SPOKEN_PUNCTUATION`) are symbols of their own: they shape pauses and
  intonation. phonemizer glues them to the neighbouring phone ("θ!"); `G2P` splits them off.

Nothing here imports phonemizer at import time: the HTTP process may import these names.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

from voicestack.blocks.text.text_normalization import SPOKEN_PUNCTUATION

#: Index 0 of every symbol table: what sequences are padded with.
PAD = "_"
#: Put between the symbols of two words.
WORD_SEPARATOR = " "
STRESS_MARKS = ("ˈ", "ˌ")

#: Every symbol that `G2P("en-us")` produces, behind the pad and the word separator: the
#: default symbol table of English voices (index = symbol id). 116 symbols.
#:
#: Made offline (espeak-ng 1.52 of espeakng-loader 0.2.4, phonemizer 3.4.0) by running
#: `G2P("en-us").words` over:
#: 1. the 7,250 head words of espeak-ng's compiled en_dict (its exceptions list, spellings
#:    decoded from the 6-bit packing), foreign names and IPA letters included;
#: 2. the 14,400 distinct words and 30,000 normalised sentences of the English text at hand
#:    (Python's pydoc topics and the docstrings of the installed packages, 8.7 M characters);
#: 3. all 1- to 3-letter strings and 20,000 random pronounceable letter strings, for the
#:    spelling rules;
#: 4. `normalize` of numbers, ordinals, currency, percentages and times up to 2,200;
#: 5. each non-virtual phoneme of espeak-ng's en-us phoneme table (base, base1, en, en-us,
#:    parsed from the bundled phontab), given alone as `[[mnemonic]]` phoneme input, so that
#:    phonemes that English spelling reaches only rarely, or not at all (base1's ʎ, β, ʁ...),
#:    are in too.
#: (1)-(4) produced 69 phonemes, all in (5) but for three that en_dict entries spell out
#: (nʲ, ɡʲ, ɛː) and ɪ, which the en-us table gives only in context; (5) added 32. Glued
#: tokens where espeak left out a separator (ææ, fk, iːː) are split by `G2P`, not listed.
#: A second run with another random sample produced no symbol outside this tuple.
#: Punctuation, stress marks, then phonemes by code point. Ids are positions in this tuple:
#: change it only together with every voice trained on it.
# fmt: off
ENGLISH_SYMBOLS: tuple[str, ...] = (
    PAD,
    WORD_SEPARATOR,
    # punctuation (SPOKEN_PUNCTUATION), then the stress marks
    ',', '.', '!', '?', ';', ':', '…', '—', '(', ')', '"', 'ˈ', 'ˌ',
    # phonemes, by code point
    'aɪ', 'aɪə', 'aɪɚ', 'aɪʊɹ', 'aʊ', 'b', 'c', 'd', 'dʑ', 'dʒ', 'd̪', 'e', 'eɪ', 'eː', 'f', 'h',
    'i', 'iə', 'iː', 'j', 'k', 'l', 'l̩', 'm', 'm̩', 'n', 'nʲ', 'n̩', 'o', 'oʊ', 'oː', 'p', 'q',
    'r', 's', 't', 'tɕ', 'tʃ', 't̪', 'u', 'uː', 'v', 'w', 'x', 'z', 'æ', 'ç', 'ð', 'ŋ', 'ŋ̩', 'ɐ',
    'ɑː', 'ɑːɹ', 'ɑ̃', 'ɔ', 'ɔɪ', 'ɔː', 'ɔːɹ', 'ɔ̃', 'ɕ', 'ə', 'əl', 'əɹ', 'ɚ', 'ɛ', 'ɛɹ', 'ɛː',
    'ɜː', 'ɟ', 'ɡ', 'ɡʲ', 'ɣ', 'ɪ', 'ɪɹ', 'ɫ', 'ɬ', 'ɭ', 'ɲ', 'ɳ', 'ɹ', 'ɾ', 'ʀ', 'ʁ', 'ʂ', 'ʃ',
    'ʊ', 'ʊɹ', 'ʋ', 'ʌ', 'ʌɹ', 'ʍ', 'ʎ', 'ʐ', 'ʑ', 'ʒ', 'ʔ', 'ʝ', 'β', 'θ', 'χ', 'ᵻ',
)
# fmt: on

_TOKEN = re.compile(
    "|".join(
        [
            f"[{re.escape(SPOKEN_PUNCTUATION)}]",
            f"[{''.join(STRESS_MARKS)}]",
            f"[^{re.escape(SPOKEN_PUNCTUATION)}{''.join(STRESS_MARKS)}]+",
        ]
    )
)

_library_lock = threading.Lock()
_library_set = False


def _use_bundled_espeak() -> None:
    """Point phonemizer at espeakng-loader's library and data, once per process.

    phonemizer otherwise looks for a system espeak, which may be missing or another version.
    """
    global _library_set
    with _library_lock:
        if _library_set:
            return
        import espeakng_loader
        from phonemizer.backend.espeak.wrapper import EspeakWrapper

        EspeakWrapper.set_library(espeakng_loader.get_library_path())
        EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
        _library_set = True


class G2P:
    """espeak-ng through phonemizer, for one language. Costly to build (loads a copy of the
    library and the language's dictionary): build once, reuse for every sentence.

    `symbols` is the symbol table the output is meant for (default `ENGLISH_SYMBOLS`). espeak
    sometimes leaves out the separator between two phonemes ("ææ", "fk", "ŋf", seen on
    repeated letters and clusters); a token not in the table that splits entirely into symbols
    of the table is split. Other tokens are kept as they are, for the caller to report.
    """

    def __init__(self, language: str = "en-us", symbols: Iterable[str] | None = None):
        _use_bundled_espeak()
        from phonemizer.backend import EspeakBackend
        from phonemizer.separator import Separator

        # phonemizer warns at each sentence where espeak's word count differs from the input's
        # ("I am" is one espeak word), and on language switches: not problems for us. The front
        # end reports what matters (symbols outside its table) itself.
        quiet = logging.getLogger("voicestack.frontend.phonemizer")
        quiet.setLevel(logging.ERROR)

        self.language = language
        self._backend: Any = EspeakBackend(
            language,
            punctuation_marks=SPOKEN_PUNCTUATION,
            preserve_punctuation=True,
            with_stress=True,
            # Words espeak reads in another language keep that language's phonemes; any not in
            # the symbol table are reported by the front end.
            language_switch="remove-flags",
            words_mismatch="ignore",
            logger=quiet,
        )
        self._separator = Separator(phone=" ", word=" | ", syllable="")
        self._known = frozenset(ENGLISH_SYMBOLS if symbols is None else symbols)
        self._longest = max((len(s) for s in self._known), default=1)
        # phonemizer keeps state in the library between calls: one sentence at a time.
        self._lock = threading.Lock()

    def words(self, sentence: str) -> list[list[str]]:
        """The words of one normalised sentence, each a list of symbols (phonemes, stress
        marks, punctuation), in espeak's word segmentation. Empty for an empty sentence."""
        if not sentence.strip():
            return []
        with self._lock:
            # One sentence per call: phonemizer drops empty results from a list, which would
            # misalign sentences.
            phonemized = self._backend.phonemize(
                [sentence], separator=self._separator, strip=True, njobs=1
            )[0]
        words = []
        for word in phonemized.split("|"):
            symbols = [
                piece
                for token in word.split()
                for symbol in _TOKEN.findall(token)
                for piece in self._split_glued(symbol)
            ]
            if symbols:
                words.append(symbols)
        return words

    def _split_glued(self, token: str) -> list[str]:
        if token in self._known:
            return [token]
        # A doubled length mark ("iːː", from "wii") is one long vowel.
        token = re.sub("ː+", "ː", token)
        if token in self._known:
            return [token]
        # Fewest pieces that are all known symbols; dynamic programming over the token's
        # characters (tokens are a few characters long).
        best: list[list[str] | None] = [[]] + [None] * len(token)
        for end in range(1, len(token) + 1):
            for start in range(max(0, end - self._longest), end):
                head = best[start]
                piece = token[start:end]
                if head is not None and piece in self._known:
                    candidate = [*head, piece]
                    known = best[end]
                    if known is None or len(candidate) < len(known):
                        best[end] = candidate
        return best[-1] or [token]
