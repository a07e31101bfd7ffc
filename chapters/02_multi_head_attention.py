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
# Chapter 1 built `attention(query, key, value, mask)`: every query position takes one weighted
# average of the values, with weights from one softmax. One average per position is a narrow
# channel. A word may need to know, at the same time, which word came before it, which noun a
# pronoun points back to, and where the sentence ends, and a single softmax row has to blend all
# of that into one mixture.
#
# BERT's answer, taken from the Transformer, is to run several attentions side by side. BERT-base
# runs 12 of them in every layer, each on its own 64-dimensional slice of the 768-dimensional
# hidden vector, and glues their outputs back together. This chapter builds that layer:
#
# 1. three projections of the hidden states into queries, keys and values;
# 2. splitting each projection into heads;
# 3. attention inside every head at once;
# 4. concatenating the heads;
# 5. the output projection,
#
# first as loose tensors with the shape printed at every step, then as the module
# `MultiHeadAttention` that the encoder (chapter 3) stacks. We then check it three ways: against
# itself (a fused PyTorch kernel against our explicit code), against PyTorch's own
# `nn.MultiheadAttention` with the same weights, and against padding. Last, we draw what each head
# attends to, as a grid of heatmaps and as an interactive chart.

# %%
import altair as alt
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from annotated_bert.attention import attention, key_padding_mask
from annotated_bert.viz import attention_chart, plot_attention_heads

torch.manual_seed(0)
alt.renderers.enable("mimetype")  # JupyterLab draws vega-lite offline from this mimetype
print("altair renderer:", alt.renderers.active)

# %% [markdown]
# ## A toy batch
#
# Two sentences, the second one padded to the length of the first. Real BERT turns tokens into
# hidden vectors with its embedding layer (chapter 4); here a random vector per word plus a random
# vector per position stands in for it, so that the two *the*s of the first sentence differ.
# We keep the sizes small: hidden size $H = 32$ split into 4 heads of $d_\text{head} = 8$.

# %%
sentences = [
    "[CLS] the cat sat on the mat because it was tired [SEP]".split(),
    "[CLS] it was tired [SEP]".split(),
]
seq_len = max(len(words) for words in sentences)
tokens = [words + ["[PAD]"] * (seq_len - len(words)) for words in sentences]
vocabulary = sorted({word for words in tokens for word in words})
input_ids = torch.tensor([[vocabulary.index(word) for word in words] for words in tokens])
attention_mask = (torch.tensor([[word != "[PAD]" for word in words] for words in tokens])).long()

hidden_size, num_heads = 32, 4
head_size = hidden_size // num_heads
word_vectors = nn.Embedding(len(vocabulary), hidden_size)
position_vectors = nn.Embedding(seq_len, hidden_size)
with torch.no_grad():
    hidden_states = word_vectors(input_ids) + position_vectors(torch.arange(seq_len))  # (B, T, H)
print(attention_mask)
hidden_states.shape

# %% [markdown]
# ## Step 1: project to queries, keys and values
#
# Self-attention asks each position three questions of the same hidden vector: what am I looking
# for (query), what do I offer to be found by (key), and what do I hand over when found (value).
# Each is a learned linear map of the hidden states $X$, with a bias in BERT (the Transformer
# paper writes its projections without one):
#
# $$Q = XW^Q + b^Q, \qquad K = XW^K + b^K, \qquad V = XW^V + b^V, \qquad W^Q, W^K, W^V \in \mathbb{R}^{H \times H}.$$
#
# A fourth map, $W^O$, comes at the end (step 5). We draw the query and key weights a little wider
# than PyTorch's default (standard deviation 0.2) so that the random attention maps at the end of
# the chapter are peaked enough to show something; nothing else depends on it.

# %%
query_proj, key_proj, value_proj, output_proj = (nn.Linear(hidden_size, hidden_size) for _ in range(4))
for projection in (query_proj, key_proj):
    nn.init.normal_(projection.weight, std=0.2)

with torch.no_grad():
    queries = query_proj(hidden_states)  # (B, T, H)
    keys = key_proj(hidden_states)       # (B, T, H)
    values = value_proj(hidden_states)   # (B, T, H)
queries.shape, keys.shape, values.shape

