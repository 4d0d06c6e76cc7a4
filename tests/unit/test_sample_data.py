"""The shipped sample customers and demo incident: contract-shaped, varied, and realistic in scope."""

from __future__ import annotations

import json
import re
import zoneinfo
from collections import Counter

import pytest

from devtools import sample

try:  # the project's own models, when present; plain checks run in any case
    from schemas.customer import Customer
except ImportError:  # pragma: no cover
    Customer = None
try:
    from schemas.incident import IncidentDeclare
except ImportError:  # pragma: no cover
    IncidentDeclare = None

RESERVED = re.compile(r"@(?:[a-z0-9-]+\.)*example\.(?:com|net|org|jp)$")


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return sample.CUSTOMERS_FILE.read_text("utf-8").splitlines()


@pytest.fixture(scope="module")
def customers(lines: list[str]) -> list[dict]:
    return [json.loads(line) for line in lines]


def test_every_line_is_a_contract_customer(lines: list[str]) -> None:
    assert 150 <= len(lines) <= 250
    for line in lines:
        c = json.loads(line)
        assert isinstance(c, dict), line
        assert set(c) == {"customer_id", "name", "locale", "timezone", "tier", "contacts", "services"}, line
        assert isinstance(c["customer_id"], str) and c["customer_id"] == c["customer_id"].strip() and c["customer_id"]
        assert isinstance(c["name"], str) and c["name"].strip() and "\n" not in c["name"]
        assert c["locale"] in ("ja", "en")
        zoneinfo.ZoneInfo(c["timezone"])
        assert c["tier"] in sample.TIERS
        assert 1 <= len(c["contacts"]) <= 3
        emails = [k["email"] for k in c["contacts"]]
        assert len(set(emails)) == len(emails)
        for contact in c["contacts"]:
            assert set(contact) == {"email", "name"}
            assert RESERVED.search(contact["email"]), contact["email"]
            assert isinstance(contact["name"], str) and contact["name"].strip()
        assert c["services"], c["customer_id"]
        pairs = [(s["component"], s["region"]) for s in c["services"]]
        assert len(set(pairs)) == len(pairs)
        for s in c["services"]:
            assert set(s) == {"component", "region"}
            assert s["component"] in sample.COMPONENTS and s["region"] in sample.REGIONS
        if Customer is not None:
            parsed = Customer.model_validate(c)
            assert parsed.customer_id == c["customer_id"]
            assert [k.email for k in parsed.contacts] == emails  # already normalized, no duplicates
            assert len(parsed.services) == len(c["services"])


def test_ids_unique_and_mix_varied(customers: list[dict]) -> None:
    ids = [c["customer_id"] for c in customers]
    assert len(set(ids)) == len(ids)
    assert len({c["name"] for c in customers}) == len(customers)
    locales = Counter(c["locale"] for c in customers)
    assert locales.keys() == {"ja", "en"}
    assert 0.3 <= locales["ja"] / len(customers) <= 0.5
    zones = Counter(c["timezone"] for c in customers)
    assert len(zones) >= 6
    assert {"Asia/Tokyo", "Europe/London", "America/New_York", "Australia/Sydney"} <= zones.keys()
    assert set(Counter(c["tier"] for c in customers)) == set(sample.TIERS)
    assert {len(c["contacts"]) for c in customers} == {1, 2, 3}


def test_demo_incident_affects_a_realistic_subset(customers: list[dict]) -> None:
    incident = json.loads(sample.INCIDENT_FILE.read_text("utf-8"))
    assert incident["type"] == "declared"
    assert incident["components"] == ["api"] and incident["regions"] == ["ap-northeast-1"]
    assert set(incident["title"]) == {"en", "ja"} and set(incident["message"]) == {"en", "ja"}
    assert incident["severity"] in ("critical", "major", "minor")
    if IncidentDeclare is not None:
        IncidentDeclare.model_validate(incident)

    hit = sample.affected(customers, incident["components"], incident["regions"])
    assert 10 <= len(hit) <= 80
    assert len(hit) < len(customers)
    assert {c["locale"] for c in hit} == {"ja", "en"}  # the demo shows both languages
    # the rule by hand, as the CONTRACT states it
    by_hand = [
        c for c in customers
        if any(s["component"] == "api" and s["region"] == "ap-northeast-1" for s in c["services"])
    ]
    assert [c["customer_id"] for c in hit] == [c["customer_id"] for c in by_hand]


def test_file_is_the_generators_output(lines: list[str]) -> None:
    generated = [json.dumps(c, ensure_ascii=False) for c in sample.generate_customers()]
    assert lines == generated, "regenerate: python -m devtools.sample > devtools/data/sample_customers.jsonl"
    assert sample.load_customers() == [json.loads(line) for line in lines]


def test_generator_is_deterministic_and_scales() -> None:
    assert sample.generate_customers(50, seed=3) == sample.generate_customers(50, seed=3)
    big = sample.generate_customers(3000, seed=1)
    assert len({c["customer_id"] for c in big}) == 3000
    assert len({c["name"] for c in big}) == 3000
