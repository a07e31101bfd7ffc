"""Chapter 10's and appendix A4's tasks and methods: corruptions, balanced prefixes, the split by play, selection on
a development set, the masked-LM scores and the zero-label rule, the bootstrap, the shipped curves' check, and the
one warm-up formula of both training loops."""

import json
import random
from collections import Counter

import numpy as np
import pytest
import torch

from annotated_bert import transfer
from annotated_bert.corpus import HELD_OUT_PLAYS, load_shakespeare
from annotated_bert.finetune import BertForSequenceClassification, fine_tuning_optimizer
from annotated_bert.model import BertConfig
from annotated_bert.tokenization import BOOK_VOCABULARY as VOCAB
from annotated_bert.tokenization import BertTokenizer
from annotated_bert.training import TrainingConfig, build_model, linear_warmup_decay
from tests.test_training import TINY


@pytest.fixture(scope="module")
def scenes():
    return load_shakespeare()


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer.from_pretrained(VOCAB)


@pytest.mark.parametrize("kind", transfer.CORRUPTIONS)
def test_a_corruption_changes_one_plain_word_and_keeps_the_end(kind):
    words = "Now is the winter of our discontent made glorious summer.".split()
    for seed in range(20):
        broken = transfer.corrupt(words, kind, random.Random(seed))
        assert broken != words and broken[-1] == words[-1]
        assert len(broken) == len(words) + {"swap": 0, "drop": -1, "duplicate": 1}[kind]
        if kind == "swap":
            assert Counter(broken) == Counter(words)


def test_corrupt_names_the_problem():
    with pytest.raises(ValueError, match="kind must be one of"):
        transfer.corrupt("a b c d".split(), "reverse", random.Random(0))
    with pytest.raises(ValueError, match="can take a swap"):
        transfer.corrupt("O, O, O, end.".split(), "swap", random.Random(0))


def test_interleaved_prefixes_are_balanced():
    items = transfer.interleaved([["a"] * 5, ["b"] * 7, ["c"] * 6], random.Random(0))
    assert len(items) == 15
    for n in range(1, 16):
        counts = Counter(items[:n])
        assert max(counts.values()) - min(counts.get(label, 0) for label in "abc") <= 1


@pytest.mark.parametrize("make", [transfer.genre_task, transfer.acceptability_task])
def test_tasks_are_split_by_play_and_balanced(scenes, make):
    task = make(scenes, pool_size=120, dev_size=60, test_size=60)
    plays = {split: {example.play for example in getattr(task, split)} for split in ("pool", "dev", "test")}
    assert plays["test"] <= set(HELD_OUT_PLAYS) and not plays["test"] & (plays["pool"] | plays["dev"])
    assert not plays["pool"] & plays["dev"]
    for split in ("pool", "dev", "test"):
        labels = Counter(example.label for example in getattr(task, split)[:30])
        assert max(labels.values()) - min(labels.values()) <= 1 and len(labels) == len(task.labels)
    assert make(scenes, pool_size=120, dev_size=60, test_size=60) == task           # the seed fixes everything


def test_acceptability_breaks_every_odd_line_and_only_those(scenes):
    task = transfer.acceptability_task(scenes, pool_size=60, dev_size=30, test_size=30)
    lines = {sentence for scene in scenes for sentence in scene.sentences}
    for example in task.pool:
        if example.label == 1:
            assert example.text in lines and example.kind == ""
        else:
            assert example.kind in transfer.CORRUPTIONS and example.text not in lines


def test_logistic_regression_chooses_on_dev():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] > 0).astype(int)
    result = transfer.logistic_regression_on_dev(x[:100], y[:100], x[100:150], y[100:150], x[150:])
    assert result["sweep"][result["C"]] == max(result["sweep"].values())
    assert np.mean(np.array(result["predictions"]) == y[150:]) > 0.9


