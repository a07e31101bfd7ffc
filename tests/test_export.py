"""The exporter: chapters' marked cells become the package, and nothing else does."""

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import export  # noqa: E402


def write_chapter(chapters: Path, name: str, cells: list[str]) -> None:
    """A chapter in jupytext percent format, one `# %%` per cell."""
    chapters.mkdir(exist_ok=True)
    body = "\n\n".join("# %%\n" + textwrap.dedent(cell).strip() for cell in cells)
    (chapters / name).write_text(body + "\n")


@pytest.fixture
def book(tmp_path):
    chapters, package = tmp_path / "chapters", tmp_path / "pkg"
    write_chapter(chapters, "01_first.py", [
        """
        #| export: alpha
        import math

        import torch


        def double(x):
            return 2 * x
        """,
        "print('not exported')",
        """
        #| export: alpha
        import math


        def root(x):
            return math.sqrt(x)
        """,
    ])
    write_chapter(chapters, "02_second.py", [
        """
        #| export: alpha
        from annotated_bert.alpha import double


        def quadruple(x):
            return double(double(x))
        """,
        """
        #| export: beta
        from annotated_bert.alpha import root
        import os


        def half_root(x):
            return root(x) / 2
        """,
    ])
    return chapters, package


def test_marked_cells_become_modules_headed_by_their_chapters(book):
    chapters, package = book
    changed = export.export(chapters, package)
    assert sorted(changed) == ["__init__.py", "alpha.py", "beta.py"]
    alpha = (package / "alpha.py").read_text()
    assert "chapters/01_first.py" in alpha.splitlines()[1]
    assert "chapters/02_second.py" in alpha.splitlines()[2]
    assert "Do not edit" in alpha
    assert "not exported" not in alpha
    assert alpha.index("def double") < alpha.index("def root") < alpha.index("def quadruple")


def test_imports_are_hoisted_once_grouped_and_self_imports_dropped(book):
    chapters, package = book
    export.export(chapters, package)
    alpha = (package / "alpha.py").read_text()
    assert alpha.count("import math") == 1
    assert "from annotated_bert.alpha" not in alpha  # defined in this very file
    assert alpha.index("import math") < alpha.index("import torch") < alpha.index("def double")
    beta = (package / "beta.py").read_text()
    # standard library before this package, whatever order the cell had
    assert beta.index("import os") < beta.index("from annotated_bert.alpha import root")


def test_generated_modules_import_and_work(book, tmp_path, monkeypatch):
    chapters, package = book
    export.export(chapters, package)
    # Load the generated files as the package `annotated_bert` they import from.
    monkeypatch.setitem(sys.modules, "annotated_bert", type(sys)("annotated_bert"))
    for name in ("alpha", "beta"):
        spec = importlib.util.spec_from_file_location(f"annotated_bert.{name}", package / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, f"annotated_bert.{name}", module)
        spec.loader.exec_module(module)
    assert sys.modules["annotated_bert.alpha"].quadruple(3) == 12
    assert sys.modules["annotated_bert.beta"].half_root(16) == 2


def test_check_reports_stale_and_orphaned_files(book):
    chapters, package = book
    export.export(chapters, package)
    assert export.stale_files(chapters, package) == []
    assert export.main(["--check", "--chapters", str(chapters), "--package", str(package)]) == 0

    (package / "alpha.py").write_text((package / "alpha.py").read_text() + "\n# edited by hand\n")
    (package / "orphan.py").write_text("x = 1\n")
    assert export.stale_files(chapters, package) == ["alpha.py", "orphan.py"]
    assert export.main(["--check", "--chapters", str(chapters), "--package", str(package)]) == 1

    export.export(chapters, package)
    assert not (package / "orphan.py").exists()
    assert export.stale_files(chapters, package) == []


def test_a_chapter_edit_makes_the_package_stale(book):
    chapters, package = book
    export.export(chapters, package)
    source = chapters / "01_first.py"
    source.write_text(source.read_text().replace("2 * x", "x + x"))
    assert export.stale_files(chapters, package) == ["alpha.py"]


def test_init_offers_the_public_api_of_existing_modules(tmp_path):
    chapters = tmp_path / "chapters"
    write_chapter(chapters, "06_model.py", ["#| export: config\nclass BertConfig: pass",
                                            "#| export: model\nclass BertModel: pass"])
    init = export.render_package(chapters)["__init__.py"]
    assert "from annotated_bert.config import BertConfig" in init
    assert "from annotated_bert.model import BertModel" in init
    assert "tokenization" not in init