# %% [markdown]
# ## Step 2: split into heads
#
# Each head gets its own slice of $d_\text{head} = H / \text{heads}$ features. Splitting is two
# cheap moves on the same memory: `view` cuts the last axis $H$ into $(\text{heads}, d_\text{head})$,
# and `transpose` brings the heads axis in front of the positions. After it, the heads axis sits
# beside the batch axis, and chapter 1's `attention`, which treats every leading axis as a batch
# axis, will run all heads at once.

# %%
batch_size = hidden_states.size(0)
queries_by_head = queries.view(batch_size, seq_len, num_heads, head_size)  # (B, T, heads, d_head)
queries_by_head = queries_by_head.transpose(1, 2)                         # (B, heads, T, d_head)
keys_by_head = keys.view(batch_size, seq_len, num_heads, head_size).transpose(1, 2)      # (B, heads, T, d_head)
values_by_head = values.view(batch_size, seq_len, num_heads, head_size).transpose(1, 2)  # (B, heads, T, d_head)
queries_by_head.shape

# %% [markdown]
# The paper writes a separate matrix $W_i^Q \in \mathbb{R}^{H \times d_\text{head}}$ for every head
# $i$. One $H \times H$ matrix holds them all side by side, $W^Q = [W_1^Q \,|\, W_2^Q \,|\, \dots]$,
# so head $i$'s queries come from its own block of output features (rows $i \cdot d_\text{head}$
# to $(i+1) \cdot d_\text{head}$ of `nn.Linear`'s weight, which is stored as [out, in]):

# %%
head = 2
rows = slice(head * head_size, (head + 1) * head_size)
with torch.no_grad():
    head_queries = hidden_states @ query_proj.weight[rows].T + query_proj.bias[rows]  # (B, T, d_head)
assert torch.allclose(queries_by_head[:, head], head_queries, atol=1e-6)
print(f"head {head}'s queries = X @ W_Q[{rows.start}:{rows.stop}]^T + b_Q[{rows.start}:{rows.stop}]")

# %% [markdown]
# ## Step 3: attention in every head at once
#
# $$\text{head}_i = \mathrm{Attention}(XW_i^Q, XW_i^K, XW_i^V) = \mathrm{softmax}\!\left(\frac{Q_i K_i^\top}{\sqrt{d_\text{head}}}\right) V_i$$
#
# Note the scale: $\sqrt{d_\text{head}} = \sqrt{8}$, not $\sqrt{H}$, because each head's dot
# products sum over $d_\text{head}$ features. The padding mask from chapter 1 has shape
# [B, 1, 1, T]: its two 1s broadcast over heads and over queries, so one mask hides the padding
# keys from every query of every head.

# %%
mask = key_padding_mask(attention_mask)  # (B, 1, 1, T)
context_by_head, attention_probs = attention(queries_by_head, keys_by_head, values_by_head, mask)
print("mask", tuple(mask.shape))
print("context", tuple(context_by_head.shape), " (B, heads, T, d_head)")
print("attention_probs", tuple(attention_probs.shape), " (B, heads, T, T)")

# %% [markdown]
# Running the heads as a batch axis is only a speed trick. A loop that calls `attention` once per
# head, on that head's slice, gives the same numbers:

# %%
for head in range(num_heads):
    context_of_head, _ = attention(queries_by_head[:, head], keys_by_head[:, head], values_by_head[:, head],
                                   mask[:, 0])  # (B, T, d_head)
    assert torch.allclose(context_of_head, context_by_head[:, head], atol=1e-6)
print(f"{num_heads} heads one by one == all heads at once")

# %% [markdown]
# A curiosity of step 1 shows up here. The key bias $b^K$ adds the same number, $q \cdot b^K$, to
# every score in a query's row, and softmax does not change when a whole row shifts by a constant.
# So $b^K$ cannot change the attention maps, and it gets no gradient in training. BERT's
# checkpoints carry it anyway, so our layer keeps it. A random change of $b^K$ leaves the maps as
# they were:

