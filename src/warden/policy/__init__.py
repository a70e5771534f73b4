"""Load, validate and compare versioned policy files."""

from warden.policy.diff import ChangeKind, PolicyChange, diff_policies
from warden.policy.loader import LoadedPolicy, PolicyError, PolicyProblem, load_policy, load_policy_file, parse_policy

DEFAULT_POLICY_PATH = "policies/default.yaml"

__all__ = [
    "DEFAULT_POLICY_PATH",
    "ChangeKind",
    "LoadedPolicy",
    "PolicyChange",
    "PolicyError",
    "PolicyProblem",
    "diff_policies",
    "load_policy",
    "load_policy_file",
    "parse_policy",
]
