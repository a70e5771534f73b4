"""Release gates: limits a candidate policy or model must meet before it goes live.

A gates file (YAML, validated here with pydantic) names the labeled data the gate runs on
(golden manifests or dataset sources, held-out split) and, per category or for every
category (`"*"`), the rules:

```yaml
version: 1
name: bundled text model
data:
  - manifest: datasets/golden/text-v1.yaml     # or: - source: davidson   (limit: 300)
split: test
surface: default
n_bootstrap: 300
rules:
  "*":
    min_pr_auc: {value: 0.5, bound: ci_low}       # or just: min_pr_auc: 0.5
  hate:
    max_fpr: 0.10                              # at the policy's flag threshold
    min_recall_at_precision: {precision: 0.6, recall: 0.4}
    max_fairness_gap: {metric: fpr, max_gap: 0.2, column: identity, min_group_size: 20}
    max_regression: {max_pr_auc_drop: 0.02}    # vs --champion, paired bootstrap
```

`check_gates(report, config)` is pure: it reads an `EvaluationReport` (and its champion
comparison, when one was run) and returns one `RuleResult` per rule and category, each with
the measured value, the limit and a sentence saying why it passed or failed.

UNMEASURED is never a pass. A rule on a category the data cannot measure (no positives, no
negatives, no group data) has status UNMEASURED; it fails the gate when the category is named
explicitly in the rules (someone asked for that guarantee) or when `unmeasured: fail`, and is
listed as a warning otherwise (rules inherited from `"*"`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from warden.evaluate.metrics import _jsonable
from warden.evaluate.report import EvaluationReport, recall_at_precision

WILDCARD = "*"


class GateConfigError(ValueError):
    """A gates file that cannot be used; one line per problem, each naming the field."""


# -- the file -------------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MinPrAuc(_Strict):
    value: float = Field(ge=0.0, le=1.0)
    bound: Literal["value", "ci_low"] = "value"


class MaxFpr(_Strict):
    value: float = Field(ge=0.0, le=1.0)
    bound: Literal["value", "ci_high"] = "value"


class RecallAtPrecision(_Strict):
    precision: float = Field(gt=0.0, le=1.0)
    recall: float = Field(ge=0.0, le=1.0)


class FairnessGap(_Strict):
    metric: Literal["fpr", "fnr"] = "fpr"
    max_gap: float = Field(ge=0.0, le=1.0)
    column: str = "identity"
    #: groups with fewer negatives (for FPR) or positives (for FNR) are left out of the gap
    min_group_size: int = Field(default=20, ge=1)


class Regression(_Strict):
    max_pr_auc_drop: float = Field(ge=0.0, le=1.0)
    #: fail only when the paired bootstrap says the drop is real (p < alpha) as well as too big
    significant_only: bool = True
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)


class CategoryRules(_Strict):
    min_pr_auc: MinPrAuc | None = None
    max_fpr: MaxFpr | None = None
    min_recall_at_precision: RecallAtPrecision | None = None
    max_fairness_gap: FairnessGap | None = None
    max_regression: Regression | None = None

    @field_validator("min_pr_auc", "max_fpr", mode="before")
    @classmethod
    def _number_shorthand(cls, v: Any) -> Any:
        return {"value": v} if isinstance(v, int | float) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _not_empty(self) -> CategoryRules:
        if all(getattr(self, f) is None for f in type(self).model_fields):
            raise ValueError("no rule given (expected one of: " + ", ".join(type(self).model_fields) + ")")
        return self


class DataSpec(_Strict):
    manifest: str | None = None
    source: str | None = None
    limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one(self) -> DataSpec:
        if (self.manifest is None) == (self.source is None):
            raise ValueError("give exactly one of 'manifest' or 'source'")
        return self


class GatesConfig(_Strict):
    version: Literal[1]
    name: str = "gates"
    description: str = ""
    data: list[DataSpec] = Field(min_length=1)
    split: str | None = "test"
    surface: str = "default"
    n_bootstrap: int = Field(default=500, ge=0)
    seed: int = 0
    unmeasured: Literal["warn", "fail"] = "warn"
    rules: dict[str, CategoryRules] = Field(min_length=1)

    def rules_for(self, category: str) -> dict[str, Any]:
        """The rules that apply to `category`: `"*"` rules, overridden rule by rule by its own."""
        merged: dict[str, Any] = {}
        for key in (WILDCARD, category):
            r = self.rules.get(key)
            if r is not None:
                merged.update({f: getattr(r, f) for f in type(r).model_fields if getattr(r, f) is not None})
        return merged


def _loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif parts:
            parts.append(f".{p}" if str(p).replace("_", "").isalnum() else f"[{p!r}]")
        else:
            parts.append(str(p))
    return "".join(parts) or "(top level)"


def parse_gates(data: Any, *, source: str = "gates") -> GatesConfig:
    """Validate a parsed gates document. Errors read `<source>: <field path>: <problem>`."""
    if not isinstance(data, Mapping):
        raise GateConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return GatesConfig.model_validate(dict(data))
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            lines.append(f"{source}: {_loc(tuple(err['loc']))}: {msg}")
        raise GateConfigError("\n".join(lines)) from None


def load_gates(path: str | Path) -> GatesConfig:
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GateConfigError(f"{p}: file not found") from None
    except yaml.YAMLError as exc:
        raise GateConfigError(f"{p}: not valid YAML ({exc})") from None
    return parse_gates(data, source=str(p))


# -- results --------------------------------------------------------------------------------

class RuleStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNMEASURED = "unmeasured"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class RuleResult:
    category: str
    rule: str
    status: RuleStatus
    measured: float | None
    limit: float
    message: str
    blocking: bool  # does this result fail the gate?

    def line(self) -> str:
        return f"{self.status.value.upper():10} {self.category}: {self.rule}: {self.message}"


@dataclass(frozen=True, slots=True)
class GateResult:
    name: str
    results: tuple[RuleResult, ...]

    @property
    def passed(self) -> bool:
        return not any(r.blocking for r in self.results)

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if r.blocking]

    @property
    def warnings(self) -> list[RuleResult]:
        return [r for r in self.results if not r.blocking and r.status is RuleStatus.UNMEASURED]

    def to_dict(self) -> dict[str, Any]:
        return _jsonable({"name": self.name, "passed": self.passed, "results": [asdict(r) for r in self.results]})


def _f(x: float | None, d: int = 3) -> str:
    return "undefined" if x is None or math.isnan(x) else f"{x:.{d}f}"


# -- checking -------------------------------------------------------------------------------

def check_gates(report: EvaluationReport, config: GatesConfig) -> GateResult:
    """Every rule of `config` on every category it applies to, against `report`."""
    named = [c for c in config.rules if c != WILDCARD]
    categories = list(report.categories) + [c for c in named if c not in report.categories]
    out: list[RuleResult] = []
    for cat in categories:
        explicit = cat in config.rules
        for rule, spec in config.rules_for(cat).items():
            res = _check(report, cat, rule, spec)
            blocking = res.status is RuleStatus.FAIL or (
                res.status is RuleStatus.UNMEASURED and (explicit or config.unmeasured == "fail"))
            out.append(RuleResult(cat, rule, res.status, res.measured, res.limit, res.message, blocking))
    return GateResult(config.name, tuple(out))


@dataclass(frozen=True, slots=True)
class _R:
    status: RuleStatus
    measured: float | None
    limit: float
    message: str


def _check(report: EvaluationReport, cat: str, rule: str, spec: Any) -> _R:
    rep = report.categories.get(cat)
    limit = _limit(rule, spec)
    if rep is None:
        return _R(RuleStatus.UNMEASURED, None, limit, "category not in the evaluated data (no labels or no scores)")
    if not rep.measured:
        return _R(RuleStatus.UNMEASURED, None, limit,
                  f"UNMEASURED on this data: {rep.reason} (n={rep.n}, {rep.positives} positives)")
    return _CHECKS[rule](report, cat, spec)


def _limit(rule: str, spec: Any) -> float:
    return {"min_pr_auc": lambda s: s.value, "max_fpr": lambda s: s.value,
            "min_recall_at_precision": lambda s: s.recall, "max_fairness_gap": lambda s: s.max_gap,
            "max_regression": lambda s: s.max_pr_auc_drop}[rule](spec)


def _min_pr_auc(report: EvaluationReport, cat: str, spec: MinPrAuc) -> _R:
    rep = report.categories[cat]
    est = rep.pr_auc
    assert est is not None
    value = est.ci_low if spec.bound == "ci_low" else est.value
    what = f"PR-AUC {'lower 95% bound' if spec.bound == 'ci_low' else ''}".rstrip()
    ctx = f"(PR-AUC {est.format()}, n={rep.n}, {rep.positives} positives)"
    if math.isnan(value):
        return _R(RuleStatus.UNMEASURED, None, spec.value, f"{what} undefined {ctx}")
    ok = value >= spec.value
    return _R(RuleStatus.PASS if ok else RuleStatus.FAIL, value, spec.value,
              f"{what} {_f(value)} {'>=' if ok else '<'} limit {_f(spec.value)} {ctx}")


def _max_fpr(report: EvaluationReport, cat: str, spec: MaxFpr) -> _R:
    rep = report.categories[cat]
    at = rep.at_threshold
    assert at is not None
    value = at.fpr.ci_high if spec.bound == "ci_high" else at.fpr.value
    what = "FPR upper 95% bound" if spec.bound == "ci_high" else "FPR"
    ctx = (f"at threshold {at.threshold:g}: {at.confusion.fp} of {rep.negatives} negatives flagged; "
           f"FPR {at.fpr.format()}")
    if math.isnan(value):
        return _R(RuleStatus.UNMEASURED, None, spec.value, f"{what} undefined ({ctx})")
    ok = value <= spec.value
    return _R(RuleStatus.PASS if ok else RuleStatus.FAIL, value, spec.value,
              f"{what} {_f(value)} {'<=' if ok else '>'} limit {_f(spec.value)} ({ctx})")


def _min_recall_at_precision(report: EvaluationReport, cat: str, spec: RecallAtPrecision) -> _R:
    curve = report.curves[cat]
    recall, thr = recall_at_precision(curve, spec.precision)
    ok = recall >= spec.recall
    where = (f"best threshold {thr:.4g}" if thr is not None else
             f"no threshold reaches precision {_f(spec.precision, 2)}")
    return _R(RuleStatus.PASS if ok else RuleStatus.FAIL, recall, spec.recall,
              f"best recall at precision >= {_f(spec.precision, 2)} is {_f(recall)} {'>=' if ok else '<'} limit "
              f"{_f(spec.recall)} ({where}; {curve.positives} positives, {curve.negatives} negatives)")


def _max_fairness_gap(report: EvaluationReport, cat: str, spec: FairnessGap) -> _R:
    rates = report.groups.get(cat, {}).get(spec.column)
    if not rates:
        return _R(RuleStatus.UNMEASURED, None, spec.max_gap,
                  f"no item carries group column {spec.column!r} with a label for {cat}")
    size = (lambda g: g.negatives) if spec.metric == "fpr" else (lambda g: g.positives)
    usable = [g for g in rates if size(g) >= spec.min_group_size and not math.isnan(getattr(g, spec.metric))]
    kind = "negatives" if spec.metric == "fpr" else "positives"
    if len(usable) < 2:
        return _R(RuleStatus.UNMEASURED, None, spec.max_gap,
                  f"fewer than 2 {spec.column!r} groups with >= {spec.min_group_size} {kind} "
                  f"({len(rates)} groups in the data)")
    hi = max(usable, key=lambda g: getattr(g, spec.metric))
    lo = min(usable, key=lambda g: getattr(g, spec.metric))
    gap = getattr(hi, spec.metric) - getattr(lo, spec.metric)
    ok = gap <= spec.max_gap
    m = spec.metric.upper()
    return _R(RuleStatus.PASS if ok else RuleStatus.FAIL, gap, spec.max_gap,
              f"{m} gap across {spec.column!r} groups {_f(gap)} {'<=' if ok else '>'} limit {_f(spec.max_gap)} "
              f"(highest {hi.group!r} {_f(getattr(hi, spec.metric))} of {size(hi)} {kind}, lowest {lo.group!r} "
              f"{_f(getattr(lo, spec.metric))} of {size(lo)} {kind}; {len(usable)} groups with >= "
              f"{spec.min_group_size} {kind}; point estimates)")


def _max_regression(report: EvaluationReport, cat: str, spec: Regression) -> _R:
    if report.comparison is None:
        return _R(RuleStatus.SKIPPED, None, spec.max_pr_auc_drop, "no champion given (pass --champion)")
    comp = report.comparison.get(cat)
    pr = getattr(comp, "pr_auc", None)
    if pr is None:
        why = getattr(comp, "summary", "not compared")
        return _R(RuleStatus.UNMEASURED, None, spec.max_pr_auc_drop, f"champion comparison unmeasured: {why}")
    drop = pr.champion - pr.challenger
    too_big = drop > spec.max_pr_auc_drop
    significant = pr.p_value < spec.alpha
    fail = too_big and (significant or not spec.significant_only)
    ctx = (f"champion {_f(pr.champion)}, candidate {_f(pr.challenger)}; difference {pr.difference.format()}, "
           f"paired bootstrap p={_f(pr.p_value)}")
    if fail:
        msg = f"PR-AUC dropped {_f(drop)} > limit {_f(spec.max_pr_auc_drop)} ({ctx})"
    elif too_big:
        msg = (f"PR-AUC dropped {_f(drop)} > limit {_f(spec.max_pr_auc_drop)} but not significantly "
               f"(p >= {spec.alpha}) ({ctx})")
    else:
        msg = f"PR-AUC change {_f(-drop)}: drop within limit {_f(spec.max_pr_auc_drop)} ({ctx})"
    return _R(RuleStatus.FAIL if fail else RuleStatus.PASS, drop, spec.max_pr_auc_drop, msg)


_CHECKS = {"min_pr_auc": _min_pr_auc, "max_fpr": _max_fpr, "min_recall_at_precision": _min_recall_at_precision,
           "max_fairness_gap": _max_fairness_gap, "max_regression": _max_regression}
