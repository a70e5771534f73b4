"""Datasets as manifests: one YAML file says how to read a labeled dataset and what its labels mean.

Why: a figure is only as trustworthy as the data behind it. A manifest pins the file
(sha256), the rows (which split), and the meaning of every label (which source value is a
positive or a negative for which policy category). A category the manifest does not map is
UNKNOWN for that dataset, never negative: "this dataset's annotators did not look for spam"
must not turn into "none of these items is spam".

A manifest (``datasets/manifests/NAME.yaml``)::

    name: davidson_hate_offensive
    version: 1
    description: English tweets ...
    license: MIT
    path: davidson_hate_offensive/labeled_data.csv     # relative to $WARDEN_DATA
    format: {type: csv}                                 # csv|tsv|jsonl|json|parquet + options
    text_field: tweet
    id_field: null                                      # null: the row number
    labels:
      hate: {column: class, positive: [0], negative: [1, 2]}
      harassment: {column: class, negative: [2]}        # 'offensive' (1) stays unknown
      spam: ...                                         # absent: unknown
    groups:
      identity: {column: phrase, pattern: '(\\S+)\\s*$', lowercase: true}
      target: {column: target, split: '_', map: {women: gender}}
    split: {scheme: hash, part: test}                   # warden.learn.splits.assign_split, or {scheme: all}
    limit: 300                                          # optional: first N selected rows in sha1(id) order
    checksum: sha256:...

``text_join: ' '`` reads a list cell (or a list literal such as ``"['a', 'b']"``) as its items
joined; ``text_max_chars`` truncates the text; ``format.nested`` (json) flattens
``{category: {subcategory: [text, ...]}}`` into records with one column per level.

Label rules, per category (first form that applies):

* ``{column, positive: [values], negative: [values]}``: exact values; with ``split: SEP``
  the cell is multi-valued and is positive when any part is in `positive`, negative when
  every part is in `negative`;
* ``{column, positive_min: x, negative_max: y}``: numeric thresholds (``>= x`` positive,
  ``<= y`` negative, in between unknown);
* ``{cases: [{where: {col: [values]}, label: 0|1|unknown}, ...]}``: the first matching case
  wins (several columns at once, e.g. OLID's three subtasks);
* anything else is ``otherwise`` (default ``unknown``; ``negative`` makes every unmatched value
  a negative).

With ``hierarchy: true`` (default) a positive child implies a positive parent
(``hate/threatening`` -> ``hate``) and a negative parent a negative child, the convention of
`warden.learn.text_data`. Rows whose text is empty and rows with no known label are dropped.

Golden sets (``datasets/golden/NAME.yaml``) are manifests with ``frozen: true``: they must pin
``checksum``, an explicit ``split``, the row count ``rows`` and ``ids_sha256`` (sha256 of the
selected ids, one per line). `validate` recomputes all of them, so a release gate notices when
its data changed under it.

Errors are reported like the policy loader's: ``file:line: key.path: message``, all at once.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from warden.policy.loader import lookup_line, validation_message, yaml_line_index

UNKNOWN = -1
PARENT = {"sexual/minors": "sexual", "hate/threatening": "hate",
          "harassment/threatening": "harassment", "violence/graphic": "violence"}

Scalar = str | int | float | bool


def project_root() -> Path:
    return Path(__file__).resolve().parents[3]


def data_dir() -> Path:
    """`$WARDEN_DATA`, default ``../shared/datasets`` (as `warden.learn.text_data`)."""
    return Path(os.environ.get("WARDEN_DATA", "../shared/datasets")).expanduser().resolve()


def manifest_dirs() -> tuple[Path, Path]:
    root = project_root() / "datasets"
    return root / "manifests", root / "golden"


# -- the schema ----------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileFormat(_Strict):
    type: Literal["csv", "tsv", "jsonl", "json", "parquet"]
    delimiter: str | None = None
    header: bool = True
    columns: list[str] | None = None  # names for a headerless file
    quoting: Literal["minimal", "none"] = "minimal"
    encoding: str = "utf-8"
    encoding_errors: Literal["strict", "replace", "ignore"] = "strict"
    records_key: str | None = None  # json: the key holding the list of records
    #: json: nested mappings ending in lists of strings ({a: {b: [text, ...]}}) flattened into
    #: records; names the key columns level by level, then the text column (e.g. [category, subcategory, question])
    nested: list[str] | None = None

    @model_validator(mode="after")
    def _check(self) -> FileFormat:
        if not self.header and not self.columns:
            raise ValueError("a file without a header needs 'columns'")
        if self.delimiter is not None and self.type not in ("csv", "tsv"):
            raise ValueError(f"'delimiter' only applies to csv and tsv, not {self.type}")
        if self.nested is not None and (self.type != "json" or len(self.nested) < 2):
            raise ValueError("'nested' applies to json only and names at least one key column and the text column")
        return self


class Case(_Strict):
    where: dict[str, list[Scalar]] = Field(min_length=1)
    label: Literal[0, 1, "unknown"]


class LabelRule(_Strict):
    column: str | None = None
    positive: list[Scalar] = []
    negative: list[Scalar] = []
    split: str | None = None
    positive_min: float | None = None
    negative_max: float | None = None
    cases: list[Case] | None = None
    all: Literal[0, 1] | None = None  # every row has this label (positives-only sets)
    otherwise: Literal["unknown", "negative"] = "unknown"

    @model_validator(mode="after")
    def _check(self) -> LabelRule:
        if self.all is not None:
            if self.cases is not None or self.column or self.positive or self.negative \
                    or self.positive_min is not None or self.negative_max is not None:
                raise ValueError("'all' labels every row: it takes no column, values, thresholds or cases")
            return self
        if self.cases is not None:
            if self.column or self.positive or self.negative or self.positive_min is not None \
                    or self.negative_max is not None:
                raise ValueError("use either 'cases' or 'column' with values/thresholds, not both")
            return self
        if not self.column:
            raise ValueError("a label rule needs 'column' (or 'cases')")
        numeric = self.positive_min is not None or self.negative_max is not None
        if numeric and (self.positive or self.negative):
            raise ValueError("use either value lists (positive/negative) or thresholds (positive_min/negative_max)")
        if not numeric and not self.positive and not self.negative and self.otherwise == "unknown":
            raise ValueError("the rule maps nothing: give positive, negative, positive_min or negative_max")
        if set(map(str, self.positive)) & set(map(str, self.negative)):
            raise ValueError("a value cannot be both positive and negative")
        if self.positive_min is not None and self.negative_max is not None and self.negative_max >= self.positive_min:
            raise ValueError("negative_max must be below positive_min")
        return self

    def columns(self) -> set[str]:
        if self.cases is not None:
            return {c for case in self.cases for c in case.where}
        return {self.column} if self.column else set()


class GroupRule(_Strict):
    column: str | list[str]  # a list only with truthy: one-hot columns, the value is the column name
    split: str | None = None  # multi-valued cell separator
    pattern: str | None = None  # regex; the first capture group that matched (or the match) is the value
    lowercase: bool = False
    map: dict[str, str | None] = {}  # value renames; null drops the value
    truthy: bool = False  # one-hot 0/1 column: the group is the rule's name when the cell is >= 0.5

    @model_validator(mode="after")
    def _check(self) -> GroupRule:
        if isinstance(self.column, list) and not self.truthy:
            raise ValueError("a list of columns needs 'truthy: true' (one-hot 0/1 columns)")
        return self

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return v


class SplitSpec(_Strict):
    scheme: Literal["hash", "all"]
    part: Literal["train", "calibration", "test"] | None = None

    @model_validator(mode="after")
    def _check(self) -> SplitSpec:
        if self.scheme == "hash" and self.part is None:
            raise ValueError("scheme 'hash' needs 'part' (train, calibration or test)")
        if self.scheme == "all" and self.part is not None:
            raise ValueError("scheme 'all' takes no 'part'")
        return self


_SHA = re.compile(r"^sha256:[0-9a-f]{64}$")


class Manifest(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    version: int = Field(ge=1)
    description: str
    license: str
    path: str
    format: FileFormat
    text_field: str
    #: the text cell is a list (or a Python/JSON list literal, e.g. a token list): join its items with this
    text_join: str | None = None
    text_max_chars: int | None = Field(default=None, ge=1)  # truncate the (joined) text
    id_field: str | None = None
    labels: dict[str, LabelRule] = Field(min_length=1)
    hierarchy: bool = True
    groups: dict[str, GroupRule] = {}
    split: SplitSpec = SplitSpec(scheme="all")
    #: keep at most this many selected rows, the first in sha1-of-id order (deterministic, spread out)
    limit: int | None = Field(default=None, ge=1)
    checksum: str | None = None
    frozen: bool = False
    rows: int | None = Field(default=None, ge=0)
    ids_sha256: str | None = None
    source: str | None = None  # the matching `warden.learn.text_data` source, if any

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        if Path(v).is_absolute() or ".." in Path(v).parts:
            raise ValueError("must be a path relative to WARDEN_DATA, without '..'")
        return v

    @field_validator("checksum", "ids_sha256")
    @classmethod
    def _sha(cls, v: str | None) -> str | None:
        if v is not None and not _SHA.match(v):
            raise ValueError("must look like 'sha256:' followed by 64 lowercase hex digits")
        return v

    @model_validator(mode="after")
    def _frozen(self) -> Manifest:
        if self.frozen:
            missing = [k for k in ("checksum", "rows", "ids_sha256") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"a frozen (golden) manifest must pin {', '.join(missing)}")
            if "split" not in self.model_fields_set:
                raise ValueError("a frozen (golden) manifest must state its split explicitly")
        return self


# -- errors --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ManifestProblem:
    path: str
    message: str
    line: int | None = None

    def format(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.path or '<root>'}: {self.message}"


class ManifestError(ValueError):
    """A manifest that cannot be used; `problems` lists every problem found."""

    def __init__(self, file: str, problems: list[ManifestProblem]) -> None:
        self.file = file
        self.problems = problems
        lines = "\n".join("  " + p.format(file) for p in problems)
        super().__init__(f"invalid manifest {file} ({len(problems)} problem{'s' * (len(problems) != 1)}):\n{lines}")


def parse_manifest(text: str, *, file: str = "<manifest>") -> Manifest:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = ManifestProblem("", f"YAML syntax error: {getattr(exc, 'problem', exc)}",
                                  mark.line + 1 if mark is not None else None)
        raise ManifestError(file, [problem]) from None
    if not isinstance(data, dict):
        raise ManifestError(file, [ManifestProblem("", f"the top level must be a mapping, got {type(data).__name__}")])
    lines = yaml_line_index(node)
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal[")))
            allowed = None
            if err["type"] == "extra_forbidden":
                allowed = _allowed_keys(path)
            problems.append(ManifestProblem(path, validation_message(err, allowed), lookup_line(lines, path)))
        raise ManifestError(file, problems) from None


def _allowed_keys(path: str) -> Any:
    parts = path.split(".")[:-1]
    model: Any = Manifest
    for p in parts:
        fld = model.model_fields.get(p) if hasattr(model, "model_fields") else None
        if fld is None:
            if model is Manifest:
                return None
            continue  # a dict key (category / group name) inside labels or groups
        ann = fld.annotation
        model = {"format": FileFormat, "labels": LabelRule, "groups": GroupRule, "split": SplitSpec,
                 "cases": Case}.get(p, ann)
    return getattr(model, "model_fields", {}).keys() or None


def load_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(str(path), [ManifestProblem("", "file not found")]) from None
    m = parse_manifest(text, file=str(path))
    if m.name != path.stem:
        line = lookup_line(yaml_line_index(yaml.compose(text, Loader=yaml.SafeLoader)), "name")
        raise ManifestError(str(path), [ManifestProblem(
            "name", f"must match the file name {path.stem!r}; got {m.name!r}", line)])
    return m


def manifest_paths() -> dict[str, Path]:
    """Every shipped manifest by name (datasets/manifests, then datasets/golden)."""
    out: dict[str, Path] = {}
    for d in manifest_dirs():
        for p in sorted(d.glob("*.yaml")):
            out[p.stem] = p
    return out


def find_manifest(name_or_path: str | Path) -> Manifest:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return load_manifest(p)
    paths = manifest_paths()
    if str(name_or_path) not in paths:
        raise KeyError(f"no manifest named {str(name_or_path)!r} (known: {', '.join(sorted(paths))})")
    return load_manifest(paths[str(name_or_path)])


# -- reading -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LabeledExample:
    id: str
    text: str
    labels: dict[str, int]  # category -> 0/1; an absent category is UNKNOWN
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)


def file_path(m: Manifest, root: Path | None = None) -> Path:
    return (root or data_dir()) / m.path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def ids_sha256(ids: list[str]) -> str:
    return "sha256:" + hashlib.sha256("\n".join(ids).encode("utf-8", "surrogatepass")).hexdigest()


def read_records(m: Manifest, root: Path | None = None) -> Iterator[dict[str, Any]]:
    """The raw rows of the manifest's file as dicts (all columns, no filtering)."""
    path = file_path(m, root)
    f = m.format
    if f.type in ("csv", "tsv"):
        import csv

        import pandas as pd

        sep = f.delimiter or ("\t" if f.type == "tsv" else ",")
        df = pd.read_csv(path, sep=sep, header=0 if f.header else None, names=f.columns,
                         quoting=csv.QUOTE_NONE if f.quoting == "none" else csv.QUOTE_MINIMAL,
                         encoding=f.encoding, encoding_errors=f.encoding_errors, keep_default_na=False,
                         na_values=[""], dtype=object)
        yield from _frame_records(df)
    elif f.type == "parquet":
        import pandas as pd

        yield from _frame_records(pd.read_parquet(path))
    elif f.type == "jsonl":
        with open(path, encoding=f.encoding, errors=f.encoding_errors) as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)
    else:
        data = json.loads(path.read_text(encoding=f.encoding, errors=f.encoding_errors))
        if f.records_key:
            data = data[f.records_key]
        if f.nested:
            yield from _flatten(data, f.nested, {})
            return
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of records (set format.records_key)")
        yield from data


