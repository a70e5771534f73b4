"""Pure view helpers for the reviewer UI: turn stored payloads into what templates show.

No I/O and no HTML here: templates escape everything (Jinja2 autoescape); these functions
only cut text into segments, pick safe image URLs and classify SLA states, so they are
unit-tested without a browser.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

MAX_IMAGES = 20
#: Due within this much time counts as "due soon" (amber); past due is "overdue" (red).
DUE_SOON = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class EvidenceSpan:
    start: int
    end: int
    category: str
    rule: str


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of content text; `categories` non-empty means it is highlighted evidence."""

    text: str
    categories: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()

    @property
    def highlighted(self) -> bool:
        return bool(self.categories)


@dataclass(frozen=True, slots=True)
class Signal:
    """One row of the signals table: a category's score and what the policy did with it."""

    category: str
    score: float | None
    verdict: str
    detector: str
    threshold: float | None
    rule: str


def evidence_spans(text: str, reasons: Iterable[Mapping[str, Any]]) -> list[EvidenceSpan]:
    """Evidence spans from a decision payload's `reasons`, checked against `text`.

    Offsets are half-open [start, end) in the original text. A span whose offsets do not
    match its quoted text (e.g. computed on another version of the text) is re-anchored on
    the first occurrence of the quote, else dropped: a wrong highlight misleads a reviewer.
    """
    out: list[EvidenceSpan] = []
    for reason in reasons or ():
        if not isinstance(reason, Mapping):
            continue
        for ev in reason.get("evidence") or ():
            if not isinstance(ev, Mapping):
                continue
            category = str(ev.get("category") or reason.get("category") or "")
            rule = str(ev.get("rule") or reason.get("rule") or "")
            for sp in ev.get("spans") or ():
                span = _anchor(text, sp)
                if span is not None:
                    out.append(EvidenceSpan(span[0], span[1], category, rule))
    return out


def _anchor(text: str, sp: Any) -> tuple[int, int] | None:
    if not isinstance(sp, Mapping):
        return None
    start, end, quote = sp.get("start"), sp.get("end"), sp.get("text")
    in_range = isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)
    if in_range and (not isinstance(quote, str) or text[start:end] == quote):
        return start, end  # type: ignore[return-value]
    if isinstance(quote, str) and quote:
        at = text.find(quote)
        if at >= 0:
            return at, at + len(quote)
    return None


def highlight_segments(text: str, spans: Sequence[EvidenceSpan]) -> list[Segment]:
    """Cut `text` at every span boundary; each piece carries the categories covering it.

    Overlapping spans are handled (a piece covered by two categories lists both); adjacent
    pieces with the same categories are merged. Concatenating the pieces gives `text` back.
    """
    if not text:
        return []
    cuts = sorted({0, len(text), *(s.start for s in spans), *(s.end for s in spans)})
    segments: list[Segment] = []
    for a, b in itertools.pairwise(cuts):
        covering = [s for s in spans if s.start <= a and b <= s.end]
        cats = tuple(sorted({s.category for s in covering}))
        rules = tuple(sorted({s.rule for s in covering if s.rule}))
        if segments and segments[-1].categories == cats and segments[-1].rules == rules:
            segments[-1] = Segment(segments[-1].text + text[a:b], cats, rules)
        else:
            segments.append(Segment(text[a:b], cats, rules))
    return segments


def signals(payload: Mapping[str, Any]) -> list[Signal]:
    """Per-category scores of a decision payload, joined with the reason that used each."""
    reasons = {str(r.get("category")): r for r in payload.get("reasons") or () if isinstance(r, Mapping)}
    scores = payload.get("scores") or {}
    flagged = set(payload.get("flagged") or ())
    uncertain = set(payload.get("uncertain") or ())
    out: list[Signal] = []
    for category in sorted(set(scores) | set(reasons)):
        r = reasons.get(category, {})
        verdict = str(r.get("verdict") or ("violating" if category in flagged else
                                            "uncertain" if category in uncertain else "clear"))
        score = scores.get(category, r.get("score"))
        out.append(Signal(category=category, score=float(score) if isinstance(score, int | float) else None,
                          verdict=verdict, detector=str(r.get("detector") or ""),
                          threshold=r.get("threshold") if isinstance(r.get("threshold"), int | float) else None,
                          rule=str(r.get("rule") or "")))
    out.sort(key=lambda s: (s.verdict not in ("violating", "uncertain"), -(s.score or 0.0)))
    return out


