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
# Chapter 2 gave us multi-head self-attention: every position looks at every other position and comes back
# with a weighted mixture of what it saw. That is one of the two sublayers of a Transformer encoder layer. This
# chapter builds the rest of the layer and then stacks it: BERT-base is twelve copies of the layer written
# here, BERT-large twenty-four.
#
# A layer maps hidden states of shape `[batch, seq_len, hidden]` to hidden states of the same shape in two
# steps, each wrapped in a residual connection and a LayerNorm:
#
# 1. **self-attention** mixes information *across* positions;
# 2. a **feed-forward network** transforms each position *on its own*.
#
# That much is every Transformer. Four details make it BERT's layer. The first three change the function a
# checkpoint computes, so getting any of them wrong fails a parity test; the fourth changes how it trains:
#
# - GELU in its **exact erf form**, not the tanh approximation;
# - LayerNorm **after** the residual add (post-LN), not before it (pre-LN) as in many tutorials;
# - LayerNorm's epsilon is **1e-12**, not PyTorch's default 1e-5;
# - dropout in **three** places, none of them inside the feed-forward network.
#
# We check each in code, match PyTorch's `nn.TransformerEncoderLayer` configured the BERT way, and measure
# how post-LN and pre-LN stacks differ.

# %%
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from annotated_bert.attention import MultiHeadAttention, key_padding_mask

torch.manual_seed(0)
torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## 1. The position-wise feed-forward network
#
# After attention has mixed the positions, every position goes through the same two-layer network,
# independently of the others:
#
# $$\mathrm{FFN}(x) = \mathrm{GELU}(x W_1 + b_1)\, W_2 + b_2,
# \qquad W_1 \in \mathbb{R}^{H \times I},\; W_2 \in \mathbb{R}^{I \times H}$$
#
# The inner width $I$ (`intermediate_size`) is $4H$ in BERT: 3072 for $H = 768$. *Position-wise* means the
# same weights at every position and no traffic between positions: all communication between tokens happens
# in attention. The original Transformer put a ReLU between the two linear maps; BERT puts a GELU there.
#
# ### GELU
#
# GELU (Hendrycks and Gimpel, 2016) multiplies its input by the probability that a standard normal variable
# falls below it:
#
# $$\mathrm{GELU}(x) = x\,\Phi(x) = \frac{x}{2}\left[1 + \operatorname{erf}\!\left(\frac{x}{\sqrt{2}}\right)\right]$$
#
# Large positive inputs pass almost unchanged, large negative ones are nearly zeroed, and in between the
# curve is smooth, with a small dip below zero, where ReLU has a corner. The same paper offers a cheaper
# approximation,
#
# $$\mathrm{GELU}(x) \approx \frac{x}{2}\left[1 + \tanh\!\left(\sqrt{2/\pi}\,\left(x + 0.044715\,x^3\right)\right)\right],$$
#
# and both run through BERT's history: Google's TensorFlow code writes the tanh form, while Hugging Face's
# `"gelu"`, the activation BERT checkpoints name in their `config.json`, is the exact erf form. We follow
# Hugging Face, because that is how the checkpoints we load in chapter 6 are run today.

# %%
#| export: encoder
import math

import torch
import torch.nn.functional as F
from torch import nn


def gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU in its exact form, x·Φ(x), with Φ the standard normal CDF written through erf.

    This is Hugging Face's "gelu" and PyTorch's F.gelu (approximate="none"); the tanh approximation
    differs from it by up to about 4.7e-4.
    """
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


# %% [markdown]
# Our `gelu` is PyTorch's `F.gelu` (whose default is `approximate="none"`), and the tanh form is not. We compare
# in float64, so that rounding does not blur the answer: in float32 the two exact implementations round
# differently, by about $10^{-6}$.

# %%
x = torch.linspace(-6, 6, 12001, dtype=torch.float64)
gelu_tanh = F.gelu(x, approximate="tanh")
to_torch = (gelu(x) - F.gelu(x)).abs().max().item()
to_tanh = (gelu(x) - gelu_tanh).abs()                     # (12001,)
print(f"gelu vs F.gelu:           max difference below 1e-12: {to_torch < 1e-12}")
print(f"gelu vs tanh approximate: max difference {to_tanh.max():.2e} at |x| = {x[to_tanh.argmax()].abs():.1f}")
assert to_torch < 1e-12 and to_tanh.max() > 1e-4

fig, (curves, error) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
narrow = x[(x >= -4) & (x <= 3)]
curves.plot(narrow, F.relu(narrow), "--", color="0.6", label="ReLU")
curves.plot(narrow, gelu(narrow), linewidth=2.5, label="GELU, exact (erf)")
curves.plot(narrow, F.gelu(narrow, approximate="tanh"), ":", color="black", label="GELU, tanh approximation")
curves.set(xlabel="x", ylabel="activation", title="GELU beside ReLU")
error.plot(x, gelu(x) - gelu_tanh, color="tab:red")
error.axhspan(-1e-5, 1e-5, color="0.5", alpha=0.5, label="±1e-5, a parity tolerance")
error.set(xlabel="x", ylabel="exact − tanh", title="Error of the tanh approximation")
for axis in (curves, error):
    axis.legend()
    axis.grid(alpha=0.3)
fig.savefig("../figures/03_gelu.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# About $5 \times 10^{-4}$: invisible in a plot of the curves, harmless to a model trained with either form,
# and about fifty times what a $10^{-5}$ parity test allows. The right panel shows where the error lives: the
# difference is an even function of $x$ (both forms satisfy $f(x) - f(-x) = x$), largest near $|x| \approx 2.7$
# and gone in the tails.

# %% [markdown]
# The feed-forward network itself is two `nn.Linear` layers with GELU between them. We call them `expand`
# ($H \to I$) and `contract` ($I \to H$) after what they do to the width. In the forward pass we call `F.gelu`,
# PyTorch's fused kernel for the same function, which we just checked equals `gelu`.

# %%
#| export: encoder
import torch
import torch.nn.functional as F
from torch import nn


class FeedForward(nn.Module):
    """Position-wise feed-forward: Linear(H, I) -> GELU -> Linear(I, H), the same at every position.

    BERT puts no dropout inside it (the Annotated Transformer and nn.TransformerEncoderLayer do).
    """

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.expand = nn.Linear(hidden_size, intermediate_size)
        self.contract = nn.Linear(intermediate_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """hidden_states [B, T, H] (or [..., H]) -> [B, T, H], each position transformed on its own."""
        if hidden_states.size(-1) != self.expand.in_features:
            raise ValueError(
                f"FeedForward expects a last dimension of hidden_size={self.expand.in_features}; "
                f"got hidden_states of shape {list(hidden_states.shape)}"
            )
        inner = F.gelu(self.expand(hidden_states))  # (B, T, I), exact GELU like `gelu` above
        return self.contract(inner)                  # (B, T, H)


# %% [markdown]
# On a toy batch of 2 sequences of 7 positions with $H = 32$, and an intermediate width of 37 (any width works;
# $4H$ is BERT's choice), the output has the input's shape. *Position-wise* is a claim we can check: position 3
# fed alone gives what it gives inside its sequence.

# %%
feed_forward = FeedForward(hidden_size=32, intermediate_size=37)
hidden_states = torch.randn(2, 7, 32)              # (B, T, H)
transformed = feed_forward(hidden_states)          # (B, T, H)
assert torch.allclose(feed_forward(hidden_states[:, 3:4]), transformed[:, 3:4], atol=1e-6)
transformed.shape

# %% [markdown]
# ## 2. Residual connections and LayerNorm
#
# Each sublayer is wrapped in a **residual connection**: its output is *added* to its input, $x +
# \mathrm{Sublayer}(x)$. A sublayer then only has to learn a change to the representation, and the gradient
# always has a path around it.
#
# The sum is then passed through **LayerNorm** (Ba et al., 2016), which normalises each position's vector
# across its $H$ features and applies a learned per-feature scale $\gamma$ and shift $\beta$:
#
# $$\mathrm{LayerNorm}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \varepsilon}} + \beta,
# \qquad \mu = \frac{1}{H}\sum_{i=1}^{H} x_i,
# \qquad \sigma^2 = \frac{1}{H}\sum_{i=1}^{H} (x_i - \mu)^2$$
#
# Two details are easy to get wrong: $\sigma^2$ is the *biased* variance (divide by $H$, not $H - 1$), and
# $\varepsilon$ sits *inside* the square root. The formula, written out, equals `nn.LayerNorm`; with the
# unbiased variance it does not.

# %%
def layer_norm(x, weight, bias, eps):
    mean = x.mean(dim=-1, keepdim=True)                             # (B, T, 1)
    variance = ((x - mean) ** 2).mean(dim=-1, keepdim=True)         # (B, T, 1): biased, divides by H
    return weight * (x - mean) / torch.sqrt(variance + eps) + bias  # (B, T, H)


norm = nn.LayerNorm(32, eps=1e-12)
with torch.no_grad():  # random γ and β, so that the check covers them too
    norm.weight.normal_()
    norm.bias.normal_()
    reference = norm(hidden_states)                                                # (B, T, H)
    ours = layer_norm(hidden_states, norm.weight, norm.bias, eps=1e-12)            # (B, T, H)
    centered = hidden_states - hidden_states.mean(dim=-1, keepdim=True)            # (B, T, H)
    unbiased_variance = hidden_states.var(dim=-1, keepdim=True, correction=1)      # (B, T, 1): divides by H - 1
    unbiased = norm.weight * centered / torch.sqrt(unbiased_variance + 1e-12) + norm.bias
assert torch.allclose(ours, reference, atol=1e-5, rtol=0)
print(f"formula vs nn.LayerNorm:    max difference below 1e-5: {(ours - reference).abs().max() < 1e-5}")
print(f"with the unbiased variance: max difference {(unbiased - reference).abs().max():.2f}")

# %% [markdown]
# ### Why $\varepsilon = 10^{-12}$
#
# $\varepsilon$ is there to avoid dividing by zero when a vector has no variance. BERT's is $10^{-12}$, the
# value TensorFlow's `layer_norm` used when BERT was trained, and Hugging Face carries it as `layer_norm_eps`.
# PyTorch's `nn.LayerNorm` defaults to $10^{-5}$, and the difference is not academic: $\varepsilon$ competes
# with $\sigma^2$, so the smaller the spread of the input, the more a larger $\varepsilon$ shrinks the output.
# We normalise vectors of BERT-base's width with both values, at several input scales:

# %%
unit_vectors = torch.randn(200, 768)                      # (N, H), standard deviation 1
scales = torch.logspace(-4, 1, 26)
eps_gaps = torch.stack([
    (F.layer_norm(scale * unit_vectors, (768,), eps=1e-12) - F.layer_norm(scale * unit_vectors, (768,), eps=1e-5))
    .abs().max()
    for scale in scales
])                                                        # (26,)
for scale in (1e-3, 1e-2, 1e-1, 1.0):
    index = int(torch.argmin((scales - scale).abs()))
    print(f"input std {scale:<6g}  max |LN(eps=1e-12) - LN(eps=1e-5)| = {eps_gaps[index]:.1e}")
assert eps_gaps[torch.argmin((scales - 1.0).abs())] > 1e-5
fig, axis = plt.subplots(figsize=(5.5, 3.6))
axis.loglog(scales, eps_gaps, marker=".")
axis.axhline(1e-5, color="0.5", linestyle="--", linewidth=0.8, label="a 1e-5 parity tolerance")
axis.set(xlabel="standard deviation of the input vector", ylabel="max |difference| of outputs",
         title="LayerNorm with eps = 1e-12 vs eps = 1e-5")
axis.legend()
axis.grid(alpha=0.3, which="both")
fig.savefig("../figures/03_layernorm_eps.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# Even for inputs of unit spread, the two epsilons disagree by more than $10^{-5}$; for a spread of 0.01 the
# outputs are visibly different vectors. (Section 5 shows the same thing through a whole layer.)

# %% [markdown]
# ## 3. The encoder layer: post-LN
#
# Now the layer. Writing $x$ for its input,
#
# $$a = \mathrm{LayerNorm}\big(x + \mathrm{Dropout}(\mathrm{MultiHead}(x))\big)$$
# $$y = \mathrm{LayerNorm}\big(a + \mathrm{Dropout}(\mathrm{FFN}(a))\big)$$
#
# This ordering is **post-LN**: the norm comes *after* the residual add. It is what "Attention Is All You
# Need" wrote, $\mathrm{LayerNorm}(x + \mathrm{Sublayer}(x))$, and it is what BERT does.
#
# Many tutorials, the Annotated Transformer among them (to keep its code simple, it says), write **pre-LN**
# instead, $x + \mathrm{Sublayer}(\mathrm{LayerNorm}(x))$, with one extra LayerNorm after the last layer.
# Pre-LN is a good architecture (GPT-2 and most large models since use it), but it is a different function:
# BERT's weights run through a pre-LN layer give different outputs, as section 7 shows. We build BERT's.
#
# The layer checks its input first, so that a wrong shape is reported in the layer's own terms.

# %%
#| export: encoder
import torch


def check_hidden_states(hidden_states: torch.Tensor, hidden_size: int, where: str) -> None:
    """Raise a ValueError that names the shapes unless hidden_states is [batch, seq_len, hidden_size]."""
    if hidden_states.dim() != 3 or hidden_states.size(-1) != hidden_size:
        raise ValueError(
            f"{where} expects hidden_states of shape [batch, seq_len, hidden_size={hidden_size}]; "
            f"got {list(hidden_states.shape)}"
        )

# %%
#| export: encoder
import torch
from torch import nn

from annotated_bert.attention import MultiHeadAttention
from annotated_bert.encoder import FeedForward, check_hidden_states


class EncoderLayer(nn.Module):
    """One post-LN Transformer layer, as BERT has it:

        a = LayerNorm(x + Dropout(SelfAttention(x)))
        y = LayerNorm(a + Dropout(FeedForward(a)))
    """

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, dropout: float = 0.1,
                 attention_dropout: float = 0.1, layer_norm_eps: float = 1e-12):
        super().__init__()
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.attention = MultiHeadAttention(hidden_size, num_heads, attention_dropout)
        self.attention_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.feed_forward = FeedForward(hidden_size, intermediate_size)
        self.output_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        # One module serves both residual branches: dropout has no parameters.
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """hidden_states [B, T, H]; mask: bool, broadcastable to [B, heads, T, T], True where a query may attend
        to a key. Returns hidden_states [B, T, H] and attention_probs [B, heads, T, T] (or None)."""
        check_hidden_states(hidden_states, self.hidden_size, "EncoderLayer")
        attended, attention_probs = self.attention(hidden_states, mask, output_attentions)  # (B, T, H)
        hidden_states = self.attention_norm(hidden_states + self.dropout(attended))          # (B, T, H)
        transformed = self.feed_forward(hidden_states)                                       # (B, T, H)
        hidden_states = self.output_norm(hidden_states + self.dropout(transformed))          # (B, T, H)
        return hidden_states, attention_probs


# %% [markdown]
# On the toy batch, with the second sequence padded (5 real tokens, 2 padding positions) and the padding hidden
# from attention by chapter 1's `key_padding_mask`:

# %%
layer = EncoderLayer(hidden_size=32, num_heads=4, intermediate_size=37).eval()
attention_mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])  # (B, T): 1 = real token, 0 = padding
mask = key_padding_mask(attention_mask)                       # (B, 1, 1, T), bool
output, attention_probs = layer(hidden_states, mask, output_attentions=True)
output.shape, attention_probs.shape

# %% [markdown]
# Post-LN leaves a fingerprint we can test. A fresh LayerNorm has $\gamma = 1$ and $\beta = 0$, and in a
# post-LN layer a LayerNorm has the last word, so every output position has mean 0 and variance 1, whatever the
# scale of the input. (A pre-LN layer's output has no such property: it ends with a residual add.)

# %%
huge_input = 50 * torch.randn(2, 7, 32) + 3              # (B, T, H), far from mean 0, variance 1
output, _ = layer(huge_input)                             # (B, T, H)
position_means = output.mean(dim=-1)                      # (B, T)
position_variances = output.var(dim=-1, correction=0)     # (B, T)
print(f"per-position mean:     largest |mean| below 1e-5: {position_means.abs().max() < 1e-5}")
print(f"per-position variance: from {position_variances.min():.4f} to {position_variances.max():.4f}")
assert torch.allclose(position_variances, torch.ones(2, 7), atol=1e-4)

# %% [markdown]
# ## 4. Dropout where BERT puts it
#
# BERT uses dropout with probability 0.1 in three places per layer. Two common references add a fourth:
#
# | where | BERT | Annotated Transformer | `nn.TransformerEncoderLayer` |
# |---|---|---|---|
# | on the attention probabilities | yes | yes | yes |
# | after the attention's output projection, before the residual add | yes | yes | yes |
# | inside the feed-forward network, after the activation | **no** | yes | yes |
# | after the feed-forward network, before the residual add | yes | yes | yes |
#
# (BERT also drops out after the embeddings; that is chapter 4's.) In our layer the attention-probability
# dropout lives in `MultiHeadAttention` (chapter 2), and one `nn.Dropout` serves both residual branches.
# Dropout is active only in training mode: in `train()` two calls on the same input differ, in `eval()` the
# layer is a deterministic function. Forgetting `model.eval()` before inference is a classic bug, and this is
# what it looks like:

# %%
print([(name, module.p) for name, module in layer.named_modules() if isinstance(module, nn.Dropout)])
for mode in ("train", "eval"):
    first, second = (getattr(layer, mode)()(hidden_states)[0] for _ in range(2))   # (B, T, H) twice
    print(f"{mode}(): two calls on the same input are identical: {torch.equal(first, second)}")
assert torch.equal(first, second)

# %% [markdown]
# ## 5. The same layer in PyTorch
#
# PyTorch ships this layer as `nn.TransformerEncoderLayer`. Configured the BERT way, it computes the same
# function as ours: `norm_first=False` (its default: post-LN), `activation="gelu"` (the exact form; its
# default is ReLU), `layer_norm_eps=1e-12` (its default is 1e-5), `batch_first=True`, and `dropout=0.0`,
# because its dropout also sits inside the feed-forward network, where BERT has none.
#
# As in chapter 2, its attention stacks Q, K and V in one `in_proj_weight` of shape $[3H, H]$, and its padding
# mask marks with `True` the positions to *ignore*, so we concatenate our weights and pass `~attention_mask.bool()`.

# %%
def to_torch_layer(layer: EncoderLayer, **overrides) -> nn.TransformerEncoderLayer:
    """An nn.TransformerEncoderLayer holding a copy of `layer`'s weights (BERT's settings unless overridden)."""
    attention = layer.attention
    settings = dict(activation="gelu", layer_norm_eps=1e-12, norm_first=False) | overrides
    torch_layer = nn.TransformerEncoderLayer(
        d_model=layer.hidden_size, nhead=layer.num_heads,
        dim_feedforward=layer.feed_forward.expand.out_features, dropout=0.0, batch_first=True, **settings,
    )
    with torch.no_grad():
        torch_layer.self_attn.in_proj_weight.copy_(
            torch.cat([attention.query.weight, attention.key.weight, attention.value.weight]))  # (3H, H)
        torch_layer.self_attn.in_proj_bias.copy_(
            torch.cat([attention.query.bias, attention.key.bias, attention.value.bias]))        # (3H,)
        torch_layer.self_attn.out_proj.load_state_dict(attention.output.state_dict())
        torch_layer.linear1.load_state_dict(layer.feed_forward.expand.state_dict())
        torch_layer.linear2.load_state_dict(layer.feed_forward.contract.state_dict())
        torch_layer.norm1.load_state_dict(layer.attention_norm.state_dict())
        torch_layer.norm2.load_state_dict(layer.output_norm.state_dict())
    return torch_layer.eval()


# %% [markdown]
# We compare at the real positions only (a padding position still produces an output, which nothing
# downstream reads). Then we change one setting at a time in PyTorch's layer, keeping the weights, to see
# what each of BERT's details is worth against a $10^{-5}$ tolerance:

# %%
real_positions = attention_mask.bool()                    # (B, T)
torch_layer = to_torch_layer(layer)
with torch.no_grad():
    ours, _ = layer(hidden_states, mask)                                                  # (B, T, H)
    theirs = torch_layer(hidden_states, src_key_padding_mask=~attention_mask.bool())      # (B, T, H)
parity_gap = (ours - theirs)[real_positions].abs().max().item()
print(f"ours vs nn.TransformerEncoderLayer at real positions: max difference below 1e-6: {parity_gap < 1e-6}")
assert torch.allclose(ours[real_positions], theirs[real_positions], atol=1e-5, rtol=0)
variants = {
    "BERT's settings": {},
    "layer_norm_eps=1e-5 (PyTorch's default)": dict(layer_norm_eps=1e-5),
    "tanh-approximate GELU": dict(activation=lambda x: F.gelu(x, approximate="tanh")),
    "ReLU (PyTorch's default)": dict(activation="relu"),
    "norm_first=True (pre-LN)": dict(norm_first=True),
}
with torch.no_grad():
    for name, overrides in variants.items():
        theirs = to_torch_layer(layer, **overrides)(hidden_states, src_key_padding_mask=~attention_mask.bool())
        gap = (ours - theirs)[real_positions].abs().max().item()
        verdict = "passes" if gap <= 1e-5 else "FAILS"
        print(f"{name:<42} max difference {'below 1e-6' if gap < 1e-6 else f'{gap:.1e}':>10}  {verdict}")

# %% [markdown]
# Each departure fails a $10^{-5}$ parity test on its own. The epsilon and the GELU form are small enough to
# miss by eye and large enough to fail; the activation and the place of the norm change the function outright.
#
# ## 6. The stack
#
# The encoder is `num_layers` layers applied in turn, all sharing one mask. On request it also returns
# `hidden_states`, the input and then each layer's output (`num_layers + 1` tensors, as Hugging Face lays them
# out), and `attentions`, each layer's `[batch, heads, T, T]` probabilities, the layout chapter 6's maps take.

# %%
#| export: encoder
from dataclasses import dataclass

import torch


@dataclass
class EncoderOutput:
    """What Encoder.forward returns."""

    last_hidden_state: torch.Tensor                 # (B, T, H)
    hidden_states: tuple | None = None              # the input and each layer's output, when asked
    attentions: tuple | None = None                 # one (B, heads, T, T) per layer, when asked

# %%
#| export: encoder
import torch
from torch import nn

from annotated_bert.encoder import EncoderLayer, EncoderOutput, check_hidden_states


class Encoder(nn.Module):
    """A stack of `num_layers` encoder layers, all sharing one mask."""

    def __init__(self, num_layers: int, hidden_size: int, num_heads: int, intermediate_size: int,
                 dropout: float = 0.1, attention_dropout: float = 0.1, layer_norm_eps: float = 1e-12):
        super().__init__()
        self.hidden_size = hidden_size
        self.layers = nn.ModuleList(
            EncoderLayer(hidden_size, num_heads, intermediate_size, dropout, attention_dropout, layer_norm_eps)
            for _ in range(num_layers)
        )

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None,
                output_attentions: bool = False, output_hidden_states: bool = False) -> EncoderOutput:
        """hidden_states [B, T, H]; mask: bool, broadcastable to [B, heads, T, T] (key_padding_mask makes one).
        Returns an EncoderOutput: last_hidden_state [B, T, H], and each layer's states and maps when asked."""
        check_hidden_states(hidden_states, self.hidden_size, "Encoder")
        all_hidden_states = [hidden_states] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for layer in self.layers:
            hidden_states, attention_probs = layer(hidden_states, mask, output_attentions)  # (B, T, H)
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
            if output_attentions:
                all_attentions.append(attention_probs)                                   # (B, heads, T, T)
        return EncoderOutput(
            last_hidden_state=hidden_states,
            hidden_states=tuple(all_hidden_states) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
        )


