"""Word timestamps: which symbols each written word was read as, and where in the request's
text it was written.

A front end reads a sentence as espeak-ng segments it, which is not always word for word: a
number or an abbreviation can be read as several words ("42" as "forty two"), and a dash as
none. `read_as` assigns the spoken words to the written ones, in order, by asking how many
spoken words each written word makes when read alone; where that does not add up (espeak-ng
reads a word differently in its sentence), by the closest match of their symbol counts. A
duration voice then knows each symbol's frames, so each word's start and end in its audio
(`word_frames`). `TextSpans` finds each sentence (which a front end may have normalised: "Dr."
read as "Doctor") in the request's own text, so that a word is reported with its span there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

#: A written word: a run of non-space characters with a letter or digit in it, less the
#: punctuation around it ("books!" is "books", a lone dash is no word).
_TOKEN = re.compile(r"\S+")
_EDGE = re.compile(r"^[^\w]+|[^\w]+$")


@dataclass(frozen=True)
class Word:
    """A written word of one sentence: its text and character span in the sentence, and the
    symbols it was read as (`first`..`end` in the sentence's symbols; empty if not read)."""

    text: str
    start: int
    end: int
    first: int
    last: int

    def as_tuple(self) -> tuple[str, int, int, int, int]:
        return (self.text, self.start, self.end, self.first, self.last)


def written_words(sentence: str) -> list[tuple[str, int, int]]:
    """(text, start, end) of each written word of `sentence`, punctuation trimmed."""
    words = []
    for match in _TOKEN.finditer(sentence):
        token = match.group()
        lead = _EDGE.match(token)
        start = match.start() + (lead.end() if lead and lead.start() == 0 else 0)
        core = _EDGE.sub("", token)
        if core and any(c.isalnum() for c in core):
            words.append((core, start, start + len(core)))
    return words


def read_as(
    sentence: str,
    spoken: Sequence[tuple[int, int]],
    read_alone: Callable[[str], list[int]],
) -> list[Word]:
    """The written words of `sentence` with the symbols each was read as.

    `spoken`: (first, end) symbol range of each word the front end read, in order;
    `read_alone(word)`: the symbol count of each spoken word `word` makes when read alone."""
    written = written_words(sentence)
    alone = [read_alone(text) for text, _, _ in written]
    if sum(len(a) for a in alone) == len(spoken):
        counts = [len(a) for a in alone]
    else:
        sizes = [end - first for first, end in spoken]
        counts = _closest(sizes, [sum(a) for a in alone])
    ranges: list[tuple[int, int] | None] = []
    at = 0
    for count in counts:
        if count:
            ranges.append((spoken[at][0], spoken[at + count - 1][1]))
        else:
            ranges.append(None)
        at += count
    shared = _shared(ranges, [max(sum(a), 1) for a in alone])
    return [
        Word(text, start, end, first, last)
        for (text, start, end), (first, last) in zip(written, shared, strict=True)
    ]


def _shared(ranges: list[tuple[int, int] | None], sizes: list[int]) -> list[tuple[int, int]]:
    """Written words that got no spoken word of their own were read together with a
    neighbour ("I am" read as one word): each such run shares its neighbour's symbols, split
    in proportion to what each makes alone."""
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(ranges):
        # A group: a word with symbols and the empty words after it (or, at the start, the
        # empty words before the first word with symbols).
        j = i + 1
        if ranges[i] is None:
            while j < len(ranges) and ranges[j - 1] is None:
                j += 1
        while j < len(ranges) and ranges[j] is None:
            j += 1
        owned = [r for r in ranges[i:j] if r is not None]
        if not owned:  # no word of the sentence was read at all
            return [(0, 0)] * len(ranges)
        first, last = owned[0][0], owned[-1][1]
        total, edge = sum(sizes[i:j]), first
        for k in range(i, j):
            end = last if k == j - 1 else edge + round((last - first) * sizes[k] / total)
            out.append((edge, max(edge, end)))
            edge = max(edge, end)
        i = j
    return out


def _closest(sizes: list[int], expected: list[int]) -> list[int]:
    """How many consecutive spoken words (of symbol counts `sizes`) each written word gets, in
    order and all of them, so that the symbols each gets are closest to what it makes alone
    (`expected`). Dynamic programming over (written words, spoken words)."""
    n, m = len(expected), len(sizes)
    if n == 0:
        return []
    prefix = [0]
    for size in sizes:
        prefix.append(prefix[-1] + size)
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    choice = [[0] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    for i in range(1, n + 1):
        for j in range(m + 1):
            for k in range(j + 1):  # written word i takes spoken words k..j-1
                if cost[i - 1][k] == inf:
                    continue
                c = cost[i - 1][k] + abs(prefix[j] - prefix[k] - expected[i - 1])
                if c < cost[i][j]:
                    cost[i][j], choice[i][j] = c, j - k
    counts, j = [], m
    for i in range(n, 0, -1):
        counts.append(choice[i][j])
        j -= choice[i][j]
    return counts[::-1]


def word_frames(words: Sequence[Word], symbol_frames: Sequence[int]) -> list[tuple[int, int]]:
    """(start, end) frame of each word in its sentence's audio, from each symbol's frames."""
    starts = [0]
    for frames in symbol_frames:
        starts.append(starts[-1] + int(frames))
    total = starts[-1]
    return [(min(starts[w.first], total), min(starts[w.last], total)) for w in words]


class TextSpans:
    """Where each written word of the sentences a front end made is in the request's text.

    A front end may have rewritten the text before cutting it into sentences ("Dr." read as
    "Doctor", "$42.50" as "forty two dollars and fifty cents"). Each of the text's own words is
    rewritten alone (`rewrite`, the front end's normaliser); the rewritten words of the
    sentences are then matched, in order, to the rewritten words of the text's words (difflib,
    over words), so that a sentence word is reported with the span of the text word it came
    from; a run rewritten differently in its context maps to the whole run of text words it
    replaced."""

    def __init__(self, text: str, sentences: Sequence[str], rewrite: Callable[[str], str]):
        self.text = text
        tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
        expected: list[tuple[str, int]] = []  # (rewritten word, index of its text word)
        for index, (a, b) in enumerate(tokens):
            expected += [(_key(w), index) for w, _, _ in written_words(rewrite(text[a:b]))]
        spoken = [
            (_key(w), sentence, number)
            for sentence, words in enumerate(sentences)
            for number, (w, _, _) in enumerate(written_words(words))
        ]
        matcher = SequenceMatcher(
            None, [k for k, _, _ in spoken], [k for k, _ in expected], autojunk=False
        )
        self._spans: dict[tuple[int, int], tuple[int, int]] = {}
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "insert":  # text words the sentences do not read
                continue
            for i in range(i1, i2):
                if tag == "equal":
                    source = [expected[j1 + i - i1][1]]
                elif j2 > j1:
                    source = [k for _, k in expected[j1:j2]]
                else:  # read, but from no word of its own: beside the nearest text word
                    source = [expected[min(j1, len(expected) - 1)][1]] if expected else []
                if source:
                    a, b = tokens[min(source)][0], tokens[max(source)][1]
                    self._spans[spoken[i][1:]] = _trimmed(text, a, b)

    def span(self, sentence: int, word: int) -> tuple[int, int] | None:
        """The text span of written word `word` (in `written_words` order) of `sentence`."""
        return self._spans.get((sentence, word))


def _key(word: str) -> str:
    return "".join(c for c in word.casefold() if c.isalnum())


_PUNCTUATION = "\"'()[]{}«»“”‘’„.,!?;:…"


def _trimmed(text: str, a: int, b: int) -> tuple[int, int]:
    """The span less the quotes, brackets and sentence punctuation around it."""
    while a < b and text[a] in _PUNCTUATION:
        a += 1
    while b > a and text[b - 1] in _PUNCTUATION:
        b -= 1
    return a, b


def timed_words(
    words: Sequence[tuple[str, int, int, int, int]],
    symbol_frames: Sequence[int],
    seconds_per_frame: float,
    offset_s: float,
    spans: Callable[[int], tuple[int, int] | None],
    text: str,
) -> list[dict]:
    """The words of one sentence as a stream reports them, in order: `word` (as written in
    the request's `text`), `read_as` (what was read: "forty two" for "42"), `start_s` and
    `end_s` in the stream (`offset_s`: where the sentence starts), `text_start` and `text_end`
    (its span in `text`). Sentence words from one text word are one word, so each text word
    is there once. `words`: the front end's `words` feature; `spans(number)`: the text span of
    the sentence's written word `number` (TextSpans.span), None if unknown."""
    parsed = [Word(*w) for w in words]
    frames = word_frames(parsed, symbol_frames)
    return [
        _message(
            parsed,
            unit,
            spans(unit[0]),
            text,
            offset_s + frames[unit[0]][0] * seconds_per_frame,
            offset_s + max(frames[n][1] for n in unit) * seconds_per_frame,
        )
        for unit in _units(len(parsed), spans)
    ]


class AlignedWords:
    """The words of one sentence from the symbol each frame was made from, as the frames
    stream (an attention voice's `Chunk.marks`): a word starts at the first frame attending
    at or past its first symbol and ends at the first attending past its last. Each word is
    reported (as `timed_words` reports it) once its end is seen, or when the sentence ends."""

    def __init__(
        self,
        words: Sequence[tuple[str, int, int, int, int]],
        seconds_per_frame: float,
        offset_s: float,
        spans: Callable[[int], tuple[int, int] | None],
        text: str,
    ):
        self.parsed = [Word(*w) for w in words]
        self.units = _units(len(self.parsed), spans)
        self.spans, self.text = spans, text
        self.seconds_per_frame, self.offset_s = seconds_per_frame, offset_s
        self.frame, self.reached, self.done = 0, -1, 0
        self.starts: dict[int, int] = {}

    def feed(self, marks: Sequence[int]) -> list[dict]:
        """The words completed by these frames' marks."""
        out = []
        for symbol in marks:
            self.reached = max(self.reached, int(symbol))  # attention may glance back
            for k in range(self.done, len(self.units)):
                if k in self.starts:
                    continue
                if self.reached < self.parsed[self.units[k][0]].first:
                    break
                self.starts[k] = self.frame
            while self.done < len(self.units) and self.reached >= self._last(self.done):
                out.append(self._report(self.done, self.frame))
                self.done += 1
            self.frame += 1
        return out

    def finish(self) -> list[dict]:
        """The words the frames never passed the end of: they end with the sentence."""
        out = [self._report(k, self.frame) for k in range(self.done, len(self.units))]
        self.done = len(self.units)
        return out

    def _last(self, k: int) -> int:
        return max(self.parsed[n].last for n in self.units[k])

    def _report(self, k: int, end: int) -> dict:
        unit = self.units[k]
        start = min(self.starts.get(k, end), end)
        return _message(
            self.parsed,
            unit,
            self.spans(unit[0]),
            self.text,
            self.offset_s + start * self.seconds_per_frame,
            self.offset_s + end * self.seconds_per_frame,
        )


def _units(count: int, spans: Callable[[int], tuple[int, int] | None]) -> list[list[int]]:
    """The sentence's written words grouped by the text word they came from, in order."""
    units: list[list[int]] = []
    previous = None
    for number in range(count):
        span = spans(number)
        if units and span is not None and span == previous:
            units[-1].append(number)
        else:
            units.append([number])
        previous = span
    return units


def _message(
    parsed: list[Word],
    unit: list[int],
    span: tuple[int, int] | None,
    text: str,
    start_s: float,
    end_s: float,
) -> dict:
    read = " ".join(parsed[n].text for n in unit)
    return {
        "word": _encodable(text[span[0] : span[1]] if span is not None else read),
        "read_as": _encodable(read),
        "start_s": round(start_s, 4),
        "end_s": round(end_s, 4),
        "text_start": span[0] if span is not None else None,
        "text_end": span[1] if span is not None else None,
    }


def _encodable(text: str) -> str:
    """`text` with each lone surrogate (JSON's "\\ud800", not UTF-8) as U+FFFD, one character
    for one, so that a word can be sent (msgpack, JSON) and its span stays its span."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
