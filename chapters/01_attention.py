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
# # Chapter 1: Attention
#
# Every layer of BERT is built around one small function: given some *queries*, some *keys* and some
# *values*, let each query take a weighted average of the values, weighted by how well the query
# matches each key. This chapter writes that function, `attention()`, and the helpers the rest of the
# book leans on: a checker that turns shape mistakes into readable errors, and a padding mask.
#
# Attention was not invented for BERT. It was invented to fix a specific weakness of neural machine
# translation around 2014, and the shape of the fix explains the shape of the function. So we start
# there:
#
# 1. **The bottleneck.** A recurrent encoder squeezes a whole sentence into one fixed-size vector. We
#    measure how little of the first word survives in it.
# 2. **Additive attention.** Keep every encoder state; at each decoder step, score them with a tiny
#    feed-forward network, turn the scores into weights, and average. Trained, the weights learn
#    where to look.
# 3. **Scaled dot-product attention.** Replace the network by a dot product, and divide by
#    $\sqrt{d_k}$. We measure why the division matters.
# 4. **`attention()`**, the exported function, checked against PyTorch's own.
# 5. **Masks**: hiding padding, and the guarantees that come with it.
# 6. **A first attention map** on a toy sentence.

# %%
import copy
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from annotated_bert.viz import plot_attention

torch.manual_seed(0)
torch.set_num_threads(1)  # the models here are tiny: a second thread buys little, and waiting for it costs
FIGURES = Path("../figures")
FIGURES.mkdir(exist_ok=True)

# %% [markdown]
# ## 1. The bottleneck: a whole sentence in one vector
#
# The sequence-to-sequence models of 2014 (Sutskever, Vinyals and Le; Cho et al.) translate with two
# recurrent networks. The *encoder* reads the source sentence one token at a time, updating a hidden
# state $h_j = f(h_{j-1}, x_j)$. Its last state, $c = h_T$, is the **context vector**: the decoder
# starts from $c$ and writes the translation. Everything the decoder will ever know about the source
# must pass through $c$.
#
# Here is such an encoder: an embedding table and a GRU, untrained. The encoder makes one state per
# token, but only the last one is handed on: a four-token sentence and a forty-token sentence give
# context vectors of exactly the same size.

# %%
class GRUEncoder(nn.Module):
    """Token ids [B, T] -> every hidden state [B, T, hidden] and the last one, the context [B, hidden]."""

    def __init__(self, vocab_size: int, embedding_size: int, hidden_size: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.gru = nn.GRU(embedding_size, hidden_size, batch_first=True)

    def forward(self, token_ids):
        states, last = self.gru(self.embedding(token_ids))  # (B, T, hidden), (1, B, hidden)
        return states, last[0]                               # (B, T, hidden), (B, hidden)


vocab_size = 100
encoder = GRUEncoder(vocab_size, embedding_size=16, hidden_size=32)
for length in (4, 40):
    states, context = encoder(torch.randint(1, vocab_size, (1, length)))
    print(f"{length:2d} tokens -> encoder states {list(states.shape)}, context vector {list(context.shape)}")

# %% [markdown]
# A fixed size is not yet a proof of forgetting. So we measure it: take many random sentences, change
# only their **first** token, and see how far the context vector moves (relative to its norm). For
# comparison we also measure how far the encoder's **first state** moves, the state a decoder could
# look at if it were allowed to see all of them.
#
# We run this in float64 so that the small numbers below are the network's, not rounding noise.

# %%
encoder64 = copy.deepcopy(encoder).double()


def relative_change(before, after):
    return ((after - before).norm(dim=-1) / before.norm(dim=-1)).mean().item()


lengths = [1, 2, 4, 8, 16, 32]
context_change, first_state_change = [], []
with torch.no_grad():
    for length in lengths:
        sentences = torch.randint(1, vocab_size, (500, length))
        edited = sentences.clone()
        edited[:, 0] = sentences[:, 0] % (vocab_size - 1) + 1   # a different word, same vocabulary
        (states, context), (states_edit, context_edit) = encoder64(sentences), encoder64(edited)
        context_change.append(relative_change(context, context_edit))
        first_state_change.append(relative_change(states[:, 0], states_edit[:, 0]))
print("length  context moves by  first state moves by")
for length, moved, first_moved in zip(lengths, context_change, first_state_change):
    print(f"{length:6d}  {moved:16.1e}  {first_moved:19.2f}")

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.2))
ax.semilogy(lengths, context_change, "o-", label="context vector (last state)")
ax.semilogy(lengths, first_state_change, "s--", label="first encoder state")
ax.set(xlabel="sentence length (tokens)", ylabel="relative change when\nthe first token changes",
       title="An untrained GRU forgets its first token")
