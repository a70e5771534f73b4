"""Hash banks: named lists of known-bad hashes, each bank with the policy category it stands
for and the action a match calls for, and each hash with who added it, when and from where.

This module is the pure model and the file formats (no database; `warden.store.hash_repo`
stores banks). Formats follow the public ThreatExchange / HMA conventions:

* `te` - python-threatexchange's local signal file (`LocalFileSignalExchangeAPI`): one
  `<signal_type> <signal>` per line, e.g. `pdq f8f8f0ce...`.
* `csv` - a header row, then one hash per row. Columns: `signal_type,signal,source,category,
  added_by,added_at,content_id,note`; on import `hash`/`indicator`/`signal_str` are accepted
  for `signal` and `type`/`indicator_type` (ThreatExchange's `HASH_PDQ`, `HASH_MD5`) for
  `signal_type`; unknown columns are ignored.
* `json` - HMA's bank content shape: `{"bank": {...}, "contents": [{"signals": {"pdq": ...},
  "metadata": {"content_id", "content_uri", "json": {...}}}]}`; the free-form `json` slot
  carries source, category, added_by, added_at and note. A bare list of contents, flat
  `{"signal_type", "signal", ...}` objects and HMA's add-signal body `{"pdq": "..."}` import too.

Signal type names are python-threatexchange's (`pdq`; `md5` for file MD5, which it calls
`video_md5` for videos); aliases are normalized on import.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from warden.core.policy import CATEGORY_NAME, Action
from warden.detectors.hashing.md5 import validate_md5_hex
from warden.detectors.hashing.pdq import validate_pdq_hex

#: `vpdq`: the PDQ hash of one sampled frame of a banked video; the rows of one video share its
#: `content_id`, which groups them for video-vs-video matching (see docs/hashing.md).
SIGNAL_TYPES: tuple[str, ...] = ("pdq", "md5", "vpdq")
#: Signal types whose value is a PDQ hash (searched in the Hamming index).
PDQ_SIGNAL_TYPES: frozenset[str] = frozenset({"pdq", "vpdq"})
SIGNAL_TYPE_ALIASES: dict[str, str] = {
    "pdq": "pdq", "hash_pdq": "pdq", "photo_pdq": "pdq", "vpdq": "vpdq", "video_pdq_frame": "vpdq",
    "md5": "md5", "hash_md5": "md5", "video_md5": "md5", "photo_md5": "md5", "file_md5": "md5",
}
BANK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
FORMATS: tuple[str, ...] = ("csv", "json", "te")
CSV_COLUMNS: tuple[str, ...] = ("signal_type", "signal", "source", "category", "added_by", "added_at", "content_id",
                                "note")
JSON_FORMAT = "warden.hash_bank"
JSON_VERSION = 1
#: Metadata string limits (the database columns' sizes).
TEXT_LIMITS: dict[str, int] = {"source": 256, "category": 128, "added_by": 256, "content_id": 512, "note": 2000}
MAX_REPORTED_ERRORS = 20

_CSV_ALIASES = {"hash": "signal", "indicator": "signal", "signal_str": "signal", "type": "signal_type",
                "indicator_type": "signal_type"}


class BankFormatError(ValueError):
    """A bank file that cannot be imported; `errors` lists each problem with its line."""

    def __init__(self, message: str, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


def validate_bank_name(name: object) -> str:
    if not isinstance(name, str) or not BANK_NAME.match(name):
        shown = repr(name)[:80]
        raise ValueError(f"invalid bank name {shown}: use 1-128 letters, digits, '_', '-' or '.', starting with a "
                         "letter or digit")
    return name


def normalize_signal_type(value: object) -> str:
    key = str(value).strip().lower() if isinstance(value, str) else None
    if key is None or key not in SIGNAL_TYPE_ALIASES:
        shown = repr(value)[:60]
        raise ValueError(f"unknown signal type {shown}; supported: {', '.join(SIGNAL_TYPES)} "
                         f"(aliases: {', '.join(sorted(k for k in SIGNAL_TYPE_ALIASES if k not in SIGNAL_TYPES))})")
    return SIGNAL_TYPE_ALIASES[key]


def validate_signal(signal_type: str, signal: object) -> str:
    """The normalized hash string for its type, or ValueError saying what is wrong."""
    return validate_pdq_hex(signal) if signal_type in PDQ_SIGNAL_TYPES else validate_md5_hex(signal)


def _check_text(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid Unicode (it contains unpaired surrogates)") from None
    limit = TEXT_LIMITS[name]
    if len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    return value or None


def parse_time(value: object) -> datetime | None:
    """ISO 8601 (naive means UTC) or Unix seconds (ThreatExchange timestamps)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str):
        text = value.strip()
        try:
            moment = datetime.fromtimestamp(float(text), UTC) if re.fullmatch(r"\d+(\.\d+)?", text) else \
                datetime.fromisoformat(text.replace("Z", "+00:00"))
        except (ValueError, OverflowError, OSError):
            raise ValueError(f"invalid time {text[:40]!r}: use ISO 8601 (2026-11-22T03:00:00Z) or Unix seconds") \
                from None
    else:
        raise ValueError(f"a time must be a string or a number, got {type(value).__name__}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Bank:
    """A hash bank: what a match means (`category`, a policy category) and what it calls for
    (`action`; `report` marks banks whose matches must also be reported, e.g. to NCMEC)."""

    name: str
    category: str
    action: Action = Action.REMOVE
    report: bool = False
    description: str = ""
    enabled: bool = True

    def __post_init__(self) -> None:
        validate_bank_name(self.name)
        if not isinstance(self.category, str) or not CATEGORY_NAME.match(self.category):
            raise ValueError(f"invalid category {self.category!r}: use a policy category name such as "
                             "'sexual/minors' or 'violence'")
        try:
            object.__setattr__(self, "action", Action(self.action))
        except ValueError:
            raise ValueError(f"invalid action {self.action!r}; choose one of {', '.join(a.value for a in Action)}") \
                from None
        if not isinstance(self.report, bool) or not isinstance(self.enabled, bool):
            raise ValueError("report and enabled must be booleans")
        if not isinstance(self.description, str) or len(self.description) > 2000 or "\x00" in self.description:
            raise ValueError("description must be a string of at most 2000 characters without NUL")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "category": self.category, "action": self.action.value, "report": self.report,
                "description": self.description, "enabled": self.enabled}

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Bank:
        if not isinstance(obj, Mapping):
            raise ValueError("'bank' must be an object with name and category")
        unknown = sorted(set(obj) - {"name", "category", "action", "report", "description", "enabled"})
        if unknown:
            raise ValueError(f"unknown bank field(s): {', '.join(map(str, unknown))}")
        for key in ("name", "category"):
            if key not in obj:
                raise ValueError(f"the bank needs a {key!r}")
        return cls(name=obj["name"], category=obj["category"], action=obj.get("action", Action.REMOVE.value),
                   report=obj.get("report", False), description=obj.get("description", "") or "",
                   enabled=obj.get("enabled", True))


