"""The text front end of every voice: text in, symbol ids out.

`Frontend.sentences` normalises a request's text and cuts it into sentences (the runtime
pipelines them); `Frontend.__call__` turns one sentence into ids of the voice's symbol table,
with the word separator between words and the index at which each word starts. Whatever it
cannot speak (a character it has no reading for, a phoneme the voice's table lacks) it
reports: logged and skipped (`on_unknown="warn"`) or raised (`"error"`), never dropped
silently.

Host work only, no network: it runs wherever the runtime puts sequence blocks. torch and
phonemizer are imported when a Frontend is built, not when this module is imported, so the
HTTP process can import the name.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from voicestack.blocks.core.base import BlockConfig, BuildEnv
from voicestack.blocks.core.sequence import Features, SequenceBlock

logger = logging.getLogger("voicestack.frontend")


@dataclass(frozen=True)
class UnknownSymbol:
    """Something in a sentence that the front end cannot speak and therefore skipped.

    `what`: the character or symbol; `where`: a readable position ("character 6 of 'Hi 😀'",
    "word 2 of 'I know'"); `why`: the reason.
    """

    what: str
    where: str
    why: str

    def __str__(self) -> str:
        return f"{self.what!r} at {self.where}: {self.why}"


class UnknownSymbolError(ValueError):
    """A sentence holds what the front end cannot speak, and the voice asked for errors."""

    def __init__(self, unknown: list[UnknownSymbol]):
        self.unknown = list(unknown)
        super().__init__("cannot speak:\n" + "\n".join(f"  {u}" for u in self.unknown))


class NothingToSayError(ValueError):
    """A sentence yields no phoneme at all (only punctuation, or only characters the front end
    cannot speak). The runtime skips such a sentence: a voice cannot encode zero symbols, and
    an empty tensor would fail later, further from the cause."""


def _ids_by_symbol(symbols: list[str]) -> dict[str, int]:
    # The first occurrence wins, should a table list a symbol twice.
    ids: dict[str, int] = {}
    for index, symbol in enumerate(symbols):
        ids.setdefault(symbol, index)
    return ids


def _describe_character(character: str) -> str:
    """'U+1F600 GRINNING FACE': which character, also where a terminal cannot show it."""
    return f"U+{ord(character):04X} {unicodedata.name(character, 'unnamed character')}"


class TextFrontend(SequenceBlock):
    """What every voice's front end is: it cuts a request's text into sentences (the runtimes
    stream sentence by sentence) and turns one sentence into symbol ids (`symbols`), the index
    of each word's first symbol (`word_starts`) and what it skipped (`unknown`)."""

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("text",)

    @property
    def outputs(self) -> tuple[str, ...]:
        return ("symbols", "word_starts", "words", "unknown")

    @abstractmethod
    def sentences(self, text: str) -> list[str]:
        """The request's text as sentences, in order."""

    def rewrite(self, word: str) -> str:
        """A word of a request's text as `sentences` rewrites it (normalised: "42" -> "forty
        two"); the words of the text are found in the sentences by it (blocks/text/words.py)."""
        return word

    @abstractmethod
    def _read_alone(self, word: str) -> list[int]:
        """The symbol count of each spoken word that `word` (written) makes read on its own."""

    def _features(
        self,
        text: str,
        ids: list[int],
        spoken_words: list[tuple[int, int]],
        unknown: list,
        spoken: bool,
    ) -> dict[str, Any]:
        """One sentence's features, after reporting what was skipped; NothingToSayError when
        nothing in it is spoken (`spoken`: it has a phoneme). `spoken_words`: the (first, end)
        symbols of each word as read; `words` ties the written words to them
        (blocks/text/words.py)."""
        import torch
        from voicestack.blocks.text.words import read_as

        self._report(unknown)
        if not spoken:
            raise NothingToSayError(f"nothing to say in {text!r}")
        words = read_as(text, spoken_words, self._read_alone_cached)
        return {
            "symbols": torch.tensor(ids, dtype=torch.long),
            "word_starts": torch.tensor([first for first, _ in spoken_words], dtype=torch.long),
            "words": [w.as_tuple() for w in words],
            "unknown": unknown,
        }

    def _read_alone_cached(self, word: str) -> list[int]:
        cache = self.__dict__.setdefault("_alone", {})
        if word not in cache:
            if len(cache) > 50_000:  # a bound, not a policy: common words come back at once
                cache.clear()
            cache[word] = self._read_alone(word)
        return cache[word]

    def _report(self, unknown: list[UnknownSymbol]) -> None:
        """Raise (`on_unknown: error`) or log what was skipped. The log names each character
        and why, not the sentence it was in: request text stays out of the logs unless
        `VOICESTACK_LOG_TEXT=1` asks for it."""
        if not unknown:
            return
        if self.config.on_unknown == "error":  # type: ignore[attr-defined]
            raise UnknownSymbolError(unknown)
        with_text = os.environ.get("VOICESTACK_LOG_TEXT") == "1"
        # The concrete front end's own logger: a built-in one's is named after its module alone,
        # wherever that sits in the package ("voicestack.frontend", "voicestack.piper_frontend").
        module = type(self).__module__
        if module.startswith("voicestack.blocks."):
            module = "voicestack." + module.rpartition(".")[2]
        own = logging.getLogger(module)
        own.warning(
            "%s skipped what it cannot speak:\n%s",
            self.path or type(self).__name__,
            "\n".join(f"  {u}" if with_text else f"  {u.what!r}: {u.why}" for u in unknown),
        )


