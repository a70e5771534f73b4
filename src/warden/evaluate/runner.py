"""Glue for `warden eval run` and `warden eval gate`: labeled items in, scores out.

* `load_data(spec)`: a dataset manifest (path or name, via `warden.evaluate.manifests`; a golden,
  frozen one is checked first: file checksum, row count and ids hash, else `DataError`) or a
  dataset source of `warden.learn.text_data` (name, comma-separated names, or `all`) filtered
  to a held-out split with `warden.learn.splits.assign_split`; returns `LabeledExample`s.
* `score_examples(moderator, examples)`: the policy's calibrated per-category scores through
  the `Moderator` facade, in batches, with a progress callback.
* `optional_sections(...)`: fairness and robustness results when those modules are present,
  with the reason otherwise (the report then shows a placeholder, never an empty section).

The pure parts (`report`, `render`, `gates`) never load data or run models; this module does.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from warden.evaluate.report import LabeledExample

#: Group columns a `text_data` row's `group` carries, per source (the others are not identities).
IDENTITY_SOURCES = {"jigsaw_templates": "identity", "toxigen": "target", "mlma": "target", "ethos": "target"}


class DataError(ValueError):
    """A `--data` spec that cannot be loaded; the message says what was tried."""


@dataclass(frozen=True, slots=True)
class LoadedData:
    examples: list[LabeledExample]
    description: str
    split: str | None


def _stable_order(ids: Sequence[str]) -> list[int]:
    return sorted(range(len(ids)), key=lambda i: hashlib.sha1(ids[i].encode()).hexdigest())


def subsample(examples: list[LabeledExample], limit: int | None) -> list[LabeledExample]:
    """At most `limit` examples, chosen by a hash of the id (deterministic, spread over the
    whole set rather than its first rows), kept in their original order."""
    if limit is None or len(examples) <= limit:
        return examples
    keep = sorted(_stable_order([e.id for e in examples])[:limit])
    return [examples[i] for i in keep]


def _from_manifest(spec: str, base: Path | None) -> LoadedData | None:
    from warden.evaluate import manifests as mod

    candidates = [Path(spec)] + ([base / spec] if base is not None else [])
    path = next((p for p in candidates if p.suffix in (".yaml", ".yml") and p.exists()), None)
    if path is None and spec not in mod.manifest_paths():
        if spec.endswith((".yaml", ".yml")):
            raise DataError(f"manifest {spec!r} not found")
        return None
    try:
        m = mod.load_manifest(path) if path is not None else mod.find_manifest(spec)
        if m.frozen:
            _check_golden_file(m)
        rows = mod.load_examples(m)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"manifest {spec!r}: {exc}") from None
    if m.frozen:
        _check_golden_rows(m, rows)
    examples = [LabeledExample(id=f"{m.name}:{e.id}", text=e.text, labels=dict(e.labels), groups=dict(e.groups))
                for e in rows]
    part = m.split.part if m.split.scheme == "hash" else "all"
    return LoadedData(examples, f"manifest {m.name} v{m.version}", part)


def _check_golden_file(m: Any) -> None:
    """A golden (frozen) manifest's file must still have its pinned checksum (checked before reading)."""
    from warden.evaluate import manifests as mod

    path = mod.file_path(m)
    if not path.exists():
        raise DataError(f"golden set {m.name}: data file not found: {path}")
    actual = mod.file_sha256(path)
    if actual != m.checksum:
        raise DataError(f"golden set {m.name} changed: {m.path} has {actual}, the manifest pins {m.checksum}")


def _check_golden_rows(m: Any, rows: Sequence[Any]) -> None:
    """... and must still select the pinned rows (count and sha256 of the ids)."""
    from warden.evaluate import manifests as mod

    problems = []
    if len(rows) != m.rows:
        problems.append(f"row count {len(rows)}, the manifest pins {m.rows}")
    got = mod.ids_sha256([e.id for e in rows])
    if got != m.ids_sha256:
        problems.append(f"selected ids hash {got}, the manifest pins {m.ids_sha256}")
    if problems:
        raise DataError(f"golden set {m.name} changed: {'; '.join(problems)}")


def _from_sources(spec: str, split: str | None) -> LoadedData:
    from warden.learn import text_data
    from warden.learn.splits import assign_split

    names = None if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    known = set(text_data.LOADERS) | {"warden_written", "forbidden_questions"}
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise DataError(f"unknown data {', '.join(repr(u) for u in unknown)}: not a manifest file or name, nor a "
                        f"dataset source (sources: {', '.join(sorted(known))}; or 'all')")
    try:
        by_source = text_data.load_all(sources=names)
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"cannot load {spec!r} from {text_data.data_dir()}: {exc}") from None
    examples: list[LabeledExample] = []
    seen: set[str] = set()
    for source, rows in by_source.items():
        for r in rows:
            if split not in (None, "all") and assign_split(r.text).value != split:
                continue
            ident = f"{source}:{hashlib.sha1(r.text.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"
            if ident in seen:  # exact duplicate text within a source: keep the first
                continue
            seen.add(ident)
            groups: dict[str, str] = {"source": source, "language": r.language or "unknown"}
            if r.group is not None and source in IDENTITY_SOURCES:
                groups[IDENTITY_SOURCES[source]] = str(r.group)
            examples.append(LabeledExample(ident, r.text, dict(r.labels), groups))
    if not examples:
        raise DataError(f"no labeled rows in {spec!r} (split {split})")
    return LoadedData(examples, f"sources {spec}", split)


