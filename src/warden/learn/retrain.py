"""The retraining loop: train a candidate with reviewer labels, write its candidate policy,
and move the live policy between model versions (promote / rollback).

`warden train --with-reviews` -> `warden models gate VERSION` -> shadow
(`warden serve --shadow-policy <candidate policy>`, `warden eval shadow`) ->
`warden models promote VERSION` (refused without a passing gate) -> `warden models rollback`.

Policies and models move together. A candidate policy is the live policy's text with two
edits: every detector `model_dir` that points at the champion now points at the candidate,
and `version` becomes `<live base version>+<model version>` (e.g. `2026.11.22-4+text-v2`).
Decisions are idempotent per (content id, policy version), so a new model must mean a new
policy version; the suffix makes the version name the model and never collide with a policy
that used another model. Edits are textual (comments and layout of the live file survive)
and then verified by parsing: the diff must be exactly `version` + those `model_dir`s.

The candidate policy is written in the live policy's own folder (`<stem>.<version>.yaml`),
so every other relative path in it (keyword banks, ...) means the same file, and promoting
is writing the gated candidate text over the live file, byte for byte.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from warden.learn.registry import (
    ChampionChange,
    DataFingerprint,
    Lineage,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    atomic_write_text,
    code_version,
)
from warden.learn.review_data import ReviewerLabel, ReviewerMerge, merge_reviewer_rows, rows_fingerprint
from warden.policy import PolicyChange, diff_policies, parse_policy
from warden.policy.loader import fingerprint as policy_fingerprint

_MODEL_DIR = re.compile(r"""(?P<pre>\bmodel_dir:[ \t]*)(?P<q>["']?)(?P<val>[^"'\s,}#]+)(?P=q)""")
_VERSION_LINE = re.compile(r"^version:[^\n]*$", re.MULTILINE)


class RetrainError(RuntimeError):
    """The retraining loop cannot go on; the message says what to do."""


# -- policies ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PolicyText:
    """A policy file's text and what it says (parsed without loading detectors)."""

    path: Path
    text: str
    version: str
    fingerprint: str
    model_dirs: dict[str, Path]  # detector instance -> resolved model_dir

    @classmethod
    def read(cls, path: Path) -> PolicyText:
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        policy = parse_policy(text, file=str(path), check_detectors=False)
        base = path.resolve().parent
        dirs = {name: (base / spec.params["model_dir"]).resolve() for name, spec in policy.detectors.items()
                if isinstance(spec.params.get("model_dir"), str)}
        return cls(path=path, text=text, version=policy.version, fingerprint=policy_fingerprint(policy),
                   model_dirs=dirs)

    def champion_dir(self) -> Path:
        """The one model folder the policy's detectors use."""
        dirs = set(self.model_dirs.values())
        if len(dirs) != 1:
            found = ", ".join(f"{k}: {v}" for k, v in self.model_dirs.items()) or "none"
            raise RetrainError(f"{self.path}: expected every detector model_dir to name one model folder, "
                               f"found {found}")
        return dirs.pop()


def policy_version_for(live_version: str, model_version: str) -> str:
    """`<base>+<model version>`, where base is the live version without a previous model suffix."""
    return f"{live_version.split('+', 1)[0]}+{model_version}"


def _model_dir_value(model_dir: Path, policy_dir: Path) -> str:
    # relative inside one project tree (policies/ next to models/), absolute otherwise
    rel = os.path.relpath(model_dir, policy_dir.resolve())
    return Path(model_dir).resolve().as_posix() if rel.startswith(os.path.join("..", "..")) else Path(rel).as_posix()


def swap_model(live: PolicyText, *, from_dir: Path, to_dir: Path, version: str) -> tuple[str, list[PolicyChange]]:
    """The live policy's text with the model folders `from_dir` -> `to_dir` and a new version,
    for a file in the live policy's folder; and the changes, verified by parsing."""
    from_dir, to_dir = Path(from_dir).resolve(), Path(to_dir).resolve()
    policy_dir = live.path.resolve().parent
    new_value = _model_dir_value(to_dir, policy_dir)
    swapped = 0

    def sub(m: re.Match[str]) -> str:
        nonlocal swapped
        if (policy_dir / m.group("val")).resolve() != from_dir:
            return m.group(0)
        swapped += 1
        return f"{m.group('pre')}{m.group('q')}{new_value}{m.group('q')}"

    text = _MODEL_DIR.sub(sub, live.text)
    if swapped == 0:
        raise RetrainError(f"{live.path}: no detector model_dir points at {from_dir}; the live policy does not use "
                           "the registry's champion (fix the policy or the registry before retraining)")
    text, n = _VERSION_LINE.subn(f'version: "{version}"', text, count=1)
    if n != 1:
        raise RetrainError(f"{live.path}: no top-level `version:` line to update")
    old = parse_policy(live.text, file=str(live.path), check_detectors=False)
    new = parse_policy(text, file=f"{live.path} (model swapped)", check_detectors=False)
    changes = diff_policies(old, new)
    allowed = {"version"} | {f"detectors.{k}.params.model_dir" for k, v in live.model_dirs.items() if v == from_dir}
    unexpected = [c.path for c in changes if c.path not in allowed]
    if unexpected or new.version != version:
        raise RetrainError(f"{live.path}: swapping the model changed more than version and model_dir "
                           f"({', '.join(unexpected)}); edit the policy by hand")
    return text, changes


def candidate_policy_path(live_policy: Path, version: str) -> Path:
    live_policy = Path(live_policy)
    return live_policy.with_name(f"{live_policy.stem}.{version}{live_policy.suffix or '.yaml'}")


def write_candidate_policy(registry: ModelRegistry, record: ModelVersion, live_policy: Path) -> PolicyText:
    """(Re)write the candidate policy of `record` from the current live policy."""
    live = PolicyText.read(live_policy)
    champion = registry.champion()
    if live.champion_dir() != registry.resolve(champion):
        raise RetrainError(f"{live.path} uses {live.champion_dir()} but the registry's champion {champion.version} "
                           f"is {registry.resolve(champion)}; point the live policy at the champion or use --policy")
    text, _ = swap_model(live, from_dir=registry.resolve(champion), to_dir=registry.resolve(record),
                         version=policy_version_for(live.version, record.version))
    path = candidate_policy_path(live.path, record.version)
    atomic_write_text(path, text)
    return PolicyText.read(path)


# -- training a candidate --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CandidateBuild:
    record: ModelVersion
    model_dir: Path
    policy: PolicyText
    merge: ReviewerMerge
    without_text: int
    seconds: float


def build_candidate(*, registry: ModelRegistry, live_policy: Path, data_dir: Path,
                    labels: Sequence[ReviewerLabel], without_text: int = 0, sources: list[str] | None = None,
                    seed: int = 0, max_per_source: int | None = None, loso: bool = True, n_boot: int = 200,
                    measure_speed: bool = True, progress: bool = True, actor: str, command: str) -> CandidateBuild:
    """Train a new version on the datasets plus reviewer labels, register it as a candidate
    (parent: the current champion) and write its candidate policy.

    The version folder is reserved first (so concurrent runs get different ids) and the model
    is trained into `model.partial`, renamed to `model` only when complete: a crashed run
    never leaves a registrable half artifact.
    """
    from warden.learn.text_data import load_all
    from warden.learn.train import DEFAULT_MAX_PER_SOURCE, run_training
    from warden.policy import load_policy

    t0 = time.time()
    live = PolicyText.read(live_policy)
    champion = registry.champion()
    if live.champion_dir() != registry.resolve(champion):
        raise RetrainError(f"{live.path} uses {live.champion_dir()} but the registry's champion {champion.version} "
                           f"is {registry.resolve(champion)}; point the live policy at the champion or use --policy")
    version, folder = registry.reserve()
    try:
        rows = load_all(Path(data_dir), sources=sources)
        merge = merge_reviewer_rows(rows, labels)
        partial, final = folder / "model.partial", folder / "model"
        cap = DEFAULT_MAX_PER_SOURCE if max_per_source is None else max_per_source
        report = run_training(partial, data_dir=Path(data_dir), policy=load_policy(live.path, check_detectors=False),
                              seed=seed, max_per_source=cap, progress=progress, loso=loso, n_boot=n_boot,
                              sources=sources, measure_speed=measure_speed, rows=merge.rows, model_version=version,
                              command=command)
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    fp = DataFingerprint(
        sources={s: len(r) for s, r in sorted(merge.rows.items())}, sha256=rows_fingerprint(merge.rows), seed=seed,
        max_per_source=cap, split_sizes=dict(report.split_sizes), reviewer_labels=merge.labels,
        reviewer_texts=merge.texts, reviewer_first=merge.first.isoformat() if merge.first else None,
        reviewer_last=merge.last.isoformat() if merge.last else None, reviewer_split=merge.split,
        reviewer_overrides=merge.overrides)
    lineage = Lineage(parent=champion.version, code_version=code_version(), command=command, created_by=actor, data=fp)
    cand_path = candidate_policy_path(live.path, version)
    record = registry.register_candidate(version=version, model_dir=final, lineage=lineage, metrics=report.metrics,
                                         actor=actor, policy_path=cand_path)
    policy = write_candidate_policy(registry, record, live.path)
    return CandidateBuild(record=record, model_dir=final, policy=policy, merge=merge, without_text=without_text,
                          seconds=time.time() - t0)


# -- moving the live policy ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LivePolicyChange:
    path: Path
    old_version: str
    new_version: str
    changes: tuple[PolicyChange, ...]


def promote_policy(*, registry: ModelRegistry, version: str, live_policy: Path,
                   actor: str) -> tuple[ChampionChange, LivePolicyChange]:
    """Promote `version`: the registry checks the gate (refusing without a passing one), then
    the gated candidate policy replaces the live policy file.

    The candidate file must still be exactly what was gated (fingerprint) and derived from the
    live policy as it is now (the registry compares the live fingerprint with the gate's)."""
    live = PolicyText.read(live_policy)
    record = registry.get(version)
    gate = registry.check_promotable(version, live_policy_fingerprint=live.fingerprint)
    cand_path = registry.policy_file(record)
    if cand_path is None or not cand_path.exists():
        raise RetrainError(f"{version} has no candidate policy file; run `warden models gate {version}` to write it")
    cand = PolicyText.read(cand_path)
    if cand.fingerprint != gate.candidate_policy_fingerprint:
        raise RetrainError(f"refusing to promote {version}: {cand_path} changed since it was gated; run "
                           f"`warden models gate {version}` again")
    if cand.path.resolve().parent != live.path.resolve().parent:
        raise RetrainError(f"{cand_path} is not in the live policy's folder {live.path.parent}: relative paths would "
                           f"change meaning; run `warden models gate {version} --policy {live.path}`")
    change = registry.promote(version, actor=actor, live_policy_fingerprint=live.fingerprint,
                              details={"policy": str(live.path), "policy_version_old": live.version,
                                       "policy_version_new": cand.version})
    atomic_write_text(live.path, cand.text)
    changes = diff_policies(parse_policy(live.text, check_detectors=False),
                            parse_policy(cand.text, check_detectors=False))
    return change, LivePolicyChange(live.path, live.version, cand.version, tuple(changes))


def rollback_policy(*, registry: ModelRegistry, live_policy: Path,
                    actor: str) -> tuple[ChampionChange, LivePolicyChange]:
    """Back to the champion before the current one; the live policy gets its model folder and a
    new version (`<base>+<restored model>`): decisions made in between keep their own version."""
    live = PolicyText.read(live_policy)
    current = registry.champion()
    target = registry.rollback_target()
    if live.champion_dir() != registry.resolve(current):
        raise RetrainError(f"{live.path} uses {live.champion_dir()}, not the champion {current.version} "
                           f"({registry.resolve(current)}); fix the live policy or pass the right --policy")
    new_version = policy_version_for(live.version, target.version)
    text, changes = swap_model(live, from_dir=registry.resolve(current), to_dir=registry.resolve(target),
                               version=new_version)
    change = registry.rollback(actor=actor, details={"policy": str(live.path), "policy_version_old": live.version,
                                                     "policy_version_new": new_version})
    atomic_write_text(live.path, text)
    return change, LivePolicyChange(live.path, live.version, new_version, tuple(changes))


def ensure_registry(registry: ModelRegistry, live_policy: Path, *, actor: str) -> ModelVersion:
    """Initialize the registry on first use: the live policy's model folder is the champion."""
    if registry.initialized:
        return registry.champion()
    try:
        return registry.initialize(champion_dir=PolicyText.read(live_policy).champion_dir(), actor=actor)
    except FileNotFoundError:
        raise RetrainError(f"{live_policy}: file not found (pass --policy)") from None


__all__ = ["CandidateBuild", "LivePolicyChange", "PolicyText", "RegistryError", "RetrainError", "build_candidate",
           "candidate_policy_path", "ensure_registry", "policy_version_for", "promote_policy", "rollback_policy",
           "swap_model", "write_candidate_policy"]