ax.legend()
fig.savefig(FIGURES / "01_bottleneck.png", dpi=120, bbox_inches="tight")
plt.show()
assert context_change[-1] < 1e-3 * context_change[0] and min(first_state_change) > 0.5

# %% [markdown]
# The first token's trace in the context vector shrinks by orders of magnitude as the sentence grows,
# while the first encoder state carries it undiminished. Training teaches a GRU's gates to hold on
# much longer (and Sutskever et al. reversed the source so that its first words were read last), but
# it cannot change the size of $c$: Cho et al. found that such models translate worse as sentences
# get longer. The fix is in the second column: the encoder already computed a state for every
# token. Keep them all, and let the decoder choose which ones to read at each step.
#
# ## 2. Additive attention
#
# Bahdanau, Cho and Bengio (2015) give the decoder a different context vector $c_t$ at every output
# step $t$. To build it, they score each encoder state $h_j$ against the decoder's previous state
# $s_{t-1}$ with a one-hidden-layer feed-forward network, normalise the scores with a softmax, and
# average:
#
# $$e_{t,j} = v_a^\top \tanh\!\left(W_a s_{t-1} + U_a h_j\right), \qquad
#   \alpha_{t,j} = \frac{\exp(e_{t,j})}{\sum_{k} \exp(e_{t,k})}, \qquad
#   c_t = \sum_j \alpha_{t,j}\, h_j .$$
#
# This is where the vocabulary of the rest of the book comes from. The thing that asks, $s_{t-1}$, is
# the **query**; the things it is matched against, the $h_j$, are the **keys**; the things that get
# averaged are the **values** (here the same $h_j$). The $\alpha_{t,j}$ are the **attention weights**:
# non-negative, summing to one over $j$.
#
# The module below computes it for several queries at once. It lives only in this chapter: BERT
# does not use additive attention, so it is not exported.

# %%
class AdditiveAttention(nn.Module):
    """Bahdanau's scoring: scores v·tanh(W q + U k), weights softmax(scores), context weights @ values."""

    def __init__(self, query_size: int, key_size: int, attention_size: int):
        super().__init__()
        self.query_layer = nn.Linear(query_size, attention_size, bias=False)  # W_a
        self.key_layer = nn.Linear(key_size, attention_size, bias=False)      # U_a
        self.score_layer = nn.Linear(attention_size, 1, bias=False)           # v_a

    def forward(self, query, keys, values):
        # Every query meets every key by broadcasting the two projections against each other.
        projected_query = self.query_layer(query)[:, :, None]  # (B, T_q, 1, A)
        projected_keys = self.key_layer(keys)[:, None]           # (B, 1, T_k, A)
        hidden = torch.tanh(projected_query + projected_keys)    # (B, T_q, T_k, A)
        scores = self.score_layer(hidden).squeeze(-1)  # (B, T_q, T_k)
        weights = scores.softmax(dim=-1)                # (B, T_q, T_k)
        return weights @ values, weights                # (B, T_q, d_v), (B, T_q, T_k)


# %% [markdown]
# We attend over the GRU's states for a batch of two six-token sentences. A random vector stands in
# for the decoder state $s_{t-1}$: one query per sentence, for one decoder step.

# %%
sentences = torch.randint(1, vocab_size, (2, 6))
encoder_states, _ = encoder(sentences)               # (B, T_k, hidden): keys and values
decoder_state = torch.randn(2, 1, 24)                # (B, T_q, d_q): one decoder step
additive = AdditiveAttention(query_size=24, key_size=32, attention_size=20)
context, weights = additive(decoder_state, encoder_states, encoder_states)
print("weights:", [[round(w, 3) for w in row] for row in weights[:, 0].tolist()])
assert torch.allclose(weights.sum(-1), torch.ones(2, 1))
context.shape, weights.shape

# %% [markdown]
# One context vector per query, whatever the sentence length, and now it is rebuilt at every step
# from all the states. (The weights are near uniform because nothing is trained yet.)
#
# **Where we depart from the paper.** Bahdanau et al. encode with a *bidirectional* RNN, so each $h_j$
# is a forward and a backward state concatenated, and their query is the *previous* decoder state
# $s_{t-1}$, which they feed, with $c_t$, into the step that computes $s_t$. Luong, Pham and Manning
# (2015) instead score with the *current* state $s_t$ and proposed the simpler multiplicative scores
# $s_t^\top h_j$ and $s_t^\top W h_j$. Our module takes whatever query it is given, so it covers both;
# and it recomputes $U_a h_j$ on every call, which the paper points out can be done once per sentence.
#
# ### Trained, attention learns to align
#
# Once trained, the weights form an *alignment*: in Bahdanau et al.'s translations each French word puts
# nearly all its weight on the English words it renders. We watch one form on a task that trains in
# seconds, **reversing** 6 to 8 random symbols (of 10): step $t$ copies source position $T-1-t$. A GRU
# cell decodes; $s_{t-1}$ queries, and $c_t$ with the previous symbol makes $s_t$. One more departure:
# the symbol is read from $c_t$ alone, so that all of it comes through the weights (a GRU this size
# could otherwise carry eight symbols in its state, and the weights would not need to align).

