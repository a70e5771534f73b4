"""Provider configuration lives in the policy and fails at load with messages that say what to do;
keys come from the environment or a secrets file and never show in reprs or errors."""

from __future__ import annotations

import pytest
from provider_cases import CONTEXT
from pydantic import ValidationError

from warden.detectors import registry
from warden.detectors.providers import PROVIDER_DETECTORS
from warden.detectors.providers.base import ProviderNotConfigured, Secret, image_refs
from warden.policy import PolicyError, parse_policy


def _build(name: str, params: dict):
    return registry.get(name).from_config(params, instance="x", context=CONTEXT)


def test_every_adapter_is_registered_under_its_name() -> None:
    for name in PROVIDER_DETECTORS:
        assert registry.get(name).name == name


def test_api_key_env_must_be_a_name_not_a_key() -> None:
    with pytest.raises(ValidationError, match="must be the NAME of an environment variable") as info:
        registry.get("openai_moderation").Params.model_validate({"api_key_env": "sk-proj-abc123-def456"})
    assert "sk-proj-abc123" not in str(info.value).split("input_value")[0]


def test_unknown_provider_label_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError, match=r"mapping: 'harrasment' is not a label of this provider; known labels: "
                                              r"harassment, harassment/threatening"):
        registry.get("openai_moderation").Params.model_validate({"mapping": {"harrasment": "harassment"}})


def test_mapping_targets_must_be_policy_categories(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with pytest.raises(ValueError, match=r"mapping targets \['bullying'\] are not categories of the policy"):
        _build("openai_moderation", {"mapping": {"harassment": "bullying"}})
    det = _build("openai_moderation", {"mapping": {"harassment": ["harassment", "hate"], "violence": "violence"}})
    assert det.mapping == {"harassment": ("harassment", "hate"), "violence": ("violence",)}
    assert det.covered_categories == ("harassment", "hate", "violence")


def test_missing_key_names_the_variable(monkeypatch) -> None:
    monkeypatch.delenv("HIVE_API_KEY", raising=False)
    with pytest.raises(ProviderNotConfigured,
                       match=r"set the environment variable HIVE_API_KEY or params\.api_key_file"):
        _build("hive", {})


def test_key_from_a_secrets_file_relative_to_the_policy(tmp_path) -> None:
    (tmp_path / "hive.key").write_text("  hive-secret-123  \n")
    from warden.detectors.base import DetectorContext

    ctx = DetectorContext(base_dir=tmp_path, categories=CONTEXT.categories, policy=CONTEXT.policy)
    det = registry.get("hive").from_config({"api_key_file": "hive.key"}, context=ctx)
    assert det.auth_headers()["authorization"] == "token hive-secret-123"
    assert "hive-secret-123" not in repr(det) and "hive-secret-123" not in repr(det.__dict__)
    with pytest.raises(ProviderNotConfigured, match=r"api_key_file .*missing.key' cannot be read"):
        registry.get("hive").from_config({"api_key_file": "missing.key"}, context=ctx)


def test_secret_repr_is_masked() -> None:
    s = Secret("sk-123")
    assert repr(s) == str(s) == "Secret('***')" and f"{s}" == "Secret('***')" and s.reveal() == "sk-123"


def test_policy_load_reports_provider_param_mistakes() -> None:
    yaml = """
schema_version: 1
name: p
version: "1"
surfaces: [comment]
categories:
  hate: {definition: d, severity: high, action: remove, thresholds: {default: {flag: 0.8}}}
detectors:
  mod:
    type: openai_moderation
    params: {timeout_s: -1, mapping: {hatred: hate}, api_key: sk-oops}
"""
    with pytest.raises(PolicyError) as info:
        parse_policy(yaml)
    text = str(info.value)
    assert "detectors.mod.params.timeout_s: Input should be greater than 0; got -1" in text
    assert "detectors.mod.params.api_key: unknown key (allowed: " in text and "api_key_env" in text


def test_image_refs_reads_metadata_urls_and_rejects_others() -> None:
    from warden.core import Content

    item = Content(id="i", text="x", metadata={"image_url": "https://img.example/a.png",
                                               "image_urls": ["data:image/png;base64,AAAA"]})
    assert image_refs(item) == ("https://img.example/a.png", "data:image/png;base64,AAAA")
    with pytest.raises(ValueError, match="is not an http"):
        image_refs(Content(id="i", text="x", metadata={"image_url": "file:///etc/passwd"}))