# %% [markdown]
# Three layers on the toy batch, asking for everything:

# %%
encoder = Encoder(num_layers=3, hidden_size=32, num_heads=4, intermediate_size=37).eval()
outputs = encoder(hidden_states, mask, output_attentions=True, output_hidden_states=True)
print("last_hidden_state:", tuple(outputs.last_hidden_state.shape))
print("hidden_states:    ", len(outputs.hidden_states), "x", tuple(outputs.hidden_states[0].shape))
print("attentions:       ", len(outputs.attentions), "x", tuple(outputs.attentions[0].shape))
assert outputs.hidden_states[0] is hidden_states and outputs.hidden_states[-1] is outputs.last_hidden_state

# %% [markdown]
# **Padding invariance.** The mask must make padding invisible through the whole stack: the second sequence's 5
# real tokens must come out the same whether the sequence is padded or run alone, and whatever the padding
# vectors hold.

# %%
alone = encoder(hidden_states[1:, :5]).last_hidden_state              # (1, 5, H): no padding at all
noisy_padding = hidden_states.clone()
noisy_padding[1, 5:] = 1000 * torch.randn(2, 32)                      # garbage in the padding positions
padded = encoder(noisy_padding, mask).last_hidden_state[1:, :5]       # (1, 5, H)
gap = (alone - padded).abs().max().item()
print(f"real tokens, padded with garbage vs alone: max difference below 1e-5: {gap < 1e-5}")
assert torch.allclose(alone, padded, atol=1e-5, rtol=0)

