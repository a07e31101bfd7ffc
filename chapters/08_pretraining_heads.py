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
# # Chapter 8: Pretraining heads
#
# Chapter 6 built the encoder: it turns `[CLS] A [SEP] B [SEP]` into one vector per position and a pooled
# vector for the pair. Chapter 7 built the exercises: pairs with about 15% of their tokens hidden and an
# IsNext/NotNext label. This chapter joins the two. BERT is pretrained with two small *heads* on top of
# the encoder, thrown away (or kept, for the masked-LM head) when the model is used for something else:
#
# - the **masked-LM head** turns the hidden vector at a masked position into a score for every word of
#   the vocabulary: a dense layer, GELU and LayerNorm, then a *decoder* whose weight **is** the token
#   embedding matrix (the same storage, not a copy), plus its own bias;
# - the **next-sentence head** is one `Linear(H, 2)` on the pooled vector; label 0 means "B is the next
#   text", 1 means "B is random", as in `transformers`.
#
# `BertForPreTraining` wraps the encoder and both heads, computes the masked-LM scores only where a token
# was masked (we measure what that saves), and adds the two losses. It loads and saves checkpoints under
# the names `transformers` uses for its own `BertForPreTraining`, and matches it to 1e-5. At the end we
# train it on a handful of chapter 7's pairs until it knows them by heart: the smallest test that the
# whole model can learn.
#
# Where we depart from the BERT paper and from `transformers`: we compute MLM logits only at the masked
# positions whenever they are given (the original TensorFlow code does too; `transformers` scores every
# position), and the two losses are also returned separately, so that chapter 9 can watch each one.

# %%
import tempfile
import time
import warnings

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
import transformers
from torch import nn

from annotated_bert.model import BertConfig, BertModel
from annotated_bert.model import init_bert_weights

torch.manual_seed(0)
# The models of this chapter are tiny: a second thread buys little, and on a busy machine a thread that waits
# for a core makes every small operation slow. One thread keeps the run fast and the timings steady.
torch.set_num_threads(1)
transformers.logging.set_verbosity_error()  # its load reports are checked in code below, not printed
transformers.logging.disable_progress_bar()

# %% [markdown]
# ## The masked-LM head
#
# At a masked position the encoder's last layer gives a vector $h \in \mathbb{R}^H$. The head first
# *transforms* it with one more dense layer, GELU and LayerNorm, then scores every token $w$ of the
# vocabulary by a dot product with that token's input embedding $E_w$, plus a bias per token:
#
# $$ t = \mathrm{LayerNorm}\big(\mathrm{GELU}(W_t h + b_t)\big), \qquad
#    \mathrm{logit}_w = E_w \cdot t + b_w, \qquad P(w \mid \text{context}) = \mathrm{softmax}_w(\mathrm{logit}). $$
#
# The decoder has no weight of its own: the matrix $E$ ($V \times H$) that turns a token id into a vector
# on the way in turns a vector into token scores on the way out. This *weight tying* (Press and Wolf,
# 2017) saves $V \times H$ parameters (23.4 million of BERT-base's 110 million) and gives rare tokens,
# which are seldom predicted, an output vector trained by every sentence they appear in. The bias $b_w$
# is not tied: it is the head's own, and learns how common each token is.
#
# `transformers` calls the transform `cls.predictions.transform`; we call it `transform` and build it
# from the same parts.

# %%
#| export: pretraining
import torch
from torch import nn

from annotated_bert.encoder import gelu


class BertPredictionTransform(nn.Module):
    """LayerNorm(GELU(Linear(h))): the masked-LM head's last step before the vocabulary."""

    def __init__(self, hidden_size: int, layer_norm_eps: float = 1e-12):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """hidden_states [..., H] -> transformed [..., H]."""
        return self.layer_norm(gelu(self.dense(hidden_states)))  # (..., H)


