"""The documents stay true to the repository.

- ``README.md`` stays a front page: under 200 lines.
- Every repository path that ``README.md`` or ``docs/*.md`` names exists: a token that starts with
  a top-level folder of the repository (``streams/holding.py``, ``deploy/``, ``.ci/run``) or is a
  top-level file (``Makefile``), and every bare ``*.py`` or ``*.jinja`` name in backticks. Paths
  git ignores (``var/``, ``bench/results/``) and placeholders (``<locale>``, ``{id}``, globs) are
  not checked; the part before the placeholder is.
- Every relative link in a tracked markdown file points at a file or folder that exists, and an
  anchor at a heading of the file it points at.
- No tracked file cites a document kept outside the repository: the docs in ``docs/`` are ours.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_README_LINES = 200

# docs/contract.md lists contract items the code lacks by their paths: they must stay absent (if
# one is added, that page has to say so)
NAMED_AS_ABSENT: set[str] = set()

# a document outside the repository: the shared folder next to it, or its documents by name
OUTSIDE = re.compile(rb"\.\./shared|\b(?:CONTRACT|NOTES|VOICE|DESIGN)\.md")

FENCE = re.compile(r"^```.*?^```[^\n]*$", re.S | re.M)
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)


@lru_cache(maxsize=1)
def tracked() -> tuple[str, ...]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return tuple(p for p in out.decode().split("\0") if p)


def documents() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def markdown_files() -> list[str]:
    return [p for p in tracked() if p.endswith(".md")]


def ignored(paths: list[str]) -> set[str]:
    """Those of ``paths`` that git ignores (generated output: ``var/``, ``bench/results/``)."""
    if not paths:
        return set()
    # a missing path may be a folder ignored by a folder pattern (bench/results/): ask for both forms
    asked = [form for p in paths for form in (p, p.rstrip("/") + "/")]
    run = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT, input="\n".join(asked),
                         capture_output=True, text=True)
    answered = set(run.stdout.split())
    return {p for p in paths if p in answered or p.rstrip("/") + "/" in answered}


def path_pattern() -> re.Pattern:
    folders = sorted({p.split("/", 1)[0] for p in tracked() if "/" in p})
    files = sorted(p for p in tracked() if "/" not in p)
    start = "|".join([re.escape(f) + "/" for f in folders] + [re.escape(f) + r"\b" for f in files])
    # not inside another path, a URL, a dotted name or a home/absolute path
    return re.compile(r"(?<![\w./~$-])(?:" + start + r")(?:[\w.-]+/?)*")


def named_paths(text: str) -> set[str]:
    """The repository paths a document names, up to any placeholder."""
    found = set()
    for match in path_pattern().finditer(text):
        path = match.group(0).rstrip(".")
        if path.endswith("/") and text[match.end():match.end() + 1] in ("<", "{", "*", "…"):
            found.add(path)          # the folder before a placeholder
        elif text[match.end():match.end() + 1] in ("<", "{", "*", "…"):
            found.add(path.rsplit("/", 1)[0] + "/")
        else:
            found.add(path)
    return found


def bare_names(text: str) -> set[str]:
    """``*.py`` and ``*.jinja`` file names given without their folder, in backticks."""
    return {span for span in CODE_SPAN.findall(text) if re.fullmatch(r"[\w-]+\.(?:py|jinja)", span)}


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # a link's text only
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for _, title in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def test_the_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < MAX_README_LINES, f"README.md has {lines} lines: move detail into docs/"


@pytest.mark.parametrize("doc", [p.relative_to(ROOT).as_posix() for p in documents()])
def test_every_path_a_document_names_exists(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    named = named_paths(text) - NAMED_AS_ABSENT
    missing = sorted(p for p in named if not (ROOT / p).exists())
    missing = [p for p in missing if p not in ignored(missing)]
    assert not missing, f"{doc} names paths that do not exist: {missing}"

    basenames = {Path(p).name for p in tracked()}
    unknown = sorted(bare_names(text) - basenames)
    assert not unknown, f"{doc} names files that are nowhere in the repository: {unknown}"


def test_the_paths_named_as_absent_are_absent():
    present = sorted(p for p in NAMED_AS_ABSENT if (ROOT / p).exists())
    assert not present, f"{present} exist now: say so in docs/contract.md and drop them from NAMED_AS_ABSENT"


def test_the_path_check_sees_what_it_should():
    text = ("`streams/holding.py`, [x](docs/kafka.md#a), `notifiers/templates/<locale>/`, `tests/unit/...`, "
            "`bench/results/<time>.json`, http://host/docs/y.md, ~/.cache/outage/, `var/faust`, "
            "`outage.cli`, Makefile.")
    assert named_paths(text) == {"streams/holding.py", "docs/kafka.md", "notifiers/templates/", "tests/unit/",
                                 "bench/results/", "Makefile"}
    assert ignored(["bench/results/", "bench/results", "var/faust", "streams/holding.py"]) == \
        {"bench/results/", "bench/results", "var/faust"}
    assert bare_names("`test_failover.py`, `common.jinja`, `outage.env`") == {"test_failover.py", "common.jinja"}
    assert slug("10. Where the code differs or the contract is ambiguous") == \
        "10-where-the-code-differs-or-the-contract-is-ambiguous"
    assert slug("The embedded broker's measured defects") == "the-embedded-brokers-measured-defects"


@pytest.mark.parametrize("doc", markdown_files() if (ROOT / ".git").exists() else [])
def test_every_link_between_documents_resolves(doc):
    source = ROOT / doc
    broken = []
    for target in LINK.findall(FENCE.sub("", source.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):          # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (source.parent / path).resolve() if path else source
        if ROOT not in (dest, *dest.parents) or not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{doc} has broken links: {broken}"


def test_no_tracked_file_cites_a_document_outside_the_repository():
    citing = []
    for name in tracked():
        path = ROOT / name
        if path.is_file():
            for number, line in enumerate(path.read_bytes().splitlines(), 1):
                if OUTSIDE.search(line):
                    citing.append(f"{name}:{number}")
    assert not citing, f"these cite a document outside the repository (cite docs/ instead): {citing}"
