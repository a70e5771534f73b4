"""Reviewer labels as training rows: the feedback loop's data for `warden train --with-reviews`.

Read from the store (`labels` joined to the archived text in `content`), turned into
`TextRow`s of source "reviewer", and merged into the dataset rows before training. Decisions
made here, and why:

* **Text.** A label is usable only when its content's text is archived (`content` table);
  labels without text are counted (`without_text`) and skipped, never guessed.
* **Several labels for one text** (double review, QA sample, appeal): per category the
  latest label wins. Appeals and QA re-reviews come after the original decision and are
  the final word on it.
* **Reviewer labels override dataset labels** for the same text (normalized + casefold,
  the key training de-duplicates on): reviewers apply *this* policy's definitions to *this*
  platform's traffic, while dataset labels come from other definitions (e.g. Davidson's
  "offensive" is not our `hate`). Dataset labels for categories no reviewer labeled are kept.
  So the merged rows hold one row per text and training never sees the conflict.
* **Implication.** As in the datasets (`text_data.make_labels`), a violating sub-category
  implies its parent and a non-violating parent implies non-violating sub-categories.
* **Splits.** Reviewer rows are split like every other row, by the content hash of their
  text (`warden.learn.splits.assign_split`): ~70% train, ~15% calibration (thresholds and
  Platt scaling), ~15% test (held-out metrics, reported per source as "reviewer"). A reviewed
  text that also sits in a golden test set hashes to the test split too, so reviewer labels
  never leak into a gate's data. They are never subsampled by the per-source cap.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from warden.learn.splits import assign_split, split_key
from warden.learn.text_data import TextRow, make_labels
from warden.learn.train import REVIEW_SOURCE
from warden.store import Store
from warden.store.models import ContentRow, LabelRow


@dataclass(frozen=True, slots=True)
class ReviewerLabel:
    """One category label from one reviewer decision, with the text it applies to."""

    content_id: str
    text: str
    category: str
    violating: bool
    reviewer: str
    policy_version: str
    source: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ReviewerLabels:
    labels: tuple[ReviewerLabel, ...]  # oldest first
    without_text: int  # labels skipped: their content's text is not archived


@dataclass(frozen=True, slots=True)
class ReviewerMerge:
    """Dataset rows with reviewer rows merged in, and what the merge did (for the lineage)."""

    rows: dict[str, list[TextRow]]
    labels: int
    texts: int  # distinct (normalized) texts the labels became
    overrides: int  # dataset rows replaced by a reviewer row for the same text
    disagreements: int  # (text, category) pairs where reviewers disagreed (the latest won)
    first: datetime | None
    last: datetime | None
    split: dict[str, int]  # reviewer texts per content-hash split


def read_reviewer_labels(store: Store, *, since: datetime | None = None, until: datetime | None = None,
                         categories: Sequence[str] | None = None) -> ReviewerLabels:
    """Reviewer labels with their archived text, oldest first (`since` <= created_at < `until`)."""
    q = (select(LabelRow, ContentRow.text)
         .outerjoin(ContentRow, ContentRow.content_id == LabelRow.content_id)
         .order_by(LabelRow.created_at, LabelRow.id))
    if since is not None:
        q = q.where(LabelRow.created_at >= since)
    if until is not None:
        q = q.where(LabelRow.created_at < until)
    if categories is not None:
        q = q.where(LabelRow.category.in_(list(categories)))
    out: list[ReviewerLabel] = []
    skipped = 0
    with store.session() as s:
        for row, text in s.execute(q).all():
            if not text or not text.strip():
                skipped += 1
                continue
            out.append(ReviewerLabel(content_id=row.content_id, text=text, category=row.category,
                                     violating=bool(row.violating), reviewer=row.reviewer,
                                     policy_version=row.policy_version, source=row.source,
                                     created_at=row.created_at))
    return ReviewerLabels(labels=tuple(out), without_text=skipped)


def reviewer_rows(labels: Sequence[ReviewerLabel]) -> tuple[list[TextRow], int]:
    """One TextRow per normalized text (the latest label per category wins), and the number of
    (text, category) pairs on which reviewers disagreed."""
    latest: dict[str, dict[str, ReviewerLabel]] = {}
    content_ids: dict[str, set[str]] = {}
    seen: dict[tuple[str, str], set[bool]] = {}
    for lab in sorted(labels, key=lambda x: x.created_at):
        k = split_key(lab.text)
        if not k:
            continue
        latest.setdefault(k, {})[lab.category] = lab
        content_ids.setdefault(k, set()).add(lab.content_id)
        seen.setdefault((k, lab.category), set()).add(lab.violating)
    rows: list[TextRow] = []
    for k, by_cat in latest.items():
        pos = [c for c, lab in by_cat.items() if lab.violating]
        neg = [c for c, lab in by_cat.items() if not lab.violating]
        newest = max(by_cat.values(), key=lambda x: x.created_at)
        rows.append(TextRow(text=newest.text.strip(), labels=make_labels(pos, neg), source=REVIEW_SOURCE,
                            language="und",
                            meta={"content_ids": sorted(content_ids[k]),
                                  "reviewed_categories": sorted(by_cat)}))
    return rows, sum(len(v) > 1 for v in seen.values())


def merge_reviewer_rows(rows_by_source: Mapping[str, list[TextRow]], labels: Sequence[ReviewerLabel]) -> ReviewerMerge:
    """Dataset rows plus reviewer rows; a dataset row with the same text as a reviewer row is
    folded into it (reviewer labels win, the dataset's other categories are kept unless two
    datasets disagree on them)."""
    rev, disagreements = reviewer_rows(labels)
    by_key = {split_key(r.text): r for r in rev}
    folded: dict[str, dict[str, int]] = {k: {} for k in by_key}
    dropped: dict[str, set[str]] = {k: set() for k in by_key}
    overrides = 0
    out: dict[str, list[TextRow]] = {}
    for src, rows in rows_by_source.items():
        if src == REVIEW_SOURCE:
            raise ValueError(f"dataset rows already hold a {REVIEW_SOURCE!r} source: merge reviewer labels once")
        kept: list[TextRow] = []
        for r in rows:
            k = split_key(r.text)
            if k not in by_key:
                kept.append(r)
                continue
            overrides += 1
            for c, v in r.labels.items():
                if c in folded[k] and folded[k][c] != v:
                    dropped[k].add(c)
                folded[k].setdefault(c, v)
        out[src] = kept
    merged: list[TextRow] = []
    for k, r in by_key.items():
        labels_ = dict(r.labels)
        for c, v in folded[k].items():
            if c not in dropped[k]:
                labels_.setdefault(c, v)
        merged.append(TextRow(text=r.text, labels=labels_, source=r.source, language=r.language, meta=r.meta))
    if merged:
        out[REVIEW_SOURCE] = merged
    times = [lab.created_at for lab in labels]
    split = Counter(assign_split(r.text).value for r in merged)
    return ReviewerMerge(rows=out, labels=len(labels), texts=len(merged), overrides=overrides,
                         disagreements=disagreements, first=min(times) if times else None,
                         last=max(times) if times else None, split=dict(sorted(split.items())))


def rows_fingerprint(rows_by_source: Mapping[str, list[TextRow]]) -> str:
    """sha256 over every (source, normalized text, labels) row, order-independent: the same
    training input gives the same hash on any machine."""
    lines = sorted(f"{src}\x1f{split_key(r.text)}\x1f{json.dumps(r.labels, sort_keys=True)}"
                   for src, rows in rows_by_source.items() for r in rows)
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8", "surrogatepass") + b"\n")
    return h.hexdigest()


def describe(merge: ReviewerMerge) -> dict[str, Any]:
    return {"labels": merge.labels, "texts": merge.texts, "overrides": merge.overrides,
            "disagreements": merge.disagreements, "split": merge.split,
            "first": merge.first.isoformat() if merge.first else None,
            "last": merge.last.isoformat() if merge.last else None}


__all__ = ["ReviewerLabel", "ReviewerLabels", "ReviewerMerge", "describe", "merge_reviewer_rows",
           "read_reviewer_labels", "reviewer_rows", "rows_fingerprint"]
