"""A file-based model registry: versions, lineage, gate results and an append-only history.

Why files and not the database: a model version is a folder of weights that the policy file
points at, and both are deployed together; a registry next to them (default `models/registry/`,
env `WARDEN_MODEL_REGISTRY`) can be reviewed, copied and backed up with the artifacts, and the
CLI works without a database. Promotions and rollbacks are also written to the audit log when a
store is configured (see `warden.cli.models`).

Layout::

    <root>/registry.json     the current state: champion + one record per version (rewritten atomically)
    <root>/history.jsonl     append-only: register, gate, promote, rollback (who, when, what)
    <root>/<version>/model/  a candidate's artifact (the shipped models/text-v1 is registered in place)
    <root>/<version>/policy.yaml   the candidate policy: the live policy pointing at this model
    <root>/.lock             serializes writers (fcntl.flock)

Every version records its lineage (training data fingerprint, reviewer labels, code version,
parent, command), its held-out metrics from training and every gate run against it. A promotion
is refused unless the latest gate of that exact version passed, against the current champion
and live policy, on an artifact whose fingerprint has not changed since.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

REGISTRY_ENV = "WARDEN_MODEL_REGISTRY"
DEFAULT_ROOT = Path("models/registry")
SCHEMA = 1
STATE_FILE = "registry.json"
HISTORY_FILE = "history.jsonl"
#: documentation inside a model folder: editing it does not change what the model decides
DOC_FILES = frozenset({"MODEL_CARD.md", "metrics.json"})
_VERSION_RE = re.compile(r"^[a-z][a-z0-9_]*-v(\d+)$")


class RegistryError(RuntimeError):
    """The registry cannot do what was asked; the message says what to do instead."""


class PromotionRefused(RegistryError):
    """A promotion without a passing gate for this exact version, artifact, champion and live policy."""


class Status(StrEnum):
    CANDIDATE = "candidate"
    CHAMPION = "champion"
    RETIRED = "retired"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- records ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DataFingerprint:
    """What a version was trained on. `sha256` covers every (source, normalized text, labels)
    row handed to training, before the seeded per-source cap (which `seed` and
    `max_per_source` make deterministic); None for artifacts built before it was recorded."""

    sources: dict[str, int]  # rows loaded per source (reviewer rows under "reviewer")
    sha256: str | None
    seed: int | None = None
    max_per_source: int | None = None
    split_sizes: dict[str, int] = field(default_factory=dict)  # after capping and de-duplication
    reviewer_labels: int = 0  # label rows read from the store
    reviewer_texts: int = 0  # distinct texts they became
    reviewer_first: str | None = None  # created_at of the oldest / newest label used
    reviewer_last: str | None = None
    reviewer_split: dict[str, int] = field(default_factory=dict)  # reviewer texts per content-hash split
    reviewer_overrides: int = 0  # dataset rows whose labels a reviewer label replaced

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DataFingerprint:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True, slots=True)
class Lineage:
    parent: str | None  # the champion when this version was trained
    code_version: str  # git commit (+ "-dirty") or the package version
    command: str
    created_by: str
    data: DataFingerprint | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Lineage:
        data = d.get("data")
        return cls(parent=d.get("parent"), code_version=d.get("code_version", "unknown"),
                   command=d.get("command", ""), created_by=d.get("created_by", "unknown"),
                   data=DataFingerprint.from_dict(data) if data else None)


@dataclass(frozen=True, slots=True)
class GateRecord:
    """One run of `warden models gate`. Promotion compares every fingerprint here with now."""

    passed: bool
    at: str
    by: str
    gate_name: str
    gates_file: str
    gates_sha256: str
    champion: str  # the champion the candidate was compared against
    artifact_sha256: str
    candidate_policy_version: str
    candidate_policy_fingerprint: str
    live_policy_path: str
    live_policy_version: str
    live_policy_fingerprint: str
    n_rules: int = 0
    failures: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GateRecord:
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        kw["failures"] = tuple(kw.get("failures", ()))
        kw["warnings"] = tuple(kw.get("warnings", ()))
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    version: str
    status: Status
    path: str  # artifact folder, relative to the registry root
    artifact_sha256: str
    created_at: str
    lineage: Lineage
    metrics: dict[str, Any] = field(default_factory=dict)  # summary of held-out metrics (summarize_metrics)
    policy_path: str | None = None  # candidate policy, relative to the registry root
    gates: tuple[GateRecord, ...] = ()

    @property
    def latest_gate(self) -> GateRecord | None:
        return self.gates[-1] if self.gates else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelVersion:
        return cls(version=d["version"], status=Status(d["status"]), path=d["path"],
                   artifact_sha256=d["artifact_sha256"], created_at=d["created_at"],
                   lineage=Lineage.from_dict(d.get("lineage") or {}), metrics=dict(d.get("metrics") or {}),
                   policy_path=d.get("policy_path"),
                   gates=tuple(GateRecord.from_dict(g) for g in d.get("gates") or ()))


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    at: str
    actor: str
    event: str  # register | gate | promote | rollback
    version: str
    previous: str | None = None  # promote/rollback: the champion it replaced
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HistoryEvent:
        return cls(at=d["at"], actor=d["actor"], event=d["event"], version=d["version"],
                   previous=d.get("previous"), details=dict(d.get("details") or {}))


@dataclass(frozen=True, slots=True)
class ChampionChange:
    """The result of a promotion or rollback."""

    event: str
    previous: ModelVersion
    champion: ModelVersion


# -- helpers ----------------------------------------------------------------------------------

def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder + fsync + os.replace: readers see the old or
    the new file, never half of one, even if the process dies mid-write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644  # mkstemp would leave 0600
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def artifact_fingerprint(model_dir: Path) -> str:
    """sha256 over every file of a model folder except its documentation (DOC_FILES): the
    bytes that decide. Recorded at registration and at each gate, compared at promotion."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise RegistryError(f"model folder {model_dir} not found")
    h = hashlib.sha256()
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name not in DOC_FILES)
    if not files:
        raise RegistryError(f"model folder {model_dir} holds no model files")
    for p in files:
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        h.update(f"{p.relative_to(model_dir).as_posix()}\0{digest}\n".encode())
    return h.hexdigest()


