"""The broker adapter (streams/kafka/) is the only place that touches faust's, mode's or aiokafka's
private attributes: a scan of every other product module fails on one.

Flagged outside the adapter: ``x._name`` on anything but ``self`` or ``cls`` (another object's
private attribute: a framework's, or one of ours that should be public), ``super()._name``, a
private attribute read by a class derived from a framework class that it does not define itself,
``getattr``/``setattr``/``hasattr`` with a private name, and an import of a private framework name.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("core", "schemas", "domain", "notifiers", "streams", "outage", "devtools")
ADAPTER = ROOT / "streams" / "kafka"
FRAMEWORKS = ("faust", "mode", "aiokafka", "kafka")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _framework_names(tree: ast.Module) -> set[str]:
    """Local names bound to a framework module or to something imported from one."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] in FRAMEWORKS}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in FRAMEWORKS:
            names |= {a.asname or a.name for a in node.names}
    return names


def _root(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def violations(source: str) -> list[tuple[int, str]]:
    tree = ast.parse(source)
    framework = _framework_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FRAMEWORKS:
            if any(_private(part) for part in node.module.split(".")) or any(_private(a.name) for a in node.names):
                found.append((node.lineno, f"from {node.module} import a private name"))
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                continue
            found.append((node.lineno, ast.unparse(node)))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and _private(node.args[1].value)):
            found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.ClassDef) and any(_root(b) in framework for b in node.bases):
            own = {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                    targets = inner.targets if isinstance(inner, ast.Assign) else [inner.target]
                    for t in targets:
                        for leaf in ast.walk(t):
                            if isinstance(leaf, ast.Attribute) and getattr(leaf.value, "id", None) == "self":
                                own.add(leaf.attr)
                            elif isinstance(leaf, ast.Name):
                                own.add(leaf.id)
            for inner in ast.walk(node):
                if (isinstance(inner, ast.Attribute) and getattr(inner.value, "id", None) == "self"
                        and _private(inner.attr) and inner.attr not in own):
                    found.append((inner.lineno, f"{node.name}: self.{inner.attr} (the framework's)"))
    return sorted(set(found))


def test_no_private_framework_attribute_outside_the_adapter():
    found = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            if ADAPTER in path.parents:
                continue
            found += [f"{path.relative_to(ROOT)}:{line}: {what}"
                      for line, what in violations(path.read_text(encoding="utf-8"))]
    assert not found, "move these into streams/kafka/ (or make ours public):\n" + "\n".join(found)


def test_the_scan_finds_each_kind():
    source = '''
import faust
from aiokafka.conn import _private_thing

class T(faust.Table):
    def on_key_set(self, key, value):
        self._own = 1
        self._sensor_on_set(self, key, value)
        return self._own

def f(consumer):
    consumer._client.ready()
    getattr(consumer, "_fetcher")
    return super()._x()
'''
    found = [what for _, what in violations(source)]
    assert "from aiokafka.conn import a private name" in found
    assert "T: self._sensor_on_set (the framework's)" in found
    assert "consumer._client" in found and "getattr(consumer, '_fetcher')" in found and "super()._x" in found
    assert not any("_own" in what for what in found)


def test_the_adapter_does_touch_them():
    # the scan is not vacuous: the adapter really holds such touches
    assert violations((ADAPTER / "transport.py").read_text(encoding="utf-8"))
