"""Text normalization shared by all text detectors.

Two functions with different jobs:

- `normalize_for_model(text) -> str`: light clean-up for ML models (kept stable on purpose:
  trained models depend on its exact output).
- `normalize(text) -> NormalizedText`: an aggressive *matching skeleton* for keyword and
  regex banks, undoing the obfuscations people use to slip past filters (homoglyphs,
  invisible characters, leetspeak, stretched letters, spaced-out words). The skeleton is
  never shown to anyone; it carries a per-character map back to the original text so that
  evidence always quotes what the user actually wrote.

Steps of `normalize`, in order (each is total: no input raises, lone surrogates included):

1. Per character: NFKD, drop nonspacing/enclosing marks (accents, zalgo stacks, variation
   selectors), NFKC to recompose (Hangul), map homoglyphs to Latin (Cyrillic, Greek,
   Armenian and Latin look-alikes; fullwidth, mathematical, circled letters are already
   handled by NFKC), casefold. Format characters (Cf: zero-width space/joiners, bidi
   controls, soft hyphen, tag characters), control characters other than whitespace,
   surrogates and invisible fillers are removed. The result is iterated to a fixed point so
   the step is idempotent. Working per character keeps the offset map exact even when
   NFKC expands one character into several ("ﬁ" -> "fi").
2. Spaced-out words: three or more single letters/digits separated by the *same*
   separator of 1-3 characters (space, ".", "-", "_", "*", ",", "~", "'", "·") are joined:
   "k i l l", "k.i.l.l", "k - i - l - l" -> "kill". Requiring the same separator keeps
   ordinary prose ("I am a b-movie fan") intact; chat-speak like "u r a" still joins ("ura"),
   which is harmless for matching.
3. Leetspeak, only inside tokens that contain a letter, so "2024", "$100" and "555-1234"
   stay: digits 0 1 3 4 5 6 7 8 9 -> o i e a s g t b g, and the symbols @ $ ! | + -> a s i l t
   when a letter or digit comes later in the token (so "kill!" keeps its "!"). "1" maps
   to "i" only; "ki11" therefore becomes "kiii", a known miss.
4. Repeated letters: runs of 3 or more of the same letter collapse to 2 ("loooool" ->
   "lool", "killlll" -> "kill"). Two, not one, because many words have genuine doubles
   ("kill", "ass", "good") that a collapse-to-one would merge with other words ("as",
   "god"). A stretched single letter ("kiiiill" -> "kiill") is recovered by the bank
   matcher, which also compares squeezed forms for tokens that were stretched.
   Only letters collapse: digits ("1000000") and punctuation are left alone.

Speed: ASCII text without control characters skips step 1 (`str.lower`); every other step
runs only when a cheap regex finds work for it. See `tests/detectors/text/test_normalize.py`
for the measured figures (a short comment is normalized in a few microseconds).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from warden.core import Span

# ---------------------------------------------------------------------------------------------
# normalize_for_model: unchanged behaviour (trained models depend on it)
# ---------------------------------------------------------------------------------------------

_INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u00ad\u034f\u180e]")
_REPEATS = re.compile(r"(.)\1{3,}")
_SPACES = re.compile(r"\s+")


def normalize_for_model(text: str) -> str:
    """Light normalization for ML models: NFKC, invisible characters removed, runs of a
    repeated character capped at three, whitespace collapsed. No leetspeak mapping: digits
    carry meaning for models (prices, phone numbers in spam)."""
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)
    text = _REPEATS.sub(r"\1\1\1", text)
    return _SPACES.sub(" ", text).strip()


# ---------------------------------------------------------------------------------------------
# normalize: the matching skeleton with an offset map
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """A matching skeleton of `original` with a per-character map back to it.

    `text[i]` was produced from `original[starts[i]:ends[i]]`. Usually that is one
    character; it is several when a run of repeated letters was collapsed into `text[i]`,
    and several output characters share one source character when NFKC expanded it.
    Removed characters (zero-width, separators of spaced-out words) belong to no output
    character, so a span that straddles them still covers them in the original.
    Both maps are non-decreasing, and `starts[i] < ends[i]`. `stretched` says whether any
    run of repeated letters was collapsed, so matchers can skip looking for one.
    """

    original: str
    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    stretched: bool = False

    def original_span(self, start: int, end: int) -> Span:
        """Map the half-open range [start, end) of `text` to a `Span` of `original`."""
        if not (0 <= start < end <= len(self.text)):
            raise ValueError(f"invalid normalized range [{start}, {end}) for text of length {len(self.text)}")
        s, e = self.starts[start], self.ends[end - 1]
        return Span(start=s, end=e, text=self.original[s:e])

    def is_stretched(self, start: int, end: int) -> bool:
        """Whether any character in [start, end) stands for a collapsed run of letters."""
        return any(self.ends[i] - self.starts[i] > 1 for i in range(start, end))


# Homoglyphs that NFKC leaves alone, mapped to the Latin letter they imitate. Upper-case
# forms are listed because they are mapped *before* casefolding (Greek "Η" looks like "H",
# while its lower case "η" looks like "n"). Sources: Unicode confusables.txt (UTS #39),
# restricted to letters commonly used to spoof Latin words.
_HOMOGLYPHS: dict[str, str] = {
    # Cyrillic capitals
    "А": "a", "В": "b", "С": "c", "Е": "e", "Н": "h", "І": "i", "Ј": "j", "К": "k", "М": "m",
    "О": "o", "Р": "p", "Ѕ": "s", "Т": "t", "Х": "x", "У": "y", "Ү": "y", "Ԛ": "q", "Ԝ": "w",
    "Һ": "h", "Ӏ": "l", "Ԁ": "d", "Ь": "b", "З": "3", "Ч": "4",
    # Cyrillic small
    "а": "a", "в": "b", "с": "c", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k", "м": "m",
    "о": "o", "р": "p", "ѕ": "s", "т": "t", "х": "x", "у": "y", "ү": "y", "ԛ": "q", "ԝ": "w",
    "ԁ": "d", "ӏ": "l", "п": "n", "г": "r", "ь": "b", "и": "u", "ɡ": "g",
    # Greek capitals
    "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z", "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m", "Ν": "n",
    "Ο": "o", "Ρ": "p", "Τ": "t", "Υ": "y", "Χ": "x", "Ϲ": "c", "Ϳ": "j",
    # Greek small
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j", "ϱ": "p",
    # Armenian
    "օ": "o", "ս": "u", "հ": "h", "ո": "n", "ց": "g", "ք": "f", "Օ": "o", "Ս": "u",
    # Latin look-alikes outside ASCII
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɩ": "i", "ʟ": "l", "ɴ": "n", "ʀ": "r", "ᴀ": "a", "ᴄ": "c",
    "ᴅ": "d", "ᴇ": "e", "ᴋ": "k", "ᴍ": "m", "ᴏ": "o", "ᴘ": "p", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v",
    "ᴡ": "w", "ᴢ": "z", "ø": "o", "Ø": "o", "đ": "d", "Đ": "d", "ħ": "h", "ł": "l", "Ł": "l",
    "ƅ": "b", "ß": "ss", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "þ": "p",
}

# Characters that render as nothing (or as blank) but are letters/symbols, so category
# checks alone miss them: Hangul fillers, braille blank, Khmer inherent vowels.
_INVISIBLE_EXTRA = frozenset("\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5")
_DROP_CATEGORIES = frozenset({"Mn", "Me", "Cf", "Cs", "Co", "Cn"})
_KEEP_CONTROLS = frozenset("\t\n\r\x0b\x0c")
_MARKS = frozenset({"Mn", "Me"})

_char_cache: dict[str, str] = {}
_CHAR_CACHE_MAX = 1 << 16  # bounded: adversarial text can contain ~1.1M distinct code points


def _map_char_once(ch: str) -> str:
    out: list[str] = []
    for c in unicodedata.normalize("NFKD", ch):
        if c in _INVISIBLE_EXTRA:
            continue
        cat = unicodedata.category(c)
        if cat in _DROP_CATEGORIES or (cat == "Cc" and c not in _KEEP_CONTROLS):
            continue
        out.append(c)
    s = unicodedata.normalize("NFKC", "".join(out)) if out else ""
    return "".join(_HOMOGLYPHS.get(c, c) for c in s).casefold()


def _map_char(ch: str) -> str:
    """Step 1 for one character, iterated to a fixed point (casefolding can emit marks,
    e.g. "İ" -> "i̇", and NFKC can emit homoglyphs), so normalizing twice changes nothing."""
    cached = _char_cache.get(ch)
    if cached is not None:
        return cached
    out = _map_char_once(ch)
    for _ in range(4):
        nxt = "".join(_map_char_once(c) for c in out)
        if nxt == out:
            break
        out = nxt
    if len(_char_cache) < _CHAR_CACHE_MAX:
        _char_cache[ch] = out
    return out


_ASCII_NEEDS_SLOW_PATH = re.compile("[\x00-\x08\x0e-\x1f\x7f]")

_SPACED_CHAR = r"(?:[^\W_]|[@$])"
_SPACED = re.compile(
    rf"(?<![\w@$]){_SPACED_CHAR}(?P<sep>[\s.\-_*,~'·]{{1,3}})(?:{_SPACED_CHAR}(?P=sep))+{_SPACED_CHAR}(?![\w@$])"
)
_SPACED_KEEP = re.compile(r"[^\W_]|[@$]")

_LEET_DIGITS = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "6": "g", "7": "t", "8": "b", "9": "g"}
_LEET_SYMBOLS = {"@": "a", "$": "s", "!": "i", "|": "l", "+": "t"}
_LEET_ANY = re.compile(r"[0-9]|[@$!|+][^\W_]")  # cheap necessary condition for any mapping
_LEET_TOKEN = re.compile(r"(?:[^\W_]|[@$!|+])+")

_ANY_RUN = re.compile(r"(.)\1\1")  # cheap prefilter for _LETTER_RUN
_LETTER_RUN = re.compile(r"([^\W\d_])\1{2,}")


def normalize(text: str, *, leet: bool = True, join_spaced: bool = True,
              collapse_repeats: bool = True) -> NormalizedText:
    """Build the matching skeleton of `text` (see the module docstring for the steps).

    Total: returns for every `str`, including empty strings and lone surrogates.
    """
    if not isinstance(text, str):  # a programming error, not bad content
        raise TypeError(f"normalize() needs str, got {type(text).__name__}")
    if text.isascii() and not _ASCII_NEEDS_SLOW_PATH.search(text):
        out = text.lower()
        starts: list[int] | range = range(len(text))
        ends: list[int] | range = range(1, len(text) + 1)
    else:
        chars: list[str] = []
        s_list: list[int] = []
        e_list: list[int] = []
        for i, ch in enumerate(text):
            mapped = _map_char(ch)
            if len(mapped) == 1:
                chars.append(mapped)
                s_list.append(i)
                e_list.append(i + 1)
            elif mapped:
                chars.extend(mapped)
                s_list.extend([i] * len(mapped))
                e_list.extend([i + 1] * len(mapped))
            elif e_list and e_list[-1] == i and unicodedata.category(ch) in _MARKS:
                # A dropped combining mark belongs to the grapheme before it: quoting that
                # grapheme in evidence should include its marks (zalgo, accents).
                for k in range(len(e_list) - 1, -1, -1):
                    if e_list[k] != i:
                        break
                    e_list[k] = i + 1
        out = "".join(chars)
        starts = s_list
        ends = e_list

    if join_spaced and len(out) >= 5:
        out, starts, ends = _join_spaced(out, starts, ends)
    if leet and _LEET_ANY.search(out):
        out = _unleet(out)
    stretched = False
    if collapse_repeats and len(out) >= 3 and _ANY_RUN.search(out):
        before = len(out)
        out, starts, ends = _collapse_runs(out, starts, ends)
        stretched = len(out) < before
    return NormalizedText(original=text, text=out, starts=tuple(starts), ends=tuple(ends), stretched=stretched)


def _join_spaced(text: str, starts: list[int] | range, ends: list[int] | range,
                 ) -> tuple[str, list[int] | range, list[int] | range]:
    drop: list[int] = []
    for m in _SPACED.finditer(text):
        base = m.start()
        drop.extend(base + j for j, c in enumerate(m.group()) if not _SPACED_KEEP.match(c))
    if not drop:
        return text, starts, ends
    dropped = set(drop)
    keep = [i for i in range(len(text)) if i not in dropped]
    return "".join(text[i] for i in keep), [starts[i] for i in keep], [ends[i] for i in keep]


def _unleet(text: str) -> str:
    chars: list[str] | None = None
    for m in _LEET_TOKEN.finditer(text):
        tok = m.group()
        if tok.isalpha() or not any(c.isalpha() for c in tok):
            continue
        if chars is None:
            chars = list(text)
        base = m.start()
        followed = False  # is a letter or digit somewhere after this position in the token?
        for j in range(len(tok) - 1, -1, -1):
            c = tok[j]
            rep = _LEET_DIGITS.get(c)
            if rep is None and followed and c in _LEET_SYMBOLS:
                rep = _LEET_SYMBOLS[c]
            if rep is not None:
                chars[base + j] = rep
            followed = followed or c.isalnum()
    return text if chars is None else "".join(chars)


def _collapse_runs(text: str, starts: list[int] | range, ends: list[int] | range,
                   ) -> tuple[str, list[int] | range, list[int] | range]:
    """Keep the first two characters of each run; the second one absorbs the rest of the
    run, so a span over it still covers every stretched letter in the original."""
    runs = list(_LETTER_RUN.finditer(text))
    if not runs:
        return text, starts, ends
    pieces: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    pos = 0
    for m in runs:
        a, b = m.start(), m.end()
        pieces.append(text[pos:a + 2])
        new_starts.extend(starts[pos:a + 2])
        new_ends.extend(ends[pos:a + 1])
        new_ends.append(ends[b - 1])
        pos = b
    pieces.append(text[pos:])
    new_starts.extend(starts[pos:])
    new_ends.extend(ends[pos:])
    return "".join(pieces), new_starts, new_ends
