"""The NAB pictures: one SVG per file that shows the windows and the detections NAB counted."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from selfheal.bench import nab, nab_plot, nab_score

SVG = "{http://www.w3.org/2000/svg}"


def _corpus() -> tuple[list[nab.NabFile], list[np.ndarray]]:
    rng = np.random.default_rng(11)
    files, scores = [], []
    for k, windows in enumerate([[(300, 340), (600, 650)], [(500, 560)], []]):
        n = 900
        t = np.arange(n, dtype=float) * 300.0
        values = rng.normal(10.0, 1.0, n)
        values[rng.integers(0, n, 5)] = np.nan  # gaps must not break the picture
        s = np.zeros(n)
        s[rng.integers(200, n, 6)] = rng.uniform(0.5, 1.0, 6)  # noise detections
        for a, _ in windows:
            s[a + 5] = 0.95
            s[a + 9] = 0.99  # a later detection in the same window: not counted
        name = f"cat/<file&{k}>.csv"  # a hostile file name is escaped, not injected
        stamps = tuple(str(i) for i in range(n))
        files.append(nab.NabFile(name, stamps, t, values, tuple(windows)))
        scores.append(s)
    return files, scores


def test_each_picture_shows_the_windows_and_the_detections_nab_counted(tmp_path: Path) -> None:
    files, scores = _corpus()
    p = nab_score.PROFILES[0]
    result = nab_score.score(files, scores, p, threshold=0.9)
    breakdown = nab_score.per_file(files, scores, p, 0.9)
    index = nab_plot.write(tmp_path, files, scores, result, breakdown)
    assert index == tmp_path / "plots" / "index.html"
    for f, fs in zip(files, breakdown, strict=True):
        path = tmp_path / "plots" / Path(f.name).with_suffix(".svg")
        root = ET.parse(path).getroot()  # well-formed XML despite the file name
        assert root.tag == f"{SVG}svg"
        classes = [el.get("class") for el in root.iter()]
        assert classes.count("window") == len(f.windows)
        assert classes.count("tp") == fs.tp
        assert classes.count("fp") == fs.fp
        assert classes.count("threshold") == 1 and classes.count("series") == 1
        # each green mark (a window's first detection) lies inside a green window band
        bands = [
            (float(el.get("x", "nan")), float(el.get("x", "nan")) + float(el.get("width", "0")))
            for el in root.iter()
            if el.get("class") == "window"
        ]
        for el in root.iter():
            if el.get("class") == "tp":
                x = float(el.get("x1", "nan"))
                assert any(lo <= x <= hi for lo, hi in bands)
    page = index.read_text()
    assert "<file&" not in page and "&lt;file&amp;" in page
    # ranked worst first: the file with two windows and its false alarms before the empty one
    order = [page.index(f"&lt;file&amp;{k}&gt;.csv") for k in range(3)]
    losses = [fs.loss for fs in breakdown]
    assert sorted(range(3), key=lambda k: order[k]) == sorted(range(3), key=lambda k: -losses[k])
