"""Write the package `annotated_bert` from the chapters' exported cells.

A code cell whose first line is the directive

    #| export: attention

belongs to the module `src/annotated_bert/attention.py`. The exporter reads every
`chapters/NN_topic.py` in book order, gathers the exported cells of each module, moves the
imports at the top of each cell to the top of the module (once each), drops imports of the
module from itself (a later chapter that extends `attention` imports `attention()` in its
notebook, but in the package both live in one file), and writes each module headed by the
chapters it comes from. It also writes `__init__.py` with the public API of the modules that
exist so far.

    python tools/export.py            # write the package
    python tools/export.py --check    # exit 1, naming each stale file, if the package is out of date

Rule 4 of the design is enforced here: a module may import only modules that begin in the
same or an earlier chapter, so the package is layered like the book. Appendix chapters
(`chapters/A1_topic.py`, ...) come after chapter 10 in reading order, but a module that begins in an
appendix stands where the book first uses it: `corpus`, written in appendix A1 and imported by
chapter 5's cells, counts as a module of chapter 5, and may import only what chapter 5 may.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jupytext

PACKAGE = "annotated_bert"
DIRECTIVE = re.compile(r"^#\|\s*export\s*:\s*(?P<module>\S+)\s*$")
LOOKS_LIKE_DIRECTIVE = re.compile(r"^#\|\s*export")
CHAPTER_NAME = re.compile(r"^(\d\d|A\d)_\w+\.py$")  # a chapter, or an appendix

# The names `from annotated_bert import ...` offers, module by module. A module that does not
# exist yet (its chapter is not written) is left out of __init__.py.
PUBLIC_API = {
    "config": ["BertConfig"],
    "model": ["BertModel"],
    "pretraining": ["BertForPreTraining"],
    "tokenization": ["BertTokenizer"],
    "finetune": ["BertForSequenceClassification"],
}

# Modules that are also commands (`python -m annotated_bert.pretrain`): the exporter ends them with the
# `if __name__ == "__main__":` guard, which a chapter cannot hold (in a notebook __name__ is "__main__" too).
COMMANDS = {
    "pretrain": "main",
}


class ExportError(Exception):
    """A chapter asks for something the exporter cannot do; the message names the cell."""


@dataclass
class Module:
    name: str
    first_chapter: str
    position: str = ""  # where the module stands in the layering: first_chapter, or an earlier first use
    chapters: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    blocks: list[tuple[str, str]] = field(default_factory=list)  # (chapter, code)


def chapter_files(chapters_dir: Path) -> list[Path]:
    """The chapters, then the appendices (digits sort before letters: 01 ... 10, A1, A2 ...)."""
    return sorted(p for p in chapters_dir.glob("*.py") if CHAPTER_NAME.match(p.name))


def first_uses(chapters_dir: Path) -> dict[str, str]:
    """Package module -> the first chapter any of whose code cells imports it."""
    uses: dict[str, str] = {}
    for chapter in chapter_files(chapters_dir):
        for cell in jupytext.read(chapter).cells:
            if cell.cell_type != "code" or PACKAGE not in cell.source:
                continue
            try:
                used = {module for node in ast.walk(ast.parse(cell.source))
                        if isinstance(node, (ast.Import, ast.ImportFrom))
                        for module in imported_package_modules(ast.unparse(node))}
            except SyntaxError:  # a cell with IPython syntax (%magic, !command): read its import lines
                used = set(re.findall(rf"^\s*(?:from|import)\s+{PACKAGE}\.(\w+)", cell.source, re.MULTILINE))
            for module in sorted(used):
                uses.setdefault(module, chapter.name)
    return uses


def exported_cells(chapter: Path) -> list[tuple[str, str, int]]:
    """(module, code without the directive, cell number) for each exported cell of a chapter."""
    notebook = jupytext.read(chapter)
    cells = []
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type != "code":
            continue
        first_line, _, rest = cell.source.partition("\n")
        match = DIRECTIVE.match(first_line.strip())
        if match:
            cells.append((match["module"], rest, number))
        elif LOOKS_LIKE_DIRECTIVE.match(first_line.strip()):
            raise ExportError(
                f"{chapter.name}, cell {number}: malformed export directive {first_line.strip()!r}; "
                "write it as '#| export: module_name'"
            )
        elif any(LOOKS_LIKE_DIRECTIVE.match(line.strip()) for line in cell.source.splitlines()[1:]):
            raise ExportError(
                f"{chapter.name}, cell {number}: the export directive must be the cell's first line"
            )
    return cells


def split_leading_imports(code: str, where: str) -> tuple[list[str], str]:
    """Split a cell into its leading import statements and the code after them."""
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        raise ExportError(f"{where}: the exported cell is not valid Python: {error}") from error
    lines = code.splitlines()
    imports, body_start = [], 0
    for node in tree.body:
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            break
        imports.append("\n".join(lines[node.lineno - 1 : node.end_lineno]))
        body_start = node.end_lineno
    body = "\n".join(lines[body_start:]).strip("\n")
    return imports, body


def imported_package_modules(statement: str) -> set[str]:
    """The annotated_bert modules an import statement uses."""
    modules = set()
    for node in ast.walk(ast.parse(statement)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == PACKAGE:
                if len(parts) > 1:
                    modules.add(parts[1])
                else:
                    modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE and len(parts) > 1:
                    modules.add(parts[1])
    return modules


def continued_class(body: str) -> str | None:
    """The name X when a cell's code is one `class X(X):` (a class continued from an earlier cell), else None."""
    tree = ast.parse(body)
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.ClassDef):
        return None
    node = tree.body[0]
    if node.decorator_list or node.keywords or [ast.unparse(base) for base in node.bases] != [node.name]:
        return None
    return node.name


