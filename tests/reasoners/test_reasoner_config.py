"""The reasoner's settings: off by default, the key read at start-up and never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfheal import config, errors, reasoners


def test_off_by_default_and_then_nothing_is_built() -> None:
    cfg = config.parse("", "test.yaml")
    assert cfg.reasoner.enabled is False
    assert reasoners.from_settings(cfg.reasoner, {}) is None


def test_enabled_needs_a_model_and_rejects_unknown_fields() -> None:
    with pytest.raises(errors.ConfigError, match="model"):
        config.parse("reasoner: {enabled: true}", "test.yaml")
    with pytest.raises(errors.ConfigError, match=r"reasoner\.api_key"):
        config.parse("reasoner: {enabled: true, model: m, api_key: sk-123}", "test.yaml")


def test_the_key_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n", encoding="utf-8")
    cfg = config.parse(f"reasoner: {{enabled: true, model: m, api_key_file: {key_file}}}", "t")
    assert reasoners.read_api_key(cfg.reasoner, {}) == "sk-from-file"
    built = reasoners.from_settings(cfg.reasoner, {})
    assert built is not None and "sk-from-file" not in repr(vars(built))
    env = config.parse("reasoner: {enabled: true, model: m, api_key_env: MY_KEY}", "t")
    assert reasoners.read_api_key(env.reasoner, {"MY_KEY": "sk-env"}) == "sk-env"
    with pytest.raises(errors.ConfigError, match="MY_KEY is not set"):
        reasoners.from_settings(env.reasoner, {})
    missing = config.parse(
        f"reasoner: {{enabled: true, model: m, api_key_file: {tmp_path / 'nope'}}}", "t")
    with pytest.raises(errors.ConfigError, match="cannot read the API key"):
        reasoners.from_settings(missing.reasoner, {})