def _flatten(node: Any, names: list[str], keys: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if len(names) == 1:
        for item in node if isinstance(node, list) else [node]:
            yield {**keys, names[0]: item}
        return
    if not isinstance(node, dict):
        raise ValueError(f"format.nested: expected a mapping for {names[0]!r}, got {type(node).__name__}")
    for k, v in node.items():
        yield from _flatten(v, names[1:], {**keys, names[0]: k})


def _frame_records(df: Any) -> Iterator[dict[str, Any]]:
    cols = list(df.columns)
    for values in df.itertuples(index=False, name=None):
        yield dict(zip(cols, values, strict=True))


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _same(v: Any, allowed: list[Scalar]) -> bool:
    """Compare a cell with manifest values: numbers numerically, everything else as strings."""
    sv = str(v).strip()
    for a in allowed:
        if isinstance(a, bool) or not isinstance(a, int | float):
            if sv == str(a):
                return True
        else:
            try:
                if float(sv) == float(a):
                    return True
            except ValueError:
                pass
    return False


def apply_rule(rule: LabelRule, rec: Mapping[str, Any]) -> int:
    """1, 0 or UNKNOWN (-1) for one record."""
    if rule.all is not None:
        return int(rule.all)
    if rule.cases is not None:
        for case in rule.cases:
            if all(not _missing(rec.get(c)) and _same(rec.get(c), vals) for c, vals in case.where.items()):
                return UNKNOWN if case.label == "unknown" else int(case.label)
        return 0 if rule.otherwise == "negative" else UNKNOWN
    v = rec.get(rule.column)  # type: ignore[arg-type]
    if _missing(v):
        return UNKNOWN
    other = 0 if rule.otherwise == "negative" else UNKNOWN
    if rule.positive_min is not None or rule.negative_max is not None:
        try:
            x = float(v)
        except (TypeError, ValueError):
            return UNKNOWN
        if rule.positive_min is not None and x >= rule.positive_min:
            return 1
        if rule.negative_max is not None and x <= rule.negative_max:
            return 0
        return other
    parts = [p for p in str(v).split(rule.split)] if rule.split else [v]
    if any(_same(p, rule.positive) for p in parts):
        return 1
    if rule.negative and all(_same(p, rule.negative) for p in parts):
        return 0
    return other


def apply_hierarchy(labels: dict[str, int]) -> dict[str, int]:
    out = dict(labels)
    for child, parent in PARENT.items():
        if out.get(child) == 1:
            out[parent] = 1
    for child, parent in PARENT.items():
        if out.get(parent) == 0 and child not in out:
            out[child] = 0
    return out


def group_values(rule: GroupRule, name: str, rec: Mapping[str, Any]) -> tuple[str, ...]:
    if isinstance(rule.column, list):
        out = []
        for c in rule.column:
            try:
                if float(rec.get(c)) >= 0.5:
                    out.append(rule.map.get(c, c) or c)
            except (TypeError, ValueError):
                pass
        return tuple(out)
    v = rec.get(rule.column)
    if _missing(v):
        return ()
    if rule.truthy:
        try:
            return (name,) if float(v) >= 0.5 else ()
        except (TypeError, ValueError):
            return ()
    s = str(v)
    if rule.pattern is not None:
        mt = re.search(rule.pattern, s)
        if mt is None:
            return ()
        s = next((g for g in mt.groups() if g is not None), mt.group(0))
    parts = s.split(rule.split) if rule.split else [s]
    out: list[str] = []
    for p in parts:
        p = p.strip()
        if rule.lowercase:
            p = p.lower()
        if p in rule.map:
            mapped = rule.map[p]
            if mapped is None:
                continue
            p = mapped
        if p and p not in out:
            out.append(p)
    return tuple(out)


def load_examples(m: Manifest, root: Path | None = None, *, split: bool = True) -> list[LabeledExample]:
    """The manifest's labeled examples (its split part unless `split=False`)."""
    from warden.learn.splits import assign_split

    out: list[LabeledExample] = []
    for i, rec in enumerate(read_records(m, root)):
        if i == 0:
            _check_columns(m, rec)
        text = rec.get(m.text_field)
        if m.text_join is not None:
            text = _joined(text, m.text_join)
        if m.text_max_chars is not None and isinstance(text, str):
            text = text[:m.text_max_chars]
        if not isinstance(text, str) or not text.strip():
            continue
        text = text.strip()
        if split and m.split.scheme == "hash" and assign_split(text).value != m.split.part:
            continue
        labels = {}
        for cat, rule in m.labels.items():
            v = apply_rule(rule, rec)
            if v != UNKNOWN:
                labels[cat] = v
        if m.hierarchy:
            labels = apply_hierarchy(labels)
        if not labels:
            continue
        groups = {g: group_values(r, g, rec) for g, r in m.groups.items()}
        ident = str(rec.get(m.id_field)) if m.id_field else f"row{i}"
        out.append(LabeledExample(ident, text, labels, groups))
    if split and m.limit is not None and len(out) > m.limit:
        order = sorted(range(len(out)),
                       key=lambda i: hashlib.sha1(out[i].id.encode("utf-8", "surrogatepass")).hexdigest())
        out = [out[i] for i in sorted(order[:m.limit])]
    return out


def _joined(v: Any, sep: str) -> Any:
    """A list cell (or its Python/JSON literal) joined with `sep`; other cells unchanged."""
    if isinstance(v, str):
        import ast

        try:
            parsed = ast.literal_eval(v)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return v
        v = parsed
    if isinstance(v, list | tuple):
        return sep.join(str(x) for x in v)
    return v if isinstance(v, str) else None


def required_columns(m: Manifest) -> list[str]:
    cols = [m.text_field] + ([m.id_field] if m.id_field else [])
    for rule in m.labels.values():
        cols += sorted(rule.columns())
    for g in m.groups.values():
        cols += g.column if isinstance(g.column, list) else [g.column]
    return list(dict.fromkeys(cols))


def _check_columns(m: Manifest, rec: Mapping[str, Any]) -> None:
    missing = [c for c in required_columns(m) if c not in rec]
    if missing:
        raise KeyError(f"{m.name}: column(s) {', '.join(map(repr, missing))} not in {m.path} "
                       f"(columns: {', '.join(map(str, rec))})")


# -- summaries and validation --------------------------------------------------------------

class ChecksumState(StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"
    UNPINNED = "unpinned"
    MISSING_FILE = "missing file"


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    name: str
    rows: int
    label_counts: dict[str, dict[int, int]]  # category -> {0: n, 1: n}
    group_counts: dict[str, dict[str, int]]  # group column -> value -> n
    ids_sha256: str


def summarize(m: Manifest, examples: list[LabeledExample]) -> ManifestSummary:
    labels: dict[str, Counter] = {c: Counter() for c in m.labels}
    groups: dict[str, Counter] = {g: Counter() for g in m.groups}
    for ex in examples:
        for c, v in ex.labels.items():
            labels.setdefault(c, Counter())[v] += 1
        for g, vals in ex.groups.items():
            for v in vals:
                groups[g][v] += 1
    return ManifestSummary(m.name, len(examples), {c: {0: n[0], 1: n[1]} for c, n in labels.items()},
                           {g: dict(n.most_common()) for g, n in groups.items()},
                           ids_sha256([e.id for e in examples]))


@dataclass(frozen=True, slots=True)
class ValidationResult:
    name: str
    checksum: ChecksumState
    problems: tuple[str, ...]
    actual_checksum: str | None = None
    rows: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def validate(m: Manifest, root: Path | None = None, *, check_rows: bool | None = None) -> ValidationResult:
    """Recompute the file checksum (and for frozen manifests the row count and ids hash).

    `check_rows` defaults to True for frozen manifests (reading the rows costs seconds)."""
    path = file_path(m, root)
    if not path.exists():
        return ValidationResult(m.name, ChecksumState.MISSING_FILE, (f"data file not found: {path}",))
    actual = file_sha256(path)
    problems: list[str] = []
    if m.checksum is None:
        state = ChecksumState.UNPINNED
    elif actual == m.checksum:
        state = ChecksumState.OK
    else:
        state = ChecksumState.MISMATCH
        problems.append(f"checksum mismatch for {m.path}: manifest pins {m.checksum}, file has {actual}")
    rows = None
    if check_rows if check_rows is not None else m.frozen:
        try:
            examples = load_examples(m, root)
        except (KeyError, ValueError, OSError) as exc:
            problems.append(f"cannot read rows: {type(exc).__name__}: {exc}")
        else:
            rows = len(examples)
            if m.rows is not None and rows != m.rows:
                problems.append(f"row count changed: manifest pins {m.rows}, data gives {rows}")
            got = ids_sha256([e.id for e in examples])
            if m.ids_sha256 is not None and got != m.ids_sha256:
                problems.append(f"selected ids changed: manifest pins {m.ids_sha256}, data gives {got}")
            if not examples:
                problems.append("no labeled rows: check text_field, labels and split")
    return ValidationResult(m.name, state, tuple(problems), actual, rows)


def freeze(m: Manifest, *, name: str | None = None, root: Path | None = None) -> Manifest:
    """A golden (frozen) copy of `m`: pins the current file checksum, the split, the row count
    and the sha256 of the selected ids. Write it with `dump_manifest` to datasets/golden/."""
    examples = load_examples(m, root)
    data = m.model_dump(mode="json")
    data.update(name=name or f"{m.name}_golden", frozen=True, checksum=file_sha256(file_path(m, root)),
                rows=len(examples), ids_sha256=ids_sha256([e.id for e in examples]),
                split=m.split.model_dump(mode="json", exclude_none=True))
    return Manifest.model_validate(data)


def dump_manifest(m: Manifest) -> str:
    data = m.model_dump(mode="json", exclude_defaults=True)
    for key in ("name", "version", "description", "license", "path", "format", "text_field"):
        data.setdefault(key, getattr(m, key) if key != "format" else m.format.model_dump(mode="json"))
    data["split"] = m.split.model_dump(mode="json", exclude_none=True)
    order = ["name", "version", "description", "license", "path", "format", "text_field", "text_join",
             "text_max_chars", "id_field", "labels", "hierarchy", "groups", "split", "limit", "checksum", "frozen",
             "rows", "ids_sha256", "source"]
    data = {k: data[k] for k in order if k in data}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)
