"""The config file's `diagnose:` section becomes the one `diagnose.Settings` value."""

from __future__ import annotations

import dataclasses

import pytest

from selfheal import config, diagnose, errors

pytestmark = pytest.mark.timeout(30)


def test_no_section_means_the_defaults() -> None:
    assert diagnose.settings_from(config.Config().diagnose) == diagnose.DEFAULT_SETTINGS


def test_a_section_overrides_only_what_it_sets() -> None:
    cfg = config.parse("diagnose:\n  support_strength: 0.25\n  behaviour_p_value: 0.01\n", "t")
    settings = diagnose.settings_from(cfg.diagnose)
    assert settings.support_strength == 0.25 and settings.behaviour_p_value == 0.01
    changed = {f.name for f in dataclasses.fields(settings)
               if getattr(settings, f.name) != getattr(diagnose.DEFAULT_SETTINGS, f.name)}
    assert changed == {"support_strength", "behaviour_p_value"}


def test_every_configurable_field_is_a_setting() -> None:
    names = {f.name for f in dataclasses.fields(diagnose.Settings)}
    assert set(config.Diagnose.model_fields) <= names


@pytest.mark.parametrize("text", ["diagnose:\n  no_such_knob: 1\n",
                                  "diagnose:\n  support_strength: 1.5\n"])
def test_unknown_or_out_of_range_fields_are_refused(text: str) -> None:
    with pytest.raises(errors.ConfigError, match="diagnose"):
        config.parse(text, "t")


@pytest.mark.parametrize(("key", "value"), [
    ("health_down_samples", "0"), ("health_down_samples", "2.5"),
    ("health_down_samples", "many"), ("health_change_margin_s", "-1"),
    ("health_change_margin_s", "soon")])
def test_bad_health_knobs_are_refused_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(errors.ConfigError) as info:
        config.parse(f"diagnose:\n  {key}: {value}\n", "selfheal.yaml")
    assert info.value.field == f"diagnose.{key}"
