"""The one exception root of selfheal and its few meaningful children.

Every error raised on purpose by selfheal derives from `SelfhealError`, so the faces (CLI, API)
can catch exactly our errors at their boundary and let real bugs surface as bugs.
"""

from __future__ import annotations


class SelfhealError(Exception):
    """Root of every error selfheal raises on purpose."""


class ConfigError(SelfhealError):
    """A config or policy file is missing, unreadable or invalid.

    `path` and `field` name exactly what is wrong, so the CLI can print one line.
    """

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path = path
        self.field = field
        self.problem = problem
        where = f"{path}: {field}" if field else path
        super().__init__(f"{where}: {problem}")


class PolicyDenied(SelfhealError):
    """The policy gate refused an action (or the executor refused a permit)."""


class PlatformError(SelfhealError):
    """A platform call failed; `retryable` carries the retry decision."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        self.retryable = retryable
        super().__init__(message)


class DataUnavailable(SelfhealError):
    """A source could not provide data; investigators turn this into NO_DATA."""


class LedgerCorrupt(SelfhealError):
    """The hash chain of the ledger does not verify."""

    def __init__(self, seq: int, problem: str) -> None:
        self.seq = seq
        self.problem = problem
        super().__init__(f"ledger entry {seq}: {problem}")


class StateUnusable(SelfhealError):
    """A saved state (the detectors' learned state) is damaged or does not fit the current
    config; the caller starts without it and says why."""