# %%
class AttentionReverser(nn.Module):
    """source [B, T] -> logits [B, T, symbols], weights [B, T, T]. Each step is fed `target`'s previous
    symbol (teacher forcing, in training) or, without a target, its own last guess."""

    def __init__(self, symbols: int = 11, embedding_size: int = 16, size: int = 32):  # symbol 0: start
        super().__init__()
        self.encoder = GRUEncoder(symbols, embedding_size, hidden_size=size)
        self.embedding = nn.Embedding(symbols, embedding_size)
        self.attention = AdditiveAttention(size, size, attention_size=size)
        self.cell = nn.GRUCell(embedding_size + size, size)
        self.readout = nn.Linear(size, symbols)

    def forward(self, source, target=None):
        encoder_states, state = self.encoder(source)  # (B, T, size), (B, size): s_0 is the context
        previous, logits, alignment = torch.zeros_like(source[:, 0]), [], []  # (B,): the start symbol
        for step in range(source.size(1)):
            context, weights = self.attention(state[:, None], encoder_states, encoder_states)  # (B, 1, size)
            state = self.cell(torch.cat([self.embedding(previous), context[:, 0]], dim=-1), state)  # s_t
            logits.append(self.readout(context[:, 0]))  # (B, symbols)
            alignment.append(weights[:, 0])              # (B, T)
            previous = target[:, step] if target is not None else logits[-1].argmax(-1)
        return torch.stack(logits, dim=1), torch.stack(alignment, dim=1)  # (B, T, V), (B, T, T)


# %% [markdown]
# 400 steps of Adam on the cross-entropy of every symbol, each on 64 new sequences of one length (6,
# 7 or 8 in turn, so nothing is padded). An untrained copy stays behind for comparison.

