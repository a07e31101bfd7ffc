"""Nothing lost, nothing silently wrong: atomic checkpoints, refusals before the work, non-finite runs and files.

Fault injection: a save interrupted part-way, a disk that fills, a crash between the two renames, corrupted files.
"""

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import annotated_bert.checkpoints as checkpoints
import annotated_bert.files as files
from annotated_bert import BertConfig, BertForPreTraining, BertModel, BertTokenizer
from annotated_bert.checkpoints import load_checkpoint, read_checkpoint, read_config
from annotated_bert.files import check_output_directory
from annotated_bert.corpus import load_shakespeare
from annotated_bert.finetune import BertForSequenceClassification
from annotated_bert.tokenization import BOOK_VOCABULARY
from annotated_bert.training import (
    RESUME_FILE,
    TrainingConfig,
    pretrain,
    rewrite_checkpoint_files,
    save_resume_state,
    write_checkpoint,
)

SMALL = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                   max_position_embeddings=16)
TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, max_seq_len=48,
            batch_size=8, log_every=1, eval_pairs=40, eval_every=0, steps=4)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def leftovers(parent: Path) -> list[str]:
    return sorted(path.name for path in parent.iterdir() if path.name.startswith("."))


@pytest.fixture()
def saved(tmp_path):
    """A checkpoint of a small BertModel in tmp_path/model, and its files' bytes."""
    torch.manual_seed(0)
    BertModel(SMALL).save_pretrained(tmp_path / "model")
    return tmp_path / "model", snapshot(tmp_path / "model")


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer.from_pretrained(BOOK_VOCABULARY)


@pytest.fixture(scope="module")
def scenes():
    return load_shakespeare(["macbeth"])


# ---- saving: atomic, and never over what is not ours -----------------------------------------------------------