@pytest.mark.parametrize("directive", ["#| export attention", "#|export:", "#| exports: attention"])
def test_malformed_directive_is_an_error_naming_the_cell(tmp_path, directive):
    chapters = tmp_path / "chapters"
    write_chapter(chapters, "01_first.py", ["x = 1", f"{directive}\ny = 2"])
    with pytest.raises(export.ExportError, match=r"01_first\.py, cell 2: malformed export directive"):
        export.collect(chapters)


def test_directive_below_the_first_line_is_an_error(tmp_path):
    chapters = tmp_path / "chapters"
    write_chapter(chapters, "01_first.py", ["import math\n#| export: alpha\ny = 2"])
    with pytest.raises(export.ExportError, match="must be the cell's first line"):
        export.collect(chapters)


def test_invalid_python_is_an_error_naming_the_cell(tmp_path):
    chapters = tmp_path / "chapters"
    write_chapter(chapters, "01_first.py", ["#| export: alpha\ndef broken(:\n    pass"])
    with pytest.raises(export.ExportError, match=r"01_first\.py, cell 1: the exported cell is not valid"):
        export.collect(chapters)


def test_a_module_may_not_import_a_later_chapter(tmp_path):
    chapters = tmp_path / "chapters"
    write_chapter(chapters, "01_first.py", ["#| export: early\nfrom annotated_bert.late import thing\n\nx = thing"])
    write_chapter(chapters, "02_second.py", ["#| export: late\nthing = 1"])
    with pytest.raises(export.ExportError, match="layered like the book"):
        export.collect(chapters)


def test_importing_a_module_no_chapter_exports_is_an_error(tmp_path):
    chapters = tmp_path / "chapters"
    write_chapter(chapters, "01_first.py", ["#| export: early\nfrom annotated_bert.nowhere import thing"])
    with pytest.raises(export.ExportError, match="which no chapter exports"):
        export.collect(chapters)


def test_only_numbered_chapters_are_read(tmp_path):
    chapters = tmp_path / "chapters"
    write_chapter(chapters, "01_first.py", ["#| export: alpha\nx = 1"])
    write_chapter(chapters, "scratch.py", ["#| export: junk\ny = 2"])
    assert set(export.collect(chapters)) == {"alpha"}


def test_a_class_continued_in_a_later_cell_is_one_class_in_the_package(tmp_path):
    chapters = tmp_path / "chapters"
    write_chapter(chapters, "01_first.py", [
        '#| export: alpha\nclass Greeter:\n    """Says hello."""\n\n    def hello(self):\n        return "hello"',
        "#| export: alpha\n# Greeter, continued.\nclass Greeter(Greeter):\n    def bye(self):\n        return self.hello() + ' bye'",
    ])
    text = export.render_package(chapters)["alpha.py"]
    assert text.count("class Greeter") == 1 and "Greeter(Greeter)" not in text
    namespace = {}
    exec(text, namespace)
    assert namespace["Greeter"]().bye() == "hello bye"


def test_a_continuation_without_its_class_is_an_error(tmp_path):
    chapters = tmp_path / "chapters"
    write_chapter(chapters, "01_first.py", ["#| export: alpha\nclass Lonely(Lonely):\n    def f(self):\n        pass"])
    with pytest.raises(export.ExportError, match="continues class Lonely, but no earlier cell"):
        export.collect(chapters)


def test_appendices_are_read_after_the_chapters(tmp_path):
    chapters = tmp_path / "chapters"
    write_chapter(chapters, "A1_extra.py", ["#| export: alpha\ny = x + 1"])
    write_chapter(chapters, "01_first.py", ["#| export: alpha\nx = 1"])
    namespace = {}
    exec(export.render_package(chapters)["alpha.py"], namespace)
    assert namespace["y"] == 2 and export.collect(chapters)["alpha"].chapters == ["01_first.py", "A1_extra.py"]


def test_an_appendix_module_stands_where_a_chapter_first_uses_it(tmp_path):
    chapters = tmp_path / "chapters"
    write_chapter(chapters, "02_second.py", ["from annotated_bert.plumbing import helper\nhelper()"])
    write_chapter(chapters, "03_third.py", ["#| export: later\nz = 3"])
    write_chapter(chapters, "A1_plumbing.py", ["#| export: plumbing\ndef helper():\n    return 1"])
    write_chapter(chapters, "04_fourth.py", ["#| export: user\nfrom annotated_bert.plumbing import helper\n\nw = helper()"])
    modules = export.collect(chapters)  # chapter 4 may use what chapter 2 already used
    assert modules["plumbing"].position == "02_second.py"
    # ... but the appendix's module, standing in chapter 2, may not import chapter 3's
    write_chapter(chapters, "A1_plumbing.py", ["#| export: plumbing\nfrom annotated_bert.later import z\n\nhelper = z"])
    with pytest.raises(export.ExportError, match=r"'plumbing' \(from 02_second.py\) imports annotated_bert.later"):
        export.collect(chapters)
