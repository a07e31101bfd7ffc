# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---


# %% [markdown]
# # Appendix A2: Checkpoints
#
# Three model classes of this book exchange weights with Hugging Face's: chapter 6's `BertModel`,
# chapter 8's `BertForPreTraining` and chapter 10's `BertForSequenceClassification`. They differ only in
# their names. Each class declares, in a `CheckpointNames`, the table from its parameter names to the
# checkpoint's (chapter 6's `HF_NAMES` for the encoder, extended by each head), where the encoder's
# names sit (`bert.` in a model with heads), which tensors it ties, and which other classes' heads it
# drops. Everything else is this appendix's one codec, which every class loads and saves through:
#
# 1. **Reading** a checkpoint directory: `config.json` and the tensors, refusing a damaged file by name.
# 2. **Renaming**, in both directions, by the class's table.
# 3. **Loading, strictly**: every tensor of the checkpoint and every weight of the model accounted for
#    before any is copied, every problem named at once.
# 4. **Saving** under Hugging Face's names, so that `transformers` reads what we write, and atomically: a save that
#    fails leaves the checkpoint that was there, and a checkpoint is replaced only when the caller says so.
#
# The chapters use it and show what it does on real checkpoints; this appendix shows how, on small
# random models, with the checkpoints that go wrong.

# %%
import tempfile
import warnings
from pathlib import Path

import torch

from annotated_bert import BertConfig, BertForPreTraining, BertModel
from annotated_bert.finetune import BertForSequenceClassification

torch.manual_seed(0)
small = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                   intermediate_size=32, max_position_embeddings=20)

# %% [markdown]
# ## The config, checked
#
# A checkpoint's `config.json` becomes chapter 6's `BertConfig`, and every value is checked when the
# config is made: a bad value is named there, rather than found deep inside a layer later. First the
# sizes, each a positive integer, and the hidden size a multiple of the number of heads, since each head
# takes an equal slice of the hidden vector:

# %%
#| export: config
from annotated_bert.config import BertConfig

SUPPORTED_ACTIVATIONS = ("gelu",)


def check_sizes(config: BertConfig) -> None:
    """Every size of a BertConfig a positive integer, and the hidden size a multiple of the heads."""
    for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                 "intermediate_size", "max_position_embeddings", "type_vocab_size"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"BertConfig.{name} must be a positive integer; got {value!r}")
    if config.hidden_size % config.num_attention_heads != 0:
        raise ValueError(
            f"hidden_size {config.hidden_size} is not divisible by num_attention_heads "
            f"{config.num_attention_heads}: each head takes an equal slice of the hidden vector"
        )

# %% [markdown]
# Then the other settings: probabilities in $[0, 1)$, a finite positive LayerNorm epsilon, an initialisation spread
# in $[0, 1]$ (BERT's is 0.02; with a spread of $10^{30}$ the squares in the first LayerNorm's variance overflow,
# and every output is NaN), a padding id inside the vocabulary, and only what BERT itself uses (GELU, learned
# absolute positions).

# %%
#| export: config
import math