class BertMLMHead(nn.Module):
    """Transform, then scores for every token of the vocabulary: transform(h) @ Eᵀ + bias.

    `decoder.weight` is set to the word-embedding matrix by BertForPreTraining (the same Parameter);
    `bias` is the head's own.
    """

    def __init__(self, hidden_size: int, vocab_size: int, layer_norm_eps: float = 1e-12):
        super().__init__()
        self.transform = BertPredictionTransform(hidden_size, layer_norm_eps)
        self.decoder = nn.Linear(hidden_size, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """hidden_states [..., H] -> logits [..., V], a score for every token of the vocabulary."""
        # one fused matrix multiply-add, as nn.Linear(bias=self.bias) would do: (..., H) @ (H, V) + (V,)
        return nn.functional.linear(self.transform(hidden_states), self.decoder.weight, self.bias)  # (..., V)

# %% [markdown]
# The head on a toy batch: two sequences of seven positions, $H = 32$, a vocabulary of 99. Every
# position gets 99 scores.

# %%
toy_config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37)
toy_head = BertMLMHead(toy_config.hidden_size, toy_config.vocab_size)
toy_hidden = torch.randn(2, 7, 32)                                         # (B, T, H)
print("transformed", tuple(toy_head.transform(toy_hidden).shape))          # (B, T, H)
print("logits     ", tuple(toy_head(toy_hidden).shape))                    # (B, T, V)

# %% [markdown]
# ## The next-sentence head
#
# The pooled vector $p = \tanh(W_p h_{\texttt{[CLS]}} + b_p)$ (chapter 6's pooler) goes through one linear
# layer to two scores, $[\mathrm{IsNext}, \mathrm{NotNext}]$, in that order: label 0 is "B follows A",
# label 1 is "B is random". Both the order and the labels are those of `transformers` and of chapter 7's
# `next_sentence_labels`; a model whose labels were the other way round would load real weights and
# then answer every question backwards.

# %%
#| export: pretraining
from dataclasses import dataclass


@dataclass
class BertForPreTrainingOutput:
    """What BertForPreTraining.forward returns: the heads' logits, and the losses of the labels given."""

    prediction_logits: torch.Tensor           # (B, T, V), or (B, P, V) when masked_positions are given
    seq_relationship_logits: torch.Tensor     # (B, 2): [IsNext, NotNext]
    loss: torch.Tensor | None = None          # mlm_loss + nsp_loss (those whose labels were given)
    mlm_loss: torch.Tensor | None = None      # mean cross-entropy over the real masked tokens
    nsp_loss: torch.Tensor | None = None      # mean cross-entropy over the batch
    attentions: tuple | None = None           # one (B, heads, T, T) per layer, when asked

# %% [markdown]
# ## The model and its losses
#
# `BertForPreTraining` is a `BertModel` (`bert`), the masked-LM head (`mlm_head`) and the next-sentence
# head (`nsp_head`). In `__init__` the decoder's weight is *replaced* by the embedding `Parameter`, so the
# two names point to one tensor; the heads get BERT's initialisation, the decoder does not (it would
# overwrite the embeddings, `[PAD]`'s zero row included).
#
# `forward` takes chapter 7's batch as keyword arguments. With `masked_positions` ($[B, P]$) it gathers
# the hidden vectors at those positions, $[B, T, H] \to [B, P, H]$, and only those go through the
# head: the logits are $[B, P, V]$ instead of $[B, T, V]$. Without them it scores every position, as
# `transformers` does, and `masked_labels` may then be a full $[B, T]$ label tensor, -100 where nothing
# is predicted (the `labels` of `transformers`).
#
# The loss is the sum of two means:
#
# $$ \mathcal{L} = \underbrace{-\frac{1}{|M|}\sum_{(b, j) \in M} \log P(x_{b,j} \mid \tilde{x}_b)}_{\texttt{mlm\_loss}}
#   \; \underbrace{- \frac{1}{B}\sum_{b=1}^{B} \log P(y_b \mid A_b, B_b)}_{\texttt{nsp\_loss}} $$
#
# where $M$ holds the *real* masked tokens of the batch: padded prediction slots carry the label -100,
# which `cross_entropy(ignore_index=-100)` leaves out of the sum and out of the count. The mean is over
# tokens, not over sequences: a pair with 19 predictions weighs 19 times one with a single prediction,
# as in BERT's code. The NSP loss has no `ignore_index` at all: both of its labels are real (a loss
# shared by both tasks with `ignore_index=0`, a bug from-scratch BERTs have shipped, silently drops every
# IsNext pair, whose label is 0). We also check the label values, since `cross_entropy` on a label
# of 2 or -1 would fail with a message that names neither task.

