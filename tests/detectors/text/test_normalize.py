"""normalize(): the matching skeleton and its map back to the original text."""

from __future__ import annotations

import timeit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warden.detectors.text.normalize import NormalizedText, normalize, normalize_for_model

# Any str, lone surrogates included (hypothesis' text() excludes Cs by default).
any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=200)
obfuscation_text = st.text(
    alphabet=st.sampled_from([*list("kilyou  .-_*0134@$!|+"), "\u200b", "́", "і", "ｋ", "𝐤", "İ", "ß"]),
    max_size=60,
)


def _check_map(nt: NormalizedText) -> None:
    n = len(nt.text)
    assert len(nt.starts) == len(nt.ends) == n
    for i in range(n):
        assert 0 <= nt.starts[i] < nt.ends[i] <= len(nt.original)
        if i:
            assert nt.starts[i - 1] <= nt.starts[i] and nt.ends[i - 1] <= nt.ends[i]


@given(any_text)
@settings(max_examples=400)
def test_total_and_map_valid_on_any_text(text: str) -> None:
    nt = normalize(text)
    assert nt.original == text
    _check_map(nt)
    if nt.text:
        span = nt.original_span(0, len(nt.text))
        assert span.text == text[span.start:span.end]
    normalize_for_model(text)  # the model normalizer is total too


@given(obfuscation_text, st.booleans(), st.booleans(), st.booleans())
@settings(max_examples=300)
def test_every_option_combination_keeps_a_valid_map(text: str, leet: bool, join: bool, collapse: bool) -> None:
    nt = normalize(text, leet=leet, join_spaced=join, collapse_repeats=collapse)
    _check_map(nt)
    for a in range(len(nt.text)):
        for b in range(a + 1, min(len(nt.text), a + 4) + 1):
            span = nt.original_span(a, b)
            assert span.text == text[span.start:span.end]


@given(any_text)
@settings(max_examples=300)
def test_character_mapping_is_idempotent(text: str) -> None:
    """Step 1 (NFKC, invisibles, homoglyphs, casefold) is a fixed point."""
    once = normalize(text, leet=False, join_spaced=False, collapse_repeats=False).text
    assert normalize(once, leet=False, join_spaced=False, collapse_repeats=False).text == once


@given(st.text(alphabet=st.sampled_from(list("abkilo  \u200bі0134@$!")), max_size=40))
@settings(max_examples=300)
def test_leet_and_collapse_are_idempotent(text: str) -> None:
    """Without spaced-word joining, the full skeleton is idempotent. (Joining is not:
    joined letters can line up with new single letters, e.g. "a a b b b" -> "aa b" ...)"""
    once = normalize(text, join_spaced=False).text
    assert normalize(once, join_spaced=False).text == once


@pytest.mark.parametrize(("text", "expected"), [
    ("KILL", "kill"),
    ("ｋｉｌｌ", "kill"),                       # fullwidth (NFKC)
    ("𝐤𝐢𝐥𝐥 𝔶𝔬𝔲", "kill you"),                # mathematical letters (NFKC)
    ("кіll уоu", "kill you"),                  # Cyrillic homoglyphs
    ("ΚΙΛΛ", "kiλλ"),                          # Greek capitals map to what they look like
    ("k\u200bi\u200dl\u2060l\ufeff", "kill"),  # zero-width and format characters
    ("k\u00adill", "kill"),                    # soft hyphen
    ("z̷̢a̸l̵g̶o̷", "zalgo"),                      # combining marks
    ("kíll", "kill"),                          # accents
    ("k\ufe0fill", "kill"),                    # variation selector
    ("h3ll0 w0rld", "hello world"),            # leetspeak in words
    ("$hit h@te", "shit hate"),                # symbol leetspeak followed by a letter
    ("kill!", "kill!"),                        # trailing punctuation is not leet
    ("it costs $100 in 2024", "it costs $100 in 2024"),  # numbers stay
    ("call 555-1234", "call 555-1234"),
    ("loooool", "lool"),                       # runs of 3+ letters collapse to 2
    ("kill", "kill"),                          # genuine doubles stay
    ("1000000", "1000000"),                    # digit runs stay
    ("k i l l", "kill"),                       # spaced out
    ("k.i.l.l", "kill"),
    ("k - i - l - l", "kill"),
    ("k i l l y0u", "kill you"),
    ("I am a b-movie fan", "i am a b-movie fan"),  # ordinary prose untouched
    ("ﬁne", "fine"),                           # NFKC expansion
    ("", ""),
])
def test_obfuscations(text: str, expected: str) -> None:
    assert normalize(text).text == expected


def test_span_maps_back_through_every_step() -> None:
    nt = normalize("Well, K I L L  y0u\u200b!!")
    start = nt.text.index("kill")
    assert nt.text[start:] == "kill  you!!"  # the double space was a separator of its own
    span = nt.original_span(start, nt.text.index("you") + 3)
    assert span.text == "K I L L  y0u"
    stretched = normalize("so loooooong")
    i = stretched.text.index("loong")
    assert stretched.original_span(i, i + 5).text == "loooooong"
    assert stretched.stretched and stretched.is_stretched(i, i + 5)
    zalgo = normalize("z̷̢a̸l̵g̶o̷ x")
    assert zalgo.original_span(0, 5).text == "z̷̢a̸l̵g̶o̷"  # trailing marks stay with their letter
    fi = normalize("ﬁx")
    assert fi.text == "fix" and fi.original_span(0, 1).text == "ﬁ" and fi.original_span(1, 2).text == "ﬁ"


def test_lone_surrogates_and_controls() -> None:
    nt = normalize("a\ud800b\x00c\udfff")
    assert nt.text == "abc"
    assert nt.original_span(0, 3).text == "a\ud800b\x00c"


@pytest.mark.parametrize(("start", "end"), [(-1, 1), (1, 1), (0, 99), (2, 1)])
def test_original_span_rejects_bad_ranges(start: int, end: int) -> None:
    with pytest.raises(ValueError, match="invalid normalized range"):
        normalize("hello").original_span(start, end)


def test_normalize_for_model_unchanged() -> None:
    assert normalize_for_model("  Heeeeey\u200b  ｙｏｕ  ") == "Heeey you"


@pytest.mark.parametrize("text", [
    "You are such a nice person, thanks for sharing this with everyone here!",
    "Ты такой хороший человек, спасибо что поделился",
    "k i l l y0u, l00000ser h3h3 $hit",
])
def test_short_text_is_fast(text: str) -> None:
    """Budget: a short text in well under 50 µs (measured ~10-30 µs on the CI machines).
    The assertion is 5x looser so a loaded CI box does not flake."""
    normalize(text)
    best = min(timeit.repeat(lambda: normalize(text), number=200, repeat=5)) / 200
    assert best < 250e-6, f"normalize took {best * 1e6:.1f} µs"
