"""The wiring stays narrow: every agent module starts with its runtime contract, and no module but
the one that builds the pipeline (``streams/app.py``) and the one that runs it
(``streams/worker.py``) names ``Pipeline`` or takes a ``pipe``: each is handed what it uses. The
components are built in one place (``streams/assembly.py``), for the faust worker and the in-memory
test broker alike, and ``streams/app.py`` stays wiring only, under 150 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AGENT_MODULES = ("incidents", "tickets", "holding", "audience", "preferences", "sender", "rebalance", "surge",
                 "maintenance")
BUILDERS = {"app.py", "worker.py"}


@pytest.mark.parametrize("name", AGENT_MODULES)
def test_every_agent_module_starts_with_its_runtime_contract(name):
    doc = ast.get_docstring(ast.parse((ROOT / "streams" / f"{name}.py").read_text()))
    assert doc and "Runtime contract" in doc, f"streams/{name}.py has no runtime contract in its docstring"


def test_no_module_is_handed_the_pipeline():
    found = []
    for path in sorted((ROOT / "streams").rglob("*.py")):
        if path.name in BUILDERS and path.parent.name == "streams":
            continue
        source = path.read_text()
        if "Pipeline" in source:
            found.append(f"{path.relative_to(ROOT)} names Pipeline")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                found += [f"{path.relative_to(ROOT)}:{node.lineno} {node.name}({a.arg})" for a in args
                          if a.arg in ("pipe", "pipeline")]
    assert not found, found


def test_the_faust_worker_and_the_in_memory_broker_build_the_components_with_one_assembly():
    built = {"Sender", "Audience", "IncidentDesk", "TicketDesk", "HoldingUpdates", "Deliveries", "Preferences",
             "Rebalance"}
    for path in (ROOT / "streams" / "app.py", ROOT / "tests" / "inmemory" / "broker.py"):
        tree = ast.parse(path.read_text())
        calls = {node.func.id for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
        assert "assemble" in calls, f"{path.relative_to(ROOT)} does not call assemble"
        assert not calls & built, f"{path.relative_to(ROOT)} builds {sorted(calls & built)} itself"
    assert len((ROOT / "streams" / "app.py").read_text().splitlines()) < 150


def test_the_worker_topics_are_declared_once_and_named_on_topics():
    from streams import topics as T
    from streams.faust_app import Topics

    assert list(Topics.__annotations__) == list(T.WORKER_TOPICS)


def test_every_test_module_has_a_name_of_its_own():
    # pytest imports test modules by their basename (tests/ has no packages of tests): a unit and an
    # integration test file of one name stop the whole suite at collection
    from collections import Counter
    from pathlib import Path

    tests = Path(__file__).resolve().parents[1]
    names = Counter(path.name for path in tests.rglob("test_*.py"))
    assert [name for name, n in names.items() if n > 1] == []


async def test_every_module_that_runs_an_agent_or_a_timer_is_held_to_its_contract():
    """AGENT_MODULES is not a list to keep by hand: every agent and timer the worker's assembly
    (streams/assembly.py) really runs comes from a module in it, so a new agent module must start with
    its runtime contract (the test above)."""
    from tests.inmemory.broker import Broker

    async with Broker() as broker:
        parts = broker.worker("w0").parts
        modules = {fn.__module__ for _, _, fn in parts.agents} | {fn.__module__ for _, _, fn in parts.timers}
    assert modules and all(m.startswith("streams.") for m in modules), modules
    assert {m.removeprefix("streams.") for m in modules} <= set(AGENT_MODULES), modules
