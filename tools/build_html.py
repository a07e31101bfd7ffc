"""Build the book's static website, readable offline, from the executed chapters (they are not re-run).

    python tools/build_html.py            # -> _build/html/index.html

Jupyter Book 1.x does the work. This script stages its source in _build/book_src/:
- book/ (the configuration, the front page, the extension and static files);
- every executed chapter, chapters/NN_topic.ipynb, taken from the chapters present (nothing is listed
  by hand), with these changes to the staged copy only: each altair (vega-lite) output becomes a
  <div class="vega-chart"> and its spec, drawn by vega-embed served from the site itself; a cell's
  consecutive prints to one stream (stdout, stderr) become one output, shown in one box; each code cell
  is tagged full-width, so that it spans the page's right margin (the theme folds the page's table of
  contents away while one is in view) and its longest line fits (book/_static/annotated-bert.css); and a
  "Run this chapter" note under the title links to the notebook and its .py;
- _toc.yml and the front page's chapter list, written from those chapters;
- the original .ipynb and .py of each chapter, copied next to its page (chapters/NN_topic.html).
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
CHAPTERS = ROOT / "chapters"
BUILD = ROOT / "_build"
STAGE = BUILD / "book_src"
HTML = BUILD / "html"

VEGALITE_V5 = "application/vnd.vegalite.v5+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# sphinx-book-theme's tag for content that spans the right margin; book/_static/annotated-bert.css sizes it.
FULL_WIDTH = "full-width"
CHAPTER_LIST_MARKER = "<!-- chapter list: written by tools/build_html.py from the chapters present -->"


def chapter_notebooks() -> list[Path]:
    """The executed chapters present, in the book's order: chapters/NN_topic.ipynb, then the appendices (A1_...)."""
    return sorted([*CHAPTERS.glob("[0-9][0-9]_*.ipynb"), *CHAPTERS.glob("A[0-9]_*.ipynb")])


def chapter_title(notebook, fallback: str) -> str:
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def chart_markup(spec: dict, chart_id: str) -> str:
    """A vega-lite spec: a div to draw into, and the spec beside it (for _ext/annotated-bert-charts.js)."""
    # "</" inside the JSON would end the <script> element early.
    spec_json = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")
    return (
        f'<div class="vega-chart" id="{chart_id}"></div>\n'
        f'<script type="application/json" class="vega-chart-spec" data-chart="{chart_id}">'
        f"{spec_json}</script>\n"
    )


def run_note(stem: str) -> str:
    """The raw-HTML note under a chapter's title; the two files sit next to the page."""
    ipynb, py = html.escape(f"{stem}.ipynb"), html.escape(f"{stem}.py")
    return (
        '<div class="admonition tip run-this-chapter">\n'
        '<p class="admonition-title">Run this chapter</p>\n'
        f'<p>This page is the executed notebook <a class="run-notebook" href="{ipynb}" download>'
        f"<code>chapters/{ipynb}</code></a>, outputs as committed; its source is "
        f'<a class="run-source" href="{py}" download><code>chapters/{py}</code></a> (jupytext percent '
        "format). In a clone of the book, <code>make lab</code> opens it in JupyterLab and "
        "<code>make test</code> runs it again, checking every output.</p>\n"
        "</div>\n"
    )


def merge_streams(outputs: list) -> list:
    """Consecutive stream outputs of one stream (one print after another) as one output: one box on the page."""
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            output.get("output_type") == "stream"
            and previous is not None
            and previous.get("output_type") == "stream"
            and previous.get("name") == output.get("name")
        ):
            previous["text"] = _stream_text(previous) + _stream_text(output)
        else:
            merged.append(output)
    return merged


def _stream_text(output) -> str:
    text = output.get("text", "")
    return "".join(text) if isinstance(text, list) else text


