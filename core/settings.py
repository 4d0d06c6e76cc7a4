"""The one typed settings object of the project.

Read from the environment once, at start (``Settings.from_env()``), validated, and passed
in to whatever needs it. Nothing else in the code reads the environment.
The variables are those of the contract (docs/contract.md), plus a few documented extras
(``OUTAGE_PARTITIONS``, ``OUTAGE_WEB_HOST``, ``OUTAGE_BROKER_PROFILE``,
``OUTAGE_BROKER_SESSION_TIMEOUT_SECONDS`` and the schedule tuning knobs) that the contract leaves open.
"""

from __future__ import annotations

import os
import re
import secrets
import ssl
from email.utils import formataddr, getaddresses
from enum import Enum
from pathlib import Path
from typing import Literal

import email_validator
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict


class SmtpTls(str, Enum):
    none = "none"
    starttls = "starttls"
    tls = "tls"


KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def _kafka_error(template: str, **context) -> PydanticCustomError:
    return PydanticCustomError("kafka_security", template, context)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def mailbox(value: str) -> str:
    """One email address, ``addr`` or ``Name <addr>``, checked (no DNS) and written with the
    address in ASCII form (IDNA domain), as a header takes it; ``ValueError`` saying why not."""
    if re.search(r"[\r\n\x00]", value):
        raise ValueError("line breaks are not allowed")
    found = getaddresses([value])
    if len(found) > 1:
        raise ValueError(f"one address only (addr or Name <addr>), got {value!r}")
    if not found or not found[0][1]:
        raise ValueError(f"not an email address (addr or Name <addr>): {value!r}")
    display, addr = found[0]
    try:
        checked = email_validator.validate_email(addr, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"not an email address ({exc})") from None
    if checked.ascii_email is None:
        raise ValueError("addresses with non-ASCII characters before the @ are not supported")
    if not display:
        return checked.ascii_email
    written = formataddr((display, checked.ascii_email)) if display.isascii() else f"{display} <{checked.ascii_email}>"
    if getaddresses([written]) != [(display, checked.ascii_email)]:
        raise ValueError(f"write the name in double quotes: {value!r}")
    return written


DEFAULT_SECRETS_DIR = Path("/run/secrets")
SECRET_SETTINGS = ("OUTAGE_SECRET", "OUTAGE_SECRET_PREVIOUS", "OUTAGE_API_TOKEN", "OUTAGE_SMTP_PASSWORD",
                   "OUTAGE_KAFKA_PASSWORD")


class SecretsDirMissing(ValueError):
    """OUTAGE_SECRETS_DIR names a directory that is not there (one line)."""


