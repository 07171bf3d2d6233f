"""The benchmark's texts: fixed English prose, built deterministically from a list of sentences.

Texts are made here rather than read from a file so a run is reproducible from the code alone,
and from plain words (no digits, abbreviations or symbols) so every server's front end spends the
same, small effort on normalisation and the lengths measure synthesis, not text handling.
"""

from __future__ import annotations

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