def is_number(value) -> bool:
    """An int or a float, but not a bool (True is an int to Python, never a rate to BERT)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_settings(config: BertConfig) -> None:
    """The rates, epsilon, padding id, activation and position type of a BertConfig."""
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        value = getattr(config, name)
        if not (is_number(value) and 0 <= value < 1):
            raise ValueError(f"BertConfig.{name} is a dropout probability in [0, 1); got {value!r}")
    if not (is_number(config.layer_norm_eps) and 0 < config.layer_norm_eps < math.inf):
        raise ValueError(f"BertConfig.layer_norm_eps must be a finite number > 0; got {config.layer_norm_eps!r}")
    if not (is_number(config.initializer_range) and 0 <= config.initializer_range <= 1):
        raise ValueError(f"BertConfig.initializer_range must be in [0, 1] (BERT's: 0.02); got "
                         f"{config.initializer_range!r}")
    if config.pad_token_id is not None and not (isinstance(config.pad_token_id, int) and not
                                                isinstance(config.pad_token_id, bool)):
        raise ValueError(f"BertConfig.pad_token_id must be an integer id or None; got {config.pad_token_id!r}")
    if config.pad_token_id is not None and not 0 <= config.pad_token_id < config.vocab_size:
        raise ValueError(f"pad_token_id {config.pad_token_id} is outside the vocabulary [0, {config.vocab_size})")
    if config.hidden_act not in SUPPORTED_ACTIVATIONS:
        raise ValueError(
            f"hidden_act {config.hidden_act!r} is not supported; BERT uses one of {list(SUPPORTED_ACTIVATIONS)}"
        )
    if config.position_embedding_type != "absolute":
        raise ValueError(
            f"position_embedding_type {config.position_embedding_type!r} is not supported; only 'absolute' "
            "(learned positions, as BERT) is"
        )

# %% [markdown]
# A `config.json` is read through one function, whose every error names the file: one that is not JSON, one that
# does not say `"model_type": "bert"` (without it each size would silently fall back to BERT-base's, and loading
# would then list every weight as the wrong shape), and one whose values fail the checks above.

# %%
#| export: config
import json
from pathlib import Path


def read_config_file(path: str | Path, config_class: type | None = None) -> BertConfig:
    """The config of a config.json file (as `config_class`, by default BertConfig), checked, errors naming the file."""
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{str(path)!r} is not a JSON file: {error}") from error
    if not isinstance(values, dict) or "model_type" not in values:
        raise ValueError(f"{str(path)!r} does not say what model it describes: a BERT config.json has "
                         '"model_type": "bert"')
    try:
        return (config_class or BertConfig).from_dict(values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{str(path)!r}: {error}") from error

# %% [markdown]
# Three configs that cannot be BERT's:

# %%
for bad_values in ({"num_attention_heads": 10}, {"hidden_act": "relu"}, {"hidden_dropout_prob": 1.5}):
    try:
        BertConfig(**bad_values)
    except ValueError as error:
        print(f"{bad_values}: ValueError: {error}")

# %% [markdown]
# ## Reading a directory
#
# A checkpoint directory holds `config.json` and the tensors: `model.safetensors` (a header of names,
# shapes and dtypes, then the raw numbers: loading runs no code) or, in older directories,
# `pytorch_model.bin` (a pickle, which we load with `weights_only=True` so that it cannot run code
# either). Every error names the file: one missing, one that is not what its name says (a truncated download,
# a pickle that would run code), one whose numbers are not all finite. A model whose weights hold a NaN gives NaN
# for every output, so such a file is refused rather than loaded; `allow_non_finite=True` is there for whoever
# wants to look inside one.

# %%
#| export: checkpoints
import os
from pathlib import Path

import torch
from safetensors.torch import load_file

from annotated_bert.config import BertConfig, read_config_file

# What a directory argument accepts ("dir", Path("dir")), and a device argument ("cpu", torch.device("cuda")).
PathLike = str | os.PathLike
Device = str | torch.device
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")    # the first found is read


def read_config(directory: PathLike) -> BertConfig:
    """The BertConfig of a checkpoint directory, from its config.json; an error names the file."""
    path = Path(directory) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} does not exist: a checkpoint needs its config")
    return read_config_file(path)

# %% [markdown]
# The tensors come from the first of `WEIGHT_FILES` that the directory holds. Whatever goes wrong in reading them,
# the file is named, and so are the first tensors that hold a NaN or an infinity:

# %%
#| export: checkpoints
def read_checkpoint(directory: PathLike, allow_non_finite: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint directory: model.safetensors, else pytorch_model.bin (loaded weights-only).
    A file that cannot be read, or that holds NaN or infinite values, is refused by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory {str(directory)!r} does not exist")
    path = next((directory / name for name in WEIGHT_FILES if (directory / name).exists()), None)
    if path is None:
        raise FileNotFoundError(f"{str(directory)!r} holds neither model.safetensors nor pytorch_model.bin")
    try:
        # weights_only refuses pickled code: a checkpoint is data, never a program
        tensors = load_file(path, device="cpu") if path.suffix == ".safetensors" else \
            torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:       # safetensors', zip's and the unpickler's errors alike
        raise ValueError(f"{str(path)!r} cannot be read as a checkpoint: {type(error).__name__}: {error}") from error
    damaged = non_finite(tensors)
    if damaged and not allow_non_finite:
        raise ValueError(f"{str(path)!r} holds NaN or infinite values in {damaged}. The file is damaged, or was "
                         "saved from a run that diverged (allow_non_finite=True loads it all the same)")
    return tensors


def non_finite(tensors: dict[str, torch.Tensor]) -> str:
    """'' when every floating-point tensor is finite; else how many are not, and the first few names."""
    names = [name for name, tensor in tensors.items() if tensor.is_floating_point() and not tensor.isfinite().all()]
    return f"{len(names)} tensor(s): {', '.join(names[:4])}{', ...' if len(names) > 4 else ''}" if names else ""


# %% [markdown]
# ## What a class declares
#
# A `CheckpointNames` is the whole difference between the classes. Its `table` has one line per module,
# `{i}` standing for a layer's number, each line covering the module's `.weight` and `.bias`. The rest
# says how this class's checkpoints differ from a plain encoder's:
#
# - `encoder_prefix`: `bert.` in a model with heads, whose encoder is the attribute `bert`; a checkpoint
#   without it (a bare encoder's) still loads, its names prefixed on the way in;
# - `dropped_heads`: heads of other classes, left out with a warning (a `BertModel` has no `cls.*`);
# - `optional_heads`: heads of this class that a checkpoint may lack entirely, which then start fresh
#   with a warning (a classifier fine-tuned from a pretrained encoder);
# - `tied`: parameters that are another parameter (the MLM decoder is the word-embedding matrix), saved
#   once, under the other's name;
# - `aliases`: second names some checkpoints write for a tensor they also hold under its own name,
#   checked to agree, then dropped.

# %%
#| export: checkpoints
import re
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True)
class CheckpointNames:
    """How one model class's parameters are named in a Hugging Face checkpoint (see Appendix A2)."""

    model: str                              # the class, as errors name it
    table: dict                             # our module names -> the checkpoint's; `{i}` a layer
    encoder_prefix: str = ""                # "bert." where the encoder is the attribute `bert`
    dropped_heads: tuple = ()               # prefixes of other classes' heads: left out, with a warning
    optional_heads: tuple = ()              # prefixes of heads a checkpoint may lack: they start fresh
    tied: dict = field(default_factory=dict)     # our parameter -> the parameter it is: not saved
    aliases: dict = field(default_factory=dict)  # a second checkpoint name -> the name it repeats

    @cached_property
    def to_checkpoint(self) -> list[tuple[re.Pattern, str]]:
        """(pattern of our parameter names, the checkpoint's name) for each line of the table."""
        return [(_name_pattern(ours), theirs) for ours, theirs in self.table.items()]

    @cached_property
    def from_checkpoint(self) -> list[tuple[re.Pattern, str]]:
        """(pattern of the checkpoint's names, our parameter name) for each line of the table."""
        return [(_name_pattern(theirs), ours) for ours, theirs in self.table.items()]

    @cached_property
    def head_prefixes(self) -> tuple:
        """The first parts of this class's own checkpoint names outside the encoder, e.g. ("cls.",)."""
        firsts = {theirs.split(".")[0] + "." for theirs in self.table.values()}
        return tuple(sorted(firsts - {self.encoder_prefix})) if self.encoder_prefix else ()


