"""The settings object: one value built from the config file and the command line.

The config file is untrusted input, so it is validated here with pydantic (`extra="forbid"`) and
every problem becomes a `ConfigError` naming the file and the field. Nothing reads the
environment at import time; the faces build a `Config` and pass it down.
"""

from __future__ import annotations

from pathlib import Path

import pydantic
import yaml

from selfheal import errors


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class Scrape(_Strict):
    interval_s: float = pydantic.Field(default=1.0, gt=0, le=300)
    window_s: float = pydantic.Field(default=6.0, gt=0, le=3600)
    timeout_s: float = pydantic.Field(default=2.0, gt=0, le=60)


class Storage(_Strict):
    url: str | None = None  # default: SQLite at <workdir>/selfheal.db


class Maintenance(_Strict):
    service: str = "*"
    start: float  # Unix seconds
    end: float


class Detect(_Strict):
    settle_s: float = pydantic.Field(default=15.0, ge=0, le=86_400)


class Verify(_Strict):
    canary_observe_s: float = pydantic.Field(default=8.0, gt=0, le=3600)
    observe_s: float = pydantic.Field(default=10.0, gt=0, le=3600)
    latency_factor: float = pydantic.Field(default=1.5, ge=1.0)
    latency_slack_s: float = pydantic.Field(default=0.010, ge=0)
    slope_slack_bytes_s: float = pydantic.Field(default=400_000.0, ge=0)


class Demo(_Strict):
    baseline_s: float = pydantic.Field(default=25.0, ge=5, le=600)
    rps: float = pydantic.Field(default=20.0, gt=0, le=200)
    replicas: int = pydantic.Field(default=2, ge=2, le=8)
    timeout_s: float = pydantic.Field(default=170.0, ge=30, le=3600)


class Config(_Strict):
    workdir: Path = Path(".selfheal")
    policy: Path | None = None  # default: the built-in policy
    scrape: Scrape = pydantic.Field(default_factory=Scrape)
    storage: Storage = pydantic.Field(default_factory=Storage)
    detect: Detect = pydantic.Field(default_factory=Detect)
    maintenance: list[Maintenance] = pydantic.Field(default_factory=list)
    verify: Verify = pydantic.Field(default_factory=Verify)
    demo: Demo = pydantic.Field(default_factory=Demo)

    def database_url(self) -> str:
        return self.storage.url or f"sqlite:///{self.workdir / 'selfheal.db'}"


def parse(text: str, source: str) -> Config:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        raise errors.ConfigError(source, where, "not valid YAML: "
                                 f"{getattr(exc, 'problem', None) or exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise errors.ConfigError(source, "", "the config must be a YAML mapping")
    try:
        return Config.model_validate(raw)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise errors.ConfigError(source, field, first["msg"]) from exc


def load(path: Path | None) -> Config:
    """The config from `path`, or the defaults when no file is given."""
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise errors.ConfigError(str(path), "", f"cannot read the config file: "
                                 f"{exc.strerror or exc}") from exc
    return parse(text, str(path))
