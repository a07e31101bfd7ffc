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
# # Chapter 3: The encoder
#
# SKELETON: a helper expands this chapter (GELU, feed-forward, post-LN vs pre-LN, layer, stack, equality with PyTorch).

# %%
import torch

torch.manual_seed(0)

# %%
#| export: encoder
import math

import torch
import torch.nn.functional as F
from torch import nn


def gelu(x):
    """GELU in its exact form, x·Φ(x), with Φ the standard normal CDF written through erf."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


# %%
#| export: encoder
class FeedForward(nn.Module):
    """Position-wise feed-forward: Linear(H, I) -> GELU -> Linear(I, H), the same at every position."""

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.expand = nn.Linear(hidden_size, intermediate_size)
        self.contract = nn.Linear(intermediate_size, hidden_size)

    def forward(self, hidden_states):
        # F.gelu (approximate="none") is exactly `gelu` above, fused into one kernel.
        return self.contract(F.gelu(self.expand(hidden_states)))  # (B, T, I) -> (B, T, H)


# %%
#| export: encoder
from dataclasses import dataclass

from annotated_bert.attention import MultiHeadAttention


class EncoderLayer(nn.Module):
    """One post-LN Transformer layer, as BERT has it:

        a = LayerNorm(x + Dropout(SelfAttention(x)))
        y = LayerNorm(a + Dropout(FeedForward(a)))
    """

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, dropout: float = 0.1,
                 attention_dropout: float = 0.1, layer_norm_eps: float = 1e-12):
        super().__init__()
        self.attention = MultiHeadAttention(hidden_size, num_heads, attention_dropout)
        self.attention_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.feed_forward = FeedForward(hidden_size, intermediate_size)
        self.output_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states, mask=None, output_attentions: bool = False):
        attended, attention_probs = self.attention(hidden_states, mask, output_attentions)
        hidden_states = self.attention_norm(hidden_states + self.dropout(attended))        # (B, T, H)
        transformed = self.feed_forward(hidden_states)
        hidden_states = self.output_norm(hidden_states + self.dropout(transformed))       # (B, T, H)
        return hidden_states, attention_probs


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor                 # (B, T, H)
    hidden_states: tuple | None = None              # the input and each layer's output, when asked
    attentions: tuple | None = None                 # one (B, heads, T, T) per layer, when asked


class Encoder(nn.Module):
    """A stack of `num_layers` encoder layers."""

    def __init__(self, num_layers: int, hidden_size: int, num_heads: int, intermediate_size: int,
                 dropout: float = 0.1, attention_dropout: float = 0.1, layer_norm_eps: float = 1e-12):
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(hidden_size, num_heads, intermediate_size, dropout, attention_dropout, layer_norm_eps)
            for _ in range(num_layers)
        )

    def forward(self, hidden_states, mask=None, output_attentions: bool = False,
                output_hidden_states: bool = False) -> EncoderOutput:
        all_hidden_states = [hidden_states] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for layer in self.layers:
            hidden_states, attention_probs = layer(hidden_states, mask, output_attentions)
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
            if output_attentions:
                all_attentions.append(attention_probs)
        return EncoderOutput(
            last_hidden_state=hidden_states,
            hidden_states=tuple(all_hidden_states) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
        )


# %%
encoder = Encoder(num_layers=2, hidden_size=32, num_heads=4, intermediate_size=37).eval()
encoder(torch.randn(2, 7, 32)).last_hidden_state.shape