# %% tags=["nbval-ignore-output"]
with torch.random.fork_rng():  # a random stream of its own: the later sections draw as if it were not here
    torch.manual_seed(0)
    reverser = AttentionReverser()
    untrained_reverser = copy.deepcopy(reverser)
    optimizer = torch.optim.Adam(reverser.parameters(), lr=3e-3)
    started = time.perf_counter()
    for step in range(400):
        source = torch.randint(1, 11, (64, 6 + step % 3))  # (B, T): symbols 1..10
        logits, _ = reverser(source, target=source.flip(1))
        loss = F.cross_entropy(logits.flatten(0, 1), source.flip(1).flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
print(f"400 steps in {time.perf_counter() - started:.1f} s, final loss {loss.item():.4f}")

# %% [markdown]
# On 300 new sequences of each length, decoded greedily, we count the symbols and the sequences that
# come out right, beside always writing the most frequent symbol, and the steps whose largest weight
# falls on the mirrored position.

# %% tags=["nbval-ignore-output"]
held_out = [torch.randint(1, 11, (300, length), generator=torch.Generator().manual_seed(length))
            for length in (6, 7, 8)]  # each (300, T)


@torch.no_grad()
def reversal_scores(model):
    """Shares of symbols right, of sequences right, and of steps whose weights peak at position T-1-t."""
    scores = []
    for source in held_out:
        logits, alignment = model(source)              # (B, T, V), (B, T, T)
        correct = logits.argmax(-1) == source.flip(1)  # (B, T)
        mirrored = alignment.argmax(-1) == torch.arange(source.size(1)).flip(0)  # (B, T)
        scores.append([correct.float().mean(), correct.all(-1).float().mean(), mirrored.float().mean()])
    return torch.tensor(scores).mean(0).tolist()


symbols = torch.cat([source.flatten() for source in held_out])
scores = {"constant": [symbols.bincount().max().item() / symbols.numel()],
          "untrained": reversal_scores(untrained_reverser), "trained": reversal_scores(reverser)}
print("           symbols  sequences  peak on mirrored position")
for name, row in scores.items():
    print(f"{name:9s}" + "".join(f"{score:10.3f}" for score in row))
(constant_guess,), untrained, trained = scores.values()
assert trained[0] > 0.95 and trained[1] > 0.9 and trained[2] > 0.9 > 0.3 > untrained[2]
assert untrained[0] < 2 * constant_guess

# %%
source = held_out[-1][:1]  # (1, 8): one held-out sequence
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), layout="constrained")
for ax, (name, model) in zip(axes, (("untrained", untrained_reverser), ("trained", reverser))):
    logits, alignment = model(source)  # (1, T, V), (1, T, T)
    ax.imshow(alignment[0].detach(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(8), source[0].tolist())
    ax.set_yticks(range(8), logits[0].argmax(-1).tolist())
    ax.set(xlabel="source symbol", ylabel="symbol written", title=f"{name}: weights of each step")
fig.savefig(FIGURES / "01_learned_alignment.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# Untrained, the weights are near uniform and the decoder writes one symbol over and over: 0.104 of
# the symbols right in the run above, as many as the constant guess (0.105). Trained, 1.000 of the
# symbols and 0.998 of the sequences are right, and at 0.998 of the steps the largest weight sits on
# the mirrored position: the anti-diagonal. Nothing told the model where to look; the alignment comes
# from the loss alone, as BERT's will (chapter 9 draws its maps after training).
#
# The price of the small network is the tensor `hidden`: one $A$-vector for every (query, key) pair.
# For self-attention over a 512-token input, with one query per token:

# %%
tokens, attention_size = 512, 64
additive_floats = tokens * tokens * attention_size  # the tanh layer's (T_q, T_k, A) activations
score_floats = tokens * tokens                       # a dot product makes one number per pair
print(f"additive hidden layer: {additive_floats:,} floats; dot-product scores: {score_floats:,} floats "
      f"({additive_floats // score_floats}x fewer)")

# %% [markdown]
# ## 3. Scaled dot-product attention
#
# Vaswani et al. (2017) drop the network and score a query $q$ against a key $k$ by their dot product:
# one matrix multiplication scores every query against every key, with no $(T_q, T_k, A)$ tensor.
# In matrix form, with the queries as the rows of $Q$ and the keys and values as the rows of $K$ and
# $V$:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V .$$
#
# Why divide by $\sqrt{d_k}$? Suppose the $d_k$ components of $q$ and $k$ are independent, with mean 0
# and variance 1. Each product $q_i k_i$ then has mean 0 and variance 1, and the dot product is a sum
# of $d_k$ of them:
#
# $$\operatorname{Var}(q \cdot k) = \sum_{i=1}^{d_k} \operatorname{Var}(q_i k_i) = d_k, \qquad
#   \operatorname{Var}\!\left(\frac{q \cdot k}{\sqrt{d_k}}\right) = 1 .$$
#
# We measure both over 20,000 random pairs for several $d_k$ (in float64, here and in the next
# experiment, so that the printed digits do not depend on the machine's rounding):

# %%
print("   d_k  variance of q.k  variance of q.k / sqrt(d_k)")
for d_k in (4, 16, 64, 256, 1024):
    queries, keys = torch.randn(2, 20_000, d_k, dtype=torch.float64)
    dot_products = (queries * keys).sum(-1)
    scaled_products = dot_products / math.sqrt(d_k)
    print(f"{d_k:6d}  {dot_products.var().item():15.1f}  {scaled_products.var().item():27.2f}")

# %% [markdown]
# The variance grows with $d_k$ as predicted, and the scaled version stays near 1. Why care? The
# softmax is sensitive to the *spread* of its inputs: it exponentiates them, so as the scores spread
# out, the gap between the largest and the next grows with them, and the largest takes nearly all
# the weight. A one-hot softmax also stops learning, because its gradient, the Jacobian
# $\operatorname{diag}(\alpha) - \alpha\alpha^\top$, is zero there.
#
# We measure both symptoms for one query against 32 random keys: the largest weight (1 means one-hot,
# $1/32$ uniform) and the size of the softmax's Jacobian.

# %%
def softmax_statistics(scores):
    """Mean largest weight and mean Frobenius norm of the softmax Jacobian, over rows of scores [N, T]."""
    weights = scores.softmax(dim=-1)                                              # (N, T)
    jacobian = torch.diag_embed(weights) - weights[:, :, None] * weights[:, None, :]  # (N, T, T)
    return weights.max(dim=-1).values.mean().item(), jacobian.norm(dim=(-2, -1)).mean().item()


dims = [1, 4, 16, 64, 256, 1024]
raw, scaled = [], []
for d_k in dims:
    queries = torch.randn(2000, 1, d_k, dtype=torch.float64)
    keys = torch.randn(2000, 32, d_k, dtype=torch.float64)
    scores = (queries @ keys.transpose(-2, -1)).squeeze(1)  # (N, T)
    raw.append(softmax_statistics(scores))
    scaled.append(softmax_statistics(scores / math.sqrt(d_k)))
print("   d_k  max weight (raw, scaled)  Jacobian norm (raw, scaled)")
for d_k, (raw_max, raw_jac), (scaled_max, scaled_jac) in zip(dims, raw, scaled):
    print(f"{d_k:6d}  {raw_max:10.3f} {scaled_max:13.3f}  {raw_jac:13.3f} {scaled_jac:13.3f}")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
panels = ((left, 0, "mean largest attention weight"), (right, 1, "mean norm of softmax Jacobian"))
for ax, column, label in panels:
    ax.plot(dims, [row[column] for row in raw], "o-", label="q·k (unscaled)")
    ax.plot(dims, [row[column] for row in scaled], "s--", label="q·k / √d_k")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="d_k", title=label)
left.axhline(1 / 32, color="gray", lw=0.8, ls=":")
left.text(1, 1 / 32 + 0.02, "uniform over 32 keys", color="gray", fontsize=8)
left.legend()
fig.suptitle("Without scaling, softmax saturates as d_k grows", y=1.02)
fig.savefig(FIGURES / "01_softmax_saturation.png", dpi=120, bbox_inches="tight")
plt.show()
assert raw[-1][0] > 0.9 and scaled[-1][0] < 0.5 and raw[-1][1] < scaled[-1][1] / 3

# %% [markdown]
# Unscaled, the weights turn nearly one-hot and the gradient through the softmax collapses as $d_k$
# grows; scaled, both stay where they were at small $d_k$. BERT-base's heads have
# $d_k = 768 / 12 = 64$.
#
# (Real queries and keys are not independent unit-variance vectors: they come out of learned
# projections. The division does not make their scores unit-variance; it removes the growth with
# $d_k$, so that initialisation starts the softmax in a place where it can learn.)
#
# ## 4. `attention()`, in code
#
# The function takes queries `[..., T_q, d_k]`, keys `[..., T_k, d_k]` and values `[..., T_k, d_v]`;
# the `...` are any leading batch dimensions (BERT will have two: batch and head). Most wrong calls
# do not fail on their own, because matrix products and masks broadcast leading dimensions (section 5
# shows one), so the first exported cell is a checker that names the shapes when they do not fit.
# Cells that start with `#| export: attention` become the module `annotated_bert.attention`. The
# checker's first half looks at query, key and value alone, and returns the batch shape they
# broadcast to:

# %%
#| export: attention
import torch


def attention_batch_shape(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Size:
    """The leading (batch) shape that query [..., T_q, d_k], key [..., T_k, d_k] and value [..., T_k, d_v]
    broadcast to; a ValueError that names the shapes when they do not fit together."""
    shapes = f"query {list(query.shape)}, key {list(key.shape)}, value {list(value.shape)}"
    if not (query.dim() == key.dim() == value.dim() >= 2):
        raise ValueError(
            f"query, key and value must have the same rank, at least 2 ([..., seq_len, features]); got {shapes}"
        )
    if query.size(-1) != key.size(-1):
        raise ValueError(f"query and key must share their last dimension d_k; got {shapes}")
    if key.size(-2) != value.size(-2):
        raise ValueError(f"key and value must have the same number of positions (dim -2); got {shapes}")
    try:
        return torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"the leading (batch) dimensions of query, key and value do not broadcast; got {shapes}"
        ) from None


# %% [markdown]
# The second half checks the mask against the shape of the scores, `[..., T_q, T_k]`: it must be
# bool, and broadcasting it must not grow that shape.

# %%
#| export: attention
import torch

from annotated_bert.attention import attention_batch_shape


def check_attention_inputs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                           mask: torch.Tensor | None = None) -> None:
    """Raise a ValueError that names the shapes when attention's inputs do not fit together.

    query [..., T_q, d_k], key [..., T_k, d_k], value [..., T_k, d_v]: the same rank (at least 2),
    leading dims that broadcast, and `mask` a bool tensor that broadcasts to [..., T_q, T_k]
    without changing that shape.
    """
    batch_shape = attention_batch_shape(query, key, value)
    if mask is None:
        return
    if mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a bool tensor, True where a query may attend to a key; got dtype {mask.dtype}. "
            "For a 1/0 attention_mask of shape [batch, seq_len], pass key_padding_mask(attention_mask)."
        )
    scores_shape = torch.Size([*batch_shape, query.size(-2), key.size(-2)])
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores_shape:
        raise ValueError(
            f"mask of shape {list(mask.shape)} cannot broadcast to the attention scores' shape "
            f"{list(scores_shape)} ([..., query positions, key positions])"
        )


