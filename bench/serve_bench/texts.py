"""The benchmark's texts: fixed English prose, built deterministically from a list of sentences.

Texts are made here rather than read from a file so a run is reproducible from the code alone,
and from plain words (no digits, abbreviations or symbols) so every server's front end spends the
same, small effort on normalisation and the lengths measure synthesis, not text handling.

The open-loop mode draws its texts from a mix (`MIXES`, `draw_mix`) rather than sending one text:
what a service sustains depends on how long its streams are, and real traffic is mostly short.
"""

from __future__ import annotations

import random

SENTENCES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog near the quiet river bank.",
    "Every morning the baker opens her shop before the sun rises over the hills.",
    "A gentle wind carried the smell of fresh bread down the narrow street.",
    "Children walked to school in small groups, talking about the coming holidays.",
    "The old clock in the square struck seven, and the market began to fill.",
    "Farmers arranged their apples, pears and plums in neat rows on wooden tables.",
    "Somewhere a dog barked twice, then settled again in the shade of a cart.",
    "The teacher wrote a long sentence on the board and asked the class to read it aloud.",
    "By noon the streets were warm, and people looked for a place to sit and rest.",
    "A traveller asked the way to the station and was given three different answers.",
    "The library kept its doors open late on Thursdays for students and night workers.",
    "Rain arrived in the afternoon, soft at first and then heavy on the tiled roofs.",
    "Under the bridge the river ran faster, brown with the water from the mountains.",
    "The fisherman mended his nets and told stories to anyone who would listen.",
    "Lights came on one by one along the harbour as the evening grew darker.",
    "In the kitchen a pot of soup simmered slowly while the bread cooled on the sill.",
    "She opened the window, listened to the rain, and decided to stay at home.",
    "The train was late again, but nobody on the platform seemed to mind very much.",
    "A small boat crossed the bay, its white sail bright against the grey water.",
    "At night the town was quiet except for the sound of waves against the wall.",
)

#: Text name -> target length in characters; 0 means exactly one sentence.
TARGETS: dict[str, int] = {"sentence": 0, "400": 400, "2000": 2000}

#: A first sentence of about 200 characters, in the same plain words. A server that makes a
#: whole sentence before its first sound (Piper: one `AudioChunk` per sentence) waits for all
#: of it; one that streams within the sentence does not.
LONG_SENTENCE = (
    "On the first warm evening of the summer, when the swallows had come back to the old stone "
    "barn and most of the village had gathered in the square to hear the band, the mayor stood "
    "up to say a few words."
)

#: Texts that are not a length target: name -> text. `long-first-sentence` is the long first
#: sentence followed by two ordinary ones (about 350 characters).
KINDS: dict[str, str] = {
    "long-first-sentence": " ".join((LONG_SENTENCE, SENTENCES[1], SENTENCES[2])),
}

#: Every text name `--texts` accepts, the length targets first.
TEXT_NAMES: tuple[str, ...] = (*TARGETS, *KINDS)


def build_text(target_chars: int) -> str:
    """Whole sentences in order (cycling), as close to `target_chars` as a sentence boundary
    allows; one sentence when the target is 0."""
    if target_chars <= 0:
        return SENTENCES[0]
    parts: list[str] = []
    length = 0
    index = 0
    while length < target_chars:
        sentence = SENTENCES[index % len(SENTENCES)]
        parts.append(sentence)
        length += len(sentence) + (1 if len(parts) > 1 else 0)
        index += 1
    text = " ".join(parts)
    shorter = " ".join(parts[:-1])
    if shorter and target_chars - len(shorter) < len(text) - target_chars:
        return shorter
    return text


def benchmark_texts(names: list[str]) -> dict[str, str]:
    """The texts named (of TEXT_NAMES: keys of TARGETS or of KINDS), in the order given."""
    unknown = [n for n in names if n not in TEXT_NAMES]
    if unknown:
        raise ValueError(f"unknown text {unknown}; expected some of {', '.join(TEXT_NAMES)}")
    return {name: KINDS[name] if name in KINDS else build_text(TARGETS[name]) for name in names}


