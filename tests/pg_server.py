"""A real PostgreSQL server for the tests: a throwaway cluster in a temporary directory.

Debian's `postgresql` package (installed by scripts/test) puts `initdb` and `pg_ctl` under
/usr/lib/postgresql/<version>/bin. PostgreSQL refuses to run as root, so as root the cluster
is created and run as the `postgres` user the package adds. It listens on a Unix socket in its
own directory only (no TCP port to collide with).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl, newest version first; None when not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parent.parent.name), reverse=True)
    return Path(versions[0]).parent if versions else None


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def running() -> Iterator[str]:
    """Start a cluster; yield the directory of its socket (the host of a URL)."""
    bindir = binaries()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL's initdb was not found")
    root = Path(tempfile.mkdtemp(prefix="selfheal-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (root, sock):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    log = root / "server.log"
    try:
        subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "selfheal",
                                  "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        subprocess.run(_as_owner([
            str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
            "-o", f"-c listen_addresses='' -k {sock} -c fsync=off", "start"]),
            check=True, capture_output=True, timeout=120)
        yield str(sock)
    finally:
        if data.exists():
            subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                                      "-w", "stop"]), check=False, capture_output=True,
                           timeout=60)
        shutil.rmtree(root, ignore_errors=True)
