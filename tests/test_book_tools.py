"""tools/book.py: a notebook that drifts from its .py, or was never executed, is caught."""

import sys
from pathlib import Path

import jupytext
import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
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
