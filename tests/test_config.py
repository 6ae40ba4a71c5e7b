"""Config files are untrusted input: a bad one gets one line naming file and field, exit 2."""

from __future__ import annotations

import subprocess
import typing
from pathlib import Path

import pydantic
import pytest

from selfheal import config, detect, errors
from selfheal.cli import bench_detect
from selfheal.detect import settings as detect_settings
from selfheal.engine import controller


@pytest.mark.parametrize(("text", "field"), [
    ("scrape: {interval_s: fast}\n", "scrape.interval_s"),
    ("scrape: {interval_s: -1}\n", "scrape.interval_s"),
    ("demo: {replicas: 1}\n", "demo.replicas"),
    ("verify: {observe_s: 5, extra: 1}\n", "verify.extra"),
    ("nonsense: true\n", "nonsense"),
    ("- a\n- b\n", ""),
    ("scrape: {interval_s: 1\n", "line"),
    ("detect: {report_z: -1}\n", "detect.report_z"),
    ("detect: {slo: {error_ratio: .nan}}\n", "detect.slo"),
    ("detect: {slo: {error_ratio: high}}\n", "detect.slo"),
    ("detect: {slo: [error_ratio]}\n", "detect.slo"),
    ("detect: {season: hourly}\n", "detect.season"),
    ("detect: {forget_after_s: -1}\n", "detect.forget_after_s"),
    ("detect: {min_scale: {error_ratio: 0}}\n", "detect.min_scale"),
    ("detect: {min_scale: {error_ratio: .inf}}\n", "detect.min_scale"),
    ("sources: {prometheus: {url: 'http://p:9090', limit_queries: {memory: 'x'}}}\n",
     "sources.prometheus"),
    ("detect: {limit_warning_s: 0}\n", "detect.limit_warning_s"),
    ("sources: {prometheus: {url: 'http://p:9090', limit_refresh_s: 0}}\n",
     "sources.prometheus.limit_refresh_s"),
])
def test_bad_config_names_the_field(text: str, field: str) -> None:
    with pytest.raises(errors.ConfigError) as info:
        config.parse(text, "c.yaml")
    assert info.value.path == "c.yaml"
    assert info.value.field.startswith(field)


def test_good_config_overrides_defaults() -> None:
    cfg = config.parse("scrape: {interval_s: 2}\ndemo: {rps: 5}\n", "c.yaml")
    assert cfg.scrape.interval_s == 2.0
    assert cfg.demo.rps == 5.0
    assert cfg.verify == config.Verify()


@pytest.mark.parametrize(("text", "field"), [
    ("scrape:\n  interval_s: fast\n", "scrape.interval_s"),
    ("diagnose:\n  health_down_samples: 0\n", "diagnose.health_down_samples"),
])
def test_cli_bad_config_exits_2_with_one_line_and_starts_nothing(
        tmp_path: Path, selfheal_cmd: list[str], text: str, field: str) -> None:
    bad = tmp_path / "selfheal.yaml"
    bad.write_text(text)
    res = subprocess.run([*selfheal_cmd, "demo", "--config", str(bad)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert str(bad) in lines[0] and field in lines[0]
    assert "Traceback" not in res.stderr
    assert not (tmp_path / ".selfheal").exists()


def test_cli_missing_config_file_is_a_clear_error(tmp_path: Path,
                                                  selfheal_cmd: list[str]) -> None:
    res = subprocess.run([*selfheal_cmd, "demo", "--config", str(tmp_path / "none.yaml")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2
    assert "none.yaml" in res.stderr and "Traceback" not in res.stderr


def test_the_report_threshold_and_slo_bounds_reach_the_detector() -> None:
    assert config.Detect().report_z == detect.Settings().report_z
    cfg = config.parse("detect: {report_z: 3.5, slo: {error_ratio: 0.05}}\n", "c.yaml")
    settings = controller.detector_settings(cfg.detect)
    assert settings.report_z == 3.5
    assert settings.slo == {"error_ratio": 0.05}


@pytest.mark.parametrize(("season", "period", "weekly"), [
    ("weekly", 86400.0, True), ("daily", 86400.0, False), ("off", 0.0, False),
])
def test_the_seasonality_reaches_the_detector(season: str, period: float, weekly: bool) -> None:
    settings = controller.detector_settings(
        config.parse(f"detect: {{season: {season}}}\n", "c.yaml").detect)
    assert (settings.season_period_s, settings.weekly_profile) == (period, weekly)
    # the default is the library's own default
    default = controller.detector_settings(config.Detect())
    assert default.season_period_s == detect.Settings().season_period_s > 0
    assert default.weekly_profile == detect.Settings().weekly_profile


def test_min_scale_overrides_one_floor_and_keeps_the_others() -> None:
    parsed = config.parse("detect: {min_scale: {error_ratio: 0.004, queue_depth: 2}}\n",
                          "c.yaml").detect
    got = controller.detector_settings(parsed)
    default = controller.detector_settings(config.Detect())
    assert got.floor("error_ratio") == 0.004 != default.floor("error_ratio")
    assert got.floor("queue_depth") == 2.0
    assert got.floor("p99_latency_s") == default.floor("p99_latency_s") > 0


def test_forget_after_s_reaches_the_detector() -> None:
    parsed = config.parse("detect: {forget_after_s: 3600}\n", "c.yaml").detect
    assert controller.detector_settings(parsed).forget_s == 3600.0
    assert controller.detector_settings(config.Detect()).forget_s \
        == detect.Settings().forget_s == 14 * 86_400.0


def test_the_config_the_benchmarks_and_the_detector_name_the_same_seasonalities() -> None:
    in_config = typing.get_args(config.Detect.model_fields["season"].annotation)
    assert set(in_config) == set(detect_settings.SEASONS)
    assert {s.value for s in bench_detect.Season} == set(detect_settings.SEASONS)
    for season in detect_settings.SEASONS:
        detect.Settings(**detect_settings.season_overrides(season))  # each one is valid


def test_detect_limits_are_merged_over_the_defaults_and_checked() -> None:
    cfg = config.Detect(limits={"rss_bytes": 2 * 1024.0 ** 3, "disk_used_bytes": 1e11})
    merged = controller.detector_settings(cfg)
    assert merged.limit("rss_bytes") == 2 * 1024.0 ** 3
    assert merged.limit("disk_used_bytes") == 1e11
    assert controller.detector_settings(config.Detect()).limit("rss_bytes") == \
        detect_settings.DEFAULT_LIMITS["rss_bytes"]
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(pydantic.ValidationError, match="limit of rss_bytes"):
            config.Detect(limits={"rss_bytes": bad})


def test_the_signal_window_is_prometheus_rate_window_when_it_is_longer() -> None:
    # verification waits this long after an action before it reads the signals again: a
    # point of a rate over the last 4 minutes is mostly the time before the action
    assert config.Config().signal_window_s() == 10.0  # the embedded scraper's window
    for window, seconds in (("4m", 240.0), ("500ms", 10.0), ("15s", 15.0), ("1h", 3600.0)):
        cfg = config.Config.model_validate(
            {"sources": {"prometheus": {"url": "http://p:9090", "rate_window": window}}})
        assert cfg.signal_window_s() == seconds