#: Short replies, one sentence each (20-80 characters), as a voice assistant answers most
#: requests; the same plain words as SENTENCES.
SHORT_REPLIES: tuple[str, ...] = (
    "Sure, I can help with that.",
    "Your meeting has been moved to the afternoon.",
    "The weather will be dry and mild all day.",
    "I have added milk and eggs to your shopping list.",
    "Done. The lights in the kitchen are now off.",
    "Here is what I found about the train to the coast.",
    "Your next appointment is on Friday morning.",
    "I set a timer for ten minutes.",
    "The shop on the corner closes at six in the evening.",
    "Yes, that should work.",
    "I am sorry, I could not find that song.",
    "Playing your evening playlist now.",
    "It will take about twenty minutes to walk there.",
    "The package should arrive by the end of the week.",
    "Good morning. You have three new messages.",
    "I will remind you when you get home.",
    "That sounds like a good plan.",
    "The museum is open until late on Thursdays.",
    "Turning the heating up a little.",
    "Would you like me to read the first message?",
    "No problem, it is cancelled.",
    "The recipe needs flour, butter, sugar and two eggs.",
    "Traffic is light, so you should be there on time.",
    "Okay, I will send the note to your sister.",
    "The nearest pharmacy is on the high street, next to the bakery by the bridge.",
    "Your flight leaves in the morning, so you should leave home before breakfast.",
    "I found two Italian restaurants nearby that are still open this evening.",
    "The forecast says rain in the afternoon, so take an umbrella with you.",
    "Your sister called while you were out and asked you to call her back.",
    "The library has the book you asked for, and they will hold it until Monday.",
)

#: Kinds of text in a mix: a short reply (one sentence of SHORT_REPLIES, 20-80 characters),
#: two or three consecutive SENTENCES (about 140-250), a paragraph of them (400-800).
MIX_KINDS: tuple[str, ...] = ("short", "sentences", "paragraph")

#: Mix name -> share of each kind. `assistant`: 70% short replies, 25% two or three sentences,
#: 5% paragraphs, as replies of a spoken assistant run: mostly a line, sometimes an explanation,
#: now and then a long answer read out (about 110 characters a request on average).
MIXES: dict[str, dict[str, float]] = {
    "assistant": {"short": 0.70, "sentences": 0.25, "paragraph": 0.05},
}

#: Bounds of a paragraph's length in characters.
PARAGRAPH_CHARS: tuple[int, int] = (400, 800)


def _consecutive(start: int, count: int) -> list[str]:
    return [SENTENCES[(start + i) % len(SENTENCES)] for i in range(count)]


def _paragraph(start: int, target: int) -> str:
    """Consecutive SENTENCES from `start` until `target` characters are reached, less the last
    one if that passed the upper bound: always within PARAGRAPH_CHARS for a target within."""
    parts: list[str] = []
    index = start
    while len(" ".join(parts)) < target:
        parts.append(SENTENCES[index % len(SENTENCES)])
        index += 1
    if len(" ".join(parts)) > PARAGRAPH_CHARS[1]:
        parts.pop()
    return " ".join(parts)


def draw_text(kind: str, rng: random.Random) -> str:
    """One text of `kind` (of MIX_KINDS), drawn with `rng`."""
    if kind == "short":
        return rng.choice(SHORT_REPLIES)
    if kind == "sentences":
        return " ".join(_consecutive(rng.randrange(len(SENTENCES)), rng.choice((2, 3))))
    if kind == "paragraph":
        return _paragraph(rng.randrange(len(SENTENCES)), rng.randint(*PARAGRAPH_CHARS))
    raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(MIX_KINDS)}")


def draw_mix(name: str, count: int, seed: int) -> list[tuple[str, str]]:
    """`count` (kind, text) pairs of mix `name` (of MIXES), or `count` times the one text
    `name` (of TEXT_NAMES, its kind its name). Drawn in order from one generator seeded with
    `seed`, so a run is repeatable and a longer draw begins with a shorter one: every rate of
    a run sends the same texts in the same order, the higher rates more of them."""
    if name in TEXT_NAMES:
        text = benchmark_texts([name])[name]
        return [(name, text)] * count
    if name not in MIXES:
        known = ", ".join((*MIXES, *TEXT_NAMES))
        raise ValueError(f"unknown mix {name!r}; expected one of {known}")
    rng = random.Random(f"texts:{seed}")
    kinds, weights = zip(*MIXES[name].items(), strict=True)
    out: list[tuple[str, str]] = []
    for _ in range(count):
        kind = rng.choices(kinds, weights)[0]
        out.append((kind, draw_text(kind, rng)))
    return out