def secrets_dir() -> Path | None:
    """Where settings may come from files, one a setting, named as the variable (``OUTAGE_SECRET``
    holding the value; Docker and Kubernetes secrets mount so): ``OUTAGE_SECRETS_DIR``, else
    ``/run/secrets`` when it exists. A variable set in the environment wins over its file."""
    given = os.environ.get("OUTAGE_SECRETS_DIR", "").strip()
    if given:
        path = Path(given)
        if not path.is_dir():
            raise SecretsDirMissing(f"OUTAGE_SECRETS_DIR: {given} is not a directory")
        return path
    return DEFAULT_SECRETS_DIR if DEFAULT_SECRETS_DIR.is_dir() else None


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
    # replication factor of the topics the worker creates; None: min(3, brokers in the cluster)
    # (always 1 on the embedded broker)
    replication_factor: int | None = Field(default=None, ge=1, le=32)
    # how long the group waits for a silent worker before its partitions move; None: the broker
    # profile's (streams/kafka/broker.py); Apache Kafka accepts 6 to 1800 by default
    broker_session_timeout_seconds: float | None = Field(default=None, ge=1, le=1800)

    # secure connections to the brokers (every client: the workers, the command line, the admin)
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_ca_file: Path | None = None   # None: the system's CA bundle

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: SmtpTls = SmtpTls.none
    smtp_concurrency: int = Field(default=8, ge=1, le=256)
    # most messages per second one worker hands to the SMTP server, spaced evenly over the second
    # (streams/pacing.py); None: no limit
    smtp_rate: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    smtp_timeout: float = Field(default=15.0, gt=0)
    # a notice that keeps failing temporarily (4xx, server down) stays owed this long, then is dead-lettered
    smtp_give_up_seconds: float = Field(default=6 * 3600, gt=0)
    mail_from: str = "status@localhost"
    # Reply-To of every notice: where a customer's reply reaches a person (addr or Name <addr>);
    # None: no Reply-To, and the notices invite no reply (a reply to OUTAGE_MAIL_FROM reaches nobody)
    reply_to: str | None = None
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
    # earlier values of OUTAGE_SECRET, comma-separated: links they signed still verify (key rotation)
    secret_previous: SecretStr | None = None
    data_dir: Path = Path("./var")

    # where settings may come from files (secrets_dir() reads it first, to read the others from it)
    secrets_dir: Path | None = None
    # every line the worker writes: `text` (default) or `json`, one JSON object a line (core/logs.py)
    log_format: Literal["text", "json"] = "text"

    # Schedule: how early a scheduled round starts before the promised time (seconds), on top of
    # the time the audience needs at the measured send rate; how often the timer looks.
    schedule_lead_seconds: float = Field(default=5.0, ge=0)
    schedule_tick_seconds: float = Field(default=1.0, gt=0)

    # ticket surges (outage.signals, domain/surge.py): this many tickets about one component, from
    # at least 3 customers, within this many seconds, with no active incident on it
    surge_tickets: int = Field(default=5, ge=1, le=500)   # at most domain.surge.MAX_KEPT
    surge_window_seconds: int = Field(default=600, ge=1, le=86_400)

    @field_validator("delivery_processes", mode="before")
    @classmethod
    def _helpers(cls, v):
        if isinstance(v, str) and v.strip().lower() in ("", "auto"):
            return "auto"
        n = int(v)
        if not 0 <= n <= 64:
            raise ValueError("from 0 to 64, or auto")
        return n

    @field_validator("api_token", "secret", "secret_previous", "smtp_password", "smtp_username", "kafka_username",
                     "kafka_password", "kafka_sasl_mechanism", "kafka_ca_file", "replication_factor",
                     "broker_session_timeout_seconds", "smtp_rate", "reply_to", "secrets_dir", mode="before")
    @classmethod
    def _blank_is_unset(cls, v):
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format_case(cls, v):
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("kafka_security_protocol", mode="before")
    @classmethod
    def _protocol_case(cls, v):
        return v.strip().upper().replace("-", "_") if isinstance(v, str) else v

    @field_validator("kafka_sasl_mechanism", mode="before")
    @classmethod
    def _mechanism_case(cls, v):
        return v.strip().upper().replace("_", "-") if isinstance(v, str) else v

    @model_validator(mode="after")
    def _kafka_security(self) -> "Settings":
        protocol = self.kafka_security_protocol
        credentials = (("OUTAGE_KAFKA_SASL_MECHANISM", self.kafka_sasl_mechanism),
                       ("OUTAGE_KAFKA_USERNAME", self.kafka_username), ("OUTAGE_KAFKA_PASSWORD", self.kafka_password))
        if protocol.startswith("SASL_"):
            missing = [name for name, value in credentials if value is None]
            if missing:
                raise _kafka_error("security protocol {protocol} (OUTAGE_KAFKA_SECURITY_PROTOCOL) needs {names}",
                                   protocol=protocol, names=_and(missing))
        else:
            given = [name for name, value in credentials if value is not None]
            if given:
                raise _kafka_error("credentials set ({names}), but security protocol {protocol} sends none: set "
                                   "OUTAGE_KAFKA_SECURITY_PROTOCOL to SASL_PLAINTEXT or SASL_SSL",
                                   protocol=protocol, names=_and(given))
        path = self.kafka_ca_file
        if path is not None:
            if not protocol.endswith("SSL"):
                raise _kafka_error("a CA file (OUTAGE_KAFKA_CA_FILE) is set, but security protocol {protocol} "
                                   "does not use TLS: set OUTAGE_KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL",
                                   protocol=protocol)
            if not path.is_file():
                raise _kafka_error("the CA file {path} (OUTAGE_KAFKA_CA_FILE): no such file", path=str(path))
            try:
                ssl.create_default_context(cafile=str(path))
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise _kafka_error("the CA file {path} (OUTAGE_KAFKA_CA_FILE) is not a PEM CA bundle ({reason})",
                                   path=str(path), reason=type(exc).__name__) from None
        return self

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

    @field_validator("reply_to")
    @classmethod
    def _reply_to(cls, v: str | None) -> str | None:
        return None if v is None else mailbox(v.strip())

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """The settings from the environment and, for what the environment leaves unset, from
        files in the secrets directory (``secrets_dir``)."""
        directory = secrets_dir()
        if directory is not None:
            overrides.setdefault("_secrets_dir", directory)
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

    def verification_keys(self) -> tuple[bytes, ...]:
        """The keys a signed link may have been made with: the signing key first, then each
        earlier value of OUTAGE_SECRET in OUTAGE_SECRET_PREVIOUS (blank entries ignored)."""
        current = self.signing_key()
        earlier = self.secret_previous.get_secret_value().split(",") if self.secret_previous else []
        keys = [current]
        for value in (v.strip().encode() for v in earlier):
            if value and value not in keys:
                keys.append(value)
        return tuple(keys)
