"""The Nezha archives are extracted whole or not at all.

`bench rca` extracts each `nezha-*.tar.xz` once into a cache. Real xz archives are built here
with `tarfile`; a truncated one (a download cut short) is refused with the archive's name,
leaves nothing in the cache and no marker, and through the CLI is one line on stderr with exit
2 (it was click's bare "Aborted."); so does an extraction the file system refuses. Two good
archives share `rca_data/`.
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selfheal import errors
from selfheal.cli import main
from selfheal.sources import nezha

pytestmark = pytest.mark.timeout(60)


def _archive(path: Path, day: str) -> None:
    with tarfile.open(path, "w:xz") as tar:
        for name, text in [(f"rca_data/{day}/{day}-fault_list.json", "{}"),
                           (f"rca_data/{day}/log/00_00_log.csv", "x" * 5000)]:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_two_archives_extract_into_one_tree_once(tmp_path: Path) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    _archive(data / "nezha-2022-08-22.tar.xz", "2022-08-22")
    _archive(data / "nezha-2023-01-30.tar.xz", "2023-01-30")
    root = nezha.ensure_extracted(data, cache)
    assert nezha.days(root) == ("2022-08-22", "2023-01-30")
    assert sorted(p.name for p in cache.iterdir() if p.name.startswith(".")) == [
        ".nezha-2022-08-22.tar.xz.extracted", ".nezha-2023-01-30.tar.xz.extracted"]
    (cache / "rca_data" / "2022-08-22" / "mine").write_text("kept")
    nezha.ensure_extracted(data, cache)  # extracted already: untouched
    assert (cache / "rca_data" / "2022-08-22" / "mine").read_text() == "kept"


def test_a_truncated_archive_leaves_nothing_half_extracted(tmp_path: Path) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    whole = data / "nezha-2022-08-22.tar.xz"
    _archive(whole, "2022-08-22")
    whole.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    said = re.escape("nezha-2022-08-22.tar.xz: cannot extract it")
    with pytest.raises(errors.DataUnavailable, match=said):
        nezha.ensure_extracted(data, cache)
    assert list(cache.iterdir()) == []

    res = CliRunner().invoke(main.app, ["bench", "rca", "--nezha", str(data),
                                        "--cache", str(cache)])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rca: ") and "cannot extract it" in lines[0]
    assert list(cache.iterdir()) == []


def test_an_extraction_the_disk_refuses_leaves_nothing_behind(tmp_path: Path) -> None:
    # a member whose path is taken by a file in the private folder cannot be written: the
    # same OSError a full disk raises, from the real file system
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    with tarfile.open(data / "nezha-2022-08-22.tar.xz", "w:xz") as tar:
        for name, text in [("rca_data", "a file, not a folder"), ("rca_data/day/x.csv", "x")]:
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    with pytest.raises(errors.DataUnavailable, match="cannot extract it"):
        nezha.ensure_extracted(data, cache)
    assert list(cache.iterdir()) == []