def _name_pattern(name: str) -> re.Pattern:
    return re.compile("^" + re.escape(name).replace(r"\{i\}", r"(?P<i>\d+)") + r"\.(?P<tensor>weight|bias)$")


# %% [markdown]
# ## Renaming
#
# A name is renamed by the first line of the table whose pattern it matches. Coming in, three other
# spellings are accepted: a `bert.` prefix present or absent where the class expects the other,
# and `LayerNorm.gamma` / `LayerNorm.beta` for `weight` and `bias`, in checkpoints converted from
# TensorFlow by old versions of the library. A name that fits no line is `None`: not this class's.

# %%
#| export: checkpoints
# Buffers some checkpoints carry that hold no learned weights.
IGNORED_CHECKPOINT_KEYS = re.compile(r"(^|\.)embeddings\.(position_ids|token_type_ids)$")
LEGACY_LAYER_NORM = {"gamma": "weight", "beta": "bias"}


def _renamed(name: str, patterns) -> str | None:
    for pattern, target in patterns:
        match = pattern.match(name)
        if match:
            return target.replace("{i}", match.groupdict().get("i") or "") + "." + match["tensor"]
    return None


def checkpoint_name(names: CheckpointNames, ours: str) -> str:
    """Our parameter name -> the checkpoint's, by the class's table."""
    theirs = _renamed(ours, names.to_checkpoint)
    if theirs is None:
        raise KeyError(f"{ours!r} has no checkpoint name in the table of {names.model}")
    return theirs