def image_urls(metadata: Mapping[str, Any] | None) -> list[str]:
    """Image URLs from content metadata (`image_url`, `image_urls`, `images`, `media`).

    Only http(s) and `data:image/` URLs: anything else (javascript:, file:) is dropped.
    """
    if not isinstance(metadata, Mapping):
        return []
    found: list[str] = []
    for key in ("image_url", "image_urls", "images", "media"):
        value = metadata.get(key)
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            url = item.get("url") if isinstance(item, Mapping) else item
            if isinstance(item, Mapping) and str(item.get("type", "image")).split("/")[0] != "image":
                continue
            if isinstance(url, str) and _safe_image_url(url) and url not in found:
                found.append(url)
    return found[:MAX_IMAGES]


def _safe_image_url(url: str) -> bool:
    u = url.strip().lower()
    return len(url) <= 4096 and (u.startswith(("https://", "http://")) or u.startswith("data:image/"))


def sla_state(due_at: datetime | None, now: datetime) -> str:
    """`overdue`, `due_soon` or `ok` (no due date: `ok`)."""
    if due_at is None:
        return "ok"
    if due_at <= now:
        return "overdue"
    return "due_soon" if due_at - now <= DUE_SOON else "ok"


def shortcut_key(index: int) -> str | None:
    """The key that toggles the index-th category on the decision form (1..9, then none)."""
    return str(index + 1) if index < 9 else None




# -- decision form -------------------------------------------------------------------------------
#: Keyboard keys for reviewer actions (shown on the page; the JS reads them from data-key).
ACTION_KEYS: dict[str, str] = {"allow": "a", "label": "l", "limit": "m", "remove": "r", "escalate": "e"}


@dataclass(frozen=True, slots=True)
class FormCategory:
    name: str
    key: str | None


@dataclass(frozen=True, slots=True)
class FormAction:
    value: str
    key: str | None
    checked: bool = False


def form_categories(in_question: Sequence[str], all_categories: Sequence[str]) -> tuple[list[FormCategory],
                                                                                        list[FormCategory]]:
    """(categories in question, other policy categories), numbered 1..9 in that order.

    Only the categories in question get an explicit "not violating" label when unchecked;
    the others are labelled only when checked, so an unexamined category never becomes a
    negative training label. With nothing in question, every policy category is in question.
    """
    main = [c for c in dict.fromkeys(in_question) if c in all_categories] or list(all_categories)
    rest = [c for c in all_categories if c not in main]
    numbered = [FormCategory(c, shortcut_key(i)) for i, c in enumerate([*main, *rest])]
    return numbered[: len(main)], numbered[len(main):]


def form_actions(actions: Sequence[str]) -> list[FormAction]:
    return [FormAction(a, ACTION_KEYS.get(a)) for a in actions]


def labels_from_form(*, shown: Sequence[str], violating: Sequence[str]) -> dict[str, bool]:
    """`shown`: categories in question (unchecked = False); `violating`: every checked box."""
    labels = {c: False for c in shown}
    labels.update({c: True for c in violating})
    return labels


def categories_in_question(task_categories: Sequence[str], payload: Mapping[str, Any] | None) -> list[str]:
    """The task's categories, then what the automated decision flagged or was unsure about."""
    payload = payload or {}
    return list(dict.fromkeys([*task_categories, *(payload.get("flagged") or ()), *(payload.get("uncertain") or ())]))


def age_text(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def queue_sla_state(*, overdue: int, oldest_age_seconds: float | None, sla_hours: float | None) -> str:
    """A queue is `overdue` when any task is past due, `due_soon` when its oldest task is
    within `DUE_SOON` of the SLA, else `ok`."""
    if overdue:
        return "overdue"
    if sla_hours is not None and oldest_age_seconds is not None:
        left = sla_hours * 3600.0 - oldest_age_seconds
        return "due_soon" if left <= DUE_SOON.total_seconds() else "ok"
    return "ok"


__all__ = [
    "ACTION_KEYS",
    "EvidenceSpan",
    "FormAction",
    "FormCategory",
    "Segment",
    "Signal",
    "age_text",
    "categories_in_question",
    "evidence_spans",
    "form_actions",
    "form_categories",
    "highlight_segments",
    "image_urls",
    "labels_from_form",
    "queue_sla_state",
    "shortcut_key",
    "signals",
    "sla_state",
]
