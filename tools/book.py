"""Keep the chapters' pairs honest: execute them, and check that each notebook matches its source.

    python tools/book.py run [chapters/01_attention.py ...]   # execute chapters in place (all by default)
    python tools/book.py check                                 # exit 1 if a notebook is missing, unexecuted,
                                                               # or its inputs differ from its .py

`chapters/NN_topic.py` is the source; its `.ipynb` is built from it, executed (cwd = chapters/,
as nbval runs it) and written with its outputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def chapter_sources(names: list[str] | None = None) -> list[Path]:
    if names:
        return [Path(name).with_suffix(".py").resolve() for name in names]
    # the chapters, then the appendices (A1_topic.py, ...)
    return sorted([*CHAPTERS.glob("[0-9][0-9]_*.py"), *CHAPTERS.glob("A[0-9]_*.py")])


def cell_inputs(notebook) -> list[tuple[str, str, tuple[str, ...]]]:
    """What a reader edits: each cell's type, source and tags."""
    return [
        (cell.cell_type, cell.source.strip(), tuple(cell.get("metadata", {}).get("tags", [])))
        for cell in notebook.cells
    ]


def problems_with(source: Path) -> list[str]:
    notebook_path = source.with_suffix(".ipynb")
    name = f"chapters/{notebook_path.name}"
    if not notebook_path.exists():
        return [f"{name} is missing: run `make book` (or `make sync`) to build it from {source.name}"]
    from_source = jupytext.read(source)
    notebook = nbformat.read(notebook_path, as_version=4)
    problems = []
    want, have = cell_inputs(from_source), cell_inputs(notebook)
    if want != have:
        first = next(
            (i for i, (a, b) in enumerate(zip(want, have)) if a != b), min(len(want), len(have))
        )
        problems.append(
            f"{name} differs from {source.name} (first at cell {first + 1}; {len(want)} cells in the "
            f".py, {len(have)} in the notebook): run `make book` to re-execute it"
        )
    unexecuted = [
        i + 1
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and cell.source.strip() and cell.get("execution_count") is None
    ]
    if unexecuted:
        problems.append(f"{name} has unexecuted code cells {unexecuted}: run `make book`")
    return problems


def run(source: Path, timeout: int) -> float:
    from nbclient import NotebookClient

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = KERNELSPEC
    notebook.metadata.pop("jupytext", None)  # pairing comes from jupytext.toml
    started = time.perf_counter()
    NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(source.parent)}}
    ).execute()
    nbformat.write(notebook, source.with_suffix(".ipynb"))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="execute chapters in place")
    run_parser.add_argument("chapters", nargs="*")
    run_parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    commands.add_parser("check", help="check every notebook against its source")
    args = parser.parse_args(argv)

    if args.command == "run":
        for source in chapter_sources(args.chapters):
            print(f"executing {source.name} ...", flush=True)
            print(f"  done in {run(source, args.timeout):.1f} s", flush=True)
        return 0
    problems = [problem for source in chapter_sources() for problem in problems_with(source)]
    for problem in problems:
        print(problem)
    if not problems:
        print(f"All {len(chapter_sources())} chapters are paired with executed notebooks.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
