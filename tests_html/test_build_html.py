"""tools/build_html.py: what the website's build does to the chapters' staged copies (fast, no browser).

Run by `make test-html` (not by `make test`); the browser check of the built site is tools/check_html.py.
"""

import json
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import build_html  # noqa: E402

SPEC = {
    "$schema": "https://vega.github.io/schema/vega-lite/v5.20.1.json",
    "data": {"values": [{"token": "</script><b>", "weight": 0.5}]},
    "mark": "rect",
}


def chapter(outputs: list[dict], title: str = "# Chapter 9: Training") -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell(f"{title}\n\nSome prose with $d_k$."),
        nbformat.v4.new_code_cell("chart", outputs=[nbformat.from_dict(o) for o in outputs]),
    ]
    return notebook


def display(data: dict) -> dict:
    return {"output_type": "display_data", "data": data, "metadata": {}}


def test_a_vegalite_output_becomes_a_chart_div_and_its_spec():
    original = chapter([display({build_html.VEGALITE_V5: SPEC, "text/plain": "alt.Chart(...)"})])
    staged, charts = build_html.prepare_chapter(original, "09_training")
    assert charts == 1
    data = staged.cells[1].outputs[0]["data"]
    assert build_html.VEGALITE_V5 not in data and data["text/plain"] == "alt.Chart(...)"
    markup = data["text/html"]
    assert '<div class="vega-chart" id="vega-chart-09_training-1"></div>' in markup
    # A "</script>" inside the data cannot close the spec's element early, and the spec reads back intact.
    body = markup.split('data-chart="vega-chart-09_training-1">', 1)[1].rsplit("</script>", 1)[0]
    assert "</" not in body and json.loads(body) == SPEC
    # Only the staged copy changes.
    assert build_html.VEGALITE_V5 in original.cells[1].outputs[0]["data"]


def test_other_vegalite_versions_are_refused_by_name():
    with pytest.raises(SystemExit, match="vnd.vegalite.v6"):
        build_html.prepare_chapter(chapter([display({"application/vnd.vegalite.v6+json": SPEC})]), "09_x")


def test_widgets_fall_back_to_their_text():
    notebook = chapter([display({build_html.WIDGET_VIEW: {"model_id": "abc"}, "text/plain": "100%|####|"})])
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    staged, _ = build_html.prepare_chapter(notebook, "09_training")
    assert staged.cells[1].outputs[0]["data"] == {"text/plain": "100%|####|"}
    assert "widgets" not in staged.metadata


def test_the_run_note_sits_under_the_title_and_links_both_files():
    staged, _ = build_html.prepare_chapter(chapter([]), "09_training")
    first = staged.cells[0].source
    assert first.startswith("# Chapter 9: Training\n\n<div class=\"admonition tip run-this-chapter\">")
    assert 'href="09_training.ipynb"' in first and 'href="09_training.py"' in first
    assert first.rstrip().endswith("Some prose with $d_k$.")
    untitled, _ = build_html.prepare_chapter(chapter([], title="No heading"), "10_x")
    assert "run-this-chapter" in untitled.cells[0].source
    assert untitled.cells[1].source.startswith("No heading")


def test_the_toc_and_the_front_page_list_the_chapters_present(tmp_path, monkeypatch):
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    for stem, title in (("02_two", "# Chapter 2: Two"), ("01_one", "# Chapter 1: One")):
        nbformat.write(chapter([], title=title), chapters / f"{stem}.ipynb")
        (chapters / f"{stem}.py").write_text("# %%\n")
    nbformat.write(chapter([]), chapters / "_scratch.ipynb")  # not a chapter
    monkeypatch.setattr(build_html, "CHAPTERS", chapters)
    monkeypatch.setattr(build_html, "STAGE", tmp_path / "stage")

    listed = build_html.stage()

    assert [stem for stem, _, _ in listed] == ["01_one", "02_two"]
    stage = tmp_path / "stage"
    toc = (stage / "_toc.yml").read_text()
    assert "root: index" in toc and toc.index("chapters/01_one") < toc.index("chapters/02_two")
    assert "_scratch" not in toc
    front = (stage / "index.md").read_text()
    assert "1. [Chapter 1: One](chapters/01_one.ipynb)\n1. [Chapter 2: Two](chapters/02_two.ipynb)" in front
    assert build_html.CHAPTER_LIST_MARKER not in front
    assert sorted(p.name for p in (stage / "_extra" / "chapters").iterdir()) == [
        "01_one.ipynb", "01_one.py", "02_two.ipynb", "02_two.py"
    ]


def stream(name: str, text: str) -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def test_consecutive_prints_to_one_stream_become_one_output():
    outputs = [stream("stdout", "step 1\n"), stream("stdout", "step 2\n"), stream("stderr", "a warning\n"),
               stream("stdout", "done\n"), display({"text/plain": "42"}), stream("stdout", "after\n")]
    original = chapter(outputs)
    staged, _ = build_html.prepare_chapter(original, "09_training")
    assert [(o["output_type"], o.get("name"), o.get("text")) for o in staged.cells[1].outputs] == [
        ("stream", "stdout", "step 1\nstep 2\n"),
        ("stream", "stderr", "a warning\n"),
        ("stream", "stdout", "done\n"),
        ("display_data", None, None),
        ("stream", "stdout", "after\n"),
    ]
    assert len(original.cells[1].outputs) == 6  # only the staged copy changes


def test_code_cells_are_tagged_full_width_and_keep_their_tags():
    notebook = chapter([])
    notebook.cells[1].metadata["tags"] = ["nbval-ignore-output"]
    staged, _ = build_html.prepare_chapter(notebook, "09_training")
    assert staged.cells[1].metadata["tags"] == ["nbval-ignore-output", build_html.FULL_WIDTH]
    assert "tags" not in staged.cells[0].metadata  # the markdown cell is prose, in the text's column
    assert notebook.cells[1].metadata["tags"] == ["nbval-ignore-output"]