def our_name(names: CheckpointNames, theirs: str) -> str | None:
    """A checkpoint name -> our parameter name, or None if it is none of the class's."""
    head, _, last = theirs.rpartition(".")
    if head.endswith("LayerNorm"):
        theirs = f"{head}.{LEGACY_LAYER_NORM.get(last, last)}"
    if not names.encoder_prefix:
        theirs = theirs.removeprefix("bert.")
    elif not theirs.startswith((names.encoder_prefix, *names.head_prefixes)):
        theirs = names.encoder_prefix + theirs  # a bare encoder's checkpoint
    return _renamed(theirs, names.from_checkpoint)


# %% [markdown]
# `BertModel` declares chapter 6's table; a round trip through the checkpoint's names comes back to
# where it started, and the other spellings land on the same parameters:

# %%
from annotated_bert.checkpoints import checkpoint_name, our_name

bert_names = BertModel.checkpoint_names
ours = list(BertModel(small).state_dict())
assert all(our_name(bert_names, checkpoint_name(bert_names, name)) == name for name in ours)
for theirs in ("bert.encoder.layer.1.attention.output.LayerNorm.gamma", "embeddings.position_ids",
               "cls.predictions.decoder.weight"):
    print(f"{theirs:55} -> {our_name(bert_names, theirs)}")
print("with heads:", our_name(BertForPreTraining.checkpoint_names, "pooler.dense.weight"))

# %% [markdown]
# ## Loading, strictly
#
# Loading sorts every tensor of the checkpoint before copying any. A tensor is skipped (a buffer that
# holds nothing learned, or an alias), dropped (another class's head), renamed onto one of our
# weights, or *unexpected*. Aliases are compared with the tensor they repeat; an alias whose tensor is
# absent stands in for it.

# %%
#| export: checkpoints
def _sorted_tensors(names: CheckpointNames, ours: dict, checkpoint: dict) -> tuple[dict, list, list]:
    """(our name -> tensor, unexpected checkpoint names, dropped head names)."""
    renamed, unexpected, dropped = {}, [], []
    for name, tensor in checkpoint.items():
        if IGNORED_CHECKPOINT_KEYS.search(name) or name in names.aliases:
            continue
        if name.startswith(names.dropped_heads):
            dropped.append(name)
            continue
        target = our_name(names, name)
        if target is None or target not in ours:
            unexpected.append(name)
        else:
            renamed[target] = tensor
    return renamed, unexpected, dropped


def _merge_aliases(names: CheckpointNames, checkpoint: dict, renamed: dict) -> list:
    """Check each alias the checkpoint holds against its tensor, or let it stand in; return the conflicts."""
    conflicts = []
    for alias, original in names.aliases.items():
        if alias not in checkpoint:
            continue
        target = our_name(names, original)
        if target not in renamed:
            renamed[target] = checkpoint[alias]
        elif not torch.equal(checkpoint[alias], renamed[target]):
            conflicts.append(f"{alias} differs from {original}: in {names.model} they are one tensor")
    return conflicts


# %% [markdown]
# Then our side: a weight nothing was renamed onto is *missing*, unless it belongs to an optional head
# that the checkpoint lacks altogether, which starts fresh; a tensor whose shape is not the weight's is
# *mismatched* (usually a `config.json` that does not describe the checkpoint).

# %%
#| export: checkpoints
def _listed(names: list, most: int = 8) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", ... and {len(names) - most} more" if len(names) > most else "")


def _fresh_heads(names: CheckpointNames, missing: list, ours: dict) -> list:
    """The optional heads of which the checkpoint holds no tensor at all: removed from `missing`."""
    fresh = []
    for prefix in names.optional_heads:
        head = [theirs for theirs in (checkpoint_name(names, name) for name in ours) if theirs.startswith(prefix)]
        if head and all(name in missing for name in head):
            fresh.append(head)
            missing[:] = [name for name in missing if name not in head]
    return fresh


def _problems(names: CheckpointNames, ours: dict, renamed: dict) -> tuple[list, list, list]:
    """(missing, mismatched, fresh heads): what our side finds wrong with the renamed tensors."""
    missing = [checkpoint_name(names, name) for name in ours if name not in renamed]
    fresh = _fresh_heads(names, missing, ours)
    mismatched = [
        f"{checkpoint_name(names, name)}: checkpoint {list(tensor.shape)}, model {list(ours[name].shape)}"
        for name, tensor in renamed.items() if tensor.shape != ours[name].shape
    ]
    return missing, mismatched, fresh


