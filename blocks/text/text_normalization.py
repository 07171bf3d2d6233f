"""Text normalisation and sentence splitting for the front end: pure text in, text out.

`normalize` rewrites what a reader would not say as written (numbers, currency, abbreviations,
typographic punctuation, stray symbols) into plain words and a small set of punctuation marks
(`SPOKEN_PUNCTUATION`), so that the grapheme-to-phoneme step only ever sees words it can
pronounce. `split_sentences` cuts the result into sentences, which the runtime pipelines: the
first sentence is spoken while the later ones are still being encoded. `find_unknown_characters`
says which characters are still unspeakable after normalisation, so the caller can report them
rather than let espeak read "grinning face" for an emoji or drop them without a word.

Only English has a full rule set (abbreviations, years, currency names). Other languages get
number expansion where num2words knows the language, and the same punctuation handling.

No espeak and no torch here: this module is cheap to import and to test.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal

#: Punctuation that survives normalisation and reaches the phonemizer, which keeps each mark as
#: a symbol of its own (they shape pauses and intonation). Everything else is rewritten.
SPOKEN_PUNCTUATION = ',.!?;:…—()"'
#: Marks that may stay inside a word (don't, x-ray); espeak reads them as part of the word.
WORD_INTERNAL_MARKS = "'-"

_SENTENCE_END = ".!?"

# --- abbreviations --------------------------------------------------------------------------
# Three kinds, because a period after an abbreviation may or may not also end the sentence, and
# normalisation runs before splitting: an expansion must keep the full stop where there was one.

#: Titles come before a name: "Dr. Smith" never ends a sentence at "Dr.". Case-sensitive, and
#: also written without the period in British style ("Dr Smith").
_TITLES = {
    "Mr": "Mister",
    "Mrs": "Missus",
    "Ms": "Miz",
    "Dr": "Doctor",
    "Prof": "Professor",
    "Rev": "Reverend",
    "Gen": "General",
    "Capt": "Captain",
    "Lt": "Lieutenant",
    "Col": "Colonel",
    "Sgt": "Sergeant",
    "Gov": "Governor",
    "Sen": "Senator",
    "Rep": "Representative",
    "Hon": "Honorable",
    "Fr": "Father",
    "Mt": "Mount",
}
#: Abbreviations inside a sentence, never at its end ("e.g. John" is one sentence).
_INLINE = {
    "e.g.": "for example",
    "i.e.": "that is",
    "vs.": "versus",
    "cf.": "compare",
    "approx.": "approximately",
    "viz.": "namely",
}
#: Abbreviations that may also end a sentence ("... and so on, etc. Then ..."): followed by a
#: capital letter or the end of the text, the expansion keeps a full stop.
_TERMINAL = {
    "etc.": "et cetera",
    "Jr.": "Junior",
    "Sr.": "Senior",
    "Inc.": "Incorporated",
    "Ltd.": "Limited",
    "Co.": "Company",
    "Corp.": "Corporation",
    "Bros.": "Brothers",
    "Ave.": "Avenue",
    "Rd.": "Road",
    "Blvd.": "Boulevard",
    "Dept.": "Department",
    "Univ.": "University",
    "Jan.": "January",
    "Feb.": "February",
    "Mar.": "March",
    "Apr.": "April",
    "Jun.": "June",
    "Jul.": "July",
    "Aug.": "August",
    "Sep.": "September",
    "Sept.": "September",
    "Oct.": "October",
    "Nov.": "November",
    "Dec.": "December",
    # Left over where no time precedes them ("in the p.m."); with a time, `_expand_times`.
    "a.m.": "A-M",
    "p.m.": "P-M",
}
#: Lower-cased words that, followed by a period, do not end a sentence (for `split_sentences`
#: on text that was not normalised).
_NON_FINAL_WORDS = (
    {t.lower() for t in _TITLES}
    | {"st", "no", "nos", "p", "pp", "vol", "fig"}
    | {k.rstrip(".").lower() for k in _INLINE}
)
_MAYBE_FINAL_WORDS = {k.rstrip(".").lower() for k in _TERMINAL}

#: Words that usually open a sentence: after an ambiguous period they decide that it ends one.
_SENTENCE_STARTERS = {
    "The",
    "A",
    "An",
    "It",
    "He",
    "She",
    "We",
    "They",
    "I",
    "You",
    "This",
    "That",
    "These",
    "Those",
    "There",
    "Here",
    "But",
    "And",
    "So",
    "Then",
    "Yet",
    "Or",
    "In",
    "On",
    "At",
    "As",
    "If",
    "When",
    "While",
    "What",
    "Who",
    "Why",
    "How",
    "Where",
    "After",
    "Before",
    "Since",
    "Its",
    "Our",
    "My",
    "His",
    "Her",
    "Their",
    "Your",
    "No",
    "Yes",
    "Not",
    "All",
    "Some",
    "Many",
    "Most",
    "Each",
}

# --- characters -----------------------------------------------------------------------------

_CHARACTER_MAP: dict[str, str | int | None] = {
    # Typographic quotes to the two plain ones.
    **dict.fromkeys("“”„‟«»″〝〞＂", '"'),
    **dict.fromkeys("‘’‚‛′`´", "'"),
    # Brackets: the phonemizer keeps parentheses; other brackets read the same.
    "[": "(",
    "{": "(",
    "]": ")",
    "}": ")",
    # Opening marks of Spanish: the closing mark carries the intonation.
    "¡": " ",
    "¿": " ",
    # Marks that are not spoken: trademark signs, soft hyphens, zero-width characters.
    "™": "",
    "®": "",
    "\u00ad": "",
    "\u200b": "",
    "\u200c": "",
    "\u200d": "",
    "\ufeff": "",
    # Markdown-style emphasis and layout characters carry no words.
    "*": " ",
    "_": " ",
    "~": " ",
    "^": " ",
    "|": " ",
    "\\": " ",
    "•": " ",
    "·": " ",
}
_SYMBOL_WORDS_EN = {
    "&": "and",
    "@": "at",
    "+": "plus",
    "=": "equals",
    "×": "times",
    "÷": "divided by",
    "§": "section",
    "©": "copyright",
    "°": "degrees",
    "%": "percent",
    "‰": "per mille",
    "#": "hash",
    "/": "slash",
    "−": "minus",
    # Currency signs without an amount.
    "$": "dollars",
    "£": "pounds",
    "€": "euros",
    "¥": "yen",
    "¢": "cents",
}

_CURRENCIES_EN = {
    # symbol: (unit, units, subunit, subunits)
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", "sen", "sen"),
    "¢": ("cent", "cents", "", ""),
}
_SCALES = "thousand|million|billion|trillion"

_YEAR_CUES = (
    "in|since|by|of|year|until|till|from|to|circa|during|before|after|through|around|early|late"
)

_ORDINAL_SUFFIX = "st|nd|rd|th"
_NUMBER = r"\d[\d,]*(?:\.\d+)?"
# Longer digit strings are codes or phone numbers: read digit by digit.
_MAX_CARDINAL_DIGITS = 15


def _num2words_language(language: str) -> str | None:
    """The num2words language for an espeak/BCP-47 name ("en-us" -> "en", "pt-br" -> "pt_BR"),
    or None where num2words has none (espeak then reads the digits itself)."""
    from num2words import CONVERTER_CLASSES

    parts = language.replace("_", "-").split("-")
    candidates = []
    if len(parts) > 1:
        candidates.append(f"{parts[0].lower()}_{parts[1].upper()}")
    candidates.append(parts[0].lower())
    return next((c for c in candidates if c in CONVERTER_CLASSES), None)


class _Numbers:
    """Number words for one language, through num2words.

    Why a library: reading numbers is a set of language rules (English "and" and hyphens,
    years as "nineteen oh-five", ordinals, French "quatre-vingt-dix"), and num2words implements
    and tests them for some fifty languages. Writing our own would grow into a worse copy of it.
    Why not leave digits to espeak: espeak reads every four-digit number as a count ("nineteen
    hundred ninety nine"), knows no ordinals or currency, and keeps "3.5" ambiguous for the
    sentence splitter; expanding here also makes the words visible and testable.
    """

    def __init__(self, language: str):
        self.language = _num2words_language(language)

    def _words(self, value: int | Decimal, to: str = "cardinal") -> str:
        from num2words import num2words

        text = num2words(value, lang=self.language, to=to)
        # num2words writes "one thousand, nine hundred and ninety-nine": its commas would become
        # pauses, and spaces give the splitter word boundaries that hyphens hide.
        return text.replace(",", "").replace("-", " ")

    def digits(self, digits: str) -> str:
        return " ".join(self._words(int(d)) for d in digits)

    def cardinal(self, number: str) -> str:
        """Words for an unsigned integer or decimal as written ("1,000", "3.50")."""
        number = number.replace(",", "")
        whole, _, fraction = number.partition(".")
        if (len(whole) > 1 and whole.startswith("0")) or len(whole) > _MAX_CARDINAL_DIGITS:
            words = self.digits(whole)
        else:
            words = self._words(int(whole or "0"))
        if fraction:
            # Digit by digit after the point, as spoken ("three point one four").
            words += f" {self._words(Decimal('0.1')).split()[1]} {self.digits(fraction)}"
        return words

    def ordinal(self, number: str) -> str:
        return self._words(int(number), to="ordinal")

    def year(self, number: str) -> str:
        return self._words(int(number), to="year")


def _sub(pattern: str, repl: str | Callable[[re.Match[str]], str], text: str, flags=0) -> str:
    return re.sub(pattern, repl, text, flags=flags)


def _ends_sentence(text: str, end: int) -> bool:
    """Whether the period just before `end` also ends the sentence: the text ends there, or the
    next word starts with a capital letter."""
    rest = text[end:]
    if not rest.strip():
        return True
    match = re.match(r"\s+[\"'(]*(\w)", rest)
    return bool(match and match.group(1).isupper())


def _expand_abbreviations(text: str) -> str:
    # "St." is Saint before a name ("St. Louis") unless a capitalised word precedes it, where it
    # is a street ("Baker St."). Decided first, since both readings share the spelling.
    def saint_or_street(m: re.Match[str]) -> str:
        before = text[: m.start()].split()
        follows_name = bool(before) and before[-1][:1].isupper() and before[-1][-1:].isalpha()
        if re.match(r"\s+[A-Z]", text[m.end() :]) and not follows_name:
            return "Saint"
        return "Street." if m.group(0).endswith(".") and _ends_sentence(text, m.end()) else "Street"

    text = _sub(r"\bSt\b\.?(?=[\s,;:!?)]|$)", saint_or_street, text)

    titles = "|".join(sorted(_TITLES, key=len, reverse=True))
    text = _sub(rf"\b({titles})\.(?=\s)", lambda m: _TITLES[m.group(1)], text)
    # British style writes the commonest titles without the period ("Dr Smith").
    text = _sub(r"\b(Mr|Mrs|Ms|Dr)\s+(?=[A-Z])", lambda m: _TITLES[m.group(1)] + " ", text)

    # "No. 5", "no 5", "Nos. 3 and 4": a number sign only before a number.
    text = _sub(
        r"\b([Nn]o|[Nn]os)\.?\s*(?=#?\d)",
        lambda m: "numbers " if m.group(1)[-1] == "s" else "number ",
        text,
    )
    text = _sub(r"\bpp\.\s*(?=\d)", "pages ", text)
    text = _sub(r"\bp\.\s*(?=\d)", "page ", text)
    text = _sub(r"\b[Vv]ol\.\s*(?=\d)", "volume ", text)
    text = _sub(r"\b[Ff]ig\.\s*(?=\d)", "figure ", text)

    def inline(m: re.Match[str]) -> str:
        word = _INLINE[m.group(0).lower()]
        return word.capitalize() if m.group(0)[0].isupper() else word

    keys = "|".join(re.escape(k) for k in sorted(_INLINE, key=len, reverse=True))
    text = _sub(rf"(?<![\w.])({keys})(?![\w])", inline, text, flags=re.IGNORECASE)
    text = _sub(r"\bvs\b", "versus", text)  # lower case only: "VS" may be anything

    lookup = {k.lower(): v for k, v in _TERMINAL.items()}
    keys = "|".join(re.escape(k) for k in sorted(_TERMINAL, key=len, reverse=True))

    def terminal(m: re.Match[str]) -> str:
        word = lookup[m.group(0).lower()]
        if m.group(0)[0].isupper():
            word = word[0].upper() + word[1:]
        return word + "." if _ends_sentence(text_now, m.end()) else word

    text_now = text
    text = _sub(rf"(?<![\w.])({keys})(?![\w])", terminal, text, flags=re.IGNORECASE)

    # Dotted initialisms: "U.S." -> "US", "Ph.D." -> "PhD"; espeak spells capitals it cannot
    # pronounce, and the dots would otherwise be read as full stops.
    # Their last period ends the sentence only at the end of the text or before a word that
    # usually starts one ("in the U.S. The ..."), since "U.S. Army" is common.
    def initialism(m: re.Match[str]) -> str:
        letters = m.group(0).replace(".", "")
        rest = text_now[m.end() :]
        first = re.match(r"\s+[\"'(]*(\w+)", rest)
        ends = not rest.strip() or bool(first and first.group(1) in _SENTENCE_STARTERS)
        return letters + "." if ends else letters

    text_now = text
    text = _sub(r"(?<![\w.])(?:[A-Z][a-z]?\.){2,}(?![\w])", initialism, text)
    return text


def _separate_letters_and_digits(text: str) -> str:
    """ "MP3" -> "MP 3", "COVID-19" -> "COVID 19", "4x4" -> "4 x 4", but not "1st", "1990s",
    "3pm". First of all rules, so that no rule sees a word that a later split would make
    (which would make normalising twice differ from once)."""
    text = _sub(r"(?<=[^\W\d_])-?(?=\d)", " ", text)
    return _sub(r"(?<=\d)(?!(?i:st|nd|rd|th|s)\b|(?i:[ap])\.?\s?[mM]\b)(?=[^\W\d_])", " ", text)


def _expand_times(text: str, numbers: _Numbers) -> str:
    def clock(hours: str, minutes: str | None) -> str:
        words = numbers.cardinal(hours)
        if minutes is None:
            return words
        if minutes == "00":
            return f"{words} o'clock"
        if minutes.startswith("0"):
            return f"{words} oh {numbers.cardinal(minutes[1])}"
        return f"{words} {numbers.cardinal(minutes)}"

    # "3 p.m.", "10:30am", "7 AM": "A-M" because espeak reads a lone "A" as the article.
    def meridiem(m: re.Match[str]) -> str:
        spoken = f"{clock(m.group(1), m.group(2))} {m.group(3).upper()}-M"
        return spoken + "." if m.group(4) and _ends_sentence(text_now, m.end()) else spoken

    text_now = text
    text = _sub(
        r"(?<![\d.,])\b(\d{1,2})(?::([0-5]\d))?\s*([ap])\.?\s?m\b(\.)?",
        meridiem,
        text,
        flags=re.IGNORECASE,
    )
    return _sub(
        r"\b([01]?\d|2[0-3]):([0-5]\d)(?![\d:])",
        lambda m: clock(m.group(1), m.group(2)),
        text,
    )


def _expand_currency(text: str, numbers: _Numbers) -> str:
    def amount(symbol: str, number: str, scale: str | None) -> str:
        unit, units, subunit, subunits = _CURRENCIES_EN[symbol]
        number = number.replace(",", "")
        if scale:  # "$2.5 billion": the scale word before the currency name.
            return f"{numbers.cardinal(number)} {scale.lower()} {units}"
        whole, _, fraction = number.partition(".")
        if len(fraction) > 2 or not subunit:
            name = unit if number == "1" else units
            return f"{numbers.cardinal(number)} {name}"
        cents = int(fraction.ljust(2, "0")) if fraction else 0
        parts = []
        if int(whole or "0") or not cents:
            parts.append(f"{numbers.cardinal(whole or '0')} {unit if whole == '1' else units}")
        if cents:
            parts.append(f"{numbers.cardinal(str(cents))} {subunit if cents == 1 else subunits}")
        return " and ".join(parts)

    symbols = re.escape("".join(_CURRENCIES_EN))
    text = _sub(
        rf"([{symbols}])\s?({_NUMBER})(?:\s*({_SCALES})\b)?",
        lambda m: amount(m.group(1), m.group(2), m.group(3)),
        text,
        flags=re.IGNORECASE,
    )
    # "5 €", "20$": the symbol written after the amount.
    return _sub(
        rf"(?<![\d.,])({_NUMBER})\s?([{symbols}])",
        lambda m: amount(m.group(2), m.group(1), None),
        text,
    )


def _expand_numbers(text: str, numbers: _Numbers, english: bool) -> str:
    # Negative numbers first, only where the minus cannot be a range or a hyphen ("10-20").
    text = _sub(r"(?<![\w.,)])[-−](?=\.?\d)", " minus ", text)
    if english:
        text = _sub(rf"({_NUMBER})\s?%", lambda m: f"{numbers.cardinal(m.group(1))} percent", text)
        text = _sub(
            rf"\b(\d+)({_ORDINAL_SUFFIX})\b",
            lambda m: numbers.ordinal(m.group(1)),
            text,
            flags=re.IGNORECASE,
        )

        # Decades: "1990s" -> "nineteen nineties", "'80s" -> "eighties".
        def plural(words: str) -> str:
            head, _, last = words.rpartition(" ")
            last = last[:-1] + "ies" if last.endswith("y") else last + "s"
            return f"{head} {last}".strip()

        text = _sub(r"\b(1[1-9]\d0|20\d0)s\b", lambda m: plural(numbers.year(m.group(1))), text)
        text = _sub(r"'([1-9]0)s\b", lambda m: plural(numbers.cardinal(m.group(1))), text)

        # Years: 1100-1999 read as years ("nineteen ninety-nine", also right for counts such as
        # "1500 people"); 2000-2099 only after a word that announces a year ("in 2010"), since
        # "2010 apples" is "two thousand and ten".
        text = _sub(
            r"(?<![\d.,])\b(1[1-9]\d\d)\b(?![.,]\d)", lambda m: numbers.year(m.group(1)), text
        )
        text = _sub(
            rf"\b({_YEAR_CUES})\s+(20\d\d)\b(?![.,]\d)",
            lambda m: f"{m.group(1)} {numbers.year(m.group(2))}",
            text,
            flags=re.IGNORECASE,
        )
        # Simple fractions, unless part of a date such as 12/25/2020.
        text = _sub(r"(?<![\d/])(\d+)/(\d+)(?![\d/])", lambda m: _fraction(m, numbers), text)
        # Ranges: "10-20" -> "ten to twenty".
        text = _sub(r"(?<![\d.,-])(\d+)\s?[-–]\s?(\d+)(?![\d-])", r"\1 to \2", text)
    return _sub(r"\d[\d,]*\d(?:\.\d+)?|\d(?:\.\d+)?|\.\d+", lambda m: _number(m, numbers), text)


def _number(m: re.Match[str], numbers: _Numbers) -> str:
    number = m.group(0)
    # Commas are thousands separators only in groups of three; "1,2,3" is a list.
    if "," in number and not re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", number):
        return ", ".join(numbers.cardinal(part) for part in number.split(","))
    return f" {numbers.cardinal(number)} "


def _fraction(m: re.Match[str], numbers: _Numbers) -> str:
    numerator, denominator = int(m.group(1)), int(m.group(2))
    if denominator < 2 or denominator > 10 or numerator == 0:
        return f"{numbers.cardinal(m.group(1))} over {numbers.cardinal(m.group(2))}"
    if denominator == 2:
        name = "half" if numerator == 1 else "halves"
    elif denominator == 4:
        name = "quarter" if numerator == 1 else "quarters"
    else:
        name = numbers.ordinal(str(denominator)) + ("" if numerator == 1 else "s")
    return f"{numbers.cardinal(m.group(1))} {name}"


def _normalize_punctuation(text: str) -> str:
    text = text.translate(str.maketrans(_CHARACTER_MAP))
    # Ellipses in any spelling become one mark, a pause that does not end the sentence.
    text = _sub(r"\.(?:\s?\.){2,}|…+", "…", text)
    # Dashes: between numbers a range; otherwise a pause written as a spaced em dash. A hyphen
    # inside a word ("x-ray") stays.
    text = _sub(r"(?<=\d)\s?[–—]\s?(?=\d)", " to ", text)
    text = _sub(r"\s*(?:[–—―‒]|--+)\s*|\s+-\s+", " — ", text)
    return text


def _collapse_punctuation(text: str) -> str:
    # A run of marks ("!!!", "?!", ",.") keeps the one that matters most for the intonation.
    priority = "?!.…;:,"
    # Runs again here, after the rules that insert words: a hyphen standing alone is a dash.
    text = _sub(r"(?:(?<=\s)|^)-+(?=\s|$)", "—", text)
    text = _sub(r"—(?:\s*—)+", "—", text)

    def strongest(m: re.Match[str]) -> str:
        marks = m.group(0).replace(" ", "")
        return min(marks, key=priority.index)

    text = _sub(r"[?!.…;:,](?:\s*[?!.…;:,])+", strongest, text)
    text = _sub(r"\s+([,.!?;:…)])", r"\1", text)
    text = _sub(r"([(])\s+", r"\1", text)
    # A space after a mark that ends a clause, so "yes,no" is two words. Not after ".": between
    # letters it reads as "dot" (example.com), handled before.
    text = _sub(r"([,;:!?…)])(?=[^\W_])", r"\1 ", text)
    # A period still glued to a letter came from joining a number to a word ("3.And").
    text = _sub(r"\.(?=[^\W\d_])", ". ", text)
    return text


def normalize(text: str, language: str = "en") -> str:
    """Rewrite `text` as words and `SPOKEN_PUNCTUATION` only, ready for the phonemizer.

    Expands numbers (cardinals, decimals, ordinals, years, currency, percentages, times),
    English abbreviations and symbols; unifies quotes, dashes and ellipses; collapses repeated
    punctuation. Paragraph breaks (blank lines) are kept for `split_sentences`; other whitespace
    becomes single spaces. Characters it has no rule for are left in place, for
    `find_unknown_characters` to report.

    Idempotent, so that the front end may normalise a sentence that was normalised already.
    One pass of the rules is not: a rule can make text that an earlier rule would have matched
    ("Dr.Dr" spaced to "Dr. Dr"). So the rules run until nothing changes, which takes two
    passes on almost any text (the second only confirms).
    """
    english = language.lower().replace("_", "-").split("-")[0] == "en"
    numbers = _Numbers(language)
    # NFKC folds compatibility forms (full-width digits, ligatures, superscripts) into the
    # characters the rules below know. "™" goes first: NFKC would spell it "TM".
    text = unicodedata.normalize("NFKC", text.replace("™", ""))
    for _ in range(_MAX_PASSES):
        normalized = _normalize_once(text, english, numbers)
        if normalized == text:
            break
        text = normalized
    return text


_MAX_PASSES = 5


def _normalize_once(text: str, english: bool, numbers: _Numbers) -> str:
    text = _normalize_punctuation(text)
    out = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = _separate_letters_and_digits(_sub(r"\s+", " ", paragraph))
        if english:
            # Times first: they own the "a.m."/"p.m." that follow a number.
            paragraph = _expand_times(paragraph, numbers)
            paragraph = _expand_abbreviations(paragraph)
        if numbers.language is not None:
            if english:
                paragraph = _expand_currency(paragraph, numbers)
                paragraph = _sub(r"#\s?(?=\d)", "number ", paragraph)
                paragraph = _sub(r"°\s?C\b", " degrees Celsius", paragraph)
                paragraph = _sub(r"°\s?F\b", " degrees Fahrenheit", paragraph)
            paragraph = _expand_numbers(paragraph, numbers, english)
        if english:
            # "example.com", "file.txt": a dot between letters is read, not a full stop.
            paragraph = _sub(r"(?<=[a-z])\.(?=[a-z])", " dot ", paragraph)
            paragraph = "".join(
                f" {_SYMBOL_WORDS_EN[c]} " if c in _SYMBOL_WORDS_EN else c for c in paragraph
            )
        paragraph = _collapse_punctuation(paragraph)
        paragraph = _sub(r"\s+", " ", paragraph).strip()
        if paragraph:
            out.append(paragraph)
    return "\n\n".join(out)


def _is_silent(sentence: str) -> bool:
    """Only whitespace and punctuation: nothing to say and nothing to report."""
    return all(c.isspace() or unicodedata.category(c).startswith("P") for c in sentence)


#: The longest sentence the front end hands on, in characters (after normalisation). A longer
#: one is cut at its last clause mark (, ; : —) or space before this length, or mid-word if it
#: is one word: encoders take a bounded length, and the first audio should not wait for a
#: paragraph-long sentence to be encoded.
MAX_SENTENCE_CHARS = 400


def split_sentences(text: str) -> list[str]:
    """Split `text` into sentences at . ! ? (and blank lines), keeping each mark with its
    sentence, with any closing quotes or brackets; a sentence longer than
    MAX_SENTENCE_CHARS is cut into pieces (`cut_long`).

    Not at abbreviations ("Dr. Smith", "e.g. this"), decimal points (no space follows them),
    initials ("J. R. R. Tolkien") or ellipses (a pause more often than an end). Abbreviations
    that may end a sentence ("etc.", "p.m.") end one when a capital letter follows. Semicolons
    do not split: the runtime splits long sentences at word boundaries instead. Sentences with
    nothing but punctuation are dropped; sentences of unspeakable characters are kept, so
    that the front end reports them.
    """
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        start = 0
        for m in re.finditer(r"[.!?]+[\"')\]]*(?=\s|$)", paragraph):
            if m.group(0)[0] == "." and not _period_ends_sentence(paragraph, m):
                continue
            sentences.append(paragraph[start : m.end()])
            start = m.end()
        sentences.append(paragraph[start:])
    cleaned = (_sub(r"\s+", " ", s).strip() for s in sentences)
    return [piece for s in cleaned if s and not _is_silent(s) for piece in cut_long(s)]


def cut_long(sentence: str, limit: int = MAX_SENTENCE_CHARS) -> list[str]:
    """`sentence` in pieces of at most `limit` characters: cut after the last clause mark
    before the limit, else at the last space, else (one long word) at the limit."""
    pieces = []
    while len(sentence) > limit:
        head = sentence[:limit]
        marks = [head.rfind(m) for m in ",;:—"]
        cut = max(marks) + 1 if max(marks) > 0 else head.rfind(" ")
        if cut <= 0:
            cut = limit
        piece, sentence = sentence[:cut].strip(), sentence[cut:].strip()
        if piece and not _is_silent(piece):
            pieces.append(piece)
    if sentence and not _is_silent(sentence):
        pieces.append(sentence)
    return pieces


def _period_ends_sentence(paragraph: str, m: re.Match[str]) -> bool:
    marks = m.group(0).rstrip("\"')]")
    if len(marks) > 1:  # an ellipsis written as dots is a pause; "?." is an end
        return not set(marks) <= {"."}
    before = paragraph[: m.start()]
    word = re.search(r"([\w.]*)$", before).group(1).lower()  # type: ignore[union-attr]  # "" at least
    if word in _NON_FINAL_WORDS or word + "." in _INLINE:
        return False
    if re.search(r"(?:^|[\s(\"'])[A-Z]$", before):
        return False  # an initial, as in "J. R. R. Tolkien"
    if word in _MAYBE_FINAL_WORDS or "." in word:
        return _ends_sentence(paragraph, m.end())
    return True


def _is_known_letter(c: str, english: bool) -> bool:
    if not unicodedata.category(c).startswith("L"):
        return False
    # espeak's English reads any Latin letter (café, Zürich, Erdős) but names letters of other
    # scripts one by one ("Chinese letter"), which is not speech.
    return not english or "LATIN" in unicodedata.name(c, "")


def find_unknown_characters(text: str, language: str = "en") -> list[tuple[int, str]]:
    """The characters of `text` that the front end cannot speak, with their index.

    Known: letters of the language (for English any Latin letter; for other languages any
    letter), digits 0-9, whitespace, `SPOKEN_PUNCTUATION`, the marks that may sit inside a
    word (' and -), and combining marks on a known letter. Meant for normalised text: on raw
    text, symbols such as "$" that `normalize` would expand are reported too.
    """
    english = language.lower().replace("_", "-").split("-")[0] == "en"
    unknown = []
    previous_known_letter = False
    for index, c in enumerate(text):
        if unicodedata.category(c).startswith("M"):
            known = previous_known_letter
        else:
            known = (
                c.isspace()
                or "0" <= c <= "9"
                or c in SPOKEN_PUNCTUATION
                or c in WORD_INTERNAL_MARKS
                or _is_known_letter(c, english)
            )
            previous_known_letter = known and c.isalpha()
        if not known:
            unknown.append((index, c))
    return unknown
