"""pytest helpers to run the conformance kit over every registered detector.

    import pytest
    from warden.testing import load_or_skip, registered_detector_names

    @pytest.mark.parametrize("name", registered_detector_names())
    def test_conforms(name):
        check_detector(load_or_skip(name, params={...}))

Names are listed at collection time without importing any detector (some are heavy);
detectors are built inside the test, so one broken plugin fails one test, and a detector
whose model files or optional extras are absent is skipped with the reason, not failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from warden.detectors import registry
from warden.detectors.base import Detector, DetectorContext


def registered_detector_names() -> list[str]:
    """Every detector name known to the registry, sorted (for `pytest.mark.parametrize`)."""
    return registry.available()


def load_or_skip(name: str, params: Mapping[str, Any] | None = None, *,
                 context: DetectorContext | None = None) -> Detector:
    """Build a registered detector, or `pytest.skip` when its artifacts are not installed.

    Skips on `FileNotFoundError` (model files absent: not trained or not shipped here) and
    `ImportError` (an optional extra is not installed). Everything else, including a
    parameter validation error, propagates and fails the test.
    """
    import pytest  # only needed by test code; not a runtime dependency of warden

    try:
        cls = registry.get(name)
    except ImportError as exc:
        pytest.skip(f"detector {name!r}: cannot import its module ({exc}); optional extra not installed?")
    try:
        return cls.from_config(dict(params or {}), instance=name, context=context)
    except FileNotFoundError as exc:
        pytest.skip(f"detector {name!r}: model files not present ({exc})")
    except ImportError as exc:
        pytest.skip(f"detector {name!r}: optional dependency missing ({exc})")
