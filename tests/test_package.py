"""The package outside the clone: the book's vocabulary and the PEP 561 marker ship inside it, and
`python -m annotated_bert.pretrain` takes its defaults from the package, from any working directory."""

import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

import annotated_bert
from annotated_bert.pretrain import CONFIG_HELP, argument_parser, main
from annotated_bert.tokenization import BOOK_VOCABULARY, BertTokenizer
from annotated_bert.training import TrainingConfig

PACKAGE = Path(annotated_bert.__file__).resolve().parent


def test_the_book_vocabulary_ships_inside_the_package():
    assert BOOK_VOCABULARY.resolve().is_relative_to(PACKAGE)
    assert sorted(path.name for path in BOOK_VOCABULARY.iterdir()) == ["tokenizer_config.json", "vocab.txt"]
    tokenizer = BertTokenizer.from_pretrained(BOOK_VOCABULARY)
    assert len(tokenizer) == 8000 and tokenizer.do_lower_case
    assert tokenizer.tokenize("O, beware, my lord, of jealousy") == ["o", ",", "beware", ",", "my", "lord", ",",
                                                                     "of", "jealousy"]
    assert (PACKAGE / "py.typed").is_file()


def test_the_packaged_vocabulary_and_marker_are_package_data():
    """pyproject.toml puts every file of the vocabulary and py.typed into the wheel."""
    pyproject = (PACKAGE.parent.parent / "pyproject.toml")
    if not pyproject.is_file():
        pytest.skip("installed from a wheel: no pyproject.toml beside the package")
    section = pyproject.read_text().split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    patterns = re.findall(r'"([^"]+)"', section)
    shipped = {path.relative_to(PACKAGE).as_posix() for pattern in patterns for path in PACKAGE.glob(pattern)}
    wanted = {path.relative_to(PACKAGE).as_posix() for path in BOOK_VOCABULARY.iterdir()} | {"py.typed"}
    assert wanted <= shipped


def test_help_lists_every_flag_with_a_default_and_a_line_of_help(tmp_path):
    """`--help`, run from a directory that is not the clone: every flag, each with its help and its default."""
    result = subprocess.run([sys.executable, "-m", "annotated_bert.pretrain", "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=True)
    options = result.stdout.split("\noptions:\n", 1)[1]
    entries = {entry.split()[0].rstrip(","): " ".join(entry.split())
               for entry in re.split(r"\n  (?=-)", "\n" + options) if entry.strip()}
    flags = {option for action in argument_parser()._actions for option in action.option_strings
             if option.startswith("--") and not option.startswith("--no-") and option != "--help"}
    assert {"--" + field.name.replace("_", "-") for field in fields(TrainingConfig)} <= flags
    assert {"--corpus", "--vocab", "--output-dir", "--device", "--threads", "--resume", "--report"} <= flags
    for flag in flags:
        assert flag in entries, flag
        assert re.search(r"\S.* \(default: .+\)$", entries[flag]), entries[flag]
    # argparse wraps a long default anywhere, so the packaged vocabulary's path is compared without white space.
    assert re.sub(r"\s+", "", f"(default: {BOOK_VOCABULARY})") in re.sub(r"\s+", "", options)
    assert set(CONFIG_HELP) == {field.name for field in fields(TrainingConfig)}   # each its own line of help


def test_the_vocabulary_default_is_the_packaged_one():
    assert Path(argument_parser().parse_args([]).vocab) == BOOK_VOCABULARY


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "steps must be a positive integer"),
    (["--batch-size", "eight"], "invalid int value"),
    (["--device", "gpu"], "--device gpu"),
    (["--threads", "-1"], "--threads -1"),
    (["--resume", "--output-dir", "{tmp}/nothing-here"], "nothing to resume"),
    (["--vocab", "{tmp}"], "vocab.txt"),
    (["--corpus", "{tmp}/no-such-corpus.txt"], "no-such-corpus.txt"),
])
def test_bad_arguments_end_in_a_usage_error(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:   # an output directory of its own: the default one holds a checkpoint
        main(["--output-dir", str(tmp_path / "out"), *(argument.format(tmp=tmp_path) for argument in argv)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "usage: python -m annotated_bert.pretrain" in error and message in error
