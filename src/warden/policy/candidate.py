"""Check a candidate policy text against the live policy: exact problems, or the diff.

Used by the admin UI's "validate a pasted policy" form; pure (no I/O), like the rest of
`warden.policy`.
"""

from __future__ import annotations

from dataclasses import dataclass

from warden.core.policy import Policy
from warden.policy.diff import PolicyChange, diff_policies
from warden.policy.loader import PolicyError, PolicyProblem, fingerprint, parse_policy

#: A pasted policy larger than this is refused before YAML parsing (policies are a few KB).
MAX_POLICY_CHARS = 512 * 1024


@dataclass(frozen=True, slots=True)
class CandidateCheck:
    """`problems` empty means valid; then `changes` is the diff from the live policy."""

    problems: tuple[PolicyProblem, ...] = ()
    candidate: Policy | None = None
    fingerprint: str | None = None
    changes: tuple[PolicyChange, ...] = ()
    same_version_changed: bool = False  # content changed without a version bump: decisions would be ambiguous

    @property
    def valid(self) -> bool:
        return not self.problems


def check_candidate(text: str, *, live: Policy | None, check_detectors: bool = True,
                    file: str = "<pasted policy>") -> CandidateCheck:
    if len(text) > MAX_POLICY_CHARS:
        return CandidateCheck(problems=(PolicyProblem("", f"the policy is over {MAX_POLICY_CHARS:,} characters"),))
    try:
        candidate = parse_policy(text, file=file, check_detectors=check_detectors)
    except PolicyError as exc:
        return CandidateCheck(problems=tuple(exc.problems))
    changes = tuple(diff_policies(live, candidate)) if isinstance(live, Policy) else ()
    same_version = isinstance(live, Policy) and live.version == candidate.version and bool(changes)
    return CandidateCheck(candidate=candidate, fingerprint=fingerprint(candidate), changes=changes,
                          same_version_changed=same_version)


def live_fingerprint(policy: object) -> str | None:
    """The fingerprint of the live policy, or None when it is not a `Policy` (e.g. a test double)."""
    return fingerprint(policy) if isinstance(policy, Policy) else None


__all__ = ["MAX_POLICY_CHARS", "CandidateCheck", "check_candidate", "live_fingerprint"]
