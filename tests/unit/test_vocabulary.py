"""The vocabulary is declared once (core/vocabulary.py): no product module declares a set of its
words again, and the tables keyed by them cover each set exactly."""

from __future__ import annotations

import ast
from pathlib import Path

from core import vocabulary as V

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("core", "schemas", "domain", "notifiers", "streams", "outage", "devtools")
SETS = {
    "notice kinds": set(V.NOTICE_KINDS), "event types": set(V.EVENT_TYPES), "statuses": set(V.STATUSES),
    "severities": set(V.SEVERITIES), "locales": set(V.LOCALES), "ticket actions": {V.LINKED, V.INCIDENT_UPDATED,
                                                                                   V.INCIDENT_RESOLVED},
}


def redeclarations(tree: ast.AST) -> list[tuple[int, str]]:
    """Literal[...] subscripts, tuples, lists and sets of two or more words of one set."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "Literal":
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            elts = node.elts
        else:
            continue
        words = {e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        for name, members in SETS.items():
            if len(words & members) >= 2:
                found.add((node.lineno, name))
    return sorted(found)


def test_no_module_declares_the_vocabulary_again():
    found = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "core" / "vocabulary.py":
                continue
            found += [f"{path.relative_to(ROOT)}:{line} ({name})"
                      for line, name in redeclarations(ast.parse(path.read_text(encoding="utf-8")))]
    assert not found, "declare these in core/vocabulary.py and import them:\n" + "\n".join(found)


def test_the_scan_finds_a_redeclaration():
    assert redeclarations(ast.parse('S = Literal["critical", "major"]\nL = ("en", "ja")')) == [
        (1, "severities"), (2, "locales")]


def test_the_tables_keyed_by_the_vocabulary_cover_it():
    from notifiers.render import TEMPLATE_DIR, get_environment
    from notifiers.status_page import _STATE_OF

    for locale in V.LOCALES:   # the status pages' words for each status (notifiers/templates/<locale>/status.jinja)
        assert set(get_environment().get_template(f"{locale}/status.jinja").module.status_words) == set(V.STATUSES)
    assert set(_STATE_OF) == set(V.SEVERITIES)
    assert set(V.SEVERITY_CADENCE_SECONDS) == set(V.SEVERITIES)
    assert {p.name for p in TEMPLATE_DIR.iterdir() if p.is_dir()} == set(V.LOCALES)
    assert V.DEFAULT_LOCALE in V.LOCALES and V.INVESTIGATING == V.STATUSES[0]
    assert V.RESOLVED in V.STATUSES and V.RESOLVED in V.EVENT_TYPES and V.RESOLVED in V.NOTICE_KINDS
