"""The status pages customers read, and their Atom feed: the public ``GET /status``, one customer's
``GET /status/customer/{token}`` and ``GET /status.atom``, rendered from Jinja templates
(``notifiers/templates/status-page.html``, ``status-feed.xml``; their words in
``<locale>/status.jinja``), autoescaped.

Pure: the web (``streams/status_web.py``) hands in the status document (``/status.json``'s
dict), the reader's language and zone, and the time; this module decides what each section
shows and formats the times.

- Language: ``?lang=ja|en`` wins, then ``Accept-Language`` (its q-values), then English.
- Zone: ``?tz=<IANA name>`` wins; a name zoneinfo cannot load falls back to UTC and the page says
  so (never a 500). Without ``?tz`` the page is rendered in UTC, says so, and a small script
  rewrites every time (each ``<time>`` carries the instant in ``datetime``) into the browser's own
  zone. A customer's page is in the customer's zone (from its signed link), which the script
  leaves alone.
- Components and their current state are derived from the active incidents (the worst severity
  covering the component; a maintenance in its window shows as maintenance): the pipeline keeps
  no catalogue of components, so the public page lists those its incidents and maintenance
  name, and a customer's page lists that customer's own services.
- Maintenance: rendered from the document's ``maintenance`` list when the key is there (upcoming
  and in progress; nothing when the key is absent).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.vocabulary import DEFAULT_LOCALE, LOCALES
from domain.affected import Scope
from notifiers.render import get_environment
from notifiers.timefmt import format_duration, format_time, format_window
from schemas.common import localize

__all__ = ["Reader", "negotiate_locale", "resolve_zone", "render_status_page", "render_status_feed",
           "render_invalid_link", "components_of", "FALLBACK_ZONE"]

FALLBACK_ZONE = "UTC"
MAX_TZ_CHARS = 64          # no IANA name is longer; a longer ``?tz=`` is not one
_ACCEPT_PART = re.compile(r"^\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([0-9.]{1,5}))?\s*$")
# severity -> the component state it makes, worst first
_STATE_OF = {"critical": "outage", "major": "partial", "minor": "degraded"}
_STATE_ORDER = ("outage", "partial", "degraded", "maintenance", "operational")
_DONE_MAINTENANCE = ("cancelled", "completed")


def negotiate_locale(lang: str | None, accept_language: str | None) -> str:
    """``ja`` or ``en``: ``lang`` (``?lang=``) when it names one, else the best of
    ``Accept-Language`` that does (by q-value, then order), else English."""
    if lang:
        wanted = lang.strip().lower().split("-")[0]
        if wanted in LOCALES:
            return wanted
    best: tuple[float, int, str] | None = None
    for position, part in enumerate((accept_language or "")[:1000].split(",")[:50]):
        match = _ACCEPT_PART.match(part)
        if not match:
            continue
        tag, q = match.group(1).lower(), match.group(2)
        try:
            weight = float(q) if q is not None else 1.0
        except ValueError:
            continue
        language = DEFAULT_LOCALE if tag == "*" else tag.split("-")[0]
        if language not in LOCALES or weight <= 0:
            continue
        if best is None or (weight, -position) > (best[0], -best[1]):
            best = (weight, position, language)
    return best[2] if best else DEFAULT_LOCALE


def resolve_zone(tz: str | None) -> tuple[str, bool]:
    """``(zone, ok)``: the IANA zone ``tz`` names, or ``(FALLBACK_ZONE, False)`` when it names none."""
    if not tz:
        return FALLBACK_ZONE, True
    name = tz.strip()
    if not name or len(name) > MAX_TZ_CHARS or name.startswith(("/", ".")) or ".." in name:
        return FALLBACK_ZONE, False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        return FALLBACK_ZONE, False
    return name, True


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads a page: language, the zone its times are in, and how that zone was chosen."""

    locale: str = DEFAULT_LOCALE
    zone: str = FALLBACK_ZONE
    zone_named: bool = False   # ``?tz=`` (or the customer's own zone) chose it: the script keeps it
    zone_refused: str = ""     # a ``?tz=`` that names no zone (shown, so the reader sees why UTC)


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _scope(item: Mapping) -> Scope:
    return Scope.of(item.get("components") or (), item.get("regions") or ())


def _in_window(item: Mapping, now: datetime) -> bool:
    starts, ends = _parse(item.get("starts_at")), _parse(item.get("ends_at"))
    if item.get("status") in _DONE_MAINTENANCE:
        return False
    return starts is not None and starts <= now and (ends is None or now < ends)


def _upcoming(item: Mapping, now: datetime) -> bool:
    """A maintenance still to come or under way (the page's maintenance section)."""
    if item.get("status") in _DONE_MAINTENANCE:
        return False
    ends = _parse(item.get("ends_at"))
    return ends is None or ends > now