# %% [markdown]
# ## 7. Post-LN versus pre-LN
#
# To see the difference we need a pre-LN layer: the same parameters, wired differently,
#
# $$a = x + \mathrm{Dropout}(\mathrm{MultiHead}(\mathrm{LayerNorm}(x))), \qquad
#   y = a + \mathrm{Dropout}(\mathrm{FFN}(\mathrm{LayerNorm}(a))),$$
#
# so a subclass that overrides `forward` is enough. BERT does not use it, so it is not exported.

# %%
class PreLNEncoderLayer(EncoderLayer):
    """The same parameters wired pre-LN: x + Sublayer(LayerNorm(x)). For comparison only: not BERT."""

    def forward(self, hidden_states, mask=None, output_attentions: bool = False):
        normed = self.attention_norm(hidden_states)                                    # (B, T, H)
        attended, attention_probs = self.attention(normed, mask, output_attentions)    # (B, T, H)
        hidden_states = hidden_states + self.dropout(attended)                         # (B, T, H)
        transformed = self.feed_forward(self.output_norm(hidden_states))               # (B, T, H)
        hidden_states = hidden_states + self.dropout(transformed)                      # (B, T, H)
        return hidden_states, attention_probs


# %% [markdown]
# First, the two orderings are different functions. Our post-LN layer's weights load into a pre-LN layer
# without complaint (the state dicts have the same keys), just as a BERT checkpoint loads into a pre-LN
# implementation whose names match. Then it computes something else:

