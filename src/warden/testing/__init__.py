"""Test utilities for detector authors: the conformance kit every detector must pass.

`check_detector(detector)` checks the contract of DESIGN.md (one result per item in order,
batch/single equivalence, determinism, probabilities in [0, 1], valid evidence spans,
error items never raising, a declared and registered name, strict parameters).
`registered_detector_names` and `load_or_skip` parametrize that over the registry.
"""

from warden.testing.conformance import (
    CHECKS,
    Check,
    check_detector,
    default_samples,
    error_samples,
)
from warden.testing.pytest_plugin import load_or_skip, registered_detector_names

__all__ = [
    "CHECKS",
    "Check",
    "check_detector",
    "default_samples",
    "error_samples",
    "load_or_skip",
    "registered_detector_names",
]
