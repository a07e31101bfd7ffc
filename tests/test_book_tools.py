"""tools/book.py: a notebook that drifts from its .py, or was never executed, is caught; tools/search.py: the
search results shipped are what its recipes train."""

import json
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import book  # noqa: E402

SOURCE = """# %% [markdown]
# # A chapter

# %%
x = 1 + 1
x
"""


def make_pair(tmp_path: Path, executed: bool = True) -> Path:
    source = tmp_path / "01_tiny.py"
    source.write_text(SOURCE)
    notebook = jupytext.read(source)
    if executed:
        for count, cell in enumerate(c for c in notebook.cells if c.cell_type == "code"):
            cell.execution_count = count + 1
    nbformat.write(notebook, source.with_suffix(".ipynb"))
    return source


def test_a_faithful_executed_pair_has_no_problems(tmp_path):
    assert book.problems_with(make_pair(tmp_path)) == []


def test_an_edited_source_is_caught(tmp_path):
    source = make_pair(tmp_path)
    source.write_text(SOURCE.replace("1 + 1", "1 + 2"))
    [problem] = book.problems_with(source)
    assert "differs from 01_tiny.py (first at cell 2" in problem


def test_a_changed_tag_is_caught(tmp_path):
    source = make_pair(tmp_path)
    source.write_text(SOURCE.replace("# %%\nx", '# %% tags=["nbval-ignore-output"]\nx'))
    assert any("differs" in problem for problem in book.problems_with(source))


def test_an_unexecuted_notebook_is_caught(tmp_path):
    [problem] = book.problems_with(make_pair(tmp_path, executed=False))
    assert "unexecuted code cells [2]" in problem


def test_a_missing_notebook_is_caught(tmp_path):
    source = make_pair(tmp_path)
    source.with_suffix(".ipynb").unlink()
    [problem] = book.problems_with(source)
    assert "01_tiny.ipynb is missing" in problem


def test_the_shipped_search_results_are_what_their_recipes_train():
    """checkpoints/search/NAME.json was written by tools/search.py's recipe NAME: same configuration."""
    import importlib.util
    from dataclasses import fields, replace

    from annotated_bert.pretrain import argument_parser
    from annotated_bert.training import TrainingConfig

    spec = importlib.util.spec_from_file_location("search", ROOT / "tools" / "search.py")
    search = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(search)
    parser = argument_parser()

    def recipe_config(name):
        args = parser.parse_args(search.command(name)[3:])
        return TrainingConfig(**{field.name: getattr(args, field.name) for field in fields(TrainingConfig)})

    configs = {name: recipe_config(name) for name in search.RECIPES}        # every recipe's flags parse
    results = sorted((ROOT / "checkpoints" / "search").glob("*.json"))
    assert results, "no search results shipped"
    for path in results:
        record = json.loads(path.read_text())
        assert path.stem in configs, f"{path.name} has no recipe in tools/search.py"
        shipped = TrainingConfig.from_dict(record["config"])
        # Resume states (checkpoint_every) do not change what is trained; every other field must agree.
        assert replace(shipped, checkpoint_every=0) == replace(configs[path.stem], checkpoint_every=0), path.name
        assert record["recipe"]["name"] == path.stem and "report" in record


def test_the_shipped_learning_curves_are_of_the_tasks_the_chapter_builds():
    """checkpoints/transfer/TASK.json (tools/transfer.py) holds, for every method and n, one prediction per test
    example of the task that annotated_bert.transfer builds today."""
    from annotated_bert import transfer
    from annotated_bert.corpus import load_shakespeare

    scenes = load_shakespeare()
    for name, make in (("genre", transfer.genre_task), ("acceptability", transfer.acceptability_task)):
        record = json.loads((ROOT / "checkpoints" / "transfer" / f"{name}.json").read_text())
        task = make(scenes)
        assert record["test"] == [example._asdict() for example in task.test], name
        assert record["sizes"] == list(transfer.LABELLED)
        for method, points in record["curves"].items():
            assert sorted(points, key=int) == [str(n) for n in transfer.LABELLED], (name, method)
            assert all(len(point["predictions"]) == len(task.test) for point in points.values()), (name, method)


# ---- the book's shape: a main path a reader can finish, cells a reader can hold -------------------------------

MAIN_PATH_LINES = 8_000  # chapters 01-10; the appendices hold the plumbing a reader may skip
CELL_LINES = 40


