"""The training loop of chapter 9: optimizer groups, schedule, batches, exact resume, and torchrun."""

import json
import os
import subprocess
import sys

import pytest
import torch

from annotated_bert.corpus import load_shakespeare, write_bert_format
from annotated_bert.data import MASK, tokenize_documents
from annotated_bert.pretraining import BertForPreTraining
from annotated_bert.tokenization import BOOK_VOCABULARY, BertTokenizer
from annotated_bert.training import (
    PairBatches,
    Process,
    TrainingConfig,
    build_model,
    evaluation_batches,
    linear_warmup_decay,
    make_optimizer,
    mask_for_evaluation,
    parameter_groups,
    pretrain,
    train_step,
)

TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, max_seq_len=48,
            batch_size=8, learning_rate=3e-3, log_every=1, eval_pairs=40, eval_every=0)


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer.from_pretrained(BOOK_VOCABULARY)


@pytest.fixture(scope="module")
def scenes():
    return load_shakespeare(["macbeth", "the-tempest"])


@pytest.fixture(scope="module")
def tokenized(scenes, tokenizer):
    return tokenize_documents(scenes, tokenizer)


def test_schedule_warms_up_then_decays_to_zero():
    multipliers = [linear_warmup_decay(step, 4, 12) for step in range(12)]
    assert multipliers[:4] == [0.25, 0.5, 0.75, 1.0]
    assert multipliers[4] == 1.0 and multipliers[-1] == pytest.approx(1 / 8)
    assert all(a > b for a, b in zip(multipliers[4:], multipliers[5:]))
    assert linear_warmup_decay(12, 4, 12) == 0.0
    assert linear_warmup_decay(0, 0, 10) == 1.0           # no warmup: full rate from the first step


def test_optimizer_follows_the_schedule(tokenizer):
    config = TrainingConfig(**{**TINY, "steps": 10, "warmup_fraction": 0.2})
    model = build_model(config, tokenizer)
    optimizer, scheduler = make_optimizer(model, config)
    rates = []
    for _ in range(config.steps):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    expected = [config.learning_rate * linear_warmup_decay(step, 2, 10) for step in range(10)]
    assert rates == pytest.approx(expected)


def test_weight_decay_skips_biases_and_layer_norms(tokenizer):
    model = build_model(TrainingConfig(**TINY), tokenizer)
    decay, keep = parameter_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and keep["weight_decay"] == 0.0
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    kept = {names[id(parameter)] for parameter in keep["params"]}
    decayed = {names[id(parameter)] for parameter in decay["params"]}
    assert all(name.endswith("bias") or "norm" in name for name in kept)
    assert "bert.embeddings.layer_norm.weight" in kept and "mlm_head.bias" in kept
    assert all(name.endswith("weight") and "norm" not in name for name in decayed)
    assert "bert.embeddings.token.weight" in decayed       # the tied decoder weight, listed once
    assert len(kept) + len(decayed) == len(list(model.parameters()))


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="not divisible by grad_accumulation 3"):
        TrainingConfig(batch_size=8, grad_accumulation=3)
    with pytest.raises(ValueError, match="steps must be a positive integer; got 0"):
        TrainingConfig(steps=0)
    with pytest.raises(ValueError, match=r"warmup_fraction must be a finite number in \[0, 1\); got 1.5"):
        TrainingConfig(warmup_fraction=1.5)
    with pytest.raises(ValueError, match=r"unknown TrainingConfig keys \['hidden'\]"):
        TrainingConfig.from_dict({"hidden": 3})
    assert TrainingConfig.from_dict(TrainingConfig(**TINY).to_dict()) == TrainingConfig(**TINY)


def test_batches_depend_only_on_the_step(tokenized, tokenizer):
    config = TrainingConfig(**TINY)
    first, second = PairBatches(tokenized, tokenizer, config), PairBatches(tokenized, tokenizer, config)
    for step in (0, 3, 500):                               # step 500 is in a later epoch
        a, b = first.micro_batches(step), second.micro_batches(step)
        assert all(torch.equal(a[0][name], b[0][name]) for name in a[0])
    assert not torch.equal(first.micro_batches(0)[0]["input_ids"][:, :10], first.micro_batches(1)[0]["input_ids"][:, :10])


