"""Every ```python example under docs/ runs as written, offline, in a fresh interpreter.

A page's blocks build on each other, so they run concatenated in order, in one subprocess. HTML
comments on the line(s) just above a fence change that:

- ``<!-- separate -->``: the block runs on its own, in its own subprocess;
- ``<!-- not-run: <reason> -->``: the block is shown and compiled, never run (a real API key, a
  server that runs forever). Use it sparingly: an example that can run offline should;
- ``<!-- file: <name> -->`` (on a fence of any language): the block's text is written to
  ``<name>`` in the working directory before the page runs, so an example can use the
  ``prices.yaml`` or ``llm.yaml`` the page shows.

Each subprocess gets a fresh temporary directory as cwd and HOME, its own local store
(``AGENTPULSE_LOCAL_PATH``), no ``AGENTPULSE_*`` or provider credentials from the environment, and
turns Python warnings raised by AgentPulse into errors, like our own suite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
# configuration.md is generated from the Config model; how-it-works.md is checked on its own.
SKIPPED = {"configuration.md", "how-it-works.md"}
TIMEOUT_S = 45.0
WORKERS = 4

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<name>separate|not-run|file)\b\s*:?\s*(?P<arg>.*?)\s*-->\s*$")
_IGNORED_INIT = "called again with other options"
# Provider credentials and endpoints a developer may have exported: examples must not need them.
_SCRUBBED_PREFIXES = (
    "AGENTPULSE_",
    "OPENAI_",
    "ANTHROPIC_",
    "COHERE_",
    "CO_API_",
    "GOOGLE_",
    "GEMINI_",
    "LITELLM_",
    "AZURE_",
)


@dataclass
class Block:
    """One fenced block of a page, with the markers written just above it."""

    line: int
    lang: str
    source: str
    separate: bool = False
    not_run: str = ""
    file: str = ""


@dataclass
class Run:
    """One subprocess: a page's chained blocks, or one separate block."""

    label: str
    source: str
    lines: List[int] = field(default_factory=list)
    files: Dict[str, str] = field(default_factory=dict)