def test_the_main_path_stays_within_its_length():
    chapters = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.py"))
    assert len(chapters) == 10
    lines = sum(len(chapter.read_text().splitlines()) for chapter in chapters)
    assert lines <= MAIN_PATH_LINES, f"chapters 01-10 hold {lines} lines, more than {MAIN_PATH_LINES}"


def test_no_code_cell_is_longer_than_a_reader_can_hold():
    long_cells = [
        f"{source.name}, cell {number}: {len(cell.source.splitlines())} lines"
        for source in book.chapter_sources()
        for number, cell in enumerate(jupytext.read(source).cells, start=1)
        if cell.cell_type == "code" and len(cell.source.splitlines()) > CELL_LINES
    ]
    assert not long_cells, long_cells


def test_every_appendix_is_a_chapter_like_the_others():
    appendices = [source.name for source in book.chapter_sources() if source.name.startswith("A")]
    assert appendices == sorted(appendices) and len(appendices) >= 5, appendices
    assert all(not book.problems_with(ROOT / "chapters" / name) for name in appendices)


# ---- reading the book: code lines that fit the website's column, chapters that open as notebooks -------------


def code_columns(line: str) -> int:
    """How many monospace columns a line takes: a wide character (中, 😀) takes two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in line)


def test_every_code_line_fits_the_website_s_code_column():
    """book/_static/annotated-bert.css sizes the website's code for --annotated-bert-code-columns columns (so
    that a line that long shows whole at 1280 px; tools/check_html.py checks it in a browser): no chapter's
    code line is longer."""
    import re

    css = (ROOT / "book" / "_static" / "annotated-bert.css").read_text(encoding="utf-8")
    [columns] = re.findall(r"--annotated-bert-code-columns:\s*(\d+)\s*;", css)
    too_long = [
        f"{source.name}, cell {number}: {code_columns(line)} columns: {line[:60]}..."
        for source in book.chapter_sources()
        for number, cell in enumerate(jupytext.read(source).cells, start=1)
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if code_columns(line) > int(columns)
    ]
    assert not too_long, f"longer than the website's {columns} columns: {too_long}"


def test_jupyterlab_opens_a_chapter_s_py_as_a_notebook(tmp_path):
    """`make setup` writes tools/jupyterlab-overrides.json into the environment's own JupyterLab settings
    ($(VENV)/share/jupyter/lab/settings/overrides.d/, never the user's home), where JupyterLab reads it: a
    double click opens a .py with jupytext's notebook viewer."""
    import subprocess

    from jupyter_core.paths import jupyter_path
    from jupyterlab.labapp import LabApp
    from jupyterlab_server.settings_utils import get_settings

    source = ROOT / "tools" / "jupyterlab-overrides.json"
    viewers = json.loads(source.read_text())["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers == {"python": "Jupytext Notebook"}
    # The name of the viewer (the widget factory) that the installed jupytext registers.
    jupytext_lab = next(Path(d) / "jupyterlab-jupytext" for d in jupyter_path("labextensions")
                        if (Path(d) / "jupyterlab-jupytext").is_dir())
    assert any('"Jupytext Notebook"' in script.read_text(encoding="utf-8", errors="replace")
               for script in (jupytext_lab / "static").glob("*.js"))

    # The Makefile's rule, on an environment of its own (installed already: nothing else runs).
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()
    make = ["make", "--no-print-directory", "-C", str(ROOT), f"VENV={venv}", "-o", str(venv / ".installed")]
    subprocess.run([*make, "setup"], check=True, capture_output=True, text=True)
    settings_dir = venv / "share" / "jupyter" / "lab" / "settings"
    assert (settings_dir / "overrides.d" / "annotated-bert.json").read_text() == source.read_text()

    # JupyterLab reads an environment's settings from {sys.prefix}/share/jupyter/lab/settings; there, the
    # default viewer of python files is jupytext's (user settings left empty).
    assert Path(LabApp().app_settings_dir) == Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings"
    plugin, _ = get_settings(str(settings_dir), LabApp().schemas_dir, str(tmp_path / "user-settings"),
                             schema_name="@jupyterlab/docmanager-extension:plugin",
                             labextensions_path=jupyter_path("labextensions"))
    assert plugin["schema"]["properties"]["defaultViewers"]["default"] == {"python": "Jupytext Notebook"}
    installed = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.d" / "annotated-bert.json"
    if (Path(sys.prefix) / ".installed").exists():  # this environment came from `make setup`
        assert installed.read_text() == source.read_text(), "run `make setup` to install JupyterLab's settings"