# %%
shifted_keys = (keys + torch.randn(hidden_size)).view(batch_size, seq_len, num_heads, head_size).transpose(1, 2)
_, shifted_probs = attention(queries_by_head, shifted_keys, values_by_head, mask)  # (B, heads, T, T)
print("maps unchanged by a new key bias:", torch.allclose(shifted_probs, attention_probs, atol=1e-6))
assert torch.allclose(shifted_probs, attention_probs, atol=1e-6)

# %% [markdown]
# ## Step 4: concatenate the heads
#
# $$\mathrm{Concat}(\text{head}_1, \dots, \text{head}_h) \in \mathbb{R}^{T \times H}$$
#
# Undo step 2: move the heads axis back behind the positions and fuse $(\text{heads}, d_\text{head})$
# into $H$. The transpose leaves the tensor non-contiguous in memory, so the last move is
# `reshape` (which copies when it must), not `view` (which would refuse).

# %%
context = context_by_head.transpose(1, 2)                      # (B, T, heads, d_head)
context = context.reshape(batch_size, seq_len, hidden_size)    # (B, T, H)
assert torch.equal(context[..., rows], context_by_head[:, 2])  # head 2 fills features 16..23 again
context.shape

# %% [markdown]
# ## Step 5: the output projection
#
# $$\mathrm{MultiHead}(X) = \mathrm{Concat}(\text{head}_1, \dots, \text{head}_h)\, W^O + b^O$$
#
# Until now the heads never saw each other: head 2's output lives in features 16 to 23 and
# nowhere else. $W^O$ is where they mix, each output feature a learned blend of every head.
# The result has the shape the layer started with, which is what lets the encoder add it back
# to its input (the residual connection of chapter 3).

# %%
with torch.no_grad():
    step_by_step_output = output_proj(context)  # (B, T, H)
step_by_step_output.shape

# %% [markdown]
# ## Why several heads
#
# Each head has its own queries and keys, so each head computes its own attention map: in one
# layer, one head can look at the previous word while another looks at the end of the sentence.
# With a single head of size $H$, every position gets one softmax row and so one mixture.
# The heads are independent because each one reads only its own block of the projections. We can
# see that directly: disturb the rows of $W^Q$ that belong to head 1, and only head 1's map moves.

# %%
def maps_with_query_weight(query_weight):
    """The [B, heads, T, T] attention maps of our toy layer with a different W_Q."""
    with torch.no_grad():
        queries = F.linear(hidden_states, query_weight, query_proj.bias)  # (B, T, H)
        query_heads = queries.view(batch_size, seq_len, num_heads, head_size).transpose(1, 2)
        return attention(query_heads, keys_by_head, values_by_head, mask)[1]  # (B, heads, T, T)


disturbed_weight = query_proj.weight.detach().clone()
disturbed_weight[1 * head_size:2 * head_size] += torch.randn(head_size, hidden_size)
change_per_head = (maps_with_query_weight(disturbed_weight) - attention_probs).abs().amax(dim=(0, 2, 3))
print("largest change of each head's map:", [round(change, 4) for change in change_per_head.tolist()])
assert change_per_head[1] > 0.1 and change_per_head[[0, 2, 3]].max() == 0

# %% [markdown]
# ## The module
#
# Now the five steps again, as the package's code. `split_heads` and `merge_heads` are steps 2 and
# 4; they check their input so that a wrong shape fails here, with the shape in the message,
# rather than three calls later.

# %%
#| export: attention
import torch


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[batch, seq_len, hidden] -> [batch, heads, seq_len, hidden / heads], each head a slice of features."""
    if x.dim() != 3 or x.size(-1) % num_heads != 0:
        raise ValueError(
            f"split_heads needs [batch, seq_len, hidden] with hidden divisible by num_heads={num_heads}; "
            f"got {list(x.shape)}"
        )
    batch, seq_len, hidden = x.shape
    x = x.view(batch, seq_len, num_heads, hidden // num_heads)  # (B, T, heads, d_head)
    return x.transpose(1, 2)                                    # (B, heads, T, d_head)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[batch, heads, seq_len, d_head] -> [batch, seq_len, heads * d_head]: the inverse of split_heads."""
    if x.dim() != 4:
        raise ValueError(f"merge_heads needs [batch, heads, seq_len, d_head]; got {list(x.shape)}")
    batch, heads, seq_len, d_head = x.shape
    # transpose leaves x non-contiguous, so reshape (which copies) rather than view
    return x.transpose(1, 2).reshape(batch, seq_len, heads * d_head)  # (B, T, H)