def test_fine_tune_on_dev_keeps_the_best_epoch(tokenizer):
    config = BertConfig(vocab_size=len(tokenizer.vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    ids = torch.randint(5, len(tokenizer.vocab), (24, 8))
    data = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": (ids[:, 1] % 2)}
    result = transfer.fine_tune_on_dev(lambda: BertForSequenceClassification(config, num_labels=2), data, data, data,
                                       (1e-3, 1e-2), epochs=3, batch_size=8)
    assert set(result["sweep"]) == {1e-3, 1e-2} and all(len(v) == 3 for v in result["sweep"].values())
    assert result["dev_accuracy"] == max(max(v) for v in result["sweep"].values())
    assert result["sweep"][result["learning_rate"]][result["epoch"] - 1] == result["dev_accuracy"]
    assert len(result["predictions"]) == 24


def test_layer_features_pool_every_depth_and_draw_a_bar_only_when_asked(capsys):
    """[L + 1, N, H], the same in batches as at once; tqdm's bar on stderr with progress=True, none by default."""
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=32), num_labels=2)
    ids = torch.randint(5, 50, (10, 8))
    mask = torch.ones_like(ids)
    mask[::2, 5:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    features = transfer.layer_features(model, inputs, batch_size=4)
    assert features.shape == (3, 10, 16) and capsys.readouterr().err == ""
    assert np.allclose(transfer.layer_features(model, inputs, batch_size=10, progress=True), features, atol=1e-5)
    assert "features" in capsys.readouterr().err


def test_one_warmup_formula_for_both_loops():
    """fine_tune's optimizer and schedule (fine_tuning_optimizer) follow chapter 9's linear_warmup_decay."""
    optimizer, schedule = fine_tuning_optimizer(torch.nn.Linear(2, 2), learning_rate=1.0, weight_decay=0.0,
                                                warmup_steps=5, total_steps=20)
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([linear_warmup_decay(step, 5, 20) for step in range(20)])


def test_masked_lm_scores_and_the_zero_label_rule(tokenizer):
    torch.manual_seed(0)
    model = build_model(TrainingConfig(**TINY), tokenizer).eval()
    texts = ["to be or not to be", "the king is dead"]
    unigram = transfer.unigram_log_probabilities(tokenizer, texts)
    scores = transfer.masked_lm_scores(model, tokenizer, texts, unigram)
    assert scores.shape == (2, 3) and np.all(np.isfinite(scores))
    assert list(scores[:, 2]) == [len(tokenizer.tokenize(text)) for text in texts]
    dev = np.array([[0, 1.0, 0], [0, 3.0, 0]])
    result = transfer.zero_label_predictions(dev, np.array([[0, 0.5, 0], [0, 2.5, 0]]))
    assert result == {"predictions": [0, 1], "threshold": 2.0}


def test_bootstrap_interval_brackets_the_accuracy_and_narrows_with_more_examples():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 600)
    predictions = np.where(rng.random(600) < 0.7, truth, 1 - truth)                  # right about 70% of the time
    accuracy = float(np.mean(predictions == truth))
    low, high = transfer.bootstrap_interval(predictions, truth)
    assert low < accuracy < high and high - low < 0.1
    small_low, small_high = transfer.bootstrap_interval(predictions[:150], truth[:150])
    assert small_high - small_low > high - low
    assert transfer.bootstrap_interval(truth, truth) == (1.0, 1.0)
    assert transfer.bootstrap_interval(predictions, truth) == (low, high)              # the seed fixes the draws


def test_paired_bootstrap_is_the_difference_on_the_same_resamples():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 300)
    better = np.where(rng.random(300) < 0.8, truth, (truth + 1) % 3)
    worse = np.where(rng.random(300) < 0.4, truth, (truth + 1) % 3)
    difference, low, high = transfer.paired_bootstrap(better, worse, truth)
    assert difference == pytest.approx(np.mean(better == truth) - np.mean(worse == truth))
    assert 0 < low < difference < high
    assert transfer.paired_bootstrap(better, better, truth) == (0.0, 0.0, 0.0)     # same predictions: no difference
    flipped = transfer.paired_bootstrap(worse, better, truth)
    assert flipped == pytest.approx((-difference, -high, -low))


def test_load_curves_refuses_curves_of_other_examples(tmp_path):
    test = [transfer.Example("to be or not to be", "hamlet", 1),
            transfer.Example("be to or not to be", "hamlet", 0, "swap")]
    task = transfer.Task("acceptability", transfer.ACCEPTABILITY, [], [], test)
    record = {"test": [example._asdict() for example in test], "sizes": list(transfer.LABELLED), "curves": {}}
    (tmp_path / "acceptability.json").write_text(json.dumps(record))
    assert transfer.load_curves(tmp_path, {"acceptability": task})["acceptability"] == record
    (tmp_path / "acceptability.json").write_text(json.dumps(record | {"sizes": [30, 100]}))
    with pytest.raises(ValueError, match=r"at n = \[30, 100\]"):
        transfer.load_curves(tmp_path, {"acceptability": task})
    (tmp_path / "acceptability.json").write_text(json.dumps(record | {"test": record["test"][:1]}))
    with pytest.raises(ValueError, match="other test examples"):
        transfer.load_curves(tmp_path, {"acceptability": task})