def prepare_chapter(notebook, stem: str):
    """The staged copy of one chapter: charts as vega-embed markup, widgets as text, one box per stream's run of
    prints, code cells full-width, the run note."""
    notebook = copy.deepcopy(notebook)
    charts = 0
    for cell in notebook.cells:
        if cell.cell_type == "code":
            if "outputs" in cell:
                cell.outputs = merge_streams(cell.outputs)
            tags = cell.metadata.setdefault("tags", [])
            if FULL_WIDTH not in tags:
                tags.append(FULL_WIDTH)
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            other_vegalite = [k for k in data if "vegalite" in k and k != VEGALITE_V5]
            if other_vegalite:
                raise SystemExit(
                    f"chapters/{stem}.ipynb: {other_vegalite[0]} is not drawn by the site "
                    f"(it draws {VEGALITE_V5}, altair 5's output)"
                )
            if VEGALITE_V5 in data:
                charts += 1
                spec = data.pop(VEGALITE_V5)
                data["text/html"] = chart_markup(spec, f"vega-chart-{stem}-{charts}")
            # A widget (a tqdm bar) needs the widget manager from a CDN: show its text form instead.
            if WIDGET_VIEW in data and len(data) > 1:
                data.pop(WIDGET_VIEW)
    notebook.metadata.pop("widgets", None)

    note = run_note(stem)
    first = notebook.cells[0] if notebook.cells else None
    if first is not None and first.cell_type == "markdown" and first.source.startswith("# "):
        title, _, rest = first.source.partition("\n")
        first.source = f"{title}\n\n{note}\n{rest.lstrip(chr(10))}"
    else:
        notebook.cells.insert(0, nbformat.v4.new_markdown_cell(note))
    return notebook, charts


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def stage() -> list[tuple[str, str, int]]:
    """Write _build/book_src/; return (stem, title, charts) for each chapter."""
    if STAGE.exists():
        shutil.rmtree(STAGE)
    shutil.copytree(BOOK, STAGE, ignore=shutil.ignore_patterns("__pycache__", "_build"))

    chapters = []
    for path in chapter_notebooks():
        stem = path.stem
        notebook = nbformat.read(path, as_version=4)
        staged, charts = prepare_chapter(notebook, stem)
        write(STAGE / "chapters" / path.name, nbformat.writes(staged) + "\n")
        # The originals, served next to the page: chapters/NN_topic.{ipynb,py}.
        extra = STAGE / "_extra" / "chapters"
        extra.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, extra / path.name)
        source = path.with_suffix(".py")
        if source.exists():
            shutil.copy2(source, extra / source.name)
        chapters.append((stem, chapter_title(notebook, stem), charts))
    if not chapters:
        raise SystemExit("no executed chapters (chapters/NN_topic.ipynb) to build")

    main_path = [chapter for chapter in chapters if not chapter[0].startswith("A")]
    appendices = [chapter for chapter in chapters if chapter[0].startswith("A")]
    toc = ["# Written by tools/build_html.py from the chapters present.", "format: jb-book", "root: index",
           "parts:"]
    for caption, part in (("Chapters", main_path), ("Appendices", appendices)):
        if part:
            toc += [f"- caption: {caption}", "  chapters:"] + [f"  - file: chapters/{stem}" for stem, _, _ in part]
    write(STAGE / "_toc.yml", "\n".join(toc) + "\n")

    intro = (BOOK / "index.md").read_text(encoding="utf-8")
    if CHAPTER_LIST_MARKER not in intro:
        raise SystemExit(f"book/index.md lost its marker {CHAPTER_LIST_MARKER!r}")
    listing = "\n".join(f"1. [{title}](chapters/{stem}.ipynb)" for stem, title, _ in main_path)
    if appendices:
        listing += "\n\nThe appendices hold the plumbing a reader may skip:\n\n" + "\n".join(
            f"- [{title}](chapters/{stem}.ipynb)" for stem, title, _ in appendices)
    write(STAGE / "index.md", intro.replace(CHAPTER_LIST_MARKER, listing))
    return chapters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    start = time.perf_counter()
    chapters = stage()
    for path in (HTML, BUILD / ".doctrees", BUILD / "jupyter_execute"):
        if path.exists():
            shutil.rmtree(path)
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(STAGE), "--path-output", str(ROOT), "--builder", "html"]
    command.append("--quiet")  # Sphinx's warnings still show
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode != 0:
        return result.returncode
    if not (HTML / "index.html").exists():
        print(f"the build wrote no {HTML.relative_to(ROOT)}/index.html", file=sys.stderr)
        return 1
    charts = sum(n for _, _, n in chapters)
    print(
        f"built {HTML.relative_to(ROOT)}/index.html: {len(chapters)} chapters "
        f"({', '.join(stem for stem, _, _ in chapters)}), {charts} altair charts, "
        f"in {time.perf_counter() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
