"""Load a policy file and validate it, with errors that say where and what to do.

Every problem is reported as `file:line: key.path: what is wrong (allowed: ...)`, all
problems at once, before anything runs. Detector parameters are validated here too,
against each detector's declared `Params`, so a typo in a policy never reaches traffic.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from warden.core.policy import Policy


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    path: str  # dotted key path, e.g. categories.hate.thresholds.chat.flag
    message: str
    line: int | None = None

    def format(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.path or '<root>'}: {self.message}"


class PolicyError(ValueError):
    """A policy file that cannot be used. `problems` lists every problem found."""

    def __init__(self, file: str, problems: list[PolicyProblem]) -> None:
        self.file = file
        self.problems = problems
        lines = "\n".join("  " + p.format(file) for p in problems)
        super().__init__(f"invalid policy {file} ({len(problems)} problem{'s' * (len(problems) != 1)}):\n{lines}")


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    policy: Policy
    path: Path
    fingerprint: str  # sha256 of the canonical policy: detects edits made without a version bump


def load_policy(path: str | Path, *, check_detectors: bool = True) -> Policy:
    return load_policy_file(path, check_detectors=check_detectors).policy


def load_policy_file(path: str | Path, *, check_detectors: bool = True) -> LoadedPolicy:
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(file, [PolicyProblem("", "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise PolicyError(file, [PolicyProblem("", f"not valid UTF-8 ({exc.reason} at byte {exc.start})")]) from None
    policy = parse_policy(text, file=file, check_detectors=check_detectors)
    return LoadedPolicy(policy=policy, path=path, fingerprint=fingerprint(policy))


def parse_policy(text: str, *, file: str = "<policy>", check_detectors: bool = True) -> Policy:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = PolicyProblem("", f"YAML syntax error: {getattr(exc, 'problem', exc)}", line)
        raise PolicyError(file, [problem]) from None
    if not isinstance(data, dict):
        raise PolicyError(file, [PolicyProblem("", f"the top level must be a mapping, got {type(data).__name__}")])
    lines = yaml_line_index(node)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(file, [_problem(err, lines) for err in exc.errors()]) from None
    if check_detectors:
        problems = detector_problems(policy)
        if problems:
            for i, p in enumerate(problems):
                problems[i] = PolicyProblem(p.path, p.message, lookup_line(lines, p.path))
            raise PolicyError(file, problems)
    return policy


def detector_problems(policy: Policy) -> list[PolicyProblem]:
    """Unknown detector types and invalid detector parameters, checked against the registry."""
    from warden.detectors import registry  # local: the registry reads entry-point metadata

    problems: list[PolicyProblem] = []
    for inst, spec in policy.detectors.items():
        try:
            cls = registry.get(spec.type)
        except registry.RegistryError as exc:
            problems.append(PolicyProblem(f"detectors.{inst}.type", str(exc)))
            continue
        try:
            cls.Params.model_validate(spec.params)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                problems.append(PolicyProblem(f"detectors.{inst}.params{'.' + loc if loc else ''}",
                                              validation_message(err, cls.Params.model_fields.keys())))
    return problems


def fingerprint(policy: Policy) -> str:
    dumped = policy.model_dump(mode="json")
    if policy.combine == type(policy.combine)():
        # Sections added after a policy was written keep its fingerprint while left at their default.
        dumped.pop("combine", None)
    canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- error formatting ------------------------------------------------------------------

def _problem(err: Any, lines: dict[str, int]) -> PolicyProblem:
    path = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    return PolicyProblem(path, validation_message(err), lookup_line(lines, path))


def validation_message(err: Any, allowed_keys: Any = None) -> str:
    """One pydantic error as a user message (shared by every YAML file Warden validates)."""
    kind = err["type"]
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        msg = "unknown key"
        if allowed_keys is not None:
            msg += f" (allowed: {', '.join(sorted(allowed_keys))})"
        return msg
    if kind == "missing":
        return "required key is missing"
    got = err.get("input")
    if got is not None and not isinstance(got, dict | list):
        return f"{msg}; got {got!r}"
    return msg


def yaml_line_index(node: yaml.Node | None) -> dict[str, int]:
    """Map dotted key paths to 1-based line numbers from the composed YAML tree."""
    index: dict[str, int] = {}

    def walk(n: yaml.Node, prefix: str) -> None:
        if isinstance(n, yaml.MappingNode):
            for key_node, value_node in n.value:
                key = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                index[key] = key_node.start_mark.line + 1
                walk(value_node, key)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                key = f"{prefix}.{i}" if prefix else str(i)
                index[key] = item.start_mark.line + 1
                walk(item, key)

    if node is not None:
        walk(node, "")
    return index


def lookup_line(lines: dict[str, int], path: str) -> int | None:
    parts = path.split(".") if path else []
    while parts:
        line = lines.get(".".join(parts))
        if line is not None:
            return line
        parts.pop()
    return None