# %% [markdown]
# Now the function itself, line for line the equation above, plus two additions for BERT:
#
# - a **mask**: a bool tensor, `True` where a query may attend to a key (the convention of
#   `torch.nn.functional.scaled_dot_product_attention`). Hidden scores are set to the most negative
#   float before the softmax, so their weights come out as exactly zero. Section 5 shows why that
#   value and not $-\infty$.
# - **dropout** on the attention weights, as BERT trains with it (probability 0.1). The function
#   returns the probabilities *before* dropout: they are what a reader wants to plot, and what the
#   reference implementation reports.

# %%
#| export: attention
import math

import torch
from torch import nn

from annotated_bert.attention import check_attention_inputs


def attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None,
              dropout: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention, softmax(Q Kᵀ / sqrt(d_k)) V.

    query [..., T_q, d_k], key [..., T_k, d_k], value [..., T_k, d_v]; `mask` is a bool tensor that
    broadcasts to [..., T_q, T_k], True where a query may attend to a key. `dropout`, if given, is
    applied to the weights that multiply the values.
    Returns the output [..., T_q, d_v] and the attention probabilities [..., T_q, T_k] (before dropout).
    """
    check_attention_inputs(query, key, value, mask)
    d_k = query.size(-1)
    scores = query @ key.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)
    if mask is not None:
        # The most negative finite float rather than -inf: a row whose keys are all hidden
        # then becomes uniform instead of NaN.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # (..., T_q, T_k)
    attention_probs = scores.softmax(dim=-1)  # (..., T_q, T_k)
    dropped_probs = dropout(attention_probs) if dropout is not None else attention_probs  # (..., T_q, T_k)
    return dropped_probs @ value, attention_probs  # (..., T_q, d_v), (..., T_q, T_k)


# %% [markdown]
# On a toy batch: two sequences, five queries against six keys, $d_k = 8$, $d_v = 3$; then one
# unbatched sequence, and BERT's layout with a head dimension, `[batch, heads, T, d_head]` (chapter 2
# produces it):

# %%
query = torch.randn(2, 5, 8)   # (B, T_q, d_k)
key = torch.randn(2, 6, 8)     # (B, T_k, d_k)
value = torch.randn(2, 6, 3)   # (B, T_k, d_v)
output, attention_probs = attention(query, key, value)
assert torch.allclose(attention_probs.sum(-1), torch.ones(2, 5))
single_output, single_probs = attention(query[0], key[0], value[0])              # (T_q, d_k) inputs
assert torch.allclose(single_output, output[0])
per_head = torch.randn(2, 4, 7, 16)                                               # (B, heads, T, d_head)
head_output, head_probs = attention(per_head, per_head, per_head)
output.shape, attention_probs.shape, single_output.shape, head_output.shape, head_probs.shape

# %% [markdown]
# PyTorch ships the same operation as `torch.nn.functional.scaled_dot_product_attention`, a fused
# kernel that does not return the weights. It is our reference. (The size of the difference depends
# on the machine's arithmetic; the assert states the bound.)

# %% tags=["nbval-ignore-output"]
torch_output = F.scaled_dot_product_attention(query, key, value)
print(f"largest difference from PyTorch: {(output - torch_output).abs().max().item():.1e}")
assert torch.allclose(output, torch_output, atol=1e-6)

# %% [markdown]
# ## 5. Masks
#
# A batch holds sentences of different lengths, padded to the longest with a `[PAD]` token. Padding
# is not text: no real token should attend to it. BERT's tokenizer marks the real tokens with an
# `attention_mask` of ones and zeros, one row per sentence. `key_padding_mask` turns it into our bool
# mask, shaped `[batch, 1, 1, T]` so that it broadcasts over heads and over queries: it hides *keys*,
# for every query.

# %%
#| export: attention
import torch


def checks_values(tensor: torch.Tensor) -> bool:
    """Whether to check a tensor's values in `forward`. On the CPU reading them costs next to nothing; on a GPU
    it makes the host wait for the device at every call, so there we check shapes and dtypes only (a bad
    index still fails, in the kernel that uses it)."""
    return tensor.device.type == "cpu"


def key_padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """A 1/0 attention_mask [batch, seq_len] (1 = real token) -> bool mask [batch, 1, 1, seq_len].

    The mask hides padding *keys* from every query and every head; padded query rows still
    produce outputs, which callers ignore.
    """
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must have shape [batch, seq_len]; got {list(attention_mask.shape)}")
    if (attention_mask.dtype != torch.bool and checks_values(attention_mask)
            and not ((attention_mask == 0) | (attention_mask == 1)).all()):
        # An additive mask (0 / -10000) would otherwise turn into the opposite bool mask.
        raise ValueError(
            "attention_mask must hold only 1 (real token) and 0 (padding); got values "
            f"{sorted(set(attention_mask.flatten().tolist()))[:6]}"
        )
    return attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)


# %% [markdown]
# Two sentences, of five and three tokens, padded to five. Random vectors stand in for their
# embeddings (chapter 4 makes real ones). The mask expects a head dimension, and our `hidden` has
# none. Without the checker, `masked_fill` would broadcast the `[2, 5, 5]` scores against the
# `[2, 1, 1, 5]` mask into `[2, 2, 5, 5]`: each sentence masked with both sentences' masks, and an
# output of the wrong shape that fails, if at all, much later. With it:

# %%
attention_mask = torch.tensor([[1, 1, 1, 1, 1],
                               [1, 1, 1, 0, 0]])
mask = key_padding_mask(attention_mask)   # (B, 1, 1, T)
hidden = torch.randn(2, 5, 8)             # (B, T, d)
try:
    attention(hidden, hidden, hidden, mask)
except ValueError as error:
    print(error)

# %% [markdown]
# The message names both shapes, and the fix is the one it suggests: give the inputs the head
# dimension (here one head). PyTorch's fused attention takes the same bool mask, with the same meaning.

# %%
heads = hidden[:, None]                     # (B, heads=1, T, d)
output, attention_probs = attention(heads, heads, heads, mask)
assert (attention_probs[1, ..., 3:] == 0).all()
assert torch.allclose(attention_probs.sum(-1), torch.ones(2, 1, 5))
assert torch.allclose(output, F.scaled_dot_product_attention(heads, heads, heads, attn_mask=mask), atol=1e-6)
print(attention_probs[1, 0].numpy().round(3))

# %% [markdown]
# Row $i$ is query $i$ of the second sentence. The last two columns, the padded keys, are exactly
# zero, and each row still sums to one over the three real keys. The last two *rows* are the padded
# queries: they still get an output (attending to the real tokens), which everything downstream
# ignores.

# %% [markdown]
# Exactly zero weight buys a strong guarantee: **padding cannot change real outputs**. Run the
# three-token sentence alone, then with two padding positions of arbitrary content appended and
# masked; its three outputs agree.

# %% tags=["nbval-ignore-output"]
short = torch.randn(1, 1, 3, 8)                                         # (B, heads, T=3, d)
padded = torch.cat([short, 100 * torch.randn(1, 1, 2, 8)], dim=2)       # (B, heads, T=5, d): junk padding
alone, _ = attention(short, short, short)
with_padding, _ = attention(padded, padded, padded, key_padding_mask(torch.tensor([[1, 1, 1, 0, 0]])))
difference = (alone - with_padding[:, :, :3]).abs().max().item()
print(f"largest change of a real position's output: {difference:.1e}")
assert torch.allclose(alone, with_padding[:, :, :3], atol=1e-6)

# %% [markdown]
# **Why the most negative float, not $-\infty$.** The textbook mask writes $-\infty$ into hidden
# scores. That is fine until a row hides *every* key (a sequence that is all padding): the softmax
# then computes $e^{-\infty} / \sum e^{-\infty} = 0/0$. With the most negative finite float the row
# becomes uniform instead, finite, and harmless because nothing reads it.

# %%
scores = torch.randn(1, 4)
all_hidden = torch.zeros(1, 4, dtype=torch.bool)
print("-inf:         ", scores.masked_fill(~all_hidden, float("-inf")).softmax(-1))
print("finfo.min:    ", scores.masked_fill(~all_hidden, torch.finfo(scores.dtype).min).softmax(-1))
_, fully_masked_probs = attention(torch.randn(1, 2, 8), torch.randn(1, 4, 8), torch.randn(1, 4, 3), all_hidden)
assert torch.isfinite(fully_masked_probs).all()

# %% [markdown]
# The mask is general: anything that broadcasts to `[..., T_q, T_k]`. A lower-triangular mask, for
# instance, lets each position see only itself and what came before, which is how GPT-style decoders
# attend. BERT does not use it: every token sees the whole sentence, in both directions, which is
# the B (bidirectional) in its name.

# %%
causal = torch.ones(4, 4, dtype=torch.bool).tril()   # (T_q, T_k)
x = torch.randn(4, 8)
_, causal_probs = attention(x, x, x, causal)
causal_probs.numpy().round(2)

# %% [markdown]
# **Dropout on the weights.** In training, BERT applies dropout to the attention probabilities:
# each weight is zeroed with probability 0.1 and the rest are scaled by $1/0.9$, so a query sometimes
# cannot see a key. The output uses the dropped weights; the returned probabilities are the clean
# ones. With dropout switched off (`.eval()`, as at inference), the two agree again.

# %%
dropout = nn.Dropout(p=0.1)
query, key, value = torch.randn(1, 6, 8), torch.randn(1, 6, 8), torch.randn(1, 6, 3)
for mode in ("train", "eval"):
    output, attention_probs = attention(query, key, value, dropout=getattr(dropout, mode)())
    print(f"{mode}: returned probabilities sum to 1: {torch.allclose(attention_probs.sum(-1), torch.ones(1, 6))}; "
          f"output equals them @ value: {torch.allclose(output, attention_probs @ value)}")

# %% [markdown]
# ## 6. A first attention map
#
# Attention weights are a `[T_q, T_k]` matrix per head and per sequence, so they draw well as a
# heatmap: one row per query, one column per key. `plot_attention`, from the package module
# `annotated_bert.viz`, draws one; it takes the layout that BERT uses for a layer's weights, `[batch,
# heads, T_q, T_k]`, and picks one sequence and one head. Appendix A5 shows how it is drawn.
#
# There are no learned weights yet, so we make the embeddings by hand: each *word type* gets one
# random 16-dimensional vector, and we use those vectors directly as queries, keys and values
# (chapter 2 adds the learned projections). A vector's dot product with itself is its squared length,
# about 16, while two unrelated random vectors give about 0, give or take 4. `attention()` divides by
# $\sqrt{d_k} = 4$, so the scores its softmax sees are about 4 for a word against itself and about 0, give
# or take 1, for two unrelated words: $e^4 \approx 55$ times the weight. So every word should attend to
# itself and to the other copies of the same word.

# %%
sentence = "the cat sat on the mat because the cat was tired".split()
vocabulary = sorted(set(sentence))
torch.manual_seed(1)
vector_of = dict(zip(vocabulary, torch.randn(len(vocabulary), 16)))     # word -> (d,)
embeddings = torch.stack([vector_of[word] for word in sentence])          # (T, d)
_, sentence_probs = attention(embeddings, embeddings, embeddings)        # (T, T)
ax = plot_attention(sentence_probs, sentence, title="Self-attention of hand-made embeddings")
ax.figure.savefig(FIGURES / "01_first_attention_map.png", dpi=120, bbox_inches="tight")
plt.show()
sentence_probs.shape

# %% [markdown]
# The map is what the arithmetic promised: a bright diagonal, plus bright off-diagonal cells where
# words repeat: the three copies of "the" share their weight among themselves, and so do the two
# copies of "cat". Attention has no notion of *where* a word is; it matches contents. Two identical
# vectors are indistinguishable to it, wherever they sit in the sentence, which is why chapter 4 adds
# position embeddings.

# %%
the_positions = [i for i, word in enumerate(sentence) if word == "the"]
weight_on_the = sentence_probs[the_positions][:, the_positions].sum(-1)
uniform_share = len(the_positions) / len(sentence)
print("weight each 'the' puts on the three 'the's:", weight_on_the.numpy().round(3))
print(f"under uniform attention it would be {uniform_share:.3f}")
assert (weight_on_the > 0.8).all()

# %% [markdown]
# The padded batch of section 5, both sentences side by side: in the second, the padded key columns
# are empty. Its padded query rows are not: `[PAD]` got a zero vector here, so its scores are all
# equal and it spreads its weight evenly over the three real keys, an output nobody will read.

# %%
padded_sentences = [["the", "cat", "sat", "on", "mat"], ["the", "cat", "sat", "[PAD]", "[PAD]"]]
vector_of["[PAD]"] = torch.zeros(16)
hidden = torch.stack([torch.stack([vector_of[word] for word in words]) for words in padded_sentences])
heads = hidden[:, None]                                           # (B, heads=1, T, d)
_, padded_probs = attention(heads, heads, heads, mask)            # (B, 1, T, T)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
for batch_index, ax in enumerate(axes):
    plot_attention(padded_probs, padded_sentences[batch_index], batch_index=batch_index, ax=ax,
                   title=f"batch_index={batch_index}, mask {attention_mask[batch_index].tolist()}")
fig.savefig(FIGURES / "01_padding_mask.png", dpi=120, bbox_inches="tight")
plt.show()
padded_probs.shape

# %% [markdown]
# ## What we built
#
# Exported to `annotated_bert.attention`: `attention(query, key, value, mask=None, dropout=None)`,
# scaled dot-product attention $\mathrm{softmax}(QK^\top/\sqrt{d_k})V$ over any leading batch
# dimensions, with a bool mask (`True` = may attend) and optional dropout on the weights, equal to
# PyTorch's `scaled_dot_product_attention` and returning the pre-dropout probabilities;
# `check_attention_inputs`, the errors that name the shapes; and `key_padding_mask`, which turns a 1/0
# `[batch, T]` mask into a bool `[batch, 1, 1, T]` one that hides padding keys from every query.
#
# Along the way we saw why attention exists (a fixed-size context vector forgets), the additive
# attention that came first and the alignment it learns, and why the scores are divided by
# $\sqrt{d_k}$. Our attention so far compares raw vectors, so a word can only find copies of
# itself. **Chapter 2** gives it learned projections for queries, keys and values, and runs several
# of them side by side: multi-head attention, the layer BERT stacks.