def code_version() -> str:
    """The git commit of the source tree (with "-dirty" when tracked files differ), else the
    installed package version: what a retrain would need to reproduce this version."""
    root = Path(__file__).resolve().parents[3]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        if commit:
            return f"git:{commit}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"warden {version('warden')}"
    except PackageNotFoundError:
        return "unknown"


def summarize_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The held-out (test split) figures of a training run's metrics.json worth keeping in the
    registry: per category and tier PR-AUC / F1 at the threshold, and the macro PR-AUC per tier
    over supervised categories. Few-shot categories are listed as unmeasured, never scored."""
    per: dict[str, Any] = {}
    macro: dict[str, list[float]] = {"linear": [], "embedding": []}
    for cat, entry in (metrics.get("per_category") or {}).items():
        if entry.get("status") != "supervised":
            per[cat] = {"status": "unmeasured"}
            continue
        row: dict[str, Any] = {"status": "supervised"}
        for tier in ("linear", "embedding"):
            m = entry.get(tier) or {}
            row[tier] = {k: m.get(k) for k in ("n", "positives", "pr_auc", "f1@thr") if k in m}
            if m.get("pr_auc") is not None:
                macro[tier].append(float(m["pr_auc"]))
        per[cat] = row
    meta = metrics.get("meta") or {}
    return {"split": "test", "n_rows": meta.get("n_rows"), "split_sizes": meta.get("split_sizes"),
            "macro_pr_auc": {t: round(sum(v) / len(v), 4) if v else None for t, v in macro.items()},
            "per_category": per}


# -- the registry -------------------------------------------------------------------------------

class ModelRegistry:
    """Versions of the text model, their lineage and gate results, and which one is champion.

    Reads are lock-free (the state file is replaced atomically); every write takes the lock,
    re-reads the state and writes it back whole.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def default_root(cls) -> Path:
        env = os.environ.get(REGISTRY_ENV)
        return Path(env).expanduser() if env else DEFAULT_ROOT

    # -- state -----------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    @property
    def history_path(self) -> Path:
        return self.root / HISTORY_FILE

    @property
    def initialized(self) -> bool:
        return self.state_path.exists()

    def _read(self) -> tuple[str, dict[str, ModelVersion]]:
        if not self.initialized:
            raise RegistryError(f"no model registry at {self.root}: register the live model first "
                                "(any `warden models` command does it from the live policy)")
        try:
            raw = json.loads(self.state_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{self.state_path}: not valid JSON ({exc})") from None
        if raw.get("schema") != SCHEMA:
            raise RegistryError(f"{self.state_path}: unsupported schema {raw.get('schema')!r} (expected {SCHEMA})")
        versions = {v: ModelVersion.from_dict(d) for v, d in raw["versions"].items()}
        return raw["champion"], versions

    def _write(self, champion: str, versions: Mapping[str, ModelVersion]) -> None:
        doc = {"schema": SCHEMA, "champion": champion, "updated_at": now_iso(),
               "versions": {v: r.to_dict() for v, r in versions.items()}}
        atomic_write_text(self.state_path, json.dumps(doc, indent=1, sort_keys=False) + "\n")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _append_history(self, event: HistoryEvent) -> None:
        with open(self.history_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(event), sort_keys=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    # -- reads -----------------------------------------------------------------------------
    def versions(self) -> list[ModelVersion]:
        """All versions, oldest first."""
        return sorted(self._read()[1].values(), key=lambda r: (_version_number(r.version), r.created_at))

    def get(self, version: str) -> ModelVersion:
        versions = self._read()[1]
        if version not in versions:
            raise RegistryError(f"unknown model version {version!r}; known: {', '.join(sorted(versions)) or 'none'} "
                                "(see `warden models list`)")
        return versions[version]

    def champion(self) -> ModelVersion:
        champion, versions = self._read()
        return versions[champion]

    def history(self) -> list[HistoryEvent]:
        if not self.history_path.exists():
            return []
        lines = self.history_path.read_text(encoding="utf-8").split("\n")
        out: list[HistoryEvent] = []
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                out.append(HistoryEvent.from_dict(json.loads(line)))
            except (json.JSONDecodeError, KeyError) as exc:
                if i == len(lines):  # a torn last line (no newline yet): the write never finished
                    break
                raise RegistryError(f"{self.history_path}:{i}: unreadable history line ({exc})") from None
        return out

    def resolve(self, record: ModelVersion) -> Path:
        """The absolute artifact folder of a version."""
        return (self.root / record.path).resolve()

    def policy_file(self, record: ModelVersion) -> Path | None:
        return (self.root / record.policy_path).resolve() if record.policy_path else None

    def next_version(self, prefix: str = "text") -> str:
        """`<prefix>-v<N+1>` over every version ever registered or reserved (folders), so a
        version id is never reused: policy versions embed it."""
        numbers = [_version_number(v) for v in (self._read()[1] if self.initialized else {})]
        if self.root.exists():
            numbers += [_version_number(p.name) for p in self.root.iterdir() if p.is_dir()]
        return f"{prefix}-v{max([1, *numbers]) + 1}"

    def reserve(self, prefix: str = "text") -> tuple[str, Path]:
        """Allocate the next version id and create its folder (exclusively, under the lock)."""
        with self._locked():
            version = self.next_version(prefix)
            folder = self.root / version
            folder.mkdir(parents=True, exist_ok=False)
            return version, folder

    # -- writes ----------------------------------------------------------------------------
    def initialize(self, *, champion_dir: Path, actor: str, version: str | None = None,
                   lineage: Lineage | None = None) -> ModelVersion:
        """Register an existing artifact in place (not copied) as the first champion. Idempotent:
        an initialized registry returns its champion unchanged."""
        champion_dir = Path(champion_dir).resolve()
        with self._locked():
            if self.initialized:
                return self.champion()
            metrics = _read_json(champion_dir / "metrics.json")
            meta = metrics.get("meta") or {}
            version = version or str(_read_json(champion_dir / "linear.json").get("version") or champion_dir.name)
            if lineage is None:
                sizes = meta.get("source_split_sizes") or {}
                data = DataFingerprint(sources={s: sum(d.values()) for s, d in sizes.items()}, sha256=None,
                                       seed=meta.get("seed"), max_per_source=meta.get("max_per_source"),
                                       split_sizes=meta.get("split_sizes") or {})
                lineage = Lineage(parent=None, code_version="unknown (built before the registry)",
                                  command=str(meta.get("command") or f"warden train --out {champion_dir.name}"),
                                  created_by="unknown", data=data)
            record = ModelVersion(
                version=version, status=Status.CHAMPION, path=os.path.relpath(champion_dir, self.root.resolve()),
                artifact_sha256=artifact_fingerprint(champion_dir),
                created_at=str(meta.get("date") or now_iso()), lineage=lineage,
                metrics=summarize_metrics(metrics) if metrics else {})
            self._write(version, {version: record})
            self._append_history(HistoryEvent(now_iso(), actor, "register", version,
                                              details={"status": "champion", "path": record.path, "initial": True}))
            return record

    def register_candidate(self, *, version: str, model_dir: Path, lineage: Lineage, metrics: Mapping[str, Any],
                           actor: str, policy_path: Path | None = None) -> ModelVersion:
        model_dir = Path(model_dir).resolve()
        with self._locked():
            champion, versions = self._read()
            if version in versions:
                raise RegistryError(f"model version {version!r} is already registered")
            record = ModelVersion(
                version=version, status=Status.CANDIDATE, path=os.path.relpath(model_dir, self.root.resolve()),
                artifact_sha256=artifact_fingerprint(model_dir), created_at=now_iso(), lineage=lineage,
                metrics=summarize_metrics(metrics),
                policy_path=os.path.relpath(Path(policy_path).resolve(), self.root.resolve()) if policy_path else None)
            self._write(champion, {**versions, version: record})
            self._append_history(HistoryEvent(now_iso(), actor, "register", version,
                                              details={"status": "candidate", "parent": lineage.parent,
                                                       "artifact_sha256": record.artifact_sha256}))
            return record

    def record_gate(self, version: str, gate: GateRecord) -> ModelVersion:
        with self._locked():
            champion, versions = self._read()
            if version not in versions:
                raise RegistryError(f"unknown model version {version!r}")
            record = replace(versions[version], gates=(*versions[version].gates, gate))
            self._write(champion, {**versions, version: record})
            self._append_history(HistoryEvent(gate.at, gate.by, "gate", version,
                                              details={"passed": gate.passed, "gate": gate.gate_name,
                                                       "against": gate.champion, "failures": len(gate.failures)}))
            return record

    def check_promotable(self, version: str, *, live_policy_fingerprint: str) -> GateRecord:
        """The gate that allows promoting `version` now, or PromotionRefused saying why not."""
        champion, versions = self._read()
        return _check_promotable(self, champion, versions, version, live_policy_fingerprint)

    def promote(self, version: str, *, actor: str, live_policy_fingerprint: str,
                details: Mapping[str, Any] | None = None) -> ChampionChange:
        """Make `version` the champion. Re-checks the gate under the lock: a concurrent
        promotion or a changed artifact between check and write still refuses."""
        with self._locked():
            champion, versions = self._read()
            gate = _check_promotable(self, champion, versions, version, live_policy_fingerprint)
            prev = replace(versions[champion], status=Status.RETIRED)
            new = replace(versions[version], status=Status.CHAMPION)
            self._write(version, {**versions, champion: prev, version: new})
            self._append_history(HistoryEvent(now_iso(), actor, "promote", version, previous=champion,
                                              details={"gate_at": gate.at, "gate": gate.gate_name,
                                                       "artifact_sha256": new.artifact_sha256, **(details or {})}))
            return ChampionChange("promote", prev, new)

    def rollback_target(self) -> ModelVersion:
        """The champion before the current one was promoted (rollbacks walk back promotions)."""
        champion, versions = self._read()
        return versions[_rollback_target(self.history(), champion)]

    def rollback(self, *, actor: str, details: Mapping[str, Any] | None = None) -> ChampionChange:
        with self._locked():
            champion, versions = self._read()
            target = _rollback_target(self.history(), champion)
            restored = versions[target]
            current = artifact_fingerprint(self.resolve(restored))
            if current != restored.artifact_sha256:
                raise RegistryError(f"cannot roll back to {target}: its artifact {self.resolve(restored)} changed "
                                    f"since it was registered (sha256 {current[:12]} != {restored.artifact_sha256[:12]}"
                                    "); restore the original files")
            prev = replace(versions[champion], status=Status.RETIRED)
            new = replace(restored, status=Status.CHAMPION)
            self._write(target, {**versions, champion: prev, target: new})
            self._append_history(HistoryEvent(now_iso(), actor, "rollback", target, previous=champion,
                                              details=dict(details or {})))
            return ChampionChange("rollback", prev, new)


def _version_number(name: str) -> int:
    m = _VERSION_RE.match(name)
    return int(m.group(1)) if m else 0


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def _check_promotable(reg: ModelRegistry, champion: str, versions: Mapping[str, ModelVersion], version: str,
                      live_policy_fingerprint: str) -> GateRecord:
    if version not in versions:
        raise PromotionRefused(f"unknown model version {version!r}; known: {', '.join(sorted(versions))}")
    record = versions[version]
    if version == champion:
        raise PromotionRefused(f"{version} is already the champion")
    gate = record.latest_gate
    if gate is None:
        raise PromotionRefused(f"refusing to promote {version}: no gate has been recorded for it; run "
                               f"`warden models gate {version}` first")
    if not gate.passed:
        why = "; ".join(gate.failures[:3]) + (" ..." if len(gate.failures) > 3 else "")
        raise PromotionRefused(f"refusing to promote {version}: its latest gate ({gate.gate_name}, {gate.at}) FAILED: "
                               f"{why}. Fix the data or the model, train a new candidate and gate it")
    if gate.champion != champion:
        raise PromotionRefused(f"refusing to promote {version}: it was gated against {gate.champion}, but the "
                               f"champion is now {champion}; run `warden models gate {version}` again")
    current = artifact_fingerprint(reg.resolve(record))
    if current != gate.artifact_sha256 or current != record.artifact_sha256:
        raise PromotionRefused(f"refusing to promote {version}: its artifact {reg.resolve(record)} changed since it "
                               f"was gated (sha256 now {current[:12]}, gated {gate.artifact_sha256[:12]}); train a new "
                               "candidate instead of editing one")
    if live_policy_fingerprint != gate.live_policy_fingerprint:
        raise PromotionRefused(f"refusing to promote {version}: the live policy {gate.live_policy_path} changed since "
                               f"the gate (gated against version {gate.live_policy_version}); run "
                               f"`warden models gate {version}` again")
    return gate


def _rollback_target(history: list[HistoryEvent], champion: str) -> str:
    for ev in reversed(history):
        if ev.event == "promote" and ev.version == champion and ev.previous:
            return ev.previous
    raise RegistryError(f"nothing to roll back to: {champion} was never promoted over another version "
                        "(it is the initial champion)")


__all__ = [
    "DEFAULT_ROOT", "REGISTRY_ENV", "ChampionChange", "DataFingerprint", "GateRecord", "HistoryEvent", "Lineage",
    "ModelRegistry", "ModelVersion", "PromotionRefused", "RegistryError", "Status", "artifact_fingerprint",
    "atomic_write_text", "code_version", "summarize_metrics",
]
