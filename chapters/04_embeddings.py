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
# SKELETON: a helper expands this chapter (token, learned position and segment embeddings, LayerNorm, dropout,
# sinusoidal comparison, the limit of max_position_embeddings).

# %%
import torch

torch.manual_seed(0)

# %%
#| export: embeddings
import math

import torch
from torch import nn


def sinusoidal_positions(num_positions: int, hidden_size: int):
    """The fixed encoding of "Attention Is All You Need" (BERT learns its positions instead).

    PE[pos, 2i] = sin(pos / 10000^(2i/H)), PE[pos, 2i+1] = cos(pos / 10000^(2i/H)); shape [num_positions, H].
    """
    positions = torch.arange(num_positions, dtype=torch.float32)[:, None]            # (P, 1)
    frequencies = torch.exp(
        torch.arange(0, hidden_size, 2, dtype=torch.float32) * (-math.log(10000.0) / hidden_size)
    )                                                                                 # (ceil(H/2),)
    encoding = torch.zeros(num_positions, hidden_size)
    encoding[:, 0::2] = torch.sin(positions * frequencies)
    encoding[:, 1::2] = torch.cos(positions * frequencies[: hidden_size // 2])
    return encoding                                                                   # (P, H)


# %%
#| export: embeddings
class BertEmbeddings(nn.Module):
    """LayerNorm(token[ids] + position[0..T-1] + segment[token_type_ids]), then dropout."""

    def __init__(self, vocab_size: int, hidden_size: int, max_position_embeddings: int = 512,
                 type_vocab_size: int = 2, dropout: float = 0.1, layer_norm_eps: float = 1e-12,
                 pad_token_id: int = 0):
        super().__init__()
        self.token = nn.Embedding(vocab_size, hidden_size, padding_idx=pad_token_id)
        self.position = nn.Embedding(max_position_embeddings, hidden_size)
        self.segment = nn.Embedding(type_vocab_size, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids, token_type_ids=None):
        check_ids("input_ids", input_ids, self.token.num_embeddings, "vocab_size")
        seq_len = input_ids.size(1)
        if seq_len > self.position.num_embeddings:
            raise ValueError(
                f"sequence length {seq_len} exceeds max_position_embeddings "
                f"{self.position.num_embeddings}: truncate the input"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        elif token_type_ids.shape != input_ids.shape:
            raise ValueError(
                f"token_type_ids must have the shape of input_ids {list(input_ids.shape)}; "
                f"got {list(token_type_ids.shape)}"
            )
        check_ids("token_type_ids", token_type_ids, self.segment.num_embeddings, "type_vocab_size")
        positions = torch.arange(seq_len, device=input_ids.device)                       # (T,)
        summed = self.token(input_ids) + self.position(positions) + self.segment(token_type_ids)  # (B, T, H)
        return self.dropout(self.layer_norm(summed))


def check_ids(name: str, ids, limit: int, limit_name: str):
    """Ids must be a [batch, seq_len] integer tensor in [0, limit): say which value broke it, and the limit."""
    if ids.dim() != 2:
        raise ValueError(f"{name} must have shape [batch, seq_len]; got {list(ids.shape)}")
    if ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"{name} must be an integer tensor; got dtype {ids.dtype}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= limit):
        bad = int(ids.max()) if int(ids.max()) >= limit else int(ids.min())
        raise ValueError(f"{name} holds {bad}, outside [0, {limit_name}={limit})")


# %%
embeddings = BertEmbeddings(vocab_size=99, hidden_size=32).eval()
input_ids = torch.tensor([[1, 5, 7, 2, 0], [1, 9, 2, 3, 2]])      # (B, T)
embeddings(input_ids).shape
