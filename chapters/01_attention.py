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
# SKELETON: a helper expands this chapter (seq2seq story, additive attention, scaling, masks, first map).
# Cells that start with `#| export: <module>` become the package `annotated_bert`.

# %%
import torch

torch.manual_seed(0)

# %% [markdown]
# ## Scaled dot-product attention
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V$$

# %%
#| export: attention
import math

import torch
from torch import nn


def check_attention_inputs(query, key, value, mask=None):
    """Raise a ValueError that names the shapes when attention's inputs do not fit together."""
    if not (query.dim() == key.dim() == value.dim() >= 2):
        raise ValueError(
            "query, key and value must have the same rank, at least 2 ([..., seq_len, features]); "
            f"got query {list(query.shape)}, key {list(key.shape)}, value {list(value.shape)}"
        )
    if query.size(-1) != key.size(-1):
        raise ValueError(
            f"query and key must share their last dimension d_k; got query {list(query.shape)} "
            f"and key {list(key.shape)}"
        )
    if key.size(-2) != value.size(-2):
        raise ValueError(
            f"key and value must have the same number of positions (dim -2); got key {list(key.shape)} "
            f"and value {list(value.shape)}"
        )
    if mask is None:
        return
    if mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a bool tensor, True where a query may attend to a key; got dtype {mask.dtype}. "
            "For a 1/0 attention_mask of shape [batch, seq_len], pass key_padding_mask(attention_mask)."
        )
    scores_shape = torch.Size([*torch.broadcast_shapes(query.shape[:-2], key.shape[:-2]),
                               query.size(-2), key.size(-2)])
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores_shape:
        raise ValueError(
            f"mask of shape {list(mask.shape)} cannot broadcast to the attention scores' shape "
            f"{list(scores_shape)} ([..., query positions, key positions])"
        )


def attention(query, key, value, mask=None, dropout: nn.Module | None = None):
    """Scaled dot-product attention, softmax(Q Kᵀ / sqrt(d_k)) V.

    query [..., T_q, d_k], key [..., T_k, d_k], value [..., T_k, d_v]; `mask` is a bool tensor that
    broadcasts to [..., T_q, T_k], True where a query may attend to a key.
    Returns the output [..., T_q, d_v] and the attention probabilities [..., T_q, T_k].
    """
    check_attention_inputs(query, key, value, mask)
    d_k = query.size(-1)
    scores = query @ key.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)
    if mask is not None:
        # The most negative finite float rather than -inf: a row whose keys are all hidden
        # then becomes uniform instead of NaN.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    attention_probs = scores.softmax(dim=-1)  # (..., T_q, T_k)
    # BERT drops whole attention weights during training; we return the probabilities before
    # dropout, which are what a reader wants to look at.
    dropped_probs = dropout(attention_probs) if dropout is not None else attention_probs
    return dropped_probs @ value, attention_probs  # (..., T_q, d_v), (..., T_q, T_k)


def key_padding_mask(attention_mask):
    """A 1/0 attention_mask [batch, seq_len] (1 = real token) -> bool mask [batch, 1, 1, seq_len].

    The mask hides padding *keys* from every query and every head; padded query rows still
    produce outputs, which callers ignore.
    """
    if attention_mask.dim() != 2:
        raise ValueError(
            f"attention_mask must have shape [batch, seq_len]; got {list(attention_mask.shape)}"
        )
    return attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)


# %%
query = torch.randn(2, 5, 8)                   # (B, T_q, d_k)
key = torch.randn(2, 6, 8)                     # (B, T_k, d_k)
value = torch.randn(2, 6, 3)                   # (B, T_k, d_v)
output, attention_probs = attention(query, key, value)
output.shape, attention_probs.shape

# %% [markdown]
# ## Drawing attention

# %%
#| export: viz
import math

import matplotlib.pyplot as plt
import numpy as np
import torch


def attention_matrix(attention, batch_index: int = 0, head: int = 0) -> np.ndarray:
    """One [T_q, T_k] map from attention in the bertviz layout [batch, heads, T_q, T_k].

    A bare [T_q, T_k] map, or [heads, T_q, T_k], is taken as it is.
    """
    weights = torch.as_tensor(attention).detach().float().cpu()
    if weights.dim() == 4:
        weights = weights[batch_index]
    if weights.dim() == 3:
        weights = weights[head]
    if weights.dim() != 2:
        raise ValueError(
            "attention must be [T_q, T_k], [heads, T_q, T_k] or [batch, heads, T_q, T_k]; "
            f"got shape {list(torch.as_tensor(attention).shape)}"
        )
    return weights.numpy()


def _tick_step(count: int, most: int = 48) -> int:
    """Label every token of a short sentence, every k-th one of a long one."""
    return max(1, math.ceil(count / most))


def plot_attention(attention, tokens, query_tokens=None, batch_index=0, head=0, ax=None, title=None):
    """Heatmap of one head: rows are queries, columns the keys they attend to."""
    weights = attention_matrix(attention, batch_index, head)  # (T_q, T_k)
    query_tokens = tokens if query_tokens is None else query_tokens
    if weights.shape != (len(query_tokens), len(tokens)):
        raise ValueError(
            f"attention map is {list(weights.shape)} but there are {len(query_tokens)} query tokens "
            f"and {len(tokens)} key tokens"
        )
    if ax is None:
        side = min(10.0, 2.0 + 0.35 * len(tokens))
        _, ax = plt.subplots(figsize=(side, side * len(query_tokens) / len(tokens)))
    image = ax.imshow(weights, cmap="Blues", vmin=0.0, vmax=max(float(weights.max()), 1e-9))
    for axis, labels, rotation in ((ax.xaxis, tokens, 90), (ax.yaxis, query_tokens, 0)):
        step = _tick_step(len(labels))
        axis.set_ticks(range(0, len(labels), step))
        axis.set_ticklabels(list(labels)[::step], rotation=rotation, fontsize=8)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return ax
