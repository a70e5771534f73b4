"""Keyword and regex banks: the cheapest, most explainable tier of the cascade.

A *bank* is a named list of terms (or regular expressions) for one category, with the
probability a match implies (`score`), an allow-list of phrases that cancel overlapping
matches ("Scunthorpe", "assassin's creed"), and optionally the surfaces it applies to.
Banks are written inline in the policy or kept in YAML files next to it:

    detectors:
      banks:
        type: keyword_bank
        params:
          banks:
            - path: banks/default.yaml          # relative to the policy file's directory
            - name: house_rules
              category: spam
              terms: ["buy followers"]

`params: {path: banks/default.yaml}` is shorthand for a single file. A bank file has
`keyword_banks:` and `regex_banks:` lists, so one file can feed both
detectors. Everything is validated when the detector is built; a bad file, an unknown key
or a regex that does not compile fails the policy load, naming the bank and the entry.

Matching works on `normalize()`'s skeleton, so "K I L L  y0u", "кіll you" and
"k\u200bill you" all hit the term "kill you", and evidence spans are mapped back to what the
user actually wrote. A bank that does not match reports nothing: a miss in a keyword
list is not evidence that content is safe, so the detector only emits scores for
categories it found something for.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import Discriminator, Field, Tag, ValidationError, model_validator

from warden.core import Content, DetectorResult, Evidence, Span
from warden.core.policy import CATEGORY_NAME, NAME
from warden.detectors.base import Detector, DetectorContext, DetectorParams
from warden.detectors.text.normalize import NormalizedText, normalize

DEFAULT_SCORE = 0.95
MAX_SPANS_PER_RULE = 20  # evidence stays readable on spammy text; the score is unaffected

# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------


class _Bank(DetectorParams):
    name: str = Field(pattern=NAME.pattern, description="bank name; evidence rules read '<name>:<term>'")
    category: str = Field(pattern=CATEGORY_NAME.pattern)
    score: float = Field(default=DEFAULT_SCORE, gt=0.0, le=1.0, description="probability a match implies")
    allow: tuple[str, ...] = Field(default=(), description="phrases that cancel a match overlapping them")
    surfaces: tuple[str, ...] | None = Field(default=None, description="surfaces the bank applies to; all if unset")
    description: str = ""


class KeywordBank(_Bank):
    """Terms matched on word boundaries of the normalized text (multi-word terms allowed)."""

    terms: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _terms_have_words(self) -> KeywordBank:
        for term in (*self.terms, *self.allow):
            if not _words(normalize(term).text):
                raise ValueError(f"bank {self.name!r}: term {term!r} has no letters or digits to match on")
        return self


class RegexBank(_Bank):
    """Regular expressions (Python `re`, case-insensitive).

    `match_on: normalized` (default) runs them on the skeleton (casefolded, leetspeak
    undone), which is what obfuscation-resistant patterns want; `original` runs them on the
    text as written, which is what patterns about digits, prices and URLs want.
    """

    patterns: tuple[str, ...] = Field(min_length=1)
    match_on: Literal["normalized", "original"] = "normalized"

    @model_validator(mode="after")
    def _patterns_compile(self) -> RegexBank:
        for pattern in self.patterns:
            problem = regex_problem(pattern)
            if problem:
                raise ValueError(f"regex bank {self.name!r}: pattern {pattern!r} {problem}")
        for phrase in self.allow:
            if not _words(normalize(phrase).text):
                raise ValueError(f"bank {self.name!r}: allow phrase {phrase!r} has no letters or digits")
        return self


class BankFile(DetectorParams):
    """A YAML bank file; `only` picks banks by name (default: all of the detector's kind)."""

    path: str = Field(min_length=1)
    only: tuple[str, ...] | None = None


def _inline_or_file(value: Any) -> str:
    if isinstance(value, dict):
        return "file" if "path" in value else "inline"
    return "file" if isinstance(value, BankFile) else "inline"


class _BankParams(DetectorParams):
    """`path` is shorthand for one bank file (`params: {path: banks/default.yaml}`);
    `banks` lists inline banks and `{path: ...}` references. At least one is required."""

    path: str | None = Field(default=None, min_length=1)
    leet: bool = True
    join_spaced: bool = True
    collapse_repeats: bool = True

    @model_validator(mode="after")
    def _some_banks(self) -> _BankParams:
        if self.path is None and not self.banks:  # type: ignore[attr-defined]
            raise ValueError("give `banks` (inline banks or {path: ...} entries) or `path` (one bank file)")
        return self


class KeywordBankParams(_BankParams):
    banks: tuple[
        Annotated[Annotated[KeywordBank, Tag("inline")] | Annotated[BankFile, Tag("file")],
                  Discriminator(_inline_or_file)], ...
    ] = ()


class RegexBankParams(_BankParams):
    banks: tuple[
        Annotated[Annotated[RegexBank, Tag("inline")] | Annotated[BankFile, Tag("file")],
                  Discriminator(_inline_or_file)], ...
    ] = ()
    window: int = Field(default=4096, ge=256, description="regexes scan long texts in windows of this many chars")
    overlap: int = Field(default=256, ge=16, description="windows overlap; longer matches may be missed")
    max_matches: int = Field(default=MAX_SPANS_PER_RULE, ge=1, description="matches kept per pattern and item")

    @model_validator(mode="after")
    def _overlap_below_window(self) -> RegexBankParams:
        if self.overlap >= self.window:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than window ({self.window})")
        return self


# ---------------------------------------------------------------------------------------------
# Regex safety
# ---------------------------------------------------------------------------------------------

try:  # Python >= 3.11 keeps the parser private; it is only used for a static safety check.
    from re import _constants as _sre_c
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover - older layouts
    _sre_parse = None  # type: ignore[assignment]
    _sre_c = None  # type: ignore[assignment]


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` is unfit for a bank, or None.

    Python's `re` has no timeout, so catastrophic backtracking is prevented in two ways:
    here, patterns that nest one unbounded quantifier inside another (`(a+)+`, `(\\w+\\s?)*`,
    the classic exponential shapes) are rejected at load; at scan time, long texts are
    scanned in bounded windows (`RegexBankParams.window`), which caps the remaining
    polynomial cases. Overlapping alternatives under a repeat (`(a|aa)+`) are not detected.
    """
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        return f"is not a valid regular expression: {exc}"
    if compiled.fullmatch(""):
        return "matches the empty string; evidence needs a non-empty span"
    if _sre_parse is not None:
        try:
            nested = _nested_unbounded(_sre_parse.parse(pattern), inside=False)
        except Exception:
            nested = False
        if nested:
            return ("nests an unbounded quantifier inside another (catastrophic backtracking risk); "
                    "bound the inner or outer repeat, e.g. {1,50}")
    return None


def _nested_unbounded(parsed: Any, *, inside: bool) -> bool:
    c = _sre_c
    repeats = {c.MAX_REPEAT, c.MIN_REPEAT}
    for op, av in parsed:
        if op in repeats:
            _lo, hi, sub = av
            unbounded = hi == c.MAXREPEAT
            if unbounded and inside:
                return True
            if _nested_unbounded(sub, inside=inside or unbounded):
                return True
            continue
        if op is c.SUBPATTERN:
            children = [av[-1]]
        elif op is c.BRANCH:
            children = list(av[1])
        elif op in (c.ASSERT, c.ASSERT_NOT):
            children = [av[1]]
        elif op is c.GROUPREF_EXISTS:
            children = [p for p in av[1:] if p is not None]
        else:
            children = []
        if any(_nested_unbounded(child, inside=inside) for child in children):
            return True
        # POSSESSIVE_REPEAT and ATOMIC_GROUP never backtrack into themselves: safe.
    return False


def _scan(rx: re.Pattern[str], text: str, *, window: int, overlap: int, limit: int) -> Iterator[tuple[int, int]]:
    """Non-empty matches of `rx` in `text`, scanning at most `window` chars per call."""
    n = len(text)
    seen: set[tuple[int, int]] = set()
    pos = 0
    while True:
        end = min(n, pos + window)
        for m in rx.finditer(text, pos, end):
            key = (m.start(), m.end())
            if key[0] < key[1] and key not in seen:
                seen.add(key)
                yield key
                if len(seen) >= limit:
                    return
        if end >= n:
            return
        pos = end - overlap


# ---------------------------------------------------------------------------------------------
# Keyword index
# ---------------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")
_SQUEEZE = re.compile(r"(.)\1+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _squeeze(word: str) -> str:
    return _SQUEEZE.sub(r"\1", word)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One phrase in an index: which bank it belongs to and how it was written there."""

    bank: int
    phrase: str


@dataclass(frozen=True, slots=True)
class _Hit:
    entry: _Entry
    start: int  # in normalized text
    end: int


@dataclass(frozen=True, slots=True)
class _Tokens:
    """The word tokens of a normalized text, computed once and shared by the term index
    and the allow-list index."""

    spans: list[tuple[int, int]]
    words: list[str]

    @classmethod
    def of(cls, nt: NormalizedText) -> _Tokens:
        text = nt.text
        spans = [m.span() for m in _WORD.finditer(text)]
        return cls(spans=spans, words=[text[a:b] for a, b in spans])


@dataclass(slots=True)
class _PhraseIndex:
    """Phrases as token sequences, looked up by hashing n-grams of the text's tokens.

    Cost is one dict lookup per text token (plus the lengths of phrases starting with a
    token that begins one), independent of the number of phrases, so thousands of terms
    cost what ten do; no dependency (Aho-Corasick) is needed for word-boundary matching.
    Three keys per phrase:
      - `exact`: its token tuple ("kill", "you");
      - `joined`: its tokens concatenated, looked up against single text tokens, for
        words run together ("killyou") or spaced out entirely ("k i l l y o u");
      - `squeezed`: every repeated letter reduced to one, looked up only for text tokens
        whose letters were stretched ("kiiiill" -> "kiill" -> "kil" == squeeze("kill")).
    """

    exact: dict[tuple[str, ...], list[_Entry]] = field(default_factory=dict)
    lengths: dict[str, tuple[int, ...]] = field(default_factory=dict)
    joined: dict[str, list[_Entry]] = field(default_factory=dict)
    squeezed: dict[tuple[str, ...], list[_Entry]] = field(default_factory=dict)
    sq_lengths: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def add(self, tokens: Sequence[str], entry: _Entry) -> None:
        key = tuple(tokens)
        self.exact.setdefault(key, []).append(entry)
        self.lengths[key[0]] = tuple(sorted({*self.lengths.get(key[0], ()), len(key)}, reverse=True))
        if len(key) > 1:
            self.joined.setdefault("".join(key), []).append(entry)
        sq = tuple(_squeeze(t) for t in key)
        self.squeezed.setdefault(sq, []).append(entry)
        self.sq_lengths[sq[0]] = tuple(sorted({*self.sq_lengths.get(sq[0], ()), len(sq)}, reverse=True))

    def __bool__(self) -> bool:
        return bool(self.exact)

    def find(self, nt: NormalizedText, tokens: _Tokens | None = None) -> list[_Hit]:
        tokens = tokens or _Tokens.of(nt)
        spans, words = tokens.spans, tokens.words
        hits: dict[tuple[_Entry, int, int], None] = {}  # ordered set: deterministic evidence
        n = len(words)
        stretched: list[bool] | None = None
        for i, w in enumerate(words):
            for length in self.lengths.get(w, ()):
                if i + length <= n:
                    for e in self.exact.get(tuple(words[i:i + length]), ()):
                        hits[(e, spans[i][0], spans[i + length - 1][1])] = None
            for e in self.joined.get(w, ()):
                hits[(e, spans[i][0], spans[i][1])] = None
        if nt.stretched:
            stretched = [nt.is_stretched(a, b) for a, b in spans]
            sq_words = [_squeeze(w) for w in words]
            for i, w in enumerate(sq_words):
                for length in self.sq_lengths.get(w, ()):
                    if i + length <= n and any(stretched[i:i + length]):
                        for e in self.squeezed.get(tuple(sq_words[i:i + length]), ()):
                            hits[(e, spans[i][0], spans[i + length - 1][1])] = None
        return [_Hit(e, a, b) for (e, a, b) in hits]


# ---------------------------------------------------------------------------------------------
# Loading bank files
# ---------------------------------------------------------------------------------------------

_FILE_KEYS = {"schema_version", "description", "keyword_banks", "regex_banks"}


class BankLoadError(ValueError):
    """A bank file is missing, unreadable or invalid; the message names file and entry."""


def load_bank_file(path: Path, kind: Literal["keyword_banks", "regex_banks"]) -> list[_Bank]:
    """Read the banks of one kind from a YAML bank file, validating each entry."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BankLoadError(f"{path}: bank file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BankLoadError(f"{path}: cannot read bank file: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BankLoadError(f"{path}: a bank file is a mapping with keyword_banks and/or regex_banks")
    unknown = sorted(set(raw) - _FILE_KEYS)
    if unknown:
        raise BankLoadError(f"{path}: unknown top-level key(s) {unknown}; allowed: {sorted(_FILE_KEYS)}")
    entries = raw.get(kind) or []
    if not isinstance(entries, list):
        raise BankLoadError(f"{path}: {kind} must be a list of banks")
    model: type[_Bank] = KeywordBank if kind == "keyword_banks" else RegexBank
    banks: list[_Bank] = []
    for i, entry in enumerate(entries):
        try:
            banks.append(model.model_validate(entry))
        except ValidationError as exc:
            name = entry.get("name", "?") if isinstance(entry, dict) else "?"
            raise BankLoadError(f"{path}: {kind}[{i}] (bank {name!r}): {_describe(exc)}") from None
    return banks


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Detectors
# ---------------------------------------------------------------------------------------------


class _BankDetector(Detector):
    """Shared loading, allow-lists and result building for the two bank detectors."""

    _kind: ClassVar[Literal["keyword_banks", "regex_banks"]]

    def __init__(self, params: DetectorParams | None = None, *, instance: str | None = None,
                 context: DetectorContext | None = None) -> None:
        super().__init__(params, instance=instance, context=context)
        self.banks: tuple[_Bank, ...] = tuple(self._resolve_banks())
        names = [b.name for b in self.banks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise BankLoadError(f"{self.instance}: bank name(s) {dupes} defined more than once")
        self._allow = _PhraseIndex()
        for i, bank in enumerate(self.banks):
            for phrase in bank.allow:
                self._allow.add(_words(self._normalize(phrase).text), _Entry(i, phrase))
        digest = hashlib.sha256(
            "\n".join(b.model_dump_json() for b in self.banks).encode() + self.params.model_dump_json().encode()
        ).hexdigest()[:10]
        self._version = f"{self.name}@{self.version}+{digest}"

    @property
    def model_version(self) -> str:
        """Changes whenever bank contents change, so decisions record which lists fired."""
        return getattr(self, "_version", f"{self.name}@{self.version}")

    def _resolve_banks(self) -> Iterator[_Bank]:
        refs = list(self.params.banks)  # type: ignore[attr-defined]
        if self.params.path is not None:  # type: ignore[attr-defined]
            refs.insert(0, BankFile(path=self.params.path))  # type: ignore[attr-defined]
        for ref in refs:
            if not isinstance(ref, BankFile):
                yield ref
                continue
            path = self.resolve_path(ref.path)
            loaded = load_bank_file(path, self._kind)
            if ref.only is not None:
                missing = sorted(set(ref.only) - {b.name for b in loaded})
                if missing:
                    raise BankLoadError(f"{path}: no {self._kind} named {missing}")
                loaded = [b for b in loaded if b.name in ref.only]
            yield from loaded

    def _normalize(self, text: str) -> NormalizedText:
        p = self.params
        return normalize(text, leet=p.leet, join_spaced=p.join_spaced,  # type: ignore[attr-defined]
                         collapse_repeats=p.collapse_repeats)  # type: ignore[attr-defined]

    def _applies(self, bank: _Bank, item: Content) -> bool:
        return bank.surfaces is None or item.surface in bank.surfaces

    def _allowed_spans(self, nt: NormalizedText, tokens: _Tokens | None = None) -> dict[int, list[Span]]:
        out: dict[int, list[Span]] = {}
        if self._allow:
            for hit in self._allow.find(nt, tokens):
                out.setdefault(hit.entry.bank, []).append(nt.original_span(hit.start, hit.end))
        return out

    def _build(self, item: Content, matches: dict[tuple[int, str], list[Span]]) -> DetectorResult:
        """Scores are the max bank score per category; one Evidence per (bank, term)."""
        scores: dict[str, float] = {}
        evidence: list[Evidence] = []
        for (bank_i, phrase), spans in matches.items():
            bank = self.banks[bank_i]
            scores[bank.category] = max(scores.get(bank.category, 0.0), bank.score)
            uniq = sorted(set(spans), key=lambda s: (s.start, s.end))[:MAX_SPANS_PER_RULE]
            evidence.append(Evidence(category=bank.category, rule=f"{bank.name}:{phrase}",
                                     spans=tuple(uniq), score=bank.score))
        evidence.sort(key=lambda e: (e.spans[0].start if e.spans else -1, e.rule))
        return self.result(item, scores, tuple(evidence))


def _overlaps(span: Span, others: Sequence[Span]) -> bool:
    return any(span.start < o.end and o.start < span.end for o in others)


class KeywordBankDetector(_BankDetector):
    """Word-boundary keyword matching on normalized text, for thousands of terms."""

    name: ClassVar[str] = "keyword_bank"
    Params: ClassVar[type[DetectorParams]] = KeywordBankParams
    version: ClassVar[str] = "1"
    _kind = "keyword_banks"

    def __init__(self, params: DetectorParams | None = None, *, instance: str | None = None,
                 context: DetectorContext | None = None) -> None:
        super().__init__(params, instance=instance, context=context)
        self._index = _PhraseIndex()
        for i, bank in enumerate(self.banks):
            for term in bank.terms:  # type: ignore[attr-defined]
                self._index.add(_words(self._normalize(term).text), _Entry(i, term))

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        return [self._one(item) for item in batch]

    def _one(self, item: Content) -> DetectorResult:
        nt = self._normalize(item.text or "")
        tokens = _Tokens.of(nt)
        hits = self._index.find(nt, tokens)
        if not hits:
            return self.result(item, {})
        allowed = self._allowed_spans(nt, tokens)
        matches: dict[tuple[int, str], list[Span]] = {}
        for hit in hits:
            bank_i = hit.entry.bank
            if not self._applies(self.banks[bank_i], item):
                continue
            span = nt.original_span(hit.start, hit.end)
            if _overlaps(span, allowed.get(bank_i, ())):
                continue
            matches.setdefault((bank_i, hit.entry.phrase), []).append(span)
        return self._build(item, matches)


class RegexBankDetector(_BankDetector):
    """Regular-expression banks, compiled and safety-checked at load."""

    name: ClassVar[str] = "regex_bank"
    Params: ClassVar[type[DetectorParams]] = RegexBankParams
    version: ClassVar[str] = "1"
    _kind = "regex_banks"

    def __init__(self, params: DetectorParams | None = None, *, instance: str | None = None,
                 context: DetectorContext | None = None) -> None:
        super().__init__(params, instance=instance, context=context)
        self._compiled: tuple[tuple[re.Pattern[str], ...], ...] = tuple(
            tuple(re.compile(p, re.IGNORECASE) for p in bank.patterns)  # type: ignore[attr-defined]
            for bank in self.banks
        )

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        return [self._one(item) for item in batch]

    def _one(self, item: Content) -> DetectorResult:
        p: RegexBankParams = self.params  # type: ignore[assignment]
        original = item.text or ""
        nt: NormalizedText | None = None
        allowed: dict[int, list[Span]] | None = None
        matches: dict[tuple[int, str], list[Span]] = {}
        for bank_i, bank in enumerate(self.banks):
            if not self._applies(bank, item):
                continue
            on_normalized = bank.match_on == "normalized"  # type: ignore[attr-defined]
            if nt is None and (on_normalized or bank.allow):
                nt = self._normalize(original)
            target = nt.text if on_normalized and nt is not None else original
            for source, rx in zip(bank.patterns, self._compiled[bank_i], strict=True):  # type: ignore[attr-defined]
                for a, b in _scan(rx, target, window=p.window, overlap=p.overlap, limit=p.max_matches):
                    span = nt.original_span(a, b) if on_normalized and nt is not None else Span(a, b, original[a:b])
                    if bank.allow:
                        if allowed is None:
                            allowed = self._allowed_spans(nt) if nt is not None else {}
                        if _overlaps(span, allowed.get(bank_i, ())):
                            continue
                    matches.setdefault((bank_i, source), []).append(span)
        return self._build(item, matches)