# %%
#| export: pretraining
from annotated_bert.model import BertConfig, BertModel


def _shape(tensor) -> list:
    return list(tensor.shape)


class BertForPreTraining(nn.Module):
    """BertModel + masked-LM head (decoder tied to the word embeddings) + next-sentence head."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.mlm_head = BertMLMHead(config.hidden_size, config.vocab_size, config.layer_norm_eps)
        self.nsp_head = nn.Linear(config.hidden_size, 2)
        self.mlm_head.transform.apply(self._init_weights)
        self.nsp_head.apply(self._init_weights)
        self.tie_weights()

# %% [markdown]
# Its new weights start as BERT's do, and the masked positions and labels it is given are checked before
# any is used, so that a wrong shape, an index outside the sequence or a label outside the vocabulary is named
# rather than gathered.

# %%
#| export: pretraining
# BertForPreTraining, continued from the cell above.
from annotated_bert.attention import checks_values
from annotated_bert.embeddings import check_ids
from annotated_bert.model import init_bert_weights


class BertForPreTraining(BertForPreTraining):
    def _init_weights(self, module):
        init_bert_weights(module, self.config.initializer_range)

    def tie_weights(self) -> None:
        """Make the decoder's weight the word-embedding Parameter itself (one storage, one gradient)."""
        self.mlm_head.decoder.weight = self.bert.embeddings.token.weight

    def _check_masked(self, input_ids, masked_positions, masked_labels) -> None:
        batch_size, seq_len = input_ids.shape
        if masked_positions is not None:
            if masked_positions.dim() != 2 or masked_positions.shape[0] != batch_size:
                raise ValueError(f"masked_positions must be [B, P] with B = {batch_size} (input_ids is "
                                 f"{_shape(input_ids)}); got {_shape(masked_positions)}")
            check_ids("masked_positions", masked_positions, seq_len, "seq_len")    # integers, inside the sequence
        if masked_labels is not None:
            expected = _shape(masked_positions) if masked_positions is not None else [batch_size, seq_len]
            if _shape(masked_labels) != expected:
                given = "masked_positions" if masked_positions is not None else "input_ids (no masked_positions)"
                raise ValueError(f"masked_labels must have the shape of {given}, {expected}; "
                                 f"got {_shape(masked_labels)}")
            vocab_size = self.config.vocab_size
            outside = (masked_labels != -100) & ((masked_labels < 0) | (masked_labels >= vocab_size))
            if masked_labels.is_floating_point() or (checks_values(masked_labels) and outside.any()):
                raise ValueError(f"masked_labels must be token ids in [0, vocab_size={vocab_size}) or -100 (no "
                                 f"prediction); got {masked_labels.dtype} values {masked_labels.unique()[:8].tolist()}")

# %%
#| export: pretraining
import torch

from annotated_bert.attention import checks_values


def check_next_sentence_labels(next_sentence_labels: torch.Tensor, batch_size: int) -> None:
    """NSP labels are [B], each 0 (IsNext) or 1 (NotNext)."""
    if next_sentence_labels.shape != (batch_size,):
        raise ValueError(f"next_sentence_labels must be [B] = [{batch_size}]; got {_shape(next_sentence_labels)}")
    if checks_values(next_sentence_labels) and not ((next_sentence_labels == 0) | (next_sentence_labels == 1)).all():
        raise ValueError("next_sentence_labels must be 0 (IsNext) or 1 (NotNext); got "
                         f"{sorted(set(next_sentence_labels.tolist()))}")

# %% [markdown]
# The forward pass: the encoder, the gathered masked positions, both heads, and the losses asked for.

# %%
#| export: pretraining
# BertForPreTraining, continued from the cell above.
import torch
from torch.nn import functional as F