# %%
pre_ln_layer = PreLNEncoderLayer(hidden_size=32, num_heads=4, intermediate_size=37).eval()
pre_ln_layer.load_state_dict(layer.state_dict())
with torch.no_grad():
    post_ln_output, _ = layer(hidden_states, mask)              # (B, T, H)
    pre_ln_output, _ = pre_ln_layer(hidden_states, mask)        # (B, T, H)
gap = (post_ln_output - pre_ln_output)[real_positions]
print(f"same weights, post-LN vs pre-LN: max difference {gap.abs().max():.2f}, "
      f"cosine similarity {F.cosine_similarity(post_ln_output, pre_ln_output, dim=-1)[real_positions].mean():.2f}")

# %% [markdown]
# With random weights the two outputs still point roughly the same way, since a fresh layer's sublayers are
# small beside the residual path both orderings share; but the largest difference is tens of thousands of
# times a $10^{-5}$ tolerance, and with trained weights nothing keeps the two close.
#
# Second, they treat the **residual stream**, the hidden state passed from layer to layer, in opposite ways.
# In post-LN every layer ends with a LayerNorm, so the stream is renormalised at every depth. In pre-LN it is
# a running sum that nothing rescales: it grows, and a fixed-size update becomes a smaller and smaller share
# of it (the final LayerNorm only normalises what comes out of the top). We measure this in a 24-layer stack
# (BERT-large's depth) of width 256, built twice with the same weights: the RMS size of the stream after each
# layer, and the gradient that reaches each layer's weight matrices when the output is pulled towards a
# random target; with PyTorch's default initialisation and with BERT's (normal, standard deviation 0.02,
# biases zero).

