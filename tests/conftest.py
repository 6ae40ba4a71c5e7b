"""Shared fixtures: the repository root, the shared data folder, and a clean-process check."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def shared_data() -> Path:
    path = ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture
def selfheal_cmd() -> list[str]:
    """The CLI as a user runs it, from the same interpreter as the tests."""
    return [sys.executable, "-m", "selfheal.cli"]


def processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line contains `text` (never this test process)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(int(entry))
    return found


@pytest.fixture
def no_leftovers(tmp_path: Path) -> Iterator[Path]:
    """A work directory whose processes must all be gone when the test ends."""
    yield tmp_path
    left = processes_mentioning(str(tmp_path.resolve()))
    assert not left, f"processes left running: {left}"


@pytest.fixture(scope="session")
def postgres_socket() -> Iterator[str]:
    """A real PostgreSQL server for the session (tests/pg_server.py): its socket directory."""
    from tests import pg_server

    if pg_server.binaries() is None:
        pytest.skip("PostgreSQL is not installed (scripts/test installs it)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (the dev extra has it)")
    with pg_server.running() as sock:
        yield sock


@pytest.fixture
def postgres_url(postgres_socket: str, request: pytest.FixtureRequest) -> str:
    """A fresh database of its own for one test, as a SQLAlchemy URL."""
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    with psycopg.connect(host=postgres_socket, user="selfheal", dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://selfheal@/{name}?host={postgres_socket}"