class BertForPreTraining(BertForPreTraining):
    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, masked_positions: torch.Tensor | None = None,
                masked_labels: torch.Tensor | None = None, next_sentence_labels: torch.Tensor | None = None,
                output_attentions: bool = False) -> BertForPreTrainingOutput:
        """input_ids [B, T], token_type_ids and attention_mask [B, T] or None (as BertModel); masked_positions [B, P]
        or None (score every position); masked_labels [B, P] ([B, T] without positions; -100: no prediction) and
        next_sentence_labels [B] (0 IsNext, 1 NotNext) or None. Returns the logits, and the losses of labels given."""
        self._check_masked(input_ids, masked_positions, masked_labels)
        encoded = self.bert(input_ids, token_type_ids, attention_mask, output_attentions=output_attentions)
        hidden_states = encoded.last_hidden_state                                    # (B, T, H)
        if masked_positions is not None:
            index = masked_positions.unsqueeze(-1).expand(-1, -1, hidden_states.shape[-1])  # (B, P, H)
            hidden_states = hidden_states.gather(1, index)                           # (B, P, H)
        prediction_logits = self.mlm_head(hidden_states)                             # (B, P or T, V)
        seq_relationship_logits = self.nsp_head(encoded.pooler_output)               # (B, 2)

        mlm_loss = nsp_loss = None
        if masked_labels is not None:
            mlm_loss = F.cross_entropy(prediction_logits.reshape(-1, self.config.vocab_size),  # (B·P, V)
                                       masked_labels.reshape(-1), ignore_index=-100)
        if next_sentence_labels is not None:
            check_next_sentence_labels(next_sentence_labels, input_ids.shape[0])
            nsp_loss = F.cross_entropy(seq_relationship_logits, next_sentence_labels)  # every row counts
        losses = [loss for loss in (mlm_loss, nsp_loss) if loss is not None]
        return BertForPreTrainingOutput(
            prediction_logits=prediction_logits,
            seq_relationship_logits=seq_relationship_logits,
            loss=sum(losses) if losses else None,
            mlm_loss=mlm_loss,
            nsp_loss=nsp_loss,
            attentions=encoded.attentions,
        )

# %% [markdown]
# ## The tie, checked
#
# The decoder's weight and the token embedding are one `Parameter`: the same Python object, the same
# memory. `model.parameters()` lists it once, so the optimizer updates it once, with the sum of the
# gradients from both of its uses.

# %%
torch.manual_seed(0)
toy_model = BertForPreTraining(toy_config)
embedding, decoder = toy_model.bert.embeddings.token.weight, toy_model.mlm_head.decoder.weight
assert decoder is embedding and decoder.data_ptr() == embedding.data_ptr()
print("decoder weight", tuple(decoder.shape), "is the token embedding:", decoder is embedding)
reference = transformers.BertForPreTraining(transformers.BertConfig(**toy_config.to_dict()))
ours_count = sum(parameter.numel() for parameter in toy_model.parameters())
theirs_count = sum(parameter.numel() for parameter in reference.parameters())
assert ours_count == theirs_count
print(f"parameters: ours {ours_count:,}, transformers {theirs_count:,}")

# %% [markdown]
# At BERT-base's size the model has 110,106,428 parameters: chapter 6's 109,482,240 plus the transform
# ($768 \times 768 + 768$ and a LayerNorm of $2 \times 768$), the output bias (30,522) and the NSP layer
# ($768 \times 2 + 2$). An untied decoder would add $30{,}522 \times 768 = 23{,}440{,}896$ more.

# %%
base_count = sum(parameter.numel() for parameter in BertForPreTraining(BertConfig()).parameters())
print(f"BertForPreTraining at BERT-base size: {base_count:,} parameters")
assert base_count == 110_106_428

# %% [markdown]
# The tie survives training: after a step of AdamW the decoder still is the embedding, and the embedding
# has moved. Its gradient comes from both ends: the rows of tokens that are not in the input at all get
# one anyway, from their use as output vectors of the softmax.

# %%
toy_ids = torch.randint(5, 99, (2, 7))                                     # (B, T)
optimizer = torch.optim.AdamW(toy_model.parameters(), lr=1e-2)
before = embedding.detach().clone()
toy_model(toy_ids, masked_labels=toy_ids, next_sentence_labels=torch.tensor([0, 1])).loss.backward()
absent = torch.ones(99, dtype=torch.bool)
absent[toy_ids.flatten()] = False          # tokens not in the input: their rows get gradient only as outputs
assert embedding.grad[absent].abs().sum(1).gt(0).all()
optimizer.step()
assert toy_model.mlm_head.decoder.weight is toy_model.bert.embeddings.token.weight
print(f"{absent.sum().item()} of {len(absent)} rows belong to tokens absent from the input; all have a gradient")
print(f"largest change of the shared matrix after one step: {(embedding - before).abs().max().item():.4f}")