# %%
assert torch.equal(split_heads(queries, num_heads), queries_by_head)
assert torch.equal(merge_heads(split_heads(queries, num_heads)), queries)
split_heads(queries, num_heads).shape, merge_heads(context_by_head).shape

# %% [markdown]
# The module holds the four projections, named `query`, `key` and `value` as in BERT's
# checkpoints and `output` for what those call `attention.output.dense` (chapter 6 maps the names
# one to one), and a dropout on the attention probabilities, which BERT uses in training with
# $p = 0.1$ (its second dropout, on the layer's output, belongs to the residual block of chapter 3).
# Every head takes an equal slice of the hidden vector, so the hidden size must be a multiple of
# the number of heads (BERT-base: $768 = 12 \times 64$); the constructor refuses any other.
#
# `forward` takes a boolean mask, True where a query may look at a key, as chapter 1's `attention`
# does. When the caller wants the attention maps (`output_attentions=True`) it runs our explicit
# `attention`. When nobody needs them, it calls PyTorch's `F.scaled_dot_product_attention`, which
# computes the same function in one fused kernel without storing the $T \times T$ maps. One
# detail keeps the two paths equal everywhere: given a boolean mask, the fused kernel returns zeros
# for a query that may see no key at all (a sequence made only of padding), while our `attention`
# (like BERT's) returns the plain average of the values. So we hand the fused kernel the mask in
# additive form, 0 where visible and the most negative float where hidden. That comes to what
# `attention` does, which writes the most negative float in place of a hidden score: beside it,
# any score is lost to rounding.

# %%
#| export: attention
from torch import nn


class MultiHeadAttention(nn.Module):
    """BERT's self-attention: project to Q, K, V, attend in `num_heads` heads, concatenate, project."""

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

# %% [markdown]
# Its forward pass, step by step as above: project, split into heads, attend, merge the heads, project back.

# %%
#| export: attention
# MultiHeadAttention, continued from the cell above.
import torch
import torch.nn.functional as F

from annotated_bert.attention import attention, check_attention_inputs, merge_heads, split_heads


class MultiHeadAttention(MultiHeadAttention):
    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """hidden_states [B, T, H]; mask: bool, broadcasting to [B, heads, T, T], True where a query may attend
        to a key (key_padding_mask(attention_mask) makes one from a 1/0 attention_mask [B, T]).
        Returns output [B, T, H] and attention_probs [B, heads, T, T] (None unless output_attentions)."""
        if hidden_states.dim() != 3 or hidden_states.size(-1) != self.hidden_size:
            raise ValueError(
                f"hidden_states must have shape [batch, seq_len, hidden_size={self.hidden_size}]; "
                f"got {list(hidden_states.shape)}"
            )
        query = split_heads(self.query(hidden_states), self.num_heads)  # (B, heads, T, d_head)
        key = split_heads(self.key(hidden_states), self.num_heads)      # (B, heads, T, d_head)
        value = split_heads(self.value(hidden_states), self.num_heads)  # (B, heads, T, d_head)
        if output_attentions:
            context, attention_probs = attention(query, key, value, mask, self.dropout)  # (B, heads, T, d_head)
        else:
            check_attention_inputs(query, key, value, mask)
            if mask is not None:
                # additive form, as in `attention`: a query with no visible key averages all values
                mask = torch.zeros(mask.shape, dtype=query.dtype, device=query.device).masked_fill(
                    ~mask, torch.finfo(query.dtype).min
                )  # (B or 1, 1 or heads, 1 or T, T)
            context = F.scaled_dot_product_attention(
                query, key, value, attn_mask=mask, dropout_p=self.dropout.p if self.training else 0.0
            )  # (B, heads, T, d_head)
            attention_probs = None
        return self.output(merge_heads(context)), attention_probs  # (B, T, H), (B, heads, T, T)


# %% [markdown]
# The module with our four step-by-step projections copied in computes exactly what steps 1 to 5
# computed by hand:

