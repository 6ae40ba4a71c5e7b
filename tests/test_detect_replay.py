"""`selfheal detect FILE`: the product detector over exported series, offline. A spike right
after a deploy is expected and opens no incident; the same spike without one is an incident;
the answer does not depend on the rows' order or the timestamps' notation; bad files are
refused whole, naming the line, and nothing is written."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from selfheal import config, replay
from selfheal.cli import main
from selfheal.detect import limitsteps
from selfheal.engine import controller

pytestmark = pytest.mark.timeout(120)

T0 = 1_760_000_000.0  # 2025-10-09 08:53:20 UTC
SPIKE = 400


def _rows(iso: bool = False) -> list[list[str]]:
    """Two services at a one-minute scrape for 8 hours: p99 latency and request rate, the
    latency of both spiking 10x for 3 minutes at row SPIKE."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(480):
        t = T0 + 60.0 * i
        stamp = (dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                 if iso else f"{t:.0f}")
        for svc in ("auth", "cart"):
            lat = 0.05 + rng.normal(0.0, 0.002)
            if SPIKE <= i < SPIKE + 3:
                lat *= 10.0
            out.append([stamp, svc, "p99_latency_s", f"{lat:.5f}"])
            out.append([stamp, svc, "request_rate", f"{20.0 + rng.normal(0.0, 0.5):.3f}"])
    return out


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _run(*args: str) -> tuple[int, dict[str, object] | None, str]:
    res = CliRunner().invoke(main.app, ["detect", *args])
    last = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
    return res.exit_code, json.loads(last) if last.startswith("{") else None, res.output


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    samples = _write(tmp_path / "m.csv", ["timestamp", "service", "metric", "value"], _rows())
    deploy = T0 + 60.0 * SPIKE - 30.0
    changes = _write(tmp_path / "c.csv", ["timestamp", "service", "kind", "to_version"],
                     [[f"{deploy:.0f}", "auth", "deploy", "v2"]])
    cfg = tmp_path / "selfheal.yaml"
    cfg.write_text("detect: {settle_s: 300}\n")
    return samples, changes, cfg


