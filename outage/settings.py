"""The one typed settings object of the project.

Read from the environment once, at start (``Settings.from_env()``), validated, and passed
in to whatever needs it. Nothing else in the code reads the environment.
The variables are those of ../shared/CONTRACT.md, plus a few documented extras
(``OUTAGE_PARTITIONS``, ``OUTAGE_WEB_HOST``, ``OUTAGE_BROKER_PROFILE`` and the schedule
tuning knobs) that the contract leaves open.
"""

from __future__ import annotations

import os
import secrets
from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SmtpTls(str, Enum):
    none = "none"
    starttls = "starttls"
    tls = "tls"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OUTAGE_", extra="ignore", frozen=True)

    # None: the embedded broker that `outage dev` starts (and exports to its worker).
    broker: str | None = Field(default=None, description="Kafka bootstrap servers host:port[,host:port]")
    # How to talk to the broker. `auto` detects the embedded Tansu broker by its cluster id.
    broker_profile: Literal["auto", "kafka", "tansu"] = "auto"
    topic_prefix: str = "outage."
    # Partition count for topics the worker creates. Existing topics keep theirs: the worker
    # adopts the customers topic's count so that everything stays co-partitioned with it.
    partitions: int = Field(default=4, ge=1, le=1024)

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: SmtpTls = SmtpTls.none
    smtp_concurrency: int = Field(default=8, ge=1, le=256)
    smtp_timeout: float = Field(default=15.0, gt=0)
    # a notice that keeps failing temporarily (4xx, server down) stays owed this long, then is dead-lettered
    smtp_give_up_seconds: float = Field(default=6 * 3600, gt=0)
    mail_from: str = "status@localhost"
    # helper processes that compose and send the notices (0: the worker itself does); one per
    # spare core lets a worker use more than one (composing and SMTP are most of a notice's CPU).
    # "auto": one per core beyond the first, at most 4 (one worker per machine); with several
    # workers on one machine set 0 and let the workers share the cores
    delivery_processes: int | Literal["auto"] = "auto"

    public_url: str = "http://127.0.0.1:6066"
    web_port: int = Field(default=6066, ge=0, le=65535)
    web_host: str = "127.0.0.1"
    api_token: SecretStr | None = None
    secret: SecretStr | None = None
    data_dir: Path = Path("./var")

    # Schedule: how early a scheduled round starts before the promised time (seconds), on top of
    # the time the audience needs at the measured send rate; how often the timer looks.
    schedule_lead_seconds: float = Field(default=5.0, ge=0)
    schedule_tick_seconds: float = Field(default=1.0, gt=0)

    @field_validator("delivery_processes", mode="before")
    @classmethod
    def _helpers(cls, v):
        if isinstance(v, str) and v.strip().lower() in ("", "auto"):
            return "auto"
        n = int(v)
        if not 0 <= n <= 64:
            raise ValueError("from 0 to 64, or auto")
        return n

    @field_validator("api_token", "secret", "smtp_password", "smtp_username", mode="before")
    @classmethod
    def _blank_is_unset(cls, v):
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("broker")
    @classmethod
    def _broker_form(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        for part in v.split(","):
            host, sep, port = part.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port], got {v!r}")
        return v.strip()

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        return cls(**overrides)

    # -- derived values -------------------------------------------------------------------

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def delivery_helpers(self) -> int:
        """How many delivery helper processes the worker starts (``auto`` resolved for this machine)."""
        if self.delivery_processes == "auto":
            return max(0, min(4, (os.cpu_count() or 1) - 1))
        return self.delivery_processes

    @property
    def mail_domain(self) -> str:
        """Right-hand side of every Message-ID: the domain of the From address."""
        return self.mail_from.rpartition("@")[2] or "localhost"

    def signing_key(self) -> bytes:
        """OUTAGE_SECRET, or a key generated once and kept in the data dir."""
        if self.secret is not None:
            return self.secret.get_secret_value().encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip().encode()