def _worst(states: Iterable[str]) -> str:
    return min(states, key=_STATE_ORDER.index, default="operational")


def components_of(doc: Mapping, now: datetime,
                  services: Iterable[tuple[str, str]] | None = None) -> list[dict[str, str]]:
    """Each component (or, for a customer, each of its services) with its current state."""
    active = list(doc.get("active") or ())
    maintenance = [m for m in (doc.get("maintenance") or ()) if isinstance(m, Mapping)]
    if services is None:
        names = sorted({c for item in [*active, *(doc.get("recently_resolved") or ()), *maintenance]
                        for c in (item.get("components") or ())})
        rows = [(name, "") for name in names]
    else:
        rows = sorted(set(services))
    out = []
    for component, region in rows:
        def hit(item: Mapping) -> bool:
            scope = _scope(item)
            return component in scope.components and (not region or scope.covers(component, region))
        states = [_STATE_OF.get(i.get("severity"), "degraded") for i in active if hit(i)]
        states += ["maintenance" for m in maintenance if _in_window(m, now) and hit(m)]
        out.append({"component": component, "region": region, "state": _worst(states)})
    return out


class _Times:
    """Times as the reader reads them, with the instant kept for the browser's script."""

    def __init__(self, reader: Reader, now: datetime) -> None:
        self.reader, self.now = reader, now

    def __call__(self, value: Any, *, with_date: bool = True) -> dict[str, str] | None:
        at = _parse(value)
        if at is None:
            return None
        return {"iso": at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
                "text": format_time(at, self.reader.zone, self.reader.locale, now=self.now,
                                    with_date=with_date)}


def _place(component: str, region: str, locale: str) -> str:
    """``api (tokyo)``; in Japanese ``api（tokyo）``, as the notices write it."""
    if not region:
        return component
    return f"{component}（{region}）" if locale == "ja" else f"{component} ({region})"


def _incident(item: Mapping, reader: Reader, at: _Times,
              services: Iterable[tuple[str, str]] | None) -> dict[str, Any]:
    scope = _scope(item)
    started, resolved = _parse(item.get("started_at")), _parse(item.get("resolved_at"))
    eta = _parse(item.get("eta"))
    # an estimate that has gone by is never shown as one: the page said it, so it is "taking longer"
    eta_state = "unknown" if eta is None else "future" if eta > at.now else "passed"
    if services is not None:   # a customer's page names its own services, and only those
        affected = sorted({(c, r) for c, r in services if scope.covers(c, r)})
        where = [_place(c, r, reader.locale) for c, r in affected]
    else:
        sep = "、" if reader.locale == "ja" else ", "
        where = [_place(sep.join(scope.components), sep.join(scope.regions), reader.locale)]
    return {
        "id": str(item.get("incident_id", "")),
        "title": localize(item.get("title"), reader.locale),
        "message": localize(item.get("message"), reader.locale),
        "status": str(item.get("status", "")),
        "severity": str(item.get("severity", "")),
        "where": where,
        "started": at(item.get("started_at")),
        "updated": at(item.get("updated_at")),
        "eta": at(item.get("eta")) if eta_state == "future" else None,
        "eta_state": eta_state,
        "next_update": at(item.get("next_update_at")),
        "resolved": at(item.get("resolved_at")),
        "duration": format_duration(resolved - started, reader.locale) if started and resolved else "",
    }


def _maintenance(item: Mapping, reader: Reader, at: _Times, now: datetime) -> dict[str, Any]:
    scope = _scope(item)
    starts, ends = _parse(item.get("starts_at")), _parse(item.get("ends_at"))
    sep = "、" if reader.locale == "ja" else ", "
    return {
        "id": str(item.get("maintenance_id", "")),
        "title": localize(item.get("title"), reader.locale),
        "message": localize(item.get("message"), reader.locale),
        "where": _place(sep.join(scope.components), sep.join(scope.regions), reader.locale),
        "starts": at(item.get("starts_at")),
        "ends": at(item.get("ends_at")),
        # in a zone the reader named (no script rewrites it): one window, the date and the zone once in Japanese
        "window": format_window(starts, ends, reader.zone, reader.locale, now=now)
        if reader.zone_named and starts and ends else "",
        "under_way": _in_window(item, now),
    }


def _affects(item: Mapping, services: Iterable[tuple[str, str]] | None) -> bool:
    if services is None:
        return True
    scope = _scope(item)
    return any(scope.covers(c, r) for c, r in services)


