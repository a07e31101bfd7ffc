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
# # Chapter 2: Multi-head attention
#
# SKELETON: a helper expands this chapter (projections, heads, shapes, per-head maps, equality with PyTorch).

# %%
import torch
from torch import nn

from annotated_bert.attention import attention, key_padding_mask

torch.manual_seed(0)

# %%
#| export: attention
import torch.nn.functional as F
from torch import nn

from annotated_bert.attention import attention, check_attention_inputs


def split_heads(x, num_heads: int):
    """[batch, seq_len, hidden] -> [batch, heads, seq_len, hidden / heads]."""
    batch, seq_len, hidden = x.shape
    return x.view(batch, seq_len, num_heads, hidden // num_heads).transpose(1, 2)


def merge_heads(x):
    """[batch, heads, seq_len, d_head] -> [batch, seq_len, heads * d_head]: the inverse of split_heads."""
    batch, heads, seq_len, d_head = x.shape
    return x.transpose(1, 2).reshape(batch, seq_len, heads * d_head)


class MultiHeadAttention(nn.Module):
    """BERT's self-attention: project to Q, K, V, attend in `num_heads` heads, concatenate, project.

    forward(hidden_states [B, T, H], mask=None, output_attentions=False)
    -> (output [B, T, H], attention_probs [B, heads, T, T] or None)
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if hidden_size % num_heads != 0:
            raise ValueError(
                f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}: "
                "each head takes an equal slice of the hidden vector"
            )
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.output = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states, mask=None, output_attentions: bool = False):
        if hidden_states.dim() != 3 or hidden_states.size(-1) != self.hidden_size:
            raise ValueError(
                f"hidden_states must have shape [batch, seq_len, hidden_size={self.hidden_size}]; "
                f"got {list(hidden_states.shape)}"
            )
        query = split_heads(self.query(hidden_states), self.num_heads)  # (B, heads, T, d_head)
        key = split_heads(self.key(hidden_states), self.num_heads)      # (B, heads, T, d_head)
        value = split_heads(self.value(hidden_states), self.num_heads)  # (B, heads, T, d_head)
        if output_attentions:
            context, attention_probs = attention(query, key, value, mask, self.dropout)
        else:
            # The same function in one fused kernel, when nobody needs the probabilities.
            check_attention_inputs(query, key, value, mask)
            context = F.scaled_dot_product_attention(
                query, key, value, attn_mask=mask, dropout_p=self.dropout.p if self.training else 0.0
            )
            attention_probs = None
        return self.output(merge_heads(context)), attention_probs  # (B, T, H)


# %%
layer = MultiHeadAttention(hidden_size=32, num_heads=4).eval()
hidden_states = torch.randn(2, 7, 32)                     # (B, T, H)
attention_mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
output, attention_probs = layer(hidden_states, key_padding_mask(attention_mask), output_attentions=True)
output.shape, attention_probs.shape