# %% [markdown]
# Strict by default: any missing, unexpected or conflicting tensor is an error that lists them all, by
# the checkpoint's names. With `strict=False` they become a warning, and a missing weight keeps its
# initial value. A wrong shape is never loaded. Only when nothing stops the load is anything copied, so
# a refused checkpoint leaves the model as it was.

# %%
#| export: checkpoints
import warnings

from torch import nn


def load_state_dict(model: nn.Module, checkpoint: dict[str, torch.Tensor], strict: bool = True) -> None:
    """Copy a Hugging Face state dict into `model`, renamed by `type(model).checkpoint_names`."""
    names = type(model).checkpoint_names
    ours = {name: tensor for name, tensor in model.state_dict().items() if name not in names.tied}
    renamed, unexpected, dropped = _sorted_tensors(names, ours, checkpoint)
    problems = _merge_aliases(names, checkpoint, renamed)
    missing, mismatched, fresh = _problems(names, ours, renamed)
    if missing:
        problems.append(f"missing from the checkpoint ({len(missing)}): {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected in the checkpoint ({len(unexpected)}): {_listed(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {'; '.join(mismatched)} "
                        "(does config.json describe this checkpoint?)")
    if mismatched or (strict and problems):
        hint = "\n  (strict=False keeps the initial values of missing weights)" if missing and not mismatched else ""
        raise ValueError(f"cannot load the checkpoint into {names.model}:\n  " + "\n  ".join(problems) + hint)
    if problems:
        warnings.warn("loaded non-strictly: " + "; ".join(problems), stacklevel=3)
    _warn_about_heads(names, dropped, fresh)
    with torch.no_grad():
        for name, tensor in renamed.items():
            ours[name].copy_(tensor)  # copy_ also casts, e.g. a float16 checkpoint into float32 weights


# %% [markdown]
# The two things a strict load may still have to say, in one warning: heads dropped, and heads that
# start fresh.

# %%
#| export: checkpoints
def _warn_about_heads(names: CheckpointNames, dropped: list, fresh: list) -> None:
    said = []
    if dropped:
        prefixes = ", ".join(sorted({name.split(".")[0] + ".*" for name in dropped}))
        said.append(f"ignored {len(dropped)} tensors of task heads ({prefixes}) that a {names.model} does not have")
    for head in fresh:
        part = head[0].split(".")[0]
        said.append(f"no {' or '.join(head)} in the checkpoint, so the {part} starts fresh (random weights): "
                    "fine-tune it before use")
    if said:
        warnings.warn("; ".join(said), stacklevel=4)


# %% [markdown]
# ## Writing without losing anything
#
# A save can fail part-way: the disk fills, the machine stops, someone presses Ctrl-C during the last write. Had
# it written `config.json` and then died in `model.safetensors`, the directory would hold a config that no longer
# describes its weights, and the good checkpoint that was there before would be gone. So a checkpoint is never
# written in place. Everything goes into a scratch directory beside the target, each file is flushed to the disk
# (`fsync`), and only then does one rename put the whole directory where the old one was. Until that rename the
# old checkpoint is untouched; after it, the new one is complete. (Replacing a directory that exists takes two
# renames, the old one aside and the new one in; a process killed between the two leaves the old checkpoint
# whole, under the hidden name `.<name>-...partial.old` beside it.) Files of the old directory that the save does
# not write, a resume state or a reader's notes, are carried over.
#
# These tools make a module of their own, `files`, since the tokenizer of chapter 5 saves through them too. Before
# any of it, `check_output_directory` refuses a target that writing would spoil: a file where the
# directory should be, a place that cannot be written, files that are not part of a checkpoint (a `README.md`
# of the user's own: nothing the package did not write is replaced), and a checkpoint already there, unless the
# caller says `overwrite=True`, as `transformers`' Trainer asks for `overwrite_output_dir`.

# %%
#| export: files
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

# A directory the package wrote holds one of these: config.json (a checkpoint), vocab.txt (a tokenizer), or
# resume.pt (a run in progress).
CHECKPOINT_MARKS = ("config.json", "vocab.txt", "resume.pt")