# %% [markdown]
# ## The model on a toy batch
#
# A batch shaped like chapter 7's: two pairs, the second padded after five tokens, three prediction
# slots each, the second pair's last slot padding (position 0, label -100). With `masked_positions` the
# logits are $[B, P, V]$; without, $[B, T, V]$.

# %%
torch.manual_seed(0)
toy_model = BertForPreTraining(toy_config).eval()
toy_batch = {
    "input_ids": torch.randint(5, 99, (2, 7)),                                # (B, T)
    "attention_mask": torch.tensor([[1] * 7, [1] * 5 + [0] * 2]),             # (B, T)
    "masked_positions": torch.tensor([[1, 3, 5], [2, 4, 0]]),                 # (B, P)
    "masked_labels": torch.tensor([[11, 12, 13], [14, 15, -100]]),            # (B, P)
    "next_sentence_labels": torch.tensor([0, 1]),                             # (B,)
}
toy_batch["input_ids"][1, 5:] = 0
with torch.no_grad():
    toy_output = toy_model(**toy_batch)
    everywhere = toy_model(toy_batch["input_ids"], attention_mask=toy_batch["attention_mask"])
print("prediction_logits at masked positions", tuple(toy_output.prediction_logits.shape))
print("prediction_logits everywhere         ", tuple(everywhere.prediction_logits.shape))
print("seq_relationship_logits              ", tuple(toy_output.seq_relationship_logits.shape))
print(f"loss {toy_output.loss:.4f} = mlm {toy_output.mlm_loss:.4f} + nsp {toy_output.nsp_loss:.4f}")

# %% [markdown]
# Gathering first and scoring afterwards gives the same numbers as scoring everywhere and picking the
# masked positions afterwards, and the MLM loss is the mean over the five real masked tokens, not six:

# %%
rows = torch.arange(2).unsqueeze(1)                                         # (B, 1)
picked = everywhere.prediction_logits[rows, toy_batch["masked_positions"]]  # (B, P, V)
assert torch.allclose(toy_output.prediction_logits, picked, atol=1e-6)
real = toy_batch["masked_labels"] != -100
by_hand = F.cross_entropy(picked[real], toy_batch["masked_labels"][real])   # mean over real tokens
assert torch.allclose(toy_output.mlm_loss, by_hand)
print(f"real masked tokens: {real.sum().item()}; mlm loss {toy_output.mlm_loss:.4f}, by hand {by_hand:.4f}")

# %% [markdown]
# That bug, measured. Had we used one loss for both tasks with `ignore_index=0` (the pad id, a natural but
# wrong choice), the IsNext pair's NSP label, 0, would vanish from the loss:

# %%
nsp_logits, nsp_labels = toy_output.seq_relationship_logits, toy_batch["next_sentence_labels"]
wrong = F.cross_entropy(nsp_logits, nsp_labels, ignore_index=0)
assert torch.allclose(wrong, F.cross_entropy(nsp_logits[1:], nsp_labels[1:]))
print(f"NSP loss: ours {toy_output.nsp_loss:.4f}; with ignore_index=0 {wrong:.4f}, "
      f"which is the NotNext row alone: {F.cross_entropy(nsp_logits[1:], nsp_labels[1:]):.4f}")

# %% [markdown]
# ## Checkpoints under Hugging Face's names
#
# Chapter 6's table `HF_NAMES` renames the encoder; a pretraining checkpoint puts `bert.` in front of
# those names and adds the heads under `cls.`. One table again, built from chapter 6's so that the two
# cannot drift apart:

# %%
#| export: pretraining
from annotated_bert.pretrained import HF_NAMES

