"""The conformance kit, run on every registered detector, and checked against broken ones."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from warden.core import DEFAULT_CATEGORIES, Content, DetectorResult, Evidence, Span
from warden.detectors import registry
from warden.detectors.base import Detector, DetectorContext, DetectorParams
from warden.testing import check_detector, default_samples, load_or_skip, registered_detector_names

POLICIES = Path(__file__).resolve().parents[2] / "policies"
CONTEXT = DetectorContext(base_dir=POLICIES, categories=DEFAULT_CATEGORIES)

# Parameters for detectors that need some; others are built with their defaults.
PARAMS: dict[str, dict[str, Any]] = {
    "keyword_bank": {"banks": [{"path": "banks/default.yaml"}]},
    "regex_bank": {"banks": [{"path": "banks/default.yaml"}]},
    # The shipped model, as policies/default.yaml refers to it (relative to the policy folder).
    "linear_text": {"model_dir": "../models/text-v1"},
    "embedding_classifier": {"model_dir": "../models/text-v1"},
}


@pytest.mark.parametrize("name", registered_detector_names())
def test_registered_detector_conforms(name: str) -> None:
    from warden.detectors.providers import PROVIDER_DETECTORS

    if name in PROVIDER_DETECTORS:
        pytest.skip("remote API adapter: tests/providers runs the kit on it against its local wire-format server")
    detector = load_or_skip(name, PARAMS.get(name), context=CONTEXT)
    check_detector(detector)


def test_bank_detectors_are_registered() -> None:
    assert {"keyword_bank", "regex_bank"} <= set(registered_detector_names())


# -- the kit must catch broken detectors ---------------------------------------------------------


class _Base(Detector):
    """A correct detector; subclasses break one rule each."""

    name: ClassVar[str] = "conformance_ok"

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        out = []
        for item in batch:
            text = item.text or ""
            pos = text.find("kill")
            ev = (Evidence("violence", "word:kill", (Span(pos, pos + 4, "kill"),)),) if pos >= 0 else ()
            out.append(self.result(item, {"violence": 0.9 if pos >= 0 else 0.1}, ev))
        return out


class _Reversed(_Base):
    name = "conformance_reversed"

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        return list(reversed(super()._detect(batch)))


class _Random(_Base):
    name = "conformance_random"
    _counter = itertools.count()

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        return [self.result(item, {"spam": (next(self._counter) % 7) / 7}) for item in batch]


class _BatchDependent(_Base):
    name = "conformance_batch_dependent"

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        return [self.result(item, {"spam": 1 / (1 + len(batch))}) for item in batch]


class _BadSpan(_Base):
    name = "conformance_bad_span"

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        return [self.result(item, {"spam": 0.5}, (Evidence("spam", "r", (Span(0, 3, "xyz"),)),)) for item in batch]


class _OutsidePolicy(_Base):
    name = "conformance_outside_policy"

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        return [DetectorResult(self.instance, item.id, {"made-up": 0.5}) for item in batch]


class _LooseParams(_Base):
    name = "conformance_loose_params"

    class Params(DetectorParams):
        model_config = {"extra": "allow", "frozen": True}


class _RaisesOnNone(_Base):
    """Overrides detect() itself and so bypasses the base class's per-item isolation."""

    name = "conformance_raises"

    def detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        return [self.result(item, {"spam": len(item.text) / 1e9}) for item in batch]  # type: ignore[arg-type]


class _Unregistered(_Base):
    name = "conformance_never_registered"


_REGISTERED = (_Base, _Reversed, _Random, _BatchDependent, _BadSpan, _OutsidePolicy, _LooseParams, _RaisesOnNone)


@pytest.fixture(scope="module", autouse=True)
def _register() -> None:
    for cls in _REGISTERED:
        if cls.name not in registry.available():
            registry.register(cls)


def _make(cls: type[Detector]) -> Detector:
    return cls(context=DetectorContext(categories=DEFAULT_CATEGORIES))


def test_a_correct_detector_passes() -> None:
    check_detector(_make(_Base))


@pytest.mark.parametrize(("cls", "message"), [
    (_Reversed, "check_batch_contract: item 0 (id='sample-0'): result has content_id='sample-7'"),
    (_Random, "check_batch_equals_single: item 'sample-0' scored differently"),
    (_BatchDependent, "check_batch_equals_single"),
    (_BadSpan, "span text 'xyz' != original[0:3]"),
    (_OutsidePolicy, "categories ['made-up'] are not in the policy"),
    (_LooseParams, "accepted the unknown key"),
    (_RaisesOnNone, "check_error_items: detect() raised TypeError"),
    (_Unregistered, "name 'conformance_never_registered' is not registered"),
])
def test_kit_catches_broken_detectors(cls: type[Detector], message: str) -> None:
    with pytest.raises(AssertionError) as info:
        check_detector(_make(cls))
    assert message in str(info.value)
    assert cls.__name__ in str(info.value)  # failures name the detector


def test_determinism_check_runs_even_when_batch_check_is_skipped() -> None:
    with pytest.raises(AssertionError, match="check_deterministic: item 'sample-0' gave"):
        check_detector(_make(_Random), skip=["check_batch_equals_single"])


def test_kit_validates_its_own_arguments() -> None:
    with pytest.raises(AssertionError, match="unique ids"):
        check_detector(_make(_Base), samples=[Content(id="a", text="x"), Content(id="a", text="y")])
    with pytest.raises(AssertionError, match="unknown checks"):
        check_detector(_make(_Base), skip=["check_typo"])
    assert len(default_samples()) >= 5


def test_load_or_skip_skips_missing_model_files() -> None:
    class _NeedsModel(_Base):
        name = "conformance_needs_model"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise FileNotFoundError("models/nothing.onnx")

    registry.register(_NeedsModel)
    with pytest.raises(pytest.skip.Exception, match="model files not present"):
        load_or_skip("conformance_needs_model")