@pytest.mark.parametrize("fault", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left on device")])
def test_a_save_that_fails_part_way_leaves_the_previous_checkpoint_as_it_was(saved, monkeypatch, fault):
    directory, before = saved

    def half_written(tensors, path, metadata=None):
        Path(path).write_bytes(b"\0" * 100)          # part of the weights, then the fault
        raise fault

    monkeypatch.setattr(checkpoints, "save_file", half_written)
    with pytest.raises(type(fault)):
        BertModel(SMALL).save_pretrained(directory, overwrite=True)
    assert snapshot(directory) == before
    assert leftovers(directory.parent) == []          # the scratch directory is gone too


def test_a_crash_between_the_two_renames_puts_the_old_checkpoint_back(saved, monkeypatch):
    directory, before = saved
    renames = []

    def second_rename_fails(source, target):
        renames.append((source, target))
        if len(renames) == 2:
            raise OSError(errno.EIO, "input/output error")
        os.replace(source, target)

    monkeypatch.setattr(files.os, "rename", second_rename_fails)
    with pytest.raises(OSError, match="input/output"):
        BertModel(SMALL).save_pretrained(directory, overwrite=True)
    monkeypatch.undo()
    assert snapshot(directory) == before and leftovers(directory.parent) == []


def test_saving_over_a_checkpoint_needs_overwrite_and_keeps_the_other_files(saved):
    directory, before = saved
    (directory / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"already holds a checkpoint \(config.json, model.safetensors\).*"
                                              r"overwrite=True"):
        BertModel(SMALL).save_pretrained(directory)
    assert snapshot(directory) == {**before, "notes.txt": b"mine"}
    torch.manual_seed(1)
    BertModel(SMALL).save_pretrained(directory, overwrite=True)
    after = snapshot(directory)
    assert after["notes.txt"] == b"mine" and after["model.safetensors"] != before["model.safetensors"]


def test_files_that_are_not_a_checkpoint_are_never_replaced(tmp_path):
    (tmp_path / "README.md").write_text("my own notes")
    with pytest.raises(FileExistsError, match="README.md, and no checkpoint"):
        check_output_directory(tmp_path, ["config.json", "README.md"], overwrite=True)
    assert (tmp_path / "README.md").read_text() == "my own notes"


def test_a_file_where_the_directory_should_be_is_refused(tmp_path):
    (tmp_path / "taken").write_text("a file")
    for target in (tmp_path / "taken", tmp_path / "taken" / "model"):
        with pytest.raises(NotADirectoryError, match="is a file"):
            BertModel(SMALL).save_pretrained(target)


def test_a_model_whose_weights_are_not_finite_is_not_saved(tmp_path):
    model = BertModel(SMALL)
    with torch.no_grad():
        model.pooler.dense.bias[0] = float("nan")
    with pytest.raises(ValueError, match=r"not all finite \(1 tensor\(s\): pooler.dense.bias\)"):
        model.save_pretrained(tmp_path / "nan")
    assert not (tmp_path / "nan").exists()


def test_every_class_saves_atomically_and_asks_before_overwriting(tmp_path):
    for model in (BertForPreTraining(SMALL), BertForSequenceClassification(SMALL, num_labels=3)):
        directory = tmp_path / type(model).__name__
        model.save_pretrained(directory)
        with pytest.raises(FileExistsError, match="overwrite=True"):
            model.save_pretrained(directory)
        model.save_pretrained(directory, overwrite=True)
        assert sorted(path.name for path in directory.iterdir()) == ["config.json", "model.safetensors"]


def test_the_tokenizer_saves_atomically_and_asks_before_replacing_a_vocabulary(tmp_path, tokenizer, monkeypatch):
    BertModel(SMALL).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")             # beside a checkpoint that has no vocabulary yet
    before = snapshot(tmp_path / "model")
    with pytest.raises(FileExistsError, match=r"\(tokenizer_config.json, vocab.txt\).*overwrite=True"):
        tokenizer.save_pretrained(tmp_path / "model")
    monkeypatch.setattr(files, "move_into_place", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        BertTokenizer(BOOK_VOCABULARY / "vocab.txt", do_lower_case=False).save_pretrained(tmp_path / "model",
                                                                                             overwrite=True)
    monkeypatch.undo()
    assert snapshot(tmp_path / "model") == before and leftovers(tmp_path) == []
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "tokenizer_config.json").write_text("{}")    # no vocabulary, no checkpoint: not ours
    with pytest.raises(FileExistsError, match="not ours to replace"):
        tokenizer.save_pretrained(tmp_path / "notes", overwrite=True)


# ---- loading: damaged files refused by name ---------------------------------------------------------------------

def test_a_safetensors_file_with_bytes_overwritten_is_refused_by_name(saved):
    directory, _ = saved
    data = bytearray((directory / "model.safetensors").read_bytes())
    data[-64:] = b"\xff" * 64                     # the last tensor's last numbers become NaN
    (directory / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"model.safetensors' holds NaN or infinite values in 1 tensor\(s\)"):
        BertModel.from_pretrained(directory)
    model = load_checkpoint(BertModel, directory, allow_non_finite=True)    # the opt-out
    assert not all(parameter.isfinite().all() for parameter in model.parameters())


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[: len(data) // 2], "model.safetensors' cannot be read as a checkpoint"),
    (lambda data: b"not safetensors at all", "model.safetensors' cannot be read as a checkpoint"),
])
def test_a_truncated_or_foreign_weights_file_names_the_file(saved, damage, message):
    directory, _ = saved
    (directory / "model.safetensors").write_bytes(damage((directory / "model.safetensors").read_bytes()))
    with pytest.raises(ValueError, match=message):
        read_checkpoint(directory)