# %%
def stack_statistics(layers, final_norm, inputs, target):
    """Residual-stream RMS after each layer and the gradient norm of each layer's weight matrices."""
    layers.zero_grad()
    stream, stream_rms = inputs, []
    for stack_layer in layers:
        stream, _ = stack_layer(stream)                                   # (B, T, H)
        stream_rms.append(stream.pow(2).mean().sqrt().item())
    F.mse_loss(final_norm(stream), target).backward()
    gradient_norms = [
        math.sqrt(sum(module.weight.grad.pow(2).sum().item()
                      for module in stack_layer.modules() if isinstance(module, nn.Linear)))
        for stack_layer in layers
    ]
    return stream_rms, gradient_norms


def init_like_bert(module):
    for linear in (m for m in module.modules() if isinstance(m, nn.Linear)):
        nn.init.normal_(linear.weight, std=0.02)
        nn.init.zeros_(linear.bias)

# %%
torch.manual_seed(0)
depth, width, heads = 24, 256, 4
stack_inputs, stack_target = torch.randn(2, 16, width), torch.randn(2, 16, width)  # (B, T, H)
statistics = {}
for init_name in ("PyTorch default init", "BERT init (std 0.02)"):
    post_ln = nn.ModuleList(EncoderLayer(width, heads, 4 * width, dropout=0.0, attention_dropout=0.0)
                            for _ in range(depth))
    if init_name.startswith("BERT"):
        init_like_bert(post_ln)
    pre_ln = nn.ModuleList(PreLNEncoderLayer(width, heads, 4 * width, dropout=0.0, attention_dropout=0.0)
                           for _ in range(depth))
    pre_ln.load_state_dict(post_ln.state_dict())                 # the very same weights
    statistics["post-LN", init_name] = stack_statistics(post_ln, nn.Identity(), stack_inputs, stack_target)
    statistics["pre-LN", init_name] = stack_statistics(pre_ln, nn.LayerNorm(width, eps=1e-12),
                                                       stack_inputs, stack_target)
