"""The package is layered like the book: its modules' imports (at the top or inside functions) form no cycle,
and `model` needs nothing written after chapter 6."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "annotated_bert"


def imported_modules(path: Path) -> set[str]:
    """The annotated_bert modules a file imports anywhere in it (top level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("annotated_bert."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("annotated_bert.")}
    return found


def test_the_package_imports_form_no_cycle():
    graph = {path.stem: imported_modules(path) for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    assert all(target in graph for targets in graph.values() for target in targets)
    state = {}

    def visit(module, trail):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", f"import cycle: {' -> '.join([*trail, module])}"
        state[module] = "open"
        for target in sorted(graph[module]):
            visit(target, [*trail, module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])


def test_model_imports_only_what_comes_before_it():
    assert imported_modules(PACKAGE / "model.py") <= {"attention", "config", "embeddings", "encoder", "pretrained",
                                                      "checkpoints"}
    assert imported_modules(PACKAGE / "pretrained.py") <= {"config", "checkpoints"}
    assert imported_modules(PACKAGE / "checkpoints.py") <= {"config", "files"}  # the codec knows no model class
    assert imported_modules(PACKAGE / "files.py") == set()                     # safe writing: the standard library
    assert imported_modules(PACKAGE / "config.py") == set()