# Our names -> transformers' BertForPreTraining names; each line covers `.weight` and `.bias`, `{i}` a layer.
PRETRAINING_HF_NAMES = {
    **{f"bert.{ours}": f"bert.{hf}" for ours, hf in HF_NAMES.items()},
    "mlm_head.transform.dense":                    "cls.predictions.transform.dense",
    "mlm_head.transform.layer_norm":               "cls.predictions.transform.LayerNorm",
    "mlm_head":                                    "cls.predictions",  # its bias: cls.predictions.bias
    "nsp_head":                                    "cls.seq_relationship",
}

# %% [markdown]
# The class declares the table and two facts of its own. The decoder's weight *is* the word-embedding
# matrix, so it is saved once, under the embedding's name. And older versions of `transformers` (and
# TensorFlow conversions) wrote two redundant names: the tied decoder weight, a copy of the word
# embeddings, and the decoder bias, a second name for `cls.predictions.bias`. They are aliases: checked
# against what they repeat, then dropped. A checkpoint of a bare encoder (no `bert.`) also loads, its
# heads then missing: an error unless `strict=False`. Loading and saving are Appendix A2's codec, the
# one chapter 6's `BertModel` uses, driven by these names.

# %%
#| export: pretraining
from annotated_bert.checkpoints import CheckpointNames

PRETRAINING_NAMES = CheckpointNames(
    "BertForPreTraining", PRETRAINING_HF_NAMES, encoder_prefix="bert.", dropped_heads=("classifier.",),
    tied={"mlm_head.decoder.weight": "bert.embeddings.token.weight"},
    aliases={"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
             "cls.predictions.decoder.bias": "cls.predictions.bias"},
)
BertForPreTraining.checkpoint_names = PRETRAINING_NAMES  # the class declares its names

# %% [markdown]
# With the names declared, `from_pretrained` and `save_pretrained` are the codec's two calls.

# %%
#| export: pretraining
# BertForPreTraining, continued: loading and saving by the names it declares.
from annotated_bert.checkpoints import Device, PathLike, load_checkpoint, save_checkpoint


class BertForPreTraining(BertForPreTraining):
    @classmethod
    def from_pretrained(cls, directory: PathLike, device: Device = "cpu", strict: bool = True) -> "BertForPreTraining":
        """Load a Hugging Face BertForPreTraining directory (config.json + weights); on `device`, in eval mode."""
        return load_checkpoint(cls, directory, device=device, strict=strict)

    def save_pretrained(self, directory: PathLike, overwrite: bool = False) -> None:
        """Write config.json + model.safetensors under transformers' BertForPreTraining names (as BertModel's)."""
        save_checkpoint(self, directory, overwrite=overwrite)

# %% [markdown]
# ## Only the masked positions: what it saves
#
# The decoder is the largest matrix multiplication of a small BERT: $[N, H] \times [H, V]$ for $N$
# scored positions, with $V$ in the thousands. Scoring every position makes $N = B \cdot T$; scoring the
# masked ones makes $N = B \cdot P$, with $P \approx 0.15\,T$. The loss is the same (we checked it above),
# so the saving is free. We time one training step (forward and backward) of the head alone and of the
# whole model, at the book's vocabulary size (8,000 tokens), $B = 8$, $T = 128$, $P = 20$, a model of two
# layers of width 128; on one thread, best of six interleaved runs after a warm-up. The numbers depend on
# the machine; the asserts do not.

# %%
torch.manual_seed(0)
speed_config = BertConfig(vocab_size=8000, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=512)
speed_model = BertForPreTraining(speed_config)
batch_size, seq_len, predictions = 8, 128, 20
speed_ids = torch.randint(5, 8000, (batch_size, seq_len))                                        # (B, T)
speed_positions = torch.stack([torch.randperm(seq_len)[:predictions] for _ in range(batch_size)])  # (B, P)
speed_labels = torch.randint(5, 8000, (batch_size, predictions))                                 # (B, P)
speed_full_labels = torch.full((batch_size, seq_len), -100).scatter_(1, speed_positions, speed_labels)  # (B, T)
speed_hidden = torch.randn(batch_size, seq_len, 128)                                             # (B, T, H)


def head_step(gathered):
    hidden = speed_hidden.gather(1, speed_positions.unsqueeze(-1).expand(-1, -1, 128)) if gathered else speed_hidden
    labels = speed_labels if gathered else speed_full_labels
    F.cross_entropy(speed_model.mlm_head(hidden).flatten(0, 1), labels.flatten(), ignore_index=-100).backward()