def test_processes_and_micro_batches_split_the_global_batch(tokenized, tokenizer):
    whole = PairBatches(tokenized, tokenizer, TrainingConfig(**TINY)).micro_batches(2)
    assert len(whole) == 1 and whole[0]["input_ids"].shape[0] == 8
    shards = [PairBatches(tokenized, tokenizer, TrainingConfig(**{**TINY, "grad_accumulation": 2}), rank, 2)
              .micro_batches(2) for rank in range(2)]
    rows = [batch["next_sentence_labels"] for shard in shards for batch in shard]
    assert [len(row) for row in rows] == [2, 2, 2, 2]
    assert torch.equal(torch.cat(rows), whole[0]["next_sentence_labels"])
    with pytest.raises(ValueError, match="divisible by processes × grad_accumulation = 3 × 1"):
        PairBatches(tokenized, tokenizer, TrainingConfig(**TINY), 0, 3)


def test_accumulation_gives_the_same_step(tokenized, tokenizer):
    losses = []
    for accumulation in (1, 4):
        config = TrainingConfig(**{**TINY, "grad_accumulation": accumulation, "dropout": 0.0, "steps": 3})
        model = build_model(config, tokenizer)
        optimizer, scheduler = make_optimizer(model, config)
        batches = PairBatches(tokenized, tokenizer, config)
        losses.append([train_step(model, batches.micro_batches(step), optimizer, scheduler, config, Process())["loss"]
                       for step in range(config.steps)])
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)


def test_evaluation_masks_every_chosen_token(tokenized, tokenizer):
    import random

    config = TrainingConfig(**TINY)
    batches = evaluation_batches(tokenized, tokenizer, config, batch_size=16)
    assert sum(len(batch["input_ids"]) for batch in batches) == 40
    pair = PairBatches(tokenized, tokenizer, config).epoch_dataset(0).pairs[0]
    masked = mask_for_evaluation(pair, random.Random(0))
    assert all(masked.tokens[position] == MASK for position in masked.masked_positions)
    assert len(masked.masked_positions) == max(1, round(0.15 * len(pair.tokens)))
    assert [pair.tokens[position] for position in masked.masked_positions] == list(masked.masked_labels)


def test_training_lowers_the_loss_and_reports_metrics(scenes, tokenizer):
    config = TrainingConfig(**{**TINY, "steps": 30, "log_every": 10, "unigram_mlm_bias": False})
    run = pretrain(config, tokenizer, scenes[:-4], scenes[-4:], progress=False)
    losses = [entry["loss"] for entry in run.log if "loss" in entry]
    assert losses[-1] < losses[0] - 0.5, losses
    assert 0 <= run.metrics["mlm_accuracy"] <= 1 and 0 <= run.metrics["nsp_accuracy"] <= 1
    assert run.metrics["baseline_token"] in tokenizer.vocab and run.metrics["pairs"] == 40


def test_resumed_run_reproduces_the_uninterrupted_run(scenes, tokenizer, tmp_path):
    config = TrainingConfig(**{**TINY, "steps": 8, "checkpoint_every": 2})
    whole = pretrain(config, tokenizer, scenes, progress=False, output_dir=tmp_path / "whole")
    pretrain(config, tokenizer, scenes, progress=False, output_dir=tmp_path / "cut", stop_after=4)
    resumed = pretrain(config, tokenizer, scenes, progress=False, output_dir=tmp_path / "cut", resume=True)
    assert [entry["step"] for entry in resumed.log] == list(range(1, 9))
    assert [entry["loss"] for entry in resumed.log] == [entry["loss"] for entry in whole.log]   # exact
    for (name, ours), theirs in zip(resumed.model.state_dict().items(), whole.model.state_dict().values()):
        assert torch.equal(ours, theirs), name