# %%
layer = MultiHeadAttention(hidden_size, num_heads).eval()
for name, projection in [("query", query_proj), ("key", key_proj), ("value", value_proj), ("output", output_proj)]:
    getattr(layer, name).load_state_dict(projection.state_dict())

with torch.no_grad():
    output, layer_probs = layer(hidden_states, mask, output_attentions=True)  # (B, T, H), (B, heads, T, T)
print(f"max |module - step by step| = {(output - step_by_step_output).abs().max().item():.1e}")
assert torch.allclose(output, step_by_step_output, atol=1e-6)
assert torch.allclose(layer_probs, attention_probs, atol=1e-6)
output.shape, layer_probs.shape

# %% [markdown]
# ## What several heads cost
#
# Several heads cost no more than one big head: whatever their number, the four projections are
# four $H \times H$ matrices with their biases. Counting multiply-adds for one sequence of $T$ tokens:
#
# - projections: $4 \cdot T \cdot H^2$, whatever the heads;
# - scores $QK^\top$: $\text{heads} \cdot T^2 \cdot d_\text{head} = T^2 H$, and the same again for
#   the weighted sum of values.
#
# What grows with the heads is the number of attention weights, $\text{heads} \cdot T^2$: more
# softmaxes and more memory for the maps. Parameters measured on real modules at BERT-base's size:

# %%
def multiply_adds(hidden, heads, seq_len):
    """Multiply-adds of one multi-head attention layer on one sequence, and its attention weights."""
    d_head = hidden // heads
    projections = 4 * seq_len * hidden * hidden
    scores_and_sum = 2 * heads * seq_len * seq_len * d_head
    return projections + scores_and_sum, heads * seq_len * seq_len


print(f"{'heads':>5} {'d_head':>6} {'parameters':>11} {'multiply-adds (T=128)':>22} {'attention weights':>18}")
for heads in (1, 4, 12, 64):
    parameters = sum(parameter.numel() for parameter in MultiHeadAttention(768, heads).parameters())
    operations, weights = multiply_adds(768, heads, 128)
    print(f"{heads:>5} {768 // heads:>6} {parameters:>11,} {operations:>22,} {weights:>18,}")

# %% [markdown]
# ## The fused path equals the explicit path
#
# Without `output_attentions` the module takes the fused kernel. In eval mode (no dropout) both
# paths must agree to float rounding, padding mask included. (The last digits of such gaps depend on
# the CPU's float kernels; here and in the next comparisons the assert states the bound.)

# %% tags=["nbval-ignore-output"]
with torch.no_grad():
    fused_output, no_probs = layer(hidden_states, mask)  # (B, T, H), None
fused_gap = (fused_output - output).abs().max().item()
print(f"max |fused - explicit| = {fused_gap:.1e}; probabilities returned: {no_probs}")
assert fused_gap < 1e-6

# %% [markdown]
# And the case that made us pass an additive mask: a sequence that is all padding, so that no query
# may see any key. With the raw boolean mask the fused kernel answers zeros; our `attention` and
# the module answer the average of the values, on both paths:

# %%
nothing_visible = torch.zeros(1, 1, 1, seq_len, dtype=torch.bool)  # (1, 1, 1, T)
first_queries, first_keys, first_values = queries_by_head[:1], keys_by_head[:1], values_by_head[:1]
raw_fused = F.scaled_dot_product_attention(first_queries, first_keys, first_values, attn_mask=nothing_visible)
explicit, _ = attention(first_queries, first_keys, first_values, nothing_visible)
print("fused kernel, bool mask:", raw_fused[0, 0, 0, :3].tolist())
print("ours:", [round(v, 4) for v in explicit[0, 0, 0, :3].tolist()],
      " the values' average:", [round(v, 4) for v in first_values[0, 0].mean(0)[:3].tolist()])
with torch.no_grad():
    assert torch.allclose(layer(hidden_states[:1], nothing_visible)[0],
                          layer(hidden_states[:1], nothing_visible, output_attentions=True)[0], atol=1e-6)