def load_data(spec: str, *, split: str | None = "test", limit: int | None = None,
              base: Path | None = None) -> LoadedData:
    """Labeled examples for `spec`: a manifest (its own split applies) or text_data source(s)
    filtered to `split` ('test' by default: rows the bundled model never trained on)."""
    data = _from_manifest(spec, base) or _from_sources(spec, split)
    return LoadedData(subsample(data.examples, limit), data.description, data.split)


# -- scoring ----------------------------------------------------------------------------------

def score_examples(moderator: Any, examples: Sequence[LabeledExample], *, surface: str | None = None,
                   batch_size: int = 256, on_progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """category -> score per example (NaN where the model produced no score for it)."""
    from warden.core import Content

    cats = list(moderator.policy.categories)
    out = {c: np.full(len(examples), math.nan) for c in cats}
    limit = getattr(moderator, "max_text_chars", None)
    kw = {"surface": surface} if surface and surface != "default" else {}
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        items = [Content(id=str(e.id), text=e.text[:limit] if limit else e.text, **kw) for e in batch]
        for j, res in enumerate(moderator.moderate_with_signals(items)):
            for c, v in res.decision.scores.items():
                if c in out and v is not None:
                    out[c][start + j] = float(v)
        if on_progress is not None:
            on_progress(len(batch))
    return out


# -- optional sections ------------------------------------------------------------------------

@dataclass(frozen=True)
class FairnessSection:
    """Jigsaw bias metrics per (category, group column), and counterfactual identity swaps."""

    bias: dict[str, Any]  # "category / group column" -> BiasReport
    counterfactual: Any = None  # CounterfactualReport, when a moderator was given

    def to_dict(self) -> dict[str, Any]:
        return {"bias": {k: v.to_dict() for k, v in self.bias.items()},
                "counterfactual": None if self.counterfactual is None else self.counterfactual.to_dict()}


@dataclass(frozen=True)
class RobustnessSection:
    """Recall drop per perturbation, per category with enough positives."""

    by_category: dict[str, Any]  # category -> RobustnessReport

    def to_dict(self) -> dict[str, Any]:
        return {c: r.to_dict() for c, r in self.by_category.items()}


#: Bounds that keep the optional sections to seconds or minutes on 2 cores.
ROBUSTNESS_MAX_PER_CLASS = 150
ROBUSTNESS_MAX_CATEGORIES = 3
COUNTERFACTUAL_MAX_TEXTS = 300
SECTION_BOOTSTRAP = 200


def optional_sections(examples: Sequence[LabeledExample], scores: Mapping[str, np.ndarray],
                      thresholds: Mapping[str, float], *, moderator: Any = None,
                      ) -> tuple[FairnessSection | None, RobustnessSection | None, dict[str, str]]:
    """(fairness, robustness, missing): each section is computed when the data allows it;
    `missing` says why a section is absent, so the report shows a reason instead of nothing."""
    from warden.evaluate.fairness import bias_report_for_examples, counterfactual_report
    from warden.evaluate.robustness import robustness_report

    missing: dict[str, str] = {}
    measurable = [c for c, t in thresholds.items() if c in scores and _both_classes(examples, c)]
    group_columns = sorted({g for e in examples for g in e.groups})
    bias = {}
    for cat in measurable:
        for col in group_columns:
            try:
                bias[f"{cat} / {col}"] = bias_report_for_examples(
                    examples, scores[cat], category=cat, group_column=col, threshold=thresholds[cat],
                    n_bootstrap=SECTION_BOOTSTRAP)
            except ValueError as exc:  # e.g. no group large enough: say so, keep the rest
                missing[f"fairness: {cat} / {col}"] = str(exc)
    counterfactual = None
    if moderator is not None:
        texts = [e.text for e in examples][:COUNTERFACTUAL_MAX_TEXTS]
        counterfactual = counterfactual_report(_score_fn(moderator), texts, thresholds=dict(thresholds),
                                               n_bootstrap=SECTION_BOOTSTRAP)
    fairness = FairnessSection(bias, counterfactual) if bias or counterfactual is not None else None
    if fairness is None:
        missing["fairness"] = "no group columns in this data and no moderator for counterfactual swaps"

    robustness = None
    if moderator is None:
        missing["robustness"] = "needs a moderator to score perturbed texts"
    else:
        by_cat = {}
        ranked = sorted(measurable, key=lambda c: -sum(e.labels.get(c) == 1 for e in examples))
        for cat in ranked[:ROBUSTNESS_MAX_CATEGORIES]:
            pos = [e for e in examples if e.labels.get(cat) == 1][:ROBUSTNESS_MAX_PER_CLASS]
            neg = [e for e in examples if e.labels.get(cat) == 0][:ROBUSTNESS_MAX_PER_CLASS]
            score = _score_fn(moderator)
            by_cat[cat] = robustness_report(lambda ts, c=cat, f=score: [s.get(c, 0.0) for s in f(ts)],
                                            [e.text for e in pos + neg], [1] * len(pos) + [0] * len(neg),
                                            threshold=thresholds[cat], n_bootstrap=SECTION_BOOTSTRAP)
        robustness = RobustnessSection(by_cat) if by_cat else None
        if robustness is None:
            missing["robustness"] = "no category with both positive and negative labels"
    return fairness, robustness, missing


def _both_classes(examples: Sequence[LabeledExample], category: str) -> bool:
    values = {e.labels.get(category) for e in examples}
    return 0 in values and 1 in values


def _score_fn(moderator: Any) -> Callable[[Sequence[str]], list[Mapping[str, float]]]:
    from warden.core import Content

    def score(texts: Sequence[str]) -> list[Mapping[str, float]]:
        items = [Content(id=f"perturbed-{i}", text=t) for i, t in enumerate(texts)]
        return [d.scores for d in moderator.moderate_batch(items)]

    return score


