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