@dataclass(frozen=True, slots=True)
class BankEntry:
    """One banked hash with its provenance. `category` may refine the bank's (a sub-label);
    `id` is the store's id (None before it is stored)."""

    signal_type: str
    signal: str
    source: str | None = None
    category: str | None = None
    added_by: str | None = None
    added_at: datetime | None = None
    content_id: str | None = None
    note: str | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        st = normalize_signal_type(self.signal_type)
        object.__setattr__(self, "signal_type", st)
        object.__setattr__(self, "signal", validate_signal(st, self.signal))
        for name in TEXT_LIMITS:
            object.__setattr__(self, name, _check_text(name, getattr(self, name)))
        object.__setattr__(self, "added_at", parse_time(self.added_at))
        if st == "vpdq" and not self.content_id:
            raise ValueError("a vpdq (video frame) hash needs a content_id naming its video: the frames of one video "
                             "share it")

    def metadata(self) -> dict[str, Any]:
        """The provenance fields that are set, JSON-ready."""
        out: dict[str, Any] = {}
        for name in ("source", "category", "added_by", "added_at", "content_id", "note"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**({"id": self.id} if self.id is not None else {}), "signal_type": self.signal_type,
                "signal": self.signal, **self.metadata()}


@dataclass(frozen=True, slots=True)
class BankFile:
    """A parsed bank file: the bank definition (JSON exports carry one) and its entries."""

    bank: Bank | None
    entries: tuple[BankEntry, ...] = field(default_factory=tuple)