for (ordering, init_name), (stream_rms, gradient_norms) in statistics.items():
    print(f"{ordering:<8} {init_name:<21} stream RMS after layer 1: {stream_rms[0]:.2f}, after layer {depth}: "
          f"{stream_rms[-1]:.2f};  gradient layer {depth} / layer 1: {gradient_norms[-1] / gradient_norms[0]:.2f}")
for init_name in ("PyTorch default init", "BERT init (std 0.02)"):
    post_rms, post_gradients = statistics["post-LN", init_name]
    pre_rms, pre_gradients = statistics["pre-LN", init_name]
    assert all(abs(rms - 1) < 1e-3 for rms in post_rms)                      # post-LN: renormalised every layer
    assert pre_rms[-1] > 1.1 * pre_rms[0]                                      # pre-LN: the stream grows
    assert 0.8 < post_gradients[-1] / post_gradients[0] < 1.25                 # post-LN: about level
    assert pre_gradients[-1] < 0.9 * pre_gradients[0]                          # pre-LN: the top gets least

# %%
fig, (stream_axis, gradient_axis) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
colors = {"post-LN": "tab:blue", "pre-LN": "tab:orange"}
styles = {"PyTorch default init": "-", "BERT init (std 0.02)": "--"}
for (ordering, init_name), measured in statistics.items():
    for axis, values in zip((stream_axis, gradient_axis), measured):  # stream RMS, gradient norms
        axis.plot(range(1, depth + 1), values, styles[init_name], color=colors[ordering],
                  label=f"{ordering}, {init_name}")