# %% [markdown]
# ## The same as PyTorch's `nn.MultiheadAttention`
#
# PyTorch ships its own layer. Copy our weights into it and it must compute the same thing. Two
# differences of bookkeeping:
#
# - it stores the three input projections stacked in one matrix, `in_proj_weight` of shape
#   $[3H, H]$ (queries, then keys, then values), and the output projection as `out_proj`;
# - its `key_padding_mask` means the opposite of ours: **True = ignore this key**. Our masks (and
#   `F.scaled_dot_product_attention`'s boolean masks) say True = may attend. Passing our mask
#   unchanged would hide exactly the real tokens, so we invert it.

# %% tags=["nbval-ignore-output"]
torch_layer = nn.MultiheadAttention(hidden_size, num_heads, batch_first=True).eval()
with torch.no_grad():
    torch_layer.in_proj_weight.copy_(torch.cat([layer.query.weight, layer.key.weight, layer.value.weight]))
    torch_layer.in_proj_bias.copy_(torch.cat([layer.query.bias, layer.key.bias, layer.value.bias]))
    torch_layer.out_proj.load_state_dict(layer.output.state_dict())
    ignore_keys = attention_mask == 0  # (B, T), True = ignore: the opposite of our mask
    torch_output, torch_probs = torch_layer(hidden_states, hidden_states, hidden_states,
                                            key_padding_mask=ignore_keys, average_attn_weights=False)
print(f"max |ours - nn.MultiheadAttention|: output {(output - torch_output).abs().max().item():.1e}, "
      f"attention {(layer_probs - torch_probs).abs().max().item():.1e}")
assert torch.allclose(output, torch_output, atol=1e-6)
assert torch.allclose(layer_probs, torch_probs, atol=1e-6)
torch_output.shape, torch_probs.shape

# %% [markdown]
# ## Padding does not leak
#
# The second sentence was padded with seven `[PAD]` tokens. The mask hides them as keys, so the
# outputs at its five real positions must be what the sentence gets alone, with no padding at all.
# The padded positions still get outputs (they are queries like any other) and later chapters
# ignore them.

# %% tags=["nbval-ignore-output"]
real = int(attention_mask[1].sum())
with torch.no_grad():
    alone, _ = layer(hidden_states[1:, :real])  # (1, 5, H): no padding, no mask
padding_gap = (output[1, :real] - alone[0]).abs().max().item()
print(f"{real} real tokens; max |padded batch - alone| at real positions = {padding_gap:.1e}")
assert padding_gap < 1e-6

# %% [markdown]
# ## Drawing every head
#
# Two drawings from the package's `viz` module (Appendix A5 shows how they are drawn) take attention
# in the layout that `output_attentions=True` returns, [batch, heads, T, T]. `plot_attention_heads`
# draws a grid, one heatmap per head. On our random layer and the first sentence the patterns mean
# nothing about language, but they show the point of the chapter: four heads, four different ways to
# spread attention over the same sentence. Chapter 6 draws the heads of a trained BERT.

# %%
fig = plot_attention_heads(layer_probs, tokens[0], batch_index=0, ncols=2,
                           title="Four heads of a random layer, sentence 1")
fig.savefig("../figures/02_attention_heads.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# `attention_chart` draws the same maps as an interactive chart: pick a head in the dropdown under the
# chart and hover a cell for its query, key and weight. (The saved PNG shows the first head only, since
# a picture has no dropdown.)

# %%
chart = attention_chart(layer_probs, tokens[0], batch_index=0)
chart.save("../figures/02_attention_chart.png", scale_factor=2)
chart

# %% [markdown]
# ## What we built
#
# The package's `attention` module now also holds `split_heads(x, num_heads)` and `merge_heads(x)` ([B, T, H] to
# [B, heads, T, d_head] and back) and `MultiHeadAttention(hidden_size, num_heads, dropout=0.0)`, with projections
# `query`, `key`, `value`, `output`, whose `forward(hidden_states, mask=None, output_attentions=False)` returns the
# output [B, T, H] and, when asked, the attention probabilities [B, heads, T, T]. It matches our step-by-step
# computation, PyTorch's fused kernel and `nn.MultiheadAttention` to 1e-6.
#
# Multi-head attention is half of an encoder layer. Chapter 3 adds the other half, a position-wise
# feed-forward network, and wraps both in residual connections and layer normalisation to build
# BERT's encoder.