# -- import ------------------------------------------------------------------------------------
def detect_format(name: str, text: str) -> str:
    """The format from a file name's extension, else from the content."""
    lower = name.lower()
    for ext, fmt in ((".json", "json"), (".csv", "csv"), (".te", "te"), (".txt", "te")):
        if lower.endswith(ext):
            return fmt
    head = text.lstrip()[:1]
    if head in ("{", "["):
        return "json"
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    return "csv" if "," in first else "te"


def parse_bank_file(text: str, *, fmt: str, default_signal_type: str | None = None,
                    defaults: Mapping[str, Any] | None = None) -> BankFile:
    """Parse a bank file. All-or-nothing: any bad row fails the import, listing the first
    problems with their line (CSV, TE) or content index (JSON), so nothing is half-imported.
    `defaults` fills provenance fields a row leaves empty (e.g. added_by, source)."""
    if fmt not in FORMATS:
        raise BankFormatError(f"unknown bank file format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if default_signal_type is not None:
        default_signal_type = normalize_signal_type(default_signal_type)
    rows: list[tuple[str, dict[str, Any]]]  # (where, fields)
    bank: Bank | None = None
    if fmt == "te":
        rows = _te_rows(text, default_signal_type)
    elif fmt == "csv":
        rows = _csv_rows(text, default_signal_type)
    else:
        bank, rows = _json_rows(text)
    errors: list[str] = []
    entries: list[BankEntry] = []
    fill = {k: v for k, v in (defaults or {}).items() if v is not None}
    for where, values in rows:
        try:
            merged = {**fill, **{k: v for k, v in values.items() if v is not None and v != ""}}
            for required in ("signal_type", "signal"):
                if required not in merged:
                    raise ValueError(f"missing {required}")
            entries.append(BankEntry(**merged))
        except (ValueError, TypeError) as exc:
            errors.append(f"{where}: {exc}")
    if errors:
        raise BankFormatError(f"{len(errors)} invalid row(s); {errors[0]}", errors[:MAX_REPORTED_ERRORS])
    return BankFile(bank=bank, entries=tuple(entries))


def _te_rows(text: str, default_signal_type: str | None) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if default_signal_type is not None and " " not in line:
            rows.append((f"line {lineno}", {"signal_type": default_signal_type, "signal": line}))
            continue
        signal_type, _, signal = line.partition(" ")
        rows.append((f"line {lineno}", {"signal_type": signal_type, "signal": signal.strip()}))
    return rows


def _csv_rows(text: str, default_signal_type: str | None) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise BankFormatError(f"line 1: not valid CSV: {exc}") from None
    columns = [_CSV_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    if "signal" not in columns:
        raise BankFormatError("the CSV needs a header row naming its columns, with at least 'signal' (or 'hash'); "
                              f"expected: {','.join(CSV_COLUMNS)}")
    if "signal_type" not in columns and default_signal_type is None:
        raise BankFormatError("the CSV has no 'signal_type' column; add one or pass the signal type (pdq or md5)")
    known = [c if c in CSV_COLUMNS else None for c in columns]
    rows = []
    try:
        for record in reader:
            lineno = reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            values: dict[str, Any] = {"signal_type": default_signal_type}
            for col, cell in zip(known, record, strict=False):
                if col is not None:
                    values[col] = cell
            rows.append((f"line {lineno}", values))
    except csv.Error as exc:
        raise BankFormatError(f"line {reader.line_num}: not valid CSV: {exc}") from None
    return rows


def _json_rows(text: str) -> tuple[Bank | None, list[tuple[str, dict[str, Any]]]]:
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BankFormatError(f"not valid JSON: {exc}") from None
    bank = None
    if isinstance(doc, dict) and ("contents" in doc or "bank" in doc):
        if doc.get("bank") is not None:
            try:
                bank = Bank.from_dict(doc["bank"])
            except ValueError as exc:
                raise BankFormatError(f"bank: {exc}") from None
        contents = doc.get("contents", [])
    elif isinstance(doc, dict):
        contents = [{"signals": doc}]  # HMA's add-signal body: {"pdq": "..."}
    else:
        contents = doc
    if not isinstance(contents, list):
        raise BankFormatError("'contents' must be an array of {\"signals\": {...}, \"metadata\": {...}} objects")
    rows: list[tuple[str, dict[str, Any]]] = []
    for i, item in enumerate(contents):
        where = f"contents[{i}]"
        if not isinstance(item, dict):
            rows.append((where, {"signal_type": None, "signal": None}))
            continue
        if "signal" in item:  # flat {"signal_type", "signal", ...}
            rows.append((where, {k: item.get(k) for k in CSV_COLUMNS}))
            continue
        signals = item.get("signals")
        meta = item.get("metadata") or {}
        extra = meta.get("json") if isinstance(meta, dict) else None
        if not isinstance(signals, dict) or not signals or not isinstance(meta, dict) or (
                extra is not None and not isinstance(extra, dict)):
            raise BankFormatError(f"{where}: expected {{\"signals\": {{\"pdq\": \"...\"}}, \"metadata\": {{...}}}}")
        info = {k: (extra or {}).get(k) for k in ("source", "category", "added_by", "added_at", "note")}
        info["content_id"] = meta.get("content_id")
        if isinstance(item.get("id"), int) and not isinstance(item.get("id"), bool) and len(signals) == 1:
            info["id"] = item["id"]  # the exporting store's id: evidence then names the stored hash
        for signal_type, signal in signals.items():
            rows.append((f"{where}.signals.{signal_type}", {"signal_type": signal_type, "signal": signal, **info}))
    return bank, rows


# -- export ------------------------------------------------------------------------------------
def export_csv(entries: Iterable[BankEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180; fields holding \r or \n get quoted
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        writer.writerow([e.signal_type, e.signal, e.source or "", e.category or "", e.added_by or "",
                         e.added_at.isoformat() if e.added_at else "", e.content_id or "", e.note or ""])
    return out.getvalue()


def export_te(entries: Iterable[BankEntry]) -> str:
    return "".join(f"{e.signal_type} {e.signal}\n" for e in entries)


def content_json(entry: BankEntry) -> dict[str, Any]:
    """One entry in HMA's bank content shape."""
    meta = entry.metadata()
    content_id = meta.pop("content_id", None)
    metadata: dict[str, Any] = {}
    if content_id is not None:
        metadata["content_id"] = content_id
    if meta:
        metadata["json"] = meta
    out: dict[str, Any] = {"signals": {entry.signal_type: entry.signal}, "metadata": metadata}
    if entry.id is not None:
        out["id"] = entry.id
    return out


def export_json(bank: Bank | None, entries: Iterable[BankEntry]) -> str:
    doc = {"format": JSON_FORMAT, "version": JSON_VERSION, "bank": bank.to_dict() if bank else None,
           "contents": [content_json(e) for e in entries]}
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def export_bank(bank: Bank | None, entries: Iterable[BankEntry], *, fmt: str) -> str:
    if fmt == "csv":
        return export_csv(entries)
    if fmt == "te":
        return export_te(entries)
    if fmt == "json":
        return export_json(bank, entries)
    raise ValueError(f"unknown bank file format {fmt!r}; choose one of {', '.join(FORMATS)}")


def without_ids(entries: Iterable[BankEntry]) -> list[BankEntry]:
    """Entries with `id` cleared (ids are the store's, not part of a file's content)."""
    return [replace(e, id=None) for e in entries]


__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "SIGNAL_TYPES",
    "SIGNAL_TYPE_ALIASES",
    "Bank",
    "BankEntry",
    "BankFile",
    "BankFormatError",
    "content_json",
    "detect_format",
    "export_bank",
    "export_csv",
    "export_json",
    "export_te",
    "normalize_signal_type",
    "parse_bank_file",
    "parse_time",
    "validate_bank_name",
    "validate_signal",
    "without_ids",
]
