"""Glue for `warden eval run` and `warden eval gate`: labeled items in, scores out.

* `load_data(spec)`: a dataset manifest (path or name, via `warden.evaluate.manifests`) or a
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
import importlib
import importlib.util
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


def _manifests():
    if importlib.util.find_spec("warden.evaluate.manifests") is None:
        return None
    return importlib.import_module("warden.evaluate.manifests")


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
    mod = _manifests()
    if mod is None:
        return None
    candidates = [Path(spec)] + ([base / spec] if base is not None else [])
    path = next((p for p in candidates if p.suffix in (".yaml", ".yml") and p.exists()), None)
    if path is None and spec not in mod.manifest_paths():
        if spec.endswith((".yaml", ".yml")):
            raise DataError(f"manifest {spec!r} not found")
        return None
    try:
        m = mod.load_manifest(path) if path is not None else mod.find_manifest(spec)
        rows = mod.load_examples(m)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"manifest {spec!r}: {exc}") from None
    examples = [LabeledExample(id=f"{m.name}:{e.id}", text=e.text, labels=dict(e.labels), groups=dict(e.groups))
                for e in rows]
    part = m.split.part if m.split.scheme == "hash" else "all"
    return LoadedData(examples, f"manifest {m.name} v{m.version}", part)


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

def optional_sections(examples: Sequence[LabeledExample], scores: Mapping[str, np.ndarray],
                      thresholds: Mapping[str, float], *, moderator: Any = None) -> tuple[Any, Any, dict[str, str]]:
    """(fairness, robustness, missing) — each result is whatever the module returns (rendered
    through its `to_dict`); `missing` says why a section is absent."""
    missing: dict[str, str] = {}
    results: dict[str, Any] = {}
    # contract: `evaluation_section(examples=, scores=, thresholds=, moderator=)` -> object with to_dict
    for name, fn_names in (("fairness", ("evaluation_section",)),
                           ("robustness", ("evaluation_section",))):
        if importlib.util.find_spec(f"warden.evaluate.{name}") is None:
            missing[name] = f"warden.evaluate.{name} is not available in this build"
            continue
        mod = importlib.import_module(f"warden.evaluate.{name}")
        fn = next((getattr(mod, f) for f in fn_names if hasattr(mod, f)), None)
        if fn is None:
            missing[name] = f"warden.evaluate.{name} has no report entry point ({' / '.join(fn_names)})"
            continue
        try:
            results[name] = fn(examples=examples, scores=scores, thresholds=thresholds, moderator=moderator)
        except Exception as exc:  # a failing optional section must not sink the whole report
            missing[name] = f"warden.evaluate.{name} failed: {type(exc).__name__}: {exc}"
    return results.get("fairness"), results.get("robustness"), missing