def check_output_directory(directory: str | os.PathLike, names: Iterable[str], overwrite: bool = False) -> Path:
    """Refuse, before any work, a directory that writing the files `names` into would spoil."""
    directory = Path(directory)
    existing = next(path for path in (directory, *directory.parents) if path.exists())
    if not existing.is_dir():
        made = "a checkpoint is a directory" if existing == directory else f"so {str(directory)!r} cannot be made"
        raise NotADirectoryError(f"{str(existing)!r} is a file, not a directory: {made}")
    try:
        tempfile.TemporaryFile(dir=existing).close()       # a file made and gone: the one sure test of writing
    except OSError as error:
        raise PermissionError(f"cannot write in {str(existing)!r} ({error.strerror}), so not the checkpoint "
                              f"{str(directory)!r}") from error
    clashes = sorted(name for name in names if (directory / name).exists())
    if clashes and not any((directory / mark).is_file() for mark in CHECKPOINT_MARKS):
        raise FileExistsError(f"{str(directory)!r} holds {', '.join(clashes)}, and no checkpoint: those files are not "
                              "ours to replace; choose another directory")
    if clashes and not overwrite:
        raise FileExistsError(f"{str(directory)!r} already holds a checkpoint ({', '.join(clashes)}); pass "
                              "overwrite=True (on the command line, --overwrite) to replace it")
    return directory


# %% [markdown]
# The writing itself: `writing_directory` hands out the scratch directory, and when the block inside it ends
# without an error, flushes and renames it into place; when the block fails, the scratch directory is removed and
# the target is as it was. First its two tools: flushing a file (or a directory's list of names) to the disk, and
# carrying an old file over without copying its bytes.

# %%
#| export: files
def fsync(path: Path) -> None:
    """Flush a file, or a directory's list of names, to the disk (a directory cannot be opened on Windows)."""
    if path.is_dir() and os.name == "nt":
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def keep(path: Path, destination: Path) -> None:
    """Carry a file or folder of the old directory into the new one: hard links (nothing copied), else copies."""
    def link_or_copy(source, target):
        try:
            os.link(source, target)
        except OSError:                          # a file system without hard links
            shutil.copy2(source, target)
    if path.is_dir():
        shutil.copytree(path, destination, copy_function=link_or_copy)
    else:
        link_or_copy(path, destination)

# %% [markdown]
# `writing_directory` checks the target before the block runs (with the names the caller will write) and again
# after (with the names it wrote), then `move_into_place` flushes the scratch directory, carries the old
# directory's other files into it, and renames it into place:

# %%
#| export: files
@contextlib.contextmanager
def writing_directory(directory: str | os.PathLike, overwrite: bool = False,
                      names: Iterable[str] = ()) -> Iterator[Path]:
    """A scratch directory to write a checkpoint into; when the block succeeds it takes `directory`'s place."""
    directory = check_output_directory(directory, names, overwrite)
    directory.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", suffix=".partial", dir=directory.parent))
    try:
        yield scratch
        check_output_directory(directory, [path.name for path in scratch.iterdir()], overwrite)
        move_into_place(scratch, directory)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def move_into_place(scratch: Path, directory: Path) -> None:
    """Rename the complete `scratch` to `directory`, keeping the old directory's other files."""
    for path in scratch.iterdir():
        fsync(path)                              # the bytes on the disk before a name points at them
    retired = None
    if directory.exists():
        for path in directory.iterdir():
            if not (scratch / path.name).exists():
                keep(path, scratch / path.name)
        retired = scratch.with_name(scratch.name + ".old")
        os.rename(directory, retired)
    fsync(scratch)
    try:
        os.rename(scratch, directory)
    except BaseException:
        if retired is not None:
            os.rename(retired, directory)        # the old checkpoint back where it was
        raise
    fsync(directory.parent)
    if retired is not None:
        shutil.rmtree(retired)


# %% [markdown]
# ## Loading and saving a directory
#
# `load_checkpoint` is what `from_pretrained` does: the config, the model it describes, the tensors,
# and the model on the device asked for, in evaluation mode (dropout off). `save_checkpoint` writes the
# other way, through `writing_directory`: `config.json` (with the class in `architectures`, as `transformers`
# expects) and `model.safetensors` under the checkpoint's names, a tied weight once. It refuses a model whose
# weights are not all finite: such a checkpoint could only spread NaN to whoever loads it.

# %%
#| export: checkpoints
import json
from typing import Any, TypeVar

from safetensors.torch import save_file
from torch import nn

from annotated_bert.files import writing_directory