def merge_continuation(module: Module, body: str, where: str) -> None:
    """Append the methods of a `class X(X):` cell to the class X of an earlier cell of the same module, so that
    the package holds one class. In the notebook the cell subclasses X under the same name, which adds them."""
    name = continued_class(body)
    node = ast.parse(body).body[0]
    if ast.get_docstring(node) is not None:
        raise ExportError(f"{where}: a continued class takes its docstring from the first cell; {name} has one here")
    methods = "\n".join(body.splitlines()[node.lineno:]).strip("\n")       # after the `class X(X):` line
    for index in range(len(module.blocks) - 1, -1, -1):
        chapter, earlier = module.blocks[index]
        for defined in ast.parse(earlier).body:
            if isinstance(defined, ast.ClassDef) and defined.name == name:
                lines = earlier.splitlines()
                merged = [*lines[:defined.end_lineno], "", methods, *lines[defined.end_lineno:]]
                module.blocks[index] = (chapter, "\n".join(merged))
                return
    raise ExportError(f"{where}: continues class {name}, but no earlier cell of module {module.name!r} defines it")


def collect(chapters_dir: Path) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for chapter in chapter_files(chapters_dir):
        for module_name, code, number in exported_cells(chapter):
            where = f"{chapter.name}, cell {number}"
            if not module_name.isidentifier() or module_name.startswith("_"):
                raise ExportError(f"{where}: {module_name!r} is not a valid public module name")
            module = modules.setdefault(module_name, Module(module_name, chapter.name))
            if chapter.name not in module.chapters:
                module.chapters.append(chapter.name)
            imports, body = split_leading_imports(code, where)
            for statement in imports:
                if imported_package_modules(statement) == {module_name}:
                    continue  # the name is defined in this very module
                if statement not in module.imports:
                    module.imports.append(statement)
            if body and continued_class(body):
                merge_continuation(module, body, where)
            elif body:
                module.blocks.append((chapter.name, body))
    uses = first_uses(chapters_dir)
    for module in modules.values():
        in_appendix = module.first_chapter.startswith("A")  # a chapter's module stands in its chapter, always
        module.position = min(module.first_chapter, uses.get(module.name, "~")) if in_appendix else module.first_chapter
    check_layering(modules)
    return modules


def check_layering(modules: dict[str, Module]) -> None:
    """A module may import only modules that stand in the same or an earlier chapter (see `position`)."""
    for module in modules.values():
        for statement in module.imports:
            for used in imported_package_modules(statement):
                if used == module.name:
                    continue
                if used not in modules:
                    raise ExportError(
                        f"module {module.name!r} imports {PACKAGE}.{used}, which no chapter exports"
                    )
                if modules[used].position > module.position:
                    raise ExportError(
                        f"module {module.name!r} (from {module.position}) imports {PACKAGE}.{used}, "
                        f"which begins later, in {modules[used].position}: the package must be "
                        "layered like the book"
                    )