def test_a_spike_after_a_deploy_is_expected_and_the_same_spike_without_one_pages(
        files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    samples, changes, cfg = files
    plot = tmp_path / "out.html"
    code, out, text = _run(str(samples), "--changes", str(changes), "--config", str(cfg),
                           "--plot", str(plot), "--json")
    assert code == 0, text
    assert out is not None and out["series"] == 4 and out["ticks"] == 480
    spikes = {e["service"]: e for e in out["episodes"]  # type: ignore[union-attr]
              if e["metric"] == "p99_latency_s"
              and T0 + 60.0 * SPIKE <= e["started_at"] <= T0 + 60.0 * (SPIKE + 1)}
    assert set(spikes) == {"auth", "cart"}
    assert spikes["auth"]["expected"] and not spikes["auth"]["opens_incident"]
    assert "deploy" in spikes["auth"]["expected_reason"]
    assert not spikes["cart"]["expected"] and spikes["cart"]["opens_incident"]
    page = plot.read_text()
    assert page.count("<svg") >= 2 and "auth / p99_latency_s" in page
    assert "cart / p99_latency_s" in page and 'class="change"' in page
    assert "min_scale" not in text  # one-minute samples: the default floors are no worse
    # without the change file, the deploy's spike pages too
    code, out, _ = _run(str(samples), "--config", str(cfg), "--json")
    assert code == 0 and out is not None
    assert any(e["service"] == "auth" and e["opens_incident"] and not e["expected"]
               for e in out["episodes"])  # type: ignore[union-attr]


def test_the_rows_order_and_the_timestamps_notation_do_not_matter(
        files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    samples, changes, cfg = files
    rows = _rows(iso=True)
    random.Random(1).shuffle(rows)
    shuffled = _write(tmp_path / "s.csv", ["value", "metric", "service", "timestamp"],
                      [r[::-1] for r in rows])
    _, a, _ = _run(str(samples), "--changes", str(changes), "--config", str(cfg), "--json")
    _, b, _ = _run(str(shuffled), "--changes", str(changes), "--config", str(cfg), "--json")
    assert a is not None and b is not None
    assert a["episodes"] and a["episodes"] == b["episodes"]
    # a spreadsheet's export, with its byte-order mark, reads the same
    marked = tmp_path / "bom.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + samples.read_bytes())
    _, c, _ = _run(str(marked), "--changes", str(changes), "--config", str(cfg), "--json")
    assert c is not None and c["episodes"] == a["episodes"]


@pytest.mark.parametrize(("content", "said"), [
    ("timestamp,service,metric,value\n1760000000,a,m,1\nyesterday,a,m,2\n",
     "line 3: 'yesterday' is not a timestamp"),
    ("timestamp,service,metric,value\n1760000000,a,m,1\n1760000000,a,m,2\n",
     "line 3: a/m at 1760000000 was already given on line 2"),
    ("timestamp,service,metric,value\n1760000000,a,m,lots\n", "line 2: 'lots' is not a number"),
    ("timestamp,service,metric,value\n1760000000,a,m,inf\n", "not a finite number"),
    ("timestamp,service,value\n1760000000,a,1\n", "line 1: the header must name"),
    ("timestamp,service,metric,value\n1760000000,a,m\n", "line 2: 3 fields"),
    ("timestamp,service,metric,value\n1760000000,,m,1\n", "must be named"),
    ("timestamp,service,metric,value\n", "no samples"),
    ("", "the file is empty"),
    ("timestamp,service,metric,value\n1760000000,a,m,1\n" + "9" * 2000 + ",a,m,1\n",
     "longer than 1024"),
])
def test_a_bad_file_is_refused_naming_the_line_and_nothing_is_written(
        tmp_path: Path, content: str, said: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    plot = tmp_path / "never.html"
    code, out, text = _run(str(bad), "--plot", str(plot), "--json")
    assert code == 2 and out is None
    assert said in text and "Traceback" not in text
    assert not plot.exists()


def test_unreadable_inputs_are_refused_plainly(tmp_path: Path, files: tuple[Path, Path, Path]
                                               ) -> None:
    samples, _, _ = files
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"timestamp,service,metric,value\n\xff\xfe,a,m,1\n")
    bad_changes = _write(tmp_path / "c.csv", ["timestamp", "service"], [["1", "a"]])
    for args, said in (([str(tmp_path / "missing.csv")], "cannot be read"),
                       ([str(binary)], "not UTF-8"),
                       ([str(samples), "--changes", str(bad_changes)], "must name"),
                       ([str(samples), "--config", str(tmp_path / "nope.yaml")],
                        "cannot read the config")):
        code, _, text = _run(*args)
        assert code == 2 and said in text and "Traceback" not in text, (args, text)


def test_the_readme_example_excuses_the_deploy_and_pages_the_error_jump_at_once() -> None:
    here = Path(__file__).resolve().parents[1] / "examples" / "detect"
    code, out, text = _run(str(here / "metrics.csv"), "--changes", str(here / "deploys.csv"),
                           "--config", str(here / "selfheal.yaml"), "--json")
    assert code == 0 and out is not None, text
    last_day = 1_764_547_200 + 3 * 86_400
    late = [e for e in out["episodes"] if e["started_at"] >= last_day]  # type: ignore[union-attr]
    assert [(e["service"], e["metric"], e["expected"], e["opens_incident"]) for e in late] == [
        ("auth", "p99_latency_s", True, False), ("cart", "error_ratio", False, True)]
    # the error jump pages at its first sample (15:00), the deploy's blip is excused
    assert late[1]["detected_at"] == late[1]["started_at"] == last_day + 15 * 3600
    assert out["incidents"] == 1


def test_coarse_samples_with_the_default_floors_get_a_hint(tmp_path: Path) -> None:
    here = Path(__file__).resolve().parents[1] / "examples" / "detect"
    plain = tmp_path / "c.yaml"
    plain.write_text("detect: {settle_s: 600}\n")
    _, _, text = _run(str(here / "metrics.csv"), "--config", str(plain), "--top", "0")
    assert "300 s apart" in text and "detect.min_scale" in text
    _, _, text = _run(str(here / "metrics.csv"), "--config", str(here / "selfheal.yaml"),
                      "--top", "0")
    assert "min_scale" not in text


def test_limits_as_they_were_apply_from_their_time_on() -> None:
    """A replay takes each service's limit as it was at each tick: a leak against the 1 GiB
    limit it had is forecast before that limit; the raise to 2 GiB is said at its time; a
    limit the value is already past is refused, and a time with no limit goes back to the
    metric's."""
    mib = 1024.0 ** 2
    answer = [[("auth", T0 + h * 3600.0, (1024 if h < 10 else 2048) * mib) for h in range(12)],
              [("auth", T0 + 3600.0, 1000 * mib)],  # a second replica's, lower, for an hour
              [("web", T0, 0.5), ("web", T0 + 3600.0, 0.5), ("web", T0 + 7200.0, math.nan)],
              [("", T0, 7.0)]]  # a series without the service label: nobody's
    steps = limitsteps.steps_of(answer)
    assert [(t - T0, dict(d)) for t, d in steps] == [
        (0.0, {"auth": 1024 * mib, "web": 0.5}), (3600.0, {"auth": 1000 * mib, "web": 0.5}),
        (7200.0, {"auth": 1024 * mib}), (36_000.0, {"auth": 2048 * mib})]
    rng = np.random.default_rng(3)
    ticks = []
    for i in range(12 * 60):
        t = T0 + 60.0 * i
        leak = 600 * mib * (1 + 0.1 * i / 60) if i < 600 else 600 * mib
        ticks.append((t, {("auth", "rss_bytes"): leak + rng.normal(0, mib),
                          ("web", "rss_bytes"): 300 * mib + rng.normal(0, mib)}))
    samples = replay.Samples(ticks=tuple(ticks), series=tuple(ticks[0][1]), rows=2 * 720)
    settings = controller.detector_settings(config.Detect())
    result = replay.run(samples, settings, limits={"rss_bytes": steps})
    leaks = [e for e in result.episodes if e.first.metric == "rss_bytes"
             and e.first.service == "auth" and e.first.started_at < T0 + 600 * 60]
    assert leaks and "to the 1024.0 MiB limit" in leaks[0].first.explanation
    assert leaks[0].first.observed < 1024 * mib
    notes = "\n".join(result.notes)
    assert "auth 1024.0 MiB (was 512.0 MiB)" in notes
    assert "web's 0.5 (0.0 MiB)" in notes  # refused: the value is past it
    assert f"{dt.datetime.fromtimestamp(T0 + 36_000, dt.UTC):%Y-%m-%d %H:%M} rss_bytes " \
           "limits from prometheus: auth 2048.0 MiB (was 1024.0 MiB)" in notes
    # the same replay with today's limit for the whole range: the leak is no news before it
    today = replay.run(samples, settings, limits={"rss_bytes": [(T0, {"auth": 2048 * mib})]})
    assert not [e for e in today.episodes if e.first.metric == "rss_bytes"
                and e.first.service == "auth" and e.first.started_at < T0 + 600 * 60]


def test_series_scraped_at_other_moments_are_read_on_one_grid(tmp_path: Path) -> None:
    """Two exporters scraped 5 s apart, every 10 s: each distinct timestamp was one tick, so
    the ticks came every 5 s and api's memory, seen at every other tick, was read as a trend
    twice as steep as it is and half as far from its limit (a page, "~84 min to the 512 MiB
    limit", where there are 2.7 h). Read on one 10 s grid, web's moment changes nothing."""
    rng = np.random.default_rng(0)
    mib = 1024.0 * 1024.0
    rows: dict[float, list[list[str]]] = {0.0: [], 5.0: []}
    for i in range(1600):
        t = T0 + 10.0 * i
        rss = 200 * mib + rng.normal(0.0, 0.5 * mib) + max(0, i - 1000) * 0.3 * mib
        web = 50.0 + rng.normal()
        for offset in rows:
            rows[offset] += [[f"{t:.0f}", "api", "rss_bytes", f"{rss:.0f}"],
                             [f"{t + offset:.0f}", "web", "request_rate", f"{web:.3f}"]]
    header = ["timestamp", "service", "metric", "value"]
    _, same, _ = _run(str(_write(tmp_path / "same.csv", header, rows[0.0])), "--json")
    code, later, said = _run(str(_write(tmp_path / "later.csv", header, rows[5.0])), "--json")
    assert code == 0 and same is not None and later is not None
    assert later["ticks"] == same["ticks"] == 1600
    assert "aligned to one 10 s grid" in said
    assert same["episodes"] and later["episodes"] == same["episodes"]


def test_a_series_with_no_noise_scale_is_named_in_the_notes(tmp_path: Path) -> None:
    # a dead-letter queue at 0 with a burst every 40 minutes, beside a latency that has a floor
    rows = []
    for i in range(240):
        stamp = f"{T0 + 60.0 * i:.0f}"
        rows.append([stamp, "api", "dead_letters", "20" if i % 40 in (38, 39) else "0"])
        rows.append([stamp, "api", "p99_latency_s", "0.05"])
    path = _write(tmp_path / "m.csv", ["timestamp", "service", "metric", "value"], rows)
    code, out, text = _run(str(path), "--json")
    assert code == 0 and out is not None
    notes = out["notes"]
    assert isinstance(notes, list) and len(notes) == 1
    assert "api/dead_letters" in notes[0] and "set detect.min_scale.dead_letters" in notes[0]
    assert "detect.min_scale.dead_letters" in text  # said on the terminal too