Model = TypeVar("Model", bound=nn.Module)  # load_checkpoint returns a model of the class it is given


def load_checkpoint(model_class: type[Model], directory: PathLike, device: Device = "cpu", strict: bool = True,
                    allow_non_finite: bool = False, **arguments: Any) -> Model:
    """model_class(config of `directory`, **arguments) with the directory's weights, on `device`, in eval mode."""
    model = model_class(read_config(directory), **arguments)
    load_state_dict(model, read_checkpoint(directory, allow_non_finite), strict=strict)
    return model.to(device).eval()


def save_checkpoint(model: nn.Module, directory: PathLike, config_updates: dict | None = None,
                    overwrite: bool = False) -> None:
    """Write directory/config.json and directory/model.safetensors under the checkpoint's names, atomically;
    a checkpoint already in `directory` is replaced only with `overwrite=True`."""
    names = type(model).checkpoint_names
    tensors = {checkpoint_name(names, name): tensor.detach().cpu().contiguous()
               for name, tensor in model.state_dict().items() if name not in names.tied}
    damaged = non_finite(tensors)
    if damaged:
        raise ValueError(f"refusing to save a {type(model).__name__} whose weights are not all finite ({damaged})")
    config = model.config.to_dict() | {"architectures": [type(model).__name__]} | (config_updates or {})
    with writing_directory(directory, overwrite, names=("config.json", "model.safetensors")) as scratch:
        (scratch / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        save_file(tensors, scratch / "model.safetensors", metadata={"format": "pt"})


# %% [markdown]
# ## Checkpoints that go wrong
#
# A small random `BertModel` saved, then spoiled three ways: one tensor gone, a segment table of three
# rows (the pad/A/B convention of some from-scratch BERTs, which cannot hold BERT's two-row table), and a
# tensor no BERT has. Each is refused, and the error names the tensor and, for a shape, both shapes:

# %%
from annotated_bert.checkpoints import load_state_dict, read_checkpoint

with tempfile.TemporaryDirectory() as scratch:
    BertModel(small).save_pretrained(scratch)
    saved = read_checkpoint(scratch)
spoiled = {
    "one tensor gone": {k: v for k, v in saved.items() if k != "encoder.layer.1.output.dense.bias"},
    "three segments": {**saved, "embeddings.token_type_embeddings.weight": torch.zeros(3, 16)},
    "a stranger": {**saved, "encoder.layer.7.output.dense.bias": torch.zeros(16)},
}
for what, checkpoint in spoiled.items():
    try:
        load_state_dict(BertModel(small), checkpoint)
    except ValueError as error:
        print(f"{what}: {error}\n")

# %% [markdown]
# With `strict=False` the first loads, with a warning, and the missing bias keeps its initial zeros:
# what one wants for, say, a masked-LM checkpoint, which has no pooler. The wrong shape stays an error.

# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    partly_loaded = BertModel(small)
    load_state_dict(partly_loaded, spoiled["one tensor gone"], strict=False)
print("\n".join(str(warning.message) for warning in caught))
assert partly_loaded.encoder.layers[1].feed_forward.contract.bias.abs().max() == 0
try:
    load_state_dict(BertModel(small), spoiled["three segments"], strict=False)
except ValueError as error:
    print("still refused:", str(error).splitlines()[1].strip())

# %% [markdown]
# ## Saves that go wrong
#
# A small model saved, then saved over three ways that must not spoil it: without `overwrite=True`; with it, on a
# disk that fills while the weights are written (a `save_file` that writes part of the file, then fails as a full
# disk does); and from a model with a NaN among its weights. Each is refused or fails, and the checkpoint on the
# disk is byte for byte the one saved first, with nothing left beside it:

# %%
import contextlib
import errno
import os
from unittest import mock

import annotated_bert.checkpoints


def fills_the_disk(tensors, path, metadata=None):
    Path(path).write_bytes(b"\0" * 1000)
    raise OSError(errno.ENOSPC, "No space left on device")


nan_model = BertModel(small)
with torch.no_grad():
    nan_model.pooler.dense.bias[0] = float("nan")
full_disk = mock.patch.object(annotated_bert.checkpoints, "save_file", fills_the_disk)
working_disk = contextlib.nullcontext()
attempts = {"saved again": (BertModel(small), False, working_disk),                   # (model, overwrite, disk)
            "disk full": (BertModel(small), True, full_disk), "NaN weights": (nan_model, True, working_disk)}
with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):
    BertModel(small).save_pretrained("model")
    first = {path.name: path.read_bytes() for path in Path("model").iterdir()}
    for what, (model, overwrite, disk) in attempts.items():
        try:
            with disk:
                model.save_pretrained("model", overwrite=overwrite)
        except (OSError, ValueError) as error:
            print(f"{what}: {type(error).__name__}: {error}")
    assert {path.name: path.read_bytes() for path in Path("model").iterdir()} == first
    print("the directory holds:", sorted(os.listdir(".")))