def group_imports(statements: list[str]) -> list[list[str]]:
    """__future__, standard library, third party, this package: the usual four groups."""
    groups: list[list[str]] = [[], [], [], []]
    for statement in statements:
        top = statement.split()[1].split(".")[0]
        if top == "__future__":
            groups[0].append(statement)
        elif top in sys.stdlib_module_names:
            groups[1].append(statement)
        elif top == PACKAGE:
            groups[3].append(statement)
        else:
            groups[2].append(statement)
    # Within a group: plain imports first, then from-imports, each alphabetical by module.
    return [sorted(group, key=lambda s: (s.startswith("from"), s.split()[1])) for group in groups if group]


def render_module(module: Module, chapters_dir_name: str) -> str:
    sources = "\n".join(f"#   {chapters_dir_name}/{name}" for name in module.chapters)
    parts = [
        f"# Generated by tools/export.py from the cells marked '#| export: {module.name}' in:\n"
        f"{sources}\n"
        "# Do not edit this file: edit the chapter and run `make export`.",
    ]
    groups = group_imports(module.imports)
    if groups:
        parts.append("\n\n".join("\n".join(group) for group in groups))
    current_chapter = None
    for chapter, body in module.blocks:
        if chapter != current_chapter:
            parts.append(f"# ---- {chapters_dir_name}/{chapter} " + "-" * max(4, 70 - len(chapter)))
            current_chapter = chapter
        parts.append(body)
    if module.name in COMMANDS:
        parts.append(f'if __name__ == "__main__":\n    raise SystemExit({COMMANDS[module.name]}())')
    text = "\n\n\n".join(parts) + "\n"
    compile(text, f"{PACKAGE}/{module.name}.py", "exec")
    return text


def render_init(modules: dict[str, Module]) -> str:
    lines = [
        "# Generated by tools/export.py. Do not edit this file: run `make export`.",
        '"""The Annotated BERT: BERT built chapter by chapter; each module comes from a chapter."""',
        "",
        '__version__ = "0.1.0"',
    ]
    for module_name, names in PUBLIC_API.items():
        if module_name in modules:
            lines.append(f"from {PACKAGE}.{module_name} import {', '.join(names)}  # noqa: E402")
    lines.append("")
    lines.append(f"modules = {sorted(modules)!r}")
    return "\n".join(lines) + "\n"


def render_package(chapters_dir: Path) -> dict[str, str]:
    """File name -> text of every file of the package."""
    modules = collect(chapters_dir)
    files = {f"{name}.py": render_module(module, chapters_dir.name) for name, module in modules.items()}
    files["__init__.py"] = render_init(modules)
    return files


def stale_files(chapters_dir: Path, package_dir: Path) -> list[str]:
    """What `export` would change: files to write or rewrite, and generated files to delete."""
    wanted = render_package(chapters_dir)
    stale = [
        name
        for name, text in sorted(wanted.items())
        if not (package_dir / name).exists() or (package_dir / name).read_text() != text
    ]
    stale += [p.name for p in sorted(package_dir.glob("*.py")) if p.name not in wanted]
    return stale


def export(chapters_dir: Path, package_dir: Path) -> list[str]:
    wanted = render_package(chapters_dir)
    package_dir.mkdir(parents=True, exist_ok=True)
    changed = stale_files(chapters_dir, package_dir)
    for name in changed:
        path = package_dir / name
        if name in wanted:
            path.write_text(wanted[name])
        else:
            path.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    parser.add_argument("--chapters", type=Path, default=root / "chapters")
    parser.add_argument("--package", type=Path, default=root / "src" / PACKAGE)
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = stale_files(args.chapters, args.package)
            if stale:
                print(f"The package is stale against the chapters: {', '.join(stale)}. Run `make export`.")
                return 1
            print("The package is up to date with the chapters.")
            return 0
        changed = export(args.chapters, args.package)
    except ExportError as error:
        print(f"export failed: {error}", file=sys.stderr)
        return 2
    print(f"Exported {PACKAGE}: " + (", ".join(changed) if changed else "nothing changed"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