def fenced_blocks(text: str) -> List[Block]:
    """Every fenced block of a markdown page (indented ones too), with its markers."""
    lines = text.splitlines()
    blocks: List[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, lang = m.group("indent"), m.group("lang")
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = "\n".join(ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines[i + 1 : end])
        block = Block(line=i + 1, lang=lang, source=textwrap.dedent(body) + "\n")
        j = i - 1
        while j >= 0 and (marker := _MARKER.match(lines[j])) is not None:
            name, arg = marker.group("name"), marker.group("arg")
            if name == "separate":
                block.separate = True
            elif name == "not-run":
                block.not_run = arg or "marked not-run"
            else:
                block.file = arg
            j -= 1
        blocks.append(block)
        i = end + 1
    return blocks


def python_blocks(text: str) -> List[Block]:
    """The ```python blocks of a markdown page."""
    return [b for b in fenced_blocks(text) if b.lang == "python"]


def page_runs(page: Path) -> List[Run]:
    """The subprocesses one page needs: its chained blocks first, then each separate block."""
    rel = page.relative_to(DOCS).as_posix()
    chained = Run(label=f"{rel} (chained blocks)", source="")
    runs: List[Run] = []
    blocks = fenced_blocks(page.read_text(encoding="utf-8"))
    files = {b.file: b.source for b in blocks if b.file}
    for block in blocks:
        if block.lang != "python" or block.not_run:
            continue
        # Keep the page's line numbers in tracebacks readable: each block says where it starts.
        header = f"# ---- {rel}:{block.line}\n"
        if block.separate:
            runs.append(Run(label=f"{rel}:{block.line} (separate)", source=header + block.source))
            runs[-1].lines.append(block.line)
        else:
            chained.source += header + block.source
            chained.lines.append(block.line)
    runs = ([chained] if chained.lines else []) + runs
    for run in runs:
        run.files = dict(files)
    return runs


def _pages() -> List[Path]:
    return [
        page
        for page in sorted(DOCS.rglob("*.md"))
        if page.relative_to(DOCS).as_posix() not in SKIPPED
        and python_blocks(page.read_text(encoding="utf-8"))
    ]


def _ids(pages: List[Path]) -> List[str]:
    return [p.relative_to(DOCS).as_posix() for p in pages]


ALL_PAGES = _pages()  # every page with a python block
PAGES = [page for page in ALL_PAGES if page_runs(page)]  # ... of which some block runs


def _env(root: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        AGENTPULSE_LOCAL_PATH=str(root / "agentpulse.db"),
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        PYTHONDONTWRITEBYTECODE="1",
        # Like our suite (filterwarnings=error): an example that warns fails.
        PYTHONWARNINGS="error",
    )
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _execute(run: Run, root: Path) -> Tuple[Run, int, str]:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in run.files.items():
        (root / name).write_text(text, encoding="utf-8")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", run.source],
            cwd=root,
            env=_env(root),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return run, -1, f"timed out after {TIMEOUT_S:.0f}s\n{out}"
    return run, proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def page_results(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dict[Path, List[Future[Tuple[Run, int, str]]]]]:
    """Start every selected page's subprocesses at once, a few at a time; tests wait for their page."""
    selected = [
        item.callspec.params["page"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_docs_page_examples_run" and hasattr(item, "callspec")
    ]
    futures: Dict[Path, List[Future[Tuple[Run, int, str]]]] = {}
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="docs-example") as pool:
        for page in selected:
            base = tmp_path_factory.mktemp(page.stem)
            futures[page] = [
                pool.submit(_execute, run, base / f"run{n}") for n, run in enumerate(page_runs(page))
            ]
        yield futures


def test_markers_are_understood() -> None:
    text = textwrap.dedent(
        """\
        intro
        ```python
        a = 1
        ```
        <!-- not-run: needs an API key -->
        ```python
        raise SystemExit(1)
        ```
        <!-- separate -->
        ```python
        b = 2
        ```
        <!-- file: prices.yaml -->
        ```yaml
        gpt-4o: {input: 2.0, output: 8.0}
        ```
        - a list item:
          ```python
          c = a
          ```
        ```bash
        echo no
        ```
        """
    )
    blocks = python_blocks(text)
    assert [b.source for b in blocks] == ["a = 1\n", "raise SystemExit(1)\n", "b = 2\n", "c = a\n"]
    assert [b.not_run for b in blocks] == ["", "needs an API key", "", ""]
    assert [b.separate for b in blocks] == [False, False, True, False]
    assert [(b.lang, b.file, b.source) for b in fenced_blocks(text) if b.file] == [
        ("yaml", "prices.yaml", "gpt-4o: {input: 2.0, output: 8.0}\n")
    ]


@pytest.mark.parametrize("page", ALL_PAGES, ids=_ids(ALL_PAGES))
def test_docs_page_not_run_blocks_compile(page: Path) -> None:
    """A block shown but not run must still be valid Python: only what it needs is missing."""
    for block in python_blocks(page.read_text(encoding="utf-8")):
        if block.not_run:
            compile(block.source, f"{page.name}:{block.line}", "exec")


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_docs_page_examples_run(
    page: Path, page_results: Dict[Path, List[Future[Tuple[Run, int, str]]]]
) -> None:
    failures = []
    for future in page_results[page]:
        run, code, output = future.result()
        if code != 0:
            failures.append(f"--- {run.label}: exit {code}\n{output[-4000:]}")
        elif _IGNORED_INIT in output:
            # A later init() with other options is a no-op: the block does not do what it shows.
            failures.append(f"--- {run.label}: init() called twice; mark the block <!-- separate -->")
    assert not failures, "\n".join(failures)