# %% [markdown]
# A file damaged on the disk is caught when it is read. Overwrite the last 64 bytes of `model.safetensors` with
# `0xff` (a float32 of all ones is NaN) and the load is refused, naming the file and the tensor:

# %%
with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):
    BertModel(small).save_pretrained("model")
    weights = bytearray(Path("model/model.safetensors").read_bytes())
    weights[-64:] = b"\xff" * 64
    Path("model/model.safetensors").write_bytes(bytes(weights))
    try:
        BertModel.from_pretrained("model")
    except ValueError as error:
        print(error)

# %% [markdown]
# ## One codec, three classes
#
# The same `saved` encoder, spelled as an old `BertForPreTraining` checkpoint would spell it (`bert.`
# before every name, `gamma` and `beta` for the LayerNorms) and given pretraining heads, loads into
# each class: a `BertModel` drops the heads with a warning, a `BertForPreTraining` takes them, and a
# classifier takes the encoder, drops the heads and starts its own classifier fresh.

# %%
def old_spelling(name):
    name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
    return "bert." + name


with_heads = {old_spelling(name): tensor for name, tensor in saved.items()}
heads = BertForPreTraining(small).state_dict()
with_heads |= {"cls.predictions.bias": heads["mlm_head.bias"],
               "cls.predictions.transform.dense.weight": heads["mlm_head.transform.dense.weight"],
               "cls.predictions.transform.dense.bias": heads["mlm_head.transform.dense.bias"],
               "cls.predictions.transform.LayerNorm.gamma": heads["mlm_head.transform.layer_norm.weight"],
               "cls.predictions.transform.LayerNorm.beta": heads["mlm_head.transform.layer_norm.bias"],
               "cls.seq_relationship.weight": heads["nsp_head.weight"],
               "cls.seq_relationship.bias": heads["nsp_head.bias"]}
for model in (BertModel(small), BertForPreTraining(small), BertForSequenceClassification(small, num_labels=3)):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_state_dict(model, with_heads)
    print(f"{type(model).__name__}: {[str(warning.message) for warning in caught] or 'no warnings'}")

# %% [markdown]
# Older `transformers` also wrote the decoder's tied weight (a copy of the word embeddings) and a second
# name for the decoder's bias. `BertForPreTraining` declares both as aliases: they load when they agree
# with what they repeat, and are refused when they do not, since in our model each is one tensor.

# %%
pretraining_names = BertForPreTraining.checkpoint_names
print(pretraining_names.tied, pretraining_names.aliases, sep="\n")
agreeing = with_heads | {"cls.predictions.decoder.weight": with_heads["bert.embeddings.word_embeddings.weight"],
                         "cls.predictions.decoder.bias": with_heads["cls.predictions.bias"]}
load_state_dict(BertForPreTraining(small), agreeing)
try:
    load_state_dict(BertForPreTraining(small), agreeing | {"cls.predictions.decoder.bias": torch.ones(50)})
except ValueError as error:
    print(error)

# %% [markdown]
# ## Saving, for both libraries
#
# What `save_checkpoint` writes, for each class, are the names `transformers` gives the same class: it
# loads each directory with no missing or unexpected tensor, and our loader reads it back exactly.

# %%
import transformers

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
for ours_class, theirs_class in ((BertModel, transformers.BertModel),
                                 (BertForPreTraining, transformers.BertForPreTraining),
                                 (BertForSequenceClassification, transformers.BertForSequenceClassification)):
    model = ours_class(small)
    with tempfile.TemporaryDirectory() as scratch:
        model.save_pretrained(scratch)
        _, report = theirs_class.from_pretrained(scratch, output_loading_info=True)
        again = ours_class.from_pretrained(scratch)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
    print(f"{ours_class.__name__:30} transformers: missing {sorted(report['missing_keys'])}, "
          f"unexpected {sorted(report['unexpected_keys'])}")