def test_resume_refuses_another_configuration(scenes, tokenizer, tmp_path):
    config = TrainingConfig(**{**TINY, "steps": 4})
    pretrain(config, tokenizer, scenes, progress=False, output_dir=tmp_path, stop_after=2)
    with pytest.raises(ValueError, match=r"differs in \['learning_rate'\]"):
        pretrain(TrainingConfig(**{**TINY, "steps": 4, "learning_rate": 1.0}), tokenizer, scenes,
                 progress=False, output_dir=tmp_path, resume=True)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        pretrain(config, tokenizer, scenes, progress=False, output_dir=tmp_path / "empty", resume=True)


def test_the_command_trains_on_the_plays_with_speaker_names():
    """`python -m annotated_bert.pretrain` reads the plays as a script prints them, unless told not to,
    and records which in training.json's details."""
    from annotated_bert.pretrain import argument_parser, load_corpus

    assert argument_parser().parse_args([]).speaker_names is True
    assert argument_parser().parse_args(["--no-speaker-names"]).speaker_names is False
    named_train, named_held_out, details = load_corpus("shakespeare")
    plain_train, _, plain_details = load_corpus("shakespeare", speaker_names=False)
    assert details["speaker_names"] is True and plain_details["speaker_names"] is False
    assert {d.play for d in named_held_out} == set(details["held_out_plays"])
    tempest = next(d for d in named_train if d.play == "the-tempest")
    assert tempest.sentences[0].startswith("Master: ")
    assert next(d for d in plain_train if d.play == "the-tempest").sentences[0] == tempest.sentences[0][len("Master: "):]


def test_the_long_phase_ends_the_run_with_longer_pairs(tokenized, tokenizer):
    config = TrainingConfig(**{**TINY, "max_seq_len": 32, "long_seq_len": 64, "long_fraction": 0.25, "steps": 40})
    assert (config.long_steps, config.long_batch_size, config.positions) == (10, 4, 64)
    batches = PairBatches(tokenized, tokenizer, config)
    assert [batches.phase(step)[:3] for step in (0, 29, 30, 39)] == [("pairs", 32, 8)] * 2 + [("long pairs", 64, 4)] * 2
    short, long = batches.micro_batches(29)[0], batches.micro_batches(30)[0]
    assert short["input_ids"].shape[0] == 8 and short["input_ids"].shape[1] <= 32
    assert long["input_ids"].shape[0] == 4 and 32 < long["input_ids"].shape[1] <= 64
    assert build_model(config, tokenizer).config.max_position_embeddings == 64
    one_phase = TrainingConfig(**{**TINY, "max_seq_len": 32, "steps": 40})
    assert one_phase.long_steps == 0 and one_phase.positions == 32
    assert torch.equal(PairBatches(tokenized, tokenizer, one_phase).micro_batches(29)[0]["input_ids"], short["input_ids"])
    with pytest.raises(ValueError, match="long_seq_len 32 must exceed max_seq_len 32"):
        TrainingConfig(**{**TINY, "max_seq_len": 32, "long_seq_len": 32, "long_fraction": 0.25})
    with pytest.raises(ValueError, match="batch_size × max_seq_len = 384 must be a multiple of long_seq_len"):
        TrainingConfig(**{**TINY, "long_seq_len": 100, "long_fraction": 0.25})
    with pytest.raises(ValueError, match=r"long_fraction must be a finite number in \[0, 1\); got 1.0"):
        TrainingConfig(**{**TINY, "long_fraction": 1.0})


def test_masked_lm_alone_leaves_the_next_sentence_head_untrained(tokenized, tokenizer):
    config = TrainingConfig(**{**TINY, "next_sentence": False, "weight_decay": 0.0, "steps": 3})
    model = build_model(config, tokenizer)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    optimizer, scheduler = make_optimizer(model, config)
    batches = PairBatches(tokenized, tokenizer, config)
    for step in range(3):
        losses = train_step(model, batches.micro_batches(step), optimizer, scheduler, config, Process())
    after = model.state_dict()
    assert torch.equal(after["nsp_head.weight"], before["nsp_head.weight"])
    assert torch.equal(after["bert.pooler.dense.weight"], before["bert.pooler.dense.weight"])
    assert not torch.equal(after["mlm_head.bias"], before["mlm_head.bias"])
    assert losses["nsp_loss"] > 0 and losses["loss"] == losses["mlm_loss"]       # the loss it minimised