def test_a_damaged_pytorch_model_bin_names_the_file(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    data = (tmp_path / "pytorch_model.bin").read_bytes()
    (tmp_path / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="pytorch_model.bin' cannot be read as a checkpoint"):
        read_checkpoint(tmp_path)


@pytest.mark.parametrize("text, message", [
    ('{"hidden_size": 16', "config.json' is not a JSON file"),
    (json.dumps({k: v for k, v in SMALL.to_dict().items() if k != "model_type"}), '"model_type": "bert"'),
    (json.dumps(SMALL.to_dict() | {"hidden_size": "sixteen"}), "config.json': BertConfig.hidden_size"),
    ("[1, 2]", '"model_type": "bert"'),
])
def test_a_bad_config_json_names_the_file(saved, text, message):
    directory, _ = saved
    (directory / "config.json").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_config(directory)


@pytest.mark.parametrize("settings, message", [
    ({"do_lower_case": "false"}, "do_lower_case must be true or false; got 'false'"),
    ({"model_max_length": "long"}, "model_max_length must be a positive integer"),
])
def test_a_bad_tokenizer_config_names_the_file_and_the_setting(tmp_path, settings, message):
    (tmp_path / "vocab.txt").write_text((BOOK_VOCABULARY / "vocab.txt").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="tokenizer_config.json': " + message):
        BertTokenizer.from_pretrained(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer_config.json'"):
        BertTokenizer.from_pretrained(tmp_path)


# ---- inputs that used to surface as torch internals -------------------------------------------------------------

def test_inputs_without_positions_or_with_float_positions_or_labels_out_of_range_are_named():
    model = BertForPreTraining(SMALL).eval()
    ids = torch.randint(5, 40, (2, 6))
    with pytest.raises(ValueError, match="input_ids has 0 positions"):
        model.bert(ids[:, :0])
    with pytest.raises(ValueError, match="masked_positions must hold integer ids"):
        model(ids, masked_positions=torch.tensor([[1.0], [2.0]]))
    with pytest.raises(ValueError, match=r"masked_labels must be token ids in \[0, vocab_size=40\)"):
        model(ids, masked_positions=torch.tensor([[1], [2]]), masked_labels=torch.tensor([[3], [40]]))
    with pytest.raises(ValueError, match="masked_labels must be token ids"):
        model(ids, masked_positions=torch.tensor([[1], [2]]), masked_labels=torch.tensor([[3.0], [4.0]]))
    output = model(ids, masked_positions=torch.tensor([[1], [2]]), masked_labels=torch.tensor([[3], [-100]]))
    assert output.loss.isfinite()


# ---- runs: refused before the first step, stopped on NaN, resumed only on the same data -------------------------

def test_a_run_that_goes_non_finite_stops_and_saves_nothing_non_finite(scenes, tokenizer, tmp_path):
    config = TrainingConfig(**{**TINY, "steps": 20, "learning_rate": 1e30, "checkpoint_every": 1})
    with pytest.raises(FloatingPointError, match=r"^step \d+: the loss .* is not finite.*learning rate"):
        pretrain(config, tokenizer, scenes, progress=False, output_dir=tmp_path)
    state = torch.load(tmp_path / RESUME_FILE, weights_only=True)       # the last state saved is a finite one
    assert all(tensor.isfinite().all() for tensor in state["model"].values())


def test_a_resume_state_is_not_written_from_non_finite_weights(tmp_path):
    model = BertForPreTraining(SMALL)
    with torch.no_grad():
        model.nsp_head.bias.fill_(float("inf"))
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    with pytest.raises(FloatingPointError, match=r"step 7: refusing to save a resume state .*nsp_head.bias"):
        save_resume_state(tmp_path, model, optimizer, scheduler, 7, [], TrainingConfig())
    assert not (tmp_path / RESUME_FILE).exists()


def test_a_run_refuses_another_runs_state_before_its_first_step(scenes, tokenizer, tmp_path, monkeypatch):
    config = TrainingConfig(**TINY)
    pretrain(config, tokenizer, scenes, progress=False, output_dir=tmp_path, stop_after=2)
    before = snapshot(tmp_path)
    monkeypatch.setattr("annotated_bert.training.prepare_run", lambda *args: pytest.fail("the run started"))
    with pytest.raises(FileExistsError, match=r"already holds a checkpoint \(resume.pt\)"):
        pretrain(config, tokenizer, scenes, progress=False, output_dir=tmp_path)
    monkeypatch.undo()
    assert snapshot(tmp_path) == before
    run = pretrain(config, tokenizer, scenes, progress=False, output_dir=tmp_path, overwrite=True)
    assert len(run.log) == 4


def test_resume_refuses_another_vocabulary_or_other_documents(scenes, tokenizer, tmp_path):
    config = TrainingConfig(**TINY)
    pretrain(config, tokenizer, scenes, progress=False, output_dir=tmp_path, stop_after=2)
    with pytest.raises(ValueError, match=r"other training documents \(--corpus\)"):
        pretrain(config, tokenizer, scenes[:-1], progress=False, output_dir=tmp_path, resume=True)
    cased = BertTokenizer(BOOK_VOCABULARY / "vocab.txt", do_lower_case=False)
    with pytest.raises(ValueError, match=r"another vocabulary \(--vocab\)"):
        pretrain(config, tokenizer=cased, train_documents=scenes, progress=False, output_dir=tmp_path, resume=True)
    assert len(pretrain(config, tokenizer, scenes, progress=False, output_dir=tmp_path, resume=True).log) == 4


def test_write_checkpoint_is_atomic_and_rewriting_the_card_keeps_every_other_file(scenes, tokenizer, tmp_path,
                                                                                  monkeypatch):
    config = TrainingConfig(**{**TINY, "steps": 2})
    run = pretrain(config, tokenizer, scenes[:-2], scenes[-2:], progress=False)
    directory = write_checkpoint(tmp_path / "run", run, config, tokenizer, details={})
    before = snapshot(directory)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_checkpoint(directory, run, config, tokenizer, details={})

    def fails(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(BertTokenizer, "save_pretrained", fails)       # after the weights, before the card
    with pytest.raises(OSError, match="No space"):
        write_checkpoint(directory, run, config, tokenizer, details={"corpus": "other"}, overwrite=True)
    monkeypatch.undo()
    assert snapshot(directory) == before and leftovers(tmp_path) == []
    (directory / "README.md").write_text("stale card")
    assert rewrite_checkpoint_files(directory) == ["README.md"]
    assert snapshot(directory) == before


# ---- the command line: usage errors before any work, exit 1 on a run that diverges ------------------------------

def command(argv, capsys):
    from annotated_bert.pretrain import main

    try:
        status = main(argv)
    except SystemExit as exit_info:
        status = exit_info.code
    return status, capsys.readouterr().err


TINY_FLAGS = ["--hidden-size", "32", "--num-hidden-layers", "1", "--num-attention-heads", "2", "--intermediate-size",
              "64", "--max-seq-len", "48", "--batch-size", "8", "--log-every", "1", "--eval-pairs", "40",
              "--eval-every", "0", "--quiet", "--no-report"]


@pytest.mark.parametrize("argv, message", [
    (["--max-grad-norm", "-1"], "max_grad_norm must be a finite number > 0; got -1.0"),
    (["--masked-lm-prob", "5"], "masked_lm_prob must be a finite number in (0, 1)"),
    (["--weight-decay", "-5"], "weight_decay must be a finite number >= 0"),
    (["--adam-epsilon", "0"], "adam_epsilon must be a finite number > 0"),
    (["--max-predictions", "0"], "max_predictions must be a positive integer"),
    (["--output-dir", "{tmp}/a-file"], "is a file"),
    (["--output-dir", "{tmp}/a-file/below"], "is a file"),
    (["--output-dir", "{tmp}/checkpoint"], "already holds a checkpoint (config.json, model.safetensors)"),
    (["--output-dir", "{tmp}/notes"], "holds README.md, and no checkpoint"),
])
def test_the_command_refuses_before_any_work(argv, message, tmp_path, capsys, monkeypatch):
    (tmp_path / "a-file").write_text("x")
    BertModel(SMALL).save_pretrained(tmp_path / "checkpoint")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("mine")
    monkeypatch.setattr("annotated_bert.pretrain.load_corpus", lambda *args: pytest.fail("the corpus was loaded"))
    status, error = command([argument.format(tmp=tmp_path) for argument in argv], capsys)
    assert status == 2 and "usage: python -m annotated_bert.pretrain" in error and message in error, error
    assert (tmp_path / "notes" / "README.md").read_text() == "mine"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_cuda_device_on_a_machine_without_one_is_a_usage_error(capsys):
    status, error = command(["--device", "cuda"], capsys)
    assert status == 2 and "no CUDA device" in error


def test_the_command_stops_a_diverging_run_with_status_1_and_writes_no_checkpoint(scenes, tmp_path, capsys):
    from annotated_bert.corpus import write_bert_format

    write_bert_format(scenes, tmp_path / "corpus.txt")
    argv = ["--corpus", str(tmp_path / "corpus.txt"), "--output-dir", str(tmp_path / "run"), *TINY_FLAGS]
    status, error = command([*argv, "--steps", "20", "--learning-rate", "1e30"], capsys)
    assert status == 1 and "is not finite" in error and "Traceback" not in error, error
    assert not (tmp_path / "run" / "config.json").exists()
    status, error = command([*argv, "--steps", "2", "--overwrite"], capsys)      # a sane rate, over that run
    assert status == 0 and (tmp_path / "run" / "config.json").exists(), error
    other = tmp_path / "other.txt"
    write_bert_format(scenes[:-1], other)
    status, error = command([*argv, "--steps", "2", "--resume", "--overwrite", "--corpus", str(other)], capsys)
    assert status == 2 and "other training documents (--corpus)" in error, error