def model_step(gathered):
    if gathered:
        speed_model(speed_ids, masked_positions=speed_positions, masked_labels=speed_labels).loss.backward()
    else:
        speed_model(speed_ids, masked_labels=speed_full_labels).loss.backward()


# %% [markdown]
# Each step is timed a few times, both variants interleaved, and the best time of each kept:

# %% tags=["nbval-ignore-output"]
def best_times(step, repeats=6):
    times = {False: [], True: []}
    step(False), step(True)                # warm-up: the first call allocates
    for _ in range(repeats):
        for gathered in (False, True):   # interleaved, so that a busy moment hurts both alike
            speed_model.zero_grad()
            start = time.perf_counter()
            step(gathered)
            times[gathered].append(time.perf_counter() - start)
    return min(times[False]), min(times[True])


timings = {"MLM head alone": best_times(head_step), "whole training step": best_times(model_step)}
for what, (everywhere_s, gathered_s) in timings.items():
    print(f"{what:20}: all {seq_len} positions {1000 * everywhere_s:7.1f} ms, "
          f"{predictions} masked positions {1000 * gathered_s:6.1f} ms: {everywhere_s / gathered_s:.1f}x faster")
assert timings["MLM head alone"][0] > 2 * timings["MLM head alone"][1]
assert timings["whole training step"][0] > timings["whole training step"][1]

# %% [markdown]
# The head alone gets faster by roughly $T / P$; the whole step by less, since the encoder still runs
# at every position. The bigger the vocabulary is next to the encoder, the more it matters: at BERT-base's
# $V = 30{,}522$ the decoder's $[B \cdot T, 768] \times [768, 30{,}522]$ multiplication costs about as much
# as three of its twelve layers.

# %% [markdown]
# ## Learning one batch by heart
#
# Before chapter 9 trains for real, the cheapest test of the whole path: can the model drive its loss
# to zero on one small batch? If it cannot, something is disconnected (a head without gradient, labels
# misaligned with positions, a mask hiding everything). We take the scenes of the first play, make
# chapter 7's pairs (at most 64 tokens) with the book's vocabulary, mask them once, and collate eight.

# %%
from annotated_bert.corpus import load_shakespeare
from annotated_bert.data import collate_pretraining_batch, create_instances, PretrainingDataset, tokenize_documents
from annotated_bert.tokenization import BOOK_VOCABULARY, BertTokenizer

tokenizer = BertTokenizer(BOOK_VOCABULARY / "vocab.txt")
scenes = [scene for scene in load_shakespeare() if scene.play == "the-tempest"]
pairs = create_instances(tokenize_documents(scenes, tokenizer), max_seq_len=64, seed=0)
dataset = PretrainingDataset(pairs, tokenizer, dynamic=False, seed=0)
tiny_batch = collate_pretraining_batch([dataset[index] for index in range(8)], tokenizer)
for key, tensor in tiny_batch.items():
    print(f"{key:21} {tuple(tensor.shape)}")
print("next_sentence_labels", tiny_batch["next_sentence_labels"].tolist())

# %% [markdown]
# A model of two layers of width 64, no dropout (dropout would keep the loss from reaching zero), AdamW
# at a learning rate of 3e-3, 120 steps on that one batch:

# %% tags=["nbval-ignore-output"]
# 120 steps amplify the last bits of the CPU's float kernels: the losses printed vary a little by machine,
# the asserts below do not.
torch.manual_seed(0)
tiny_config = BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
tiny_model = BertForPreTraining(tiny_config)
optimizer = torch.optim.AdamW(tiny_model.parameters(), lr=3e-3)
history = []
for step in range(120):
    output = tiny_model(**tiny_batch)
    optimizer.zero_grad()
    output.loss.backward()
    optimizer.step()
    history.append((output.mlm_loss.item(), output.nsp_loss.item()))
print(f"loss at step 0: mlm {history[0][0]:.2f}, nsp {history[0][1]:.2f} "
      f"(chance: ln V = {torch.tensor(float(len(tokenizer))).log():.2f}, ln 2 = 0.69)")