stream_axis.set(xlabel="layer", ylabel="RMS of the residual stream", title="Size of the stream after each layer")
gradient_axis.set(xlabel="layer", ylabel="gradient norm of the layer's weights",
                  title="Gradient reaching each layer at initialisation", ylim=(0, None))
stream_axis.legend(fontsize=8)
for axis in (stream_axis, gradient_axis):
    axis.grid(alpha=0.3)
fig.savefig("../figures/03_post_ln_vs_pre_ln.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# What the numbers say, with either initialisation:
#
# - **Post-LN** keeps the stream at RMS 1 at every depth, and the gradient reaching the top layer is about as
#   large as the one reaching the bottom layer.
# - **Pre-LN**'s stream grows with depth, and the gradient reaching a layer shrinks as the stream it works on
#   grows: the top layer's gradient is 0.65 of the bottom layer's with PyTorch's initialisation, 0.87 with
#   BERT's, whose small weights start every sublayer small and so make the contrast milder.
#
# Xiong et al. (2020, "On Layer Normalization in the Transformer Architecture") analyse a related quantity:
# how the gradient near the *output* changes with the depth $L$ of the whole stack. For pre-LN it shrinks like
# $1/\sqrt{L}$; for post-LN it does not, and they argue that these large gradients are why post-LN needs a
# learning-rate warmup (BERT's is 10,000 steps, chapter 9). Our figure looks along one stack of depth 24
# rather than across depths, so it agrees with theirs in kind, not in a scaling law. Pre-LN's easier
# optimisation is why so many later models switched; matching BERT's checkpoints is why we cannot.

# %% [markdown]
# ## What we built
#
# The module `annotated_bert.encoder` now holds `gelu` (the exact erf form, equal to `F.gelu`), `FeedForward`
# (`expand`, GELU, `contract`, at every position alone), `EncoderLayer` (self-attention and feed-forward, each
# followed by dropout, a residual add and a LayerNorm with $\varepsilon = 10^{-12}$: post-LN, equal to
# `nn.TransformerEncoderLayer` configured the BERT way), `Encoder` and `EncoderOutput` (the stack, with every
# layer's hidden states and attention maps on request), and `check_hidden_states`, the shape check behind
# their error messages.
#
# The encoder takes hidden states and returns hidden states; it has no idea what a word is. Chapter 4 builds
# what goes in at the bottom: token, position and segment embeddings, summed and normalised into the
# `[batch, seq_len, hidden]` tensor this chapter's stack consumes.
