"""Secrets from files: OUTAGE_SECRET, OUTAGE_API_TOKEN, OUTAGE_SMTP_PASSWORD and
OUTAGE_KAFKA_PASSWORD from a directory of files named as the variables (Docker and Kubernetes
secrets), ``OUTAGE_SECRETS_DIR`` or ``/run/secrets``; the environment wins over a file."""

from __future__ import annotations

import pytest

import core.settings as settings_module
from core.settings import SECRET_SETTINGS, SecretsDirMissing, Settings


@pytest.fixture
def secrets(tmp_path, monkeypatch):
    for name in (*SECRET_SETTINGS, "OUTAGE_KAFKA_SECURITY_PROTOCOL", "OUTAGE_KAFKA_SASL_MECHANISM",
                 "OUTAGE_KAFKA_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OUTAGE_SECRETS_DIR", str(tmp_path))
    return tmp_path


def test_the_four_secrets_come_from_files(secrets, monkeypatch):
    (secrets / "OUTAGE_SECRET").write_text("signing-key\n")        # a trailing newline is not part of it
    (secrets / "OUTAGE_API_TOKEN").write_text("token")
    (secrets / "OUTAGE_SMTP_PASSWORD").write_text("smtp-pw")
    (secrets / "OUTAGE_KAFKA_PASSWORD").write_text("kafka-pw")
    monkeypatch.setenv("OUTAGE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("OUTAGE_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("OUTAGE_KAFKA_USERNAME", "outage")
    s = Settings.from_env()
    assert s.secret.get_secret_value() == "signing-key" and s.signing_key() == b"signing-key"
    assert s.api_token.get_secret_value() == "token"
    assert s.smtp_password.get_secret_value() == "smtp-pw"
    assert s.kafka_password.get_secret_value() == "kafka-pw"
    assert "signing-key" not in repr(s) and "kafka-pw" not in repr(s)


def test_the_environment_wins_over_a_file(secrets, monkeypatch):
    (secrets / "OUTAGE_API_TOKEN").write_text("from-file")
    monkeypatch.setenv("OUTAGE_API_TOKEN", "from-env")
    assert Settings.from_env().api_token.get_secret_value() == "from-env"


def test_no_file_no_secret(secrets):
    s = Settings.from_env()
    assert s.secret is None and s.api_token is None


def test_a_missing_secrets_dir_is_one_line_and_exit_2(monkeypatch, tmp_path, capsys):
    from outage.cli import main

    monkeypatch.setenv("OUTAGE_SECRETS_DIR", str(tmp_path / "nope"))
    with pytest.raises(SecretsDirMissing):
        Settings.from_env()
    assert main(["incident", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "OUTAGE_SECRETS_DIR" in err and "not a directory" in err


def test_the_default_is_run_secrets_when_it_exists(monkeypatch, tmp_path):
    monkeypatch.delenv("OUTAGE_SECRETS_DIR", raising=False)
    monkeypatch.setattr(settings_module, "DEFAULT_SECRETS_DIR", tmp_path / "absent")
    assert settings_module.secrets_dir() is None        # absent: not an error, and no warning
    monkeypatch.setattr(settings_module, "DEFAULT_SECRETS_DIR", tmp_path)
    assert settings_module.secrets_dir() == tmp_path