def page_view(doc: Mapping, reader: Reader, now: datetime, *,
              services: Iterable[tuple[str, str]] | None = None, customer: bool = False) -> dict[str, Any]:
    """What the page shows: ``services`` (a customer's page) keeps only what touches them."""
    services = None if services is None else sorted(set(services))
    at = _Times(reader, now)
    active = [i for i in doc.get("active") or () if _affects(i, services)]
    recent = [i for i in doc.get("recently_resolved") or () if _affects(i, services)]
    view: dict[str, Any] = {
        "invalid": False, "locale": reader.locale, "zone": reader.zone,
        # the other language's page, in the zone the reader named (a customer's zone is its link's)
        "switch": "?" + urlencode({"lang": "ja" if reader.locale == "en" else "en",
                                   **({"tz": reader.zone} if reader.zone_named and not customer else {})}), "zone_named": reader.zone_named,
        "zone_refused": reader.zone_refused, "customer": customer,
        "components": components_of({**doc, "active": active}, now, services),
        "active": [_incident(i, reader, at, services) for i in active],
        "recent": [_incident(i, reader, at, services) for i in recent],
        "maintenance": None,
        "generated": at(doc.get("generated_at")) or at(now.isoformat()),
    }
    if "maintenance" in doc and doc["maintenance"] is not None:
        items = [m for m in doc["maintenance"] if isinstance(m, Mapping)
                 and _upcoming(m, now) and _affects(m, services)]
        items.sort(key=lambda m: m.get("starts_at") or "")
        view["maintenance"] = [_maintenance(m, reader, at, now) for m in items]
    return view


def render_status_page(doc: Mapping, reader: Reader, now: datetime, *,
                       services: Iterable[tuple[str, str]] | None = None) -> str:
    """The public status page (``services`` None) or one customer's page: a complete HTML document."""
    locale = reader.locale if reader.locale in LOCALES else DEFAULT_LOCALE
    view = page_view(doc, Reader(locale, reader.zone, reader.zone_named, reader.zone_refused), now,
                     services=services, customer=services is not None)
    return get_environment().get_template("status-page.html").render(v=view).strip() + "\n"


def render_invalid_link() -> str:
    """The page of a customer link that does not verify: its language is unknown, so both."""
    return get_environment().get_template("status-page.html").render(v={"invalid": True}).strip() + "\n"


# -- the Atom feed ---------------------------------------------------------------------------

def _tag_authority(base_url: str) -> str:
    host = (urlsplit(base_url).hostname or "localhost").lower()
    return re.sub(r"[^a-z0-9.-]", "-", host) or "localhost"


def feed_entries(doc: Mapping, reader: Reader, now: datetime, base_url: str) -> list[dict[str, Any]]:
    """One entry per round of every incident on the page, newest first. An entry's id is
    ``tag:<host>,<day the incident started>:incident/<id>/round/<seq>``: the same on every
    worker and every fetch, and a round that happens again (a replay) keeps its id."""
    authority = _tag_authority(base_url)
    at = _Times(reader, now)
    entries = []
    for item in [*(doc.get("active") or ()), *(doc.get("recently_resolved") or ())]:
        started = _parse(item.get("started_at"))
        incident_id = str(item.get("incident_id", ""))
        if started is None or not incident_id:
            continue
        day = started.astimezone(timezone.utc).date().isoformat()
        title = localize(item.get("title"), reader.locale)
        rounds: dict[int, Mapping] = {}
        for entry in item.get("history") or ():
            seq = entry.get("seq")
            if isinstance(seq, int) and _parse(entry.get("at")) is not None:
                rounds[seq] = entry   # the latest record of a round names it
        latest = max(rounds, default=None)
        for seq, entry in rounds.items():
            when = _parse(entry["at"])
            entries.append({
                "id": f"tag:{authority},{day}:incident/{quote(incident_id, safe='')}/round/{seq}",
                "incident_id": incident_id, "seq": seq, "title": title,
                "status": str(entry.get("status", "")), "type": str(entry.get("type", "")),
                "updated": when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
                "when": at(entry["at"]),
                "message": localize(item.get("message"), reader.locale) if seq == latest else "",
                "sort": when,
            })
    entries.sort(key=lambda e: (e["sort"], e["seq"]), reverse=True)
    return entries


def render_status_feed(doc: Mapping, reader: Reader, now: datetime, *, base_url: str) -> str:
    """The Atom feed (RFC 4287) of the status page's incidents: one entry per round."""
    locale = reader.locale if reader.locale in LOCALES else DEFAULT_LOCALE
    reader = Reader(locale, reader.zone, reader.zone_named, reader.zone_refused)
    entries = feed_entries(doc, reader, now, base_url)
    base = base_url.rstrip("/")
    updated = entries[0]["updated"] if entries else now.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    feed = {"id": f"tag:{_tag_authority(base_url)},2026:status", "base": base, "locale": locale,
            "updated": updated, "entries": entries}
    return get_environment().get_template("status-feed.xml").render(feed=feed).strip() + "\n"
