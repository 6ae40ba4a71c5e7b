"""The two detection benchmarks through the real CLI: tables, and one JSON object last."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from selfheal.cli import main


def _nab_folder(root: Path) -> None:
    rng = np.random.default_rng(4)
    (root / "data" / "synthetic").mkdir(parents=True)
    (root / "labels").mkdir()
    windows = {}
    for k in range(2):
        n = 1200
        x = 50 + rng.normal(0, 1, n) + 5 * np.sin(np.arange(n) * 2 * math.pi / 288)
        x[900 + 20 * k :] += 25  # a level shift the detector should find
        t0 = np.datetime64("2024-01-01T00:00:00")
        stamps = [str(t0 + np.timedelta64(5 * i, "m")).replace("T", " ") for i in range(n)]
        name = f"synthetic/s{k}.csv"
        lines = ["timestamp,value"] + [f"{s},{v:.4f}" for s, v in zip(stamps, x, strict=True)]
        (root / "data" / name).write_text("\n".join(lines) + "\n")
        windows[name] = [[stamps[870 + 20 * k] + ".000000", stamps[930 + 20 * k] + ".000000"]]
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))


@pytest.mark.timeout(120)
def test_bench_nab_cli(tmp_path: Path) -> None:
    _nab_folder(tmp_path / "nab")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main.app,
        [
            "bench",
            "nab",
            "--data",
            str(tmp_path / "nab"),
            "--out",
            str(out),
            "--json",
            "--per-file",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "costliest" in res.stdout
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert [r["name"] for r in last["per_file"]] == ["synthetic/s0.csv", "synthetic/s1.csv"]
    by_file = sum(r["raw"] for r in last["per_file"])
    assert by_file == pytest.approx(last["profiles"][0]["raw"], abs=1e-6)
    assert (out / "plots" / "index.html").is_file()
    assert (out / "plots" / "synthetic" / "s1.svg").is_file()
    assert last["files"] == 2 and last["windows"] == 2
    assert set(last["scores"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert last["scores"]["standard"] > 50  # two clear level shifts inside their windows
    assert set(last["halves"]) == {"even", "odd"}
    assert last["halves"]["even"]["files"] == 1 and last["halves"]["odd"]["files"] == 1
    assert set(last["halves"]["odd"]["held_out"]) == set(last["scores"])
    assert (out / "selfheal" / "synthetic" / "selfheal_s0.csv").is_file()


# 45 configurations (the second family's 12 neighbours joined the 33): ~50 s on a loaded
# 2-core machine
@pytest.mark.timeout(240)
def test_bench_nab_cli_robustness(tmp_path: Path) -> None:
    _nab_folder(tmp_path / "nab")
    res = CliRunner().invoke(
        main.app, ["bench", "nab", "--data", str(tmp_path / "nab"), "--robustness", "--json"]
    )
    assert res.exit_code == 0, res.output
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(last["perturbed"]) == set(last["scores"])
    for profile, own in last["scores"].items():
        stats = last["perturbed"][profile]
        # the configuration itself is one of those averaged
        assert stats["min"] <= own + 0.01
        assert stats["min"] <= stats["mean"] + 1e-9


def test_bench_nab_cli_reports_a_missing_folder(tmp_path: Path) -> None:
    res = CliRunner().invoke(main.app, ["bench", "nab", "--data", str(tmp_path / "nope")])
    assert res.exit_code == 2


@pytest.mark.timeout(60)
def test_bench_detect_scale_cli() -> None:
    res = CliRunner().invoke(
        main.app, ["bench", "detect-scale", "--series", "2000", "--ticks", "5", "--json"]
    )
    assert res.exit_code == 0, res.output
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert last["series"] == 2000
    assert last["updates_per_s"] > 0
    assert 0 < last["bytes_per_series"] <= 1024
    # a whole detector holds the arrays and the series' names besides (measured, not summed)
    assert last["bytes_per_series"] < last["detector_bytes_per_series"]


@pytest.mark.timeout(60)
def test_bench_detect_scale_cli_nab_configuration() -> None:
    res = CliRunner().invoke(
        main.app,
        ["bench", "detect-scale", "--series", "2000", "--ticks", "5", "--nab-config", "--json"],
    )
    assert res.exit_code == 0, res.output
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert last["config"] == "nab"
    # daily and weekly profiles (the weekly one's 168 bins in half precision) and the
    # range-novelty channel included
    assert 0 < last["bytes_per_series"] <= 1024


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("target", "text", "said"),
    [
        ("data/synthetic/s1.csv", "timestamp,value\n2024-01-01 00:00:00,1\nxx,2\n",
         "synthetic/s1.csv, line 3: 'xx' is not a timestamp"),
        ("data/synthetic/s1.csv", "timestamp,value\n2024-01-01 00:00:00,1\n"
         "2024-01-01 00:05:00,1e\n", "synthetic/s1.csv, line 3: '1e' is not a number"),
        ("data/synthetic/s1.csv", "when,what\n2024-01-01 00:00:00,1\n",
         "synthetic/s1.csv: the header must be 'timestamp,value'"),
        ("data/synthetic/s1.csv", "timestamp,value\n2024-01-01 00:05:00,1\n"
         "2024-01-01 00:00:00,1\n", "synthetic/s1.csv, line 3: timestamps go backwards"),
        ("data/synthetic/s1.csv", "timestamp,value\n2024-01-01 00:00:00,1\ntoday,2\n",
         "synthetic/s1.csv, line 3: 'today' is not a timestamp"),
        ("data/synthetic/s1.csv", "timestamp,value\nNaT,1\n2024-01-01 00:05:00,2\n",
         "synthetic/s1.csv, line 2: 'NaT' is not a timestamp"),
        ("data/synthetic/s1.csv", "timestamp,value\n2024-01-01 00:00:00+01:00,1\n",
         "synthetic/s1.csv, line 2: '2024-01-01 00:00:00+01:00' is not a timestamp"),
        ("data/synthetic/s1.csv", "timestamp,value\n2024-02-30 00:00:00,1\n",
         "synthetic/s1.csv, line 2: '2024-02-30 00:00:00' is not a timestamp"),
        ("data/synthetic/s1.csv", "timestamp,value\n",
         "synthetic/s1.csv: no rows under the header"),
        ("labels/combined_windows.json", "{not json", "combined_windows.json: not readable JSON"),
        ("labels/combined_windows.json", '{"synthetic/s0.csv": [["now", "2024-01-02 00:00:00"]]}',
         "synthetic/s0.csv: 'now' is not a timestamp"),
        ("labels/combined_windows.json", '{"synthetic/s0.csv": [["2024-01-01 00:00:00"]]}',
         "synthetic/s0.csv: expected [[start, end], ...]"),
        ("labels/combined_windows.json",
         '{"synthetic/s0.csv": [["2024-01-01 22:00:00", "2024-01-01 20:00:00"]]}',
         "synthetic/s0.csv: window 1 ends before it starts"),
        ("labels/combined_windows.json",
         '{"synthetic/s0.csv": [["2024-01-02 00:00:00", "2024-01-02 06:00:00"],'
         ' ["2024-01-01 20:00:00", "2024-01-02 01:00:00"]]}',
         "synthetic/s0.csv: window 1 ['2024-01-02 00:00:00', '2024-01-02 06:00:00'] overlaps"
         " window 2"),
        ("labels/combined_windows.json",
         '{"synthetic/s0.csv": [["2025-03-01 00:00:00", "2025-03-01 06:00:00"]]}',
         "synthetic/s0.csv: window [2025-03-01 00:00:00, 2025-03-01 06:00:00] holds no row of"
         " the file (2024-01-01 00:00:00 .. 2024-01-05 03:55:00)"),
    ],
)
def test_bench_nab_refuses_a_corrupt_corpus_whole(
    tmp_path: Path, target: str, text: str, said: str
) -> None:
    """A malformed data or label file: one line naming the file and line, exit 2, no
    traceback and nothing written (no partial results from the files that did parse)."""
    _nab_folder(tmp_path / "nab")
    (tmp_path / "nab" / target).write_text(text)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main.app, ["bench", "nab", "--data", str(tmp_path / "nab"), "--out", str(out), "--json"]
    )
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("nab: ") and said in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.output
    assert res.stdout == ""
    assert not out.exists()


@pytest.mark.timeout(120)
def test_bench_nab_cli_scores_the_product_defaults_by_their_alarms(tmp_path: Path) -> None:
    _nab_folder(tmp_path / "nab")
    res = CliRunner().invoke(
        main.app, ["bench", "nab", "--data", str(tmp_path / "nab"), "--config", "product",
                   "--json"])
    assert res.exit_code == 0, res.output
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert last["config"] == "product"
    assert last["season"] == "weekly"  # the product as shipped
    assert last["halves"] == {}  # no threshold to carry from one half to the other
    assert {p["threshold"] for p in last["profiles"]} == {0.5}
    assert all(p["tp"] + p["fn"] == 2 for p in last["profiles"])


def test_bench_nab_cli_refuses_robustness_for_the_product(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main.app, ["bench", "nab", "--data", str(tmp_path / "nope"), "--config", "product",
                   "--robustness"])
    assert res.exit_code == 2
    assert "does not apply to --config product" in res.output
    assert "Traceback" not in res.output


def test_bench_nab_cli_refuses_a_season_for_the_nab_configuration(tmp_path: Path) -> None:
    # the seasonality option is the product's: the NAB configuration has its own
    res = CliRunner().invoke(
        main.app, ["bench", "nab", "--data", str(tmp_path / "nope"), "--season", "off"])
    assert res.exit_code == 2
    assert "use it with --config product" in res.output


@pytest.mark.timeout(60)
def test_bench_detect_scale_cli_measures_each_seasonality() -> None:
    sizes = {}
    for season in ("weekly", "daily", "off"):
        res = CliRunner().invoke(main.app, ["bench", "detect-scale", "--series", "500",
                                            "--ticks", "3", "--season", season, "--json"])
        assert res.exit_code == 0, res.output
        last = json.loads(res.stdout.strip().splitlines()[-1])
        assert (last["config"], last["season"]) == ("product", season)
        sizes[season] = last["bytes_per_series"]
    # each profile costs state: the weekly one on top of the daily one
    assert sizes["off"] < sizes["daily"] < sizes["weekly"] <= 1024


@pytest.mark.timeout(120)
@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_bench_nab_says_in_one_line_when_out_cannot_be_a_folder(tmp_path: Path,
                                                               where: str) -> None:
    """--out that cannot be written (a regular file, or a path under one): one line, exit
    2 before anything runs, no traceback, and nothing left beside it."""
    _nab_folder(tmp_path / "nab")
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder\n")
    out = blocker if where == "a file" else blocker / "results"
    res = CliRunner().invoke(
        main.app, ["bench", "nab", "--data", str(tmp_path / "nab"), "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("nab: --out ") and "Traceback" not in res.output, res.output
    assert len(res.stderr.strip().splitlines()) == 1
    assert blocker.read_text() == "not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nab", "taken"]


@pytest.mark.timeout(120)
def test_bench_nab_replaces_its_own_results_whole(tmp_path: Path) -> None:
    """A second run into the same --out leaves its results only (no stale file of a
    corpus file that is gone), and no temporary folder beside it."""
    _nab_folder(tmp_path / "nab")
    out = tmp_path / "out"
    stale = out / "selfheal" / "synthetic" / "selfheal_gone.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("timestamp,value,anomaly_score,label\n")
    (out / "mine.txt").write_text("kept\n")
    res = CliRunner().invoke(
        main.app, ["bench", "nab", "--data", str(tmp_path / "nab"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert not stale.exists()
    assert (out / "selfheal" / "synthetic" / "selfheal_s0.csv").is_file()
    assert (out / "plots" / "index.html").is_file()
    assert (out / "mine.txt").read_text() == "kept\n"  # not ours: left alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nab", "out"]


@pytest.mark.timeout(60)
def test_bench_detect_scale_says_in_one_line_when_the_series_do_not_fit_in_memory() -> None:
    # a trillion series (~1 PB of state): numpy cannot allocate it, and says so at once
    res = CliRunner().invoke(main.app, ["bench", "detect-scale", "--series", str(10**12),
                                        "--ticks", "1"])
    assert res.exit_code == 1, res.output
    assert res.stderr.startswith("detect-scale: not enough memory for 1,000,000,000,000 series")
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
