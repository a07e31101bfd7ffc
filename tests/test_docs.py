"""Every public function, class and method of the package says what it does, and what it returns.

`help(BertModel.forward)` should show the book's text (arguments with their shapes, what comes back), and a
type checker should see real types. The modules listed in DOCUMENTED are held to that; a module joins the set
once its chapter's exported cells are documented, until the set is every module of the package.
"""

import dataclasses
import functools
import importlib
import inspect
import pkgutil

import pytest

import annotated_bert

DOCUMENTED = {
    "attention", "encoder", "embeddings", "config", "model", "pretrained", "checkpoints", "pretraining", "data",
    "viz", "tokenization", "corpus", "finetune", "transfer", "training", "evaluation", "pretrain", "files",
}
PACKAGE_MODULES = sorted(info.name for info in pkgutil.iter_modules(annotated_bert.__path__))


def public_api(module):
    """(qualified name, object) for each public function, class and method the module defines itself."""
    for name, value in vars(module).items():
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(value):
            yield name, value
        elif inspect.isclass(value):
            yield name, value
            for attribute, member in vars(value).items():
                if attribute.startswith("_"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                elif isinstance(member, property):
                    member = member.fget
                elif isinstance(member, functools.cached_property):
                    member = member.func
                if inspect.isfunction(member):
                    yield f"{name}.{attribute}", member


def has_docstring(value) -> bool:
    doc = value.__doc__
    if inspect.isclass(value) and dataclasses.is_dataclass(value) and doc and doc.startswith(value.__name__ + "("):
        return False  # the signature that @dataclass writes when the class has no docstring of its own
    return bool(doc and doc.strip())


def test_the_documented_modules_are_modules_of_the_package():
    assert DOCUMENTED <= set(PACKAGE_MODULES), DOCUMENTED - set(PACKAGE_MODULES)


@pytest.mark.parametrize("module_name", [name for name in PACKAGE_MODULES if name in DOCUMENTED])
def test_every_public_function_class_and_method_has_a_docstring(module_name):
    module = importlib.import_module(f"annotated_bert.{module_name}")
    undocumented = [name for name, value in public_api(module) if not has_docstring(value)]
    assert not undocumented, f"annotated_bert.{module_name}: no docstring on {', '.join(undocumented)}"


@pytest.mark.parametrize("module_name", [name for name in PACKAGE_MODULES if name in DOCUMENTED])
def test_every_public_function_and_method_annotates_what_it_returns(module_name):
    module = importlib.import_module(f"annotated_bert.{module_name}")
    unannotated = [name for name, value in public_api(module)
                   if inspect.isfunction(value) and "return" not in value.__annotations__]
    assert not unannotated, f"annotated_bert.{module_name}: no return annotation on {', '.join(unannotated)}"