print(f"loss at step {len(history) - 1}: mlm {history[-1][0]:.3f}, nsp {history[-1][1]:.4f}")
assert history[-1][0] < 0.05 and history[-1][1] < 0.01
assert tiny_model.mlm_head.decoder.weight is tiny_model.bert.embeddings.token.weight

# %%
figure, axis = plt.subplots(figsize=(6.5, 3))
axis.semilogy([mlm for mlm, _ in history], label="masked LM")
axis.semilogy([nsp for _, nsp in history], label="next sentence")
axis.set_xlabel("step (the same 8 pairs every step)")
axis.set_ylabel("cross-entropy")
axis.set_title("BertForPreTraining learns one batch by heart")
axis.legend()
figure.savefig("../figures/08_overfit_one_batch.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# Memorising eight pairs proves the plumbing, not learning: the model has seen nothing it could
# generalise from. That is chapter 9's work.

# %% [markdown]
# ## The same model as `transformers`
#
# We save the memorised model with `save_pretrained`, load it into `transformers`' own
# `BertForPreTraining`, and compare both heads' outputs on the batch, at every real position. The file
# holds the names `transformers` itself writes: the tied decoder weight appears once, as the word
# embeddings, and the output bias once, as `cls.predictions.bias` (older versions also wrote
# `cls.predictions.decoder.weight` and `.bias`; our loader accepts and checks them).

# %%
from safetensors.torch import load_file

tiny_model.eval()
with tempfile.TemporaryDirectory() as directory:
    tiny_model.save_pretrained(directory)
    saved_names = sorted(load_file(f"{directory}/model.safetensors"))
    theirs = transformers.BertForPreTraining.from_pretrained(directory).eval()
    ours_again = BertForPreTraining.from_pretrained(directory)
print(f"{len(saved_names)} tensors saved; the heads':", [name for name in saved_names if name.startswith("cls.")])
assert theirs.cls.predictions.decoder.weight is theirs.bert.embeddings.word_embeddings.weight

# %% [markdown]
# The largest differences (their last digits depend on the CPU's float kernels; the assert states the
# bound):

# %% tags=["nbval-ignore-output"]
inputs = {key: tiny_batch[key] for key in ("input_ids", "token_type_ids", "attention_mask")}
with torch.no_grad():
    ours_output = tiny_model(**inputs)
    theirs_output = theirs(**inputs)
    reloaded_output = ours_again(**tiny_batch)
real_positions = tiny_batch["attention_mask"].bool()
mlm_difference = (ours_output.prediction_logits - theirs_output.prediction_logits)[real_positions].abs().max().item()
nsp_difference = (ours_output.seq_relationship_logits - theirs_output.seq_relationship_logits).abs().max().item()
print(f"largest difference: prediction_logits {mlm_difference:.1e}, seq_relationship_logits {nsp_difference:.1e}")
assert mlm_difference < 1e-5 and nsp_difference < 1e-5
assert torch.allclose(reloaded_output.loss, tiny_model(**tiny_batch).loss)

# %% [markdown]
# ## What we built
#
# Module `pretraining`:
#
# - `BertPredictionTransform` and `BertMLMHead`: dense, GELU, LayerNorm, then a decoder whose weight *is*
#   the token embedding matrix, plus the head's own output bias;
# - `BertForPreTraining`: `bert` + `mlm_head` + `nsp_head` (label 0 = IsNext, 1 = NotNext), returning a
#   `BertForPreTrainingOutput` with `prediction_logits`, `seq_relationship_logits` and, given labels,
#   `loss` = `mlm_loss` (mean over real masked tokens) + `nsp_loss` (every row); MLM logits only at
#   `masked_positions` when given, checked to equal the all-position ones, and several times cheaper;
# - `PRETRAINING_HF_NAMES`, chapter 6's table with `bert.` and the `cls.` heads, and `PRETRAINING_NAMES` (the
#   tied decoder, the legacy aliases), through which Appendix A2's codec gives
#   `from_pretrained` / `save_pretrained` that exchange checkpoints with `transformers`' `BertForPreTraining`
#   in both directions, matching its outputs within 1e-5.
#
# The model memorises one batch of chapter 7's data. Chapter 9 trains it on the plays for real, on a CPU,
# and finds out what half an hour of pretraining can and cannot teach.