class Frontend(TextFrontend):
    """Text to symbol ids through normalisation and espeak-ng (see `phonemes.G2P`).

    Features: reads `text` (one sentence, as `sentences` returns it; raw text works too, as
    normalisation is idempotent), adds
    - `symbols`: torch.long (N,), ids into the symbol table, `WORD_SEPARATOR` between words;
    - `word_starts`: torch.long (W,), the index in `symbols` of each word's first symbol,
      where a long input may be cut for static-shape accelerators;
    - `unknown`: list[UnknownSymbol], what was skipped.
    Raises `NothingToSayError` (a ValueError) for a sentence without any phoneme, and
    `UnknownSymbolError` (a ValueError) when `on_unknown="error"` and anything is unknown.
    """

    class Config(BlockConfig):
        #: An espeak-ng voice name ("en-us", "en-gb", "fr"). The normaliser uses its language.
        language: str = "en-us"
        #: What to do with what cannot be spoken: log it and skip it, or raise.
        on_unknown: Literal["warn", "error"] = "warn"

    config: Config

    def __init__(self, config: Config, env: BuildEnv, path: str = "", **children: Any):
        super().__init__(config, env, path=path, **children)
        from voicestack.blocks.errors import Problem, StackError
        from voicestack.blocks.text.phonemes import (
            ENGLISH_SYMBOLS,
            G2P,
            PAD,
            STRESS_MARKS,
            WORD_SEPARATOR,
        )
        from voicestack.blocks.text.text_normalization import SPOKEN_PUNCTUATION

        where = self.path or path or type(self).__name__
        symbols = list(env.addon.symbols) if env.addon is not None else list(ENGLISH_SYMBOLS)
        self.symbols: list[str] = symbols
        self._ids = _ids_by_symbol(symbols)
        if WORD_SEPARATOR not in self._ids:
            raise StackError(
                [Problem(where, "the symbol table has no word separator ' ' (a space)")]
            )
        self._separator_id = self._ids[WORD_SEPARATOR]
        self._not_phonemes = frozenset([PAD, WORD_SEPARATOR, *STRESS_MARKS, *SPOKEN_PUNCTUATION])
        self._normalizer_language = config.language.replace("_", "-").split("-")[0].lower()
        try:
            self._g2p = G2P(config.language, symbols=symbols)
        except RuntimeError as error:  # phonemizer: 'language "xx" is not supported ...'
            raise StackError([Problem(f"{where}.language", str(error))]) from error

    def sentences(self, text: str) -> list[str]:
        """The request's text, normalised and split into sentences, in order."""
        from voicestack.blocks.text.text_normalization import normalize, split_sentences

        return split_sentences(normalize(text, self._normalizer_language))

    def rewrite(self, word: str) -> str:
        from voicestack.blocks.text.text_normalization import normalize

        cache = self.__dict__.setdefault("_rewritten", {})
        if word not in cache:
            if len(cache) > 50_000:
                cache.clear()
            cache[word] = normalize(word, self._normalizer_language)
        return cache[word]

    def __call__(self, features: Features) -> dict[str, Any]:
        from voicestack.blocks.text.text_normalization import normalize

        sentence = normalize(features["text"], self._normalizer_language)
        speakable, unknown = self._speakable(sentence)

        ids: list[int] = []
        spoken_words: list[tuple[int, int]] = []
        has_phoneme = False
        for number, word in enumerate(self._g2p.words(speakable)):
            word_ids = []
            sounded = 0  # symbols up to the word's last phoneme (not its punctuation)
            for symbol in word:
                if symbol in self._ids:
                    word_ids.append(self._ids[symbol])
                    if symbol not in self._not_phonemes:
                        has_phoneme, sounded = True, len(word_ids)
                else:
                    unknown.append(
                        UnknownSymbol(
                            symbol,
                            f"word {number} /{''.join(word)}/ of {sentence!r}",
                            "espeak-ng produced it, but the voice's symbol table has no such "
                            "symbol",
                        )
                    )
            if not word_ids:
                continue
            if ids:
                ids.append(self._separator_id)
            spoken_words.append((len(ids), len(ids) + max(sounded, 1)))
            ids.extend(word_ids)

        return self._features(sentence, ids, spoken_words, unknown, has_phoneme)

    def _speakable(self, sentence: str) -> tuple[str, list[UnknownSymbol]]:
        """The normalised sentence with what it cannot speak (an emoji, a lone surrogate, a
        script the language has no reading for) as spaces, and what that was. A space, not
        nothing, so that "a😀b" stays two words."""
        from voicestack.blocks.text.text_normalization import find_unknown_characters

        unknown = []
        skip = set()
        for index, character in find_unknown_characters(sentence, self._normalizer_language):
            skip.add(index)
            unknown.append(
                UnknownSymbol(
                    character,
                    f"character {index} of {sentence!r}",
                    f"no reading for {_describe_character(character)} in {self.config.language}",
                )
            )
        return "".join(" " if i in skip else c for i, c in enumerate(sentence)), unknown

    def _read_alone(self, word: str) -> list[int]:
        # Read as `__call__` reads it: what it cannot speak is a space.
        return [
            sum(symbol in self._ids for symbol in spoken)
            for spoken in self._g2p.words(self._speakable(word)[0])
            if any(symbol in self._ids for symbol in spoken)
        ]
