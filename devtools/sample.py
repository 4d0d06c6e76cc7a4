"""Sample customers and a demo incident, for ``outage dev``, the README's demo and the tests.

The customers file is generated, deterministically, by this module::

    python -m devtools.sample > devtools/data/sample_customers.jsonl          # the shipped 200
    python -m devtools.sample --count 100000 --seed 7 > var/customers.jsonl  # any size, for benchmarks

Records follow the CONTRACT's ``outage.customers`` format. Every e-mail address is under a
reserved domain (``example.com``, ``example.net``, ``example.org``, ``example.jp`` and their
subdomains), so nothing generated here can reach a real mailbox.

The shape is meant to look like a real customer base of a regional SaaS: about 40 % ``ja``
customers, mostly in Tokyo; ``en`` customers spread over APAC, Europe and the US; each customer
runs a few components (api, dashboard, ...) in its home region and, for larger tiers, in one or
two more. An incident on ``api`` in ``ap-northeast-1`` (``sample_incident.json``) therefore
reaches some tens of customers, in both languages, and leaves most of the others alone.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

DEFAULT_SEED = 20261125
DEFAULT_COUNT = 200

COMPONENTS = ("api", "dashboard", "billing", "auth", "storage", "webhooks", "search")
REGIONS = ("ap-northeast-1", "ap-southeast-2", "eu-west-1", "eu-central-1", "us-east-1", "us-west-2")
TIERS = ("enterprise", "business", "standard")

DATA_DIR = Path(__file__).parent / "data"
CUSTOMERS_FILE = DATA_DIR / "sample_customers.jsonl"
INCIDENT_FILE = DATA_DIR / "sample_incident.json"

# How likely a customer runs each component in its home region.
_COMPONENT_P = {
    "api": 0.5, "dashboard": 0.62, "auth": 0.42, "storage": 0.38,
    "billing": 0.30, "webhooks": 0.28, "search": 0.18,
}
_TIER_W = {"enterprise": 0.18, "business": 0.35, "standard": 0.47}
# Chance of each number of extra regions, by tier.
_EXTRA_REGIONS = {"enterprise": (0.15, 0.55, 0.30), "business": (0.65, 0.35, 0.0), "standard": (0.92, 0.08, 0.0)}
# Popularity of a region as a second region.
_REGION_W = {"ap-northeast-1": 2, "ap-southeast-2": 1, "eu-west-1": 3, "eu-central-1": 2, "us-east-1": 4, "us-west-2": 2}

# timezone -> (weight among ja customers, weight among en customers, home regions)
_ZONES: dict[str, tuple[int, int, tuple[str, ...]]] = {
    "Asia/Tokyo": (72, 8, ("ap-northeast-1",)),
    "Asia/Singapore": (6, 12, ("ap-northeast-1", "ap-southeast-2")),
    "Australia/Sydney": (2, 13, ("ap-southeast-2",)),
    "Europe/London": (4, 14, ("eu-west-1",)),
    "Europe/Berlin": (2, 10, ("eu-central-1",)),
    "Europe/Paris": (0, 4, ("eu-central-1", "eu-west-1")),
    "America/New_York": (3, 15, ("us-east-1",)),
    "America/Chicago": (0, 4, ("us-east-1",)),
    "America/Los_Angeles": (7, 11, ("us-west-2",)),
    "UTC": (0, 8, ("eu-west-1", "us-east-1")),
}

# --- names ------------------------------------------------------------------------------

_JA_PREFIX = [
    ("青葉", "aoba"), ("若葉", "wakaba"), ("白樺", "shirakaba"), ("みなと", "minato"), ("双葉", "futaba"),
    ("松風", "matsukaze"), ("雲雀", "hibari"), ("小春", "koharu"), ("藤波", "fujinami"), ("楓", "kaede"),
    ("茜", "akane"), ("柚子", "yuzu"), ("琥珀", "kohaku"), ("翡翠", "hisui"), ("千鳥", "chidori"),
    ("桜坂", "sakurazaka"), ("鳴海", "narumi"), ("葵", "aoi"), ("疾風", "hayate"), ("瑞穂", "mizuho"),
]
_JA_SECTOR = [
    ("物流", "logistics"), ("フーズ", "foods"), ("システムズ", "systems"), ("精機", "seiki"),
    ("商事", "shoji"), ("トラベル", "travel"), ("メディカル", "medical"), ("ペイメント", "payment"),
    ("不動産", "estate"), ("出版", "publishing"), ("ソフトウェア", "software"), ("エナジー", "energy"),
    ("製薬", "pharma"), ("ゲームス", "games"), ("銀行", "bank"), ("リテール", "retail"),
]
_JA_FORMS = ["株式会社{}", "{}株式会社", "株式会社{}", "{}株式会社", "合同会社{}"]
_JA_FAMILY = [
    ("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"), ("田中", "tanaka"), ("伊藤", "ito"),
    ("渡辺", "watanabe"), ("山本", "yamamoto"), ("中村", "nakamura"), ("小林", "kobayashi"), ("加藤", "kato"),
    ("吉田", "yoshida"), ("山田", "yamada"), ("佐々木", "sasaki"), ("山口", "yamaguchi"), ("松本", "matsumoto"),
    ("井上", "inoue"), ("木村", "kimura"), ("林", "hayashi"), ("清水", "shimizu"), ("斎藤", "saito"),
]
_JA_GIVEN = [
    ("健", "ken"), ("翔太", "shota"), ("美咲", "misaki"), ("陽菜", "hina"), ("大輔", "daisuke"),
    ("直樹", "naoki"), ("彩", "aya"), ("由美", "yumi"), ("拓也", "takuya"), ("恵", "megumi"),
    ("蓮", "ren"), ("結衣", "yui"), ("悠真", "yuma"), ("さくら", "sakura"), ("誠", "makoto"),
]
_JA_ROLES = [("運用チーム", "ops"), ("SREチーム", "sre"), ("情報システム部", "it"), ("インフラ担当", "infra"),
             ("システム管理者", "sysadmin"), ("開発部", "dev")]

_EN_PREFIX = [
    "Bluefin", "Copperleaf", "Harborline", "Juniper", "Lumen", "Meridian", "Oakridge", "Pinecrest",
    "Redwood", "Silverline", "Tidewater", "Brightpath", "Kestrel", "Larkspur", "Ashgrove", "Fernhill",
    "Granite", "Halcyon", "Ironbark", "Marigold", "Nimbus", "Orchard", "Saffron", "Thistle", "Wren",
    "Northgate", "Cobalt", "Driftwood", "Evergreen", "Foxglove",
]
_EN_SECTOR = [
    "Analytics", "Logistics", "Health", "Payments", "Retail", "Labs", "Foods", "Media", "Travel",
    "Energy", "Insurance", "Robotics", "Learning", "Freight", "Biotech", "Studios",
]
_EN_SUFFIX = {
    "Asia/Tokyo": ["K.K."], "Asia/Singapore": ["Pte. Ltd."], "Australia/Sydney": ["Pty Ltd"],
    "Europe/London": ["Ltd", "plc"], "Europe/Berlin": ["GmbH", "AG"], "Europe/Paris": ["SAS"],
    "America/New_York": ["Inc.", "LLC"], "America/Chicago": ["Inc.", "LLC"],
    "America/Los_Angeles": ["Inc.", "Inc.", "LLC"], "UTC": ["B.V.", "Ltd", "Inc."],
}
_EN_FIRST = [
    "Alex", "Priya", "Daniel", "Sophie", "Liam", "Emma", "Noah", "Olivia", "Lucas", "Mia", "Chen",
    "Aisha", "Mateo", "Hannah", "Jonas", "Lena", "Ravi", "Grace", "Tom", "Zoe", "Marcus", "Chloe",
    "Oliver", "Siobhan", "Kwame", "Ingrid", "Diego", "Mei",
]
_EN_LAST = [
    "Morgan", "Patel", "Schmidt", "Nguyen", "Walker", "Fischer", "Brown", "Tan", "Lim", "Kelly",
    "Martin", "Rossi", "Novak", "Evans", "Harris", "Wagner", "Clarke", "Reyes", "Okafor", "Lee",
    "O'Neill", "Müller", "García", "Dubois",
]
_EN_ROLES = [("Operations", "ops"), ("NOC", "noc"), ("SRE on-call", "sre"), ("IT Operations", "it-ops"),
             ("Platform team", "platform"), ("Engineering", "engineering")]
_EN_BASE_DOMAINS = ["example.com", "example.com", "example.net", "example.org"]


def _ascii_slug(text: str) -> str:
    table = str.maketrans({"ü": "u", "í": "i", "é": "e", "á": "a", "ö": "o"})
    return "".join(c for c in text.lower().translate(table) if c.isalnum())


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


# --- generator --------------------------------------------------------------------------


def generate_customers(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """``count`` customer records, the same for the same (count, seed)."""
    rng = random.Random(seed)
    n_ja = round(count * 0.4)
    locales = ["ja"] * n_ja + ["en"] * (count - n_ja)
    rng.shuffle(locales)
    used_names: set[str] = set()
    width = max(3, len(str(count)))
    return [
        _customer(rng, f"c-{i:0{width}d}", locale, used_names)
        for i, locale in enumerate(locales, start=1)
    ]


def _customer(rng: random.Random, customer_id: str, locale: str, used: set[str]) -> dict[str, Any]:
    zones = {z: (w[0] if locale == "ja" else w[1]) for z, w in _ZONES.items()}
    tz = _weighted(rng, {z: w for z, w in zones.items() if w})
    tier = _weighted(rng, _TIER_W)

    if locale == "ja":
        (pre, pre_r), (sec, sec_r) = rng.choice(_JA_PREFIX), rng.choice(_JA_SECTOR)
        name = rng.choice(_JA_FORMS).format(pre + sec)
        slug = f"{pre_r}-{sec_r}"
        domain_base = "example.jp"
    else:
        pre, sec = rng.choice(_EN_PREFIX), rng.choice(_EN_SECTOR)
        name = f"{pre} {sec} {rng.choice(_EN_SUFFIX[tz])}"
        slug = f"{pre}-{sec}".lower()
        domain_base = rng.choice(_EN_BASE_DOMAINS)
    base_name, k = name, 1
    while name in used:  # only for large counts: the name pools give a few hundred each
        k += 1
        name = f"{base_name} ({k})"
    if k > 1:
        slug = f"{slug}{k}"
    used.add(name)
    domain = f"{slug}.{domain_base}"

    return {
        "customer_id": customer_id,
        "name": name,
        "locale": locale,
        "timezone": tz,
        "tier": tier,
        "contacts": _contacts(rng, locale, tier, domain),
        "services": _services(rng, tz, tier),
    }


def _contacts(rng: random.Random, locale: str, tier: str, domain: str) -> list[dict[str, str]]:
    n = {"enterprise": rng.choice((2, 3, 3)), "business": rng.choice((1, 2, 2)), "standard": rng.choice((1, 1, 2))}[tier]
    roles = _JA_ROLES if locale == "ja" else _EN_ROLES
    contacts, emails = [], set()
    while len(contacts) < n:
        if rng.random() < 0.35:  # a team mailbox
            label, local = rng.choice(roles)
        elif locale == "ja":
            (fam, fam_r), (giv, giv_r) = rng.choice(_JA_FAMILY), rng.choice(_JA_GIVEN)
            label, local = f"{fam} {giv}", f"{giv_r}.{fam_r}"
        else:
            first, last = rng.choice(_EN_FIRST), rng.choice(_EN_LAST)
            label, local = f"{first} {last}", f"{_ascii_slug(first)}.{_ascii_slug(last)}"
        email = f"{local}@{domain}"
        if email not in emails:
            emails.add(email)
            contacts.append({"email": email, "name": label})
    return contacts


def _services(rng: random.Random, tz: str, tier: str) -> list[dict[str, str]]:
    home = rng.choice(_ZONES[tz][2])
    bonus = 0.15 if tier == "enterprise" else 0.0
    used = [c for c in COMPONENTS if rng.random() < _COMPONENT_P[c] + bonus]
    if not used:
        used = [rng.choice(("api", "dashboard"))]
    services = [(c, home) for c in used]

    extra = rng.choices((0, 1, 2), weights=_EXTRA_REGIONS[tier])[0]
    others = [r for r in REGIONS if r != home]
    for _ in range(extra):
        region = _weighted(rng, {r: _REGION_W[r] for r in others})
        others.remove(region)
        # a second region usually runs only part of the stack (api and storage most often)
        subset = [c for c in used if rng.random() < (0.8 if c in ("api", "storage") else 0.45)] or [used[0]]
        services += [(c, region) for c in subset]

    order = {c: i for i, c in enumerate(COMPONENTS)}
    services.sort(key=lambda s: (REGIONS.index(s[1]), order[s[0]]))
    return [{"component": c, "region": r} for c, r in services]


# --- loading the shipped files ------------------------------------------------------------


def iter_customers(path: Path | None = None) -> Iterator[dict[str, Any]]:
    """The records of a customers JSON lines file (default: the shipped sample)."""
    if path is None:
        text = resources.files("devtools").joinpath("data/sample_customers.jsonl").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    for line in text.splitlines():
        if line.strip():
            yield json.loads(line)


def load_customers(path: Path | None = None) -> list[dict[str, Any]]:
    return list(iter_customers(path))


def load_incident() -> dict[str, Any]:
    """The demo ``declared`` incident (no event_id/incident_id/at: the API generates them)."""
    return json.loads(resources.files("devtools").joinpath("data/sample_incident.json").read_text("utf-8"))


def affected(customers: list[dict[str, Any]], components: list[str], regions: list[str] | None) -> list[dict[str, Any]]:
    """Customers affected per the CONTRACT rule (a listed component and, if any are listed, a listed region)."""
    comps, regs = set(components), set(regions or ())
    return [
        c for c in customers
        if any(s["component"] in comps and (not regs or s["region"] in regs) for s in c["services"])
    ]


# --- CLI ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.sample", description="Write sample customers as JSON lines.")
    p.add_argument("--count", type=int, default=DEFAULT_COUNT)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--output", "-o", type=Path, help="file to write (default: standard output)")
    args = p.parse_args(argv)
    lines = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in generate_customers(args.count, args.seed))
    if args.output:
        args.output.write_text(lines, encoding="utf-8")
    else:
        sys.stdout.buffer.write(lines.encode("utf-8"))
        sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
