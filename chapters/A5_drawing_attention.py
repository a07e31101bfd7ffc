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
# # Appendix A5: Drawing attention
#
# Chapters 1, 2, 6 and 9 look at attention through the package module `viz`. This appendix writes it, in
# the order the book first uses it:
#
# 1. `plot_attention`, one head's map as a heatmap (chapter 1);
# 2. `plot_attention_heads`, every head of a layer as a grid of heatmaps (chapter 2);
# 3. `attention_chart`, the same maps as an interactive chart with a head and a layer selector (chapters 2
#    and 6);
# 4. `attention_pattern_summary` and `plot_attention_patterns`: what each head of a trained model does
#    (chapters 6 and 9).
#
# All of them take attention in the layout that a BERT layer returns and the `bertviz` tool takes,
# `[batch, heads, T_q, T_k]`, with tokens or ids; none knows anything of a model class.

# %%
import altair as alt
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from annotated_bert.viz import (attention_chart, attention_pattern_summary, plot_attention, plot_attention_heads,
                                plot_attention_patterns)

# %% [markdown]
# Something to draw: made-up attention for two sequences of six tokens in four heads, each row a softmax
# of random scores.

# %%
tokens = "[CLS] the cat sat down [SEP]".split()
scores = 3 * torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(0))  # (B, heads, T, T)
toy_attention = scores.softmax(dim=-1)                                             # (B, heads, T, T)

# %% [markdown]
# ## 1. One head
#
# Attention weights are a `[T_q, T_k]` matrix per head and per sequence, so they draw well as a heatmap:
# one row per query, one column per key. `attention_matrix` picks one sequence and one head out of the
# `[batch, heads, T_q, T_k]` layout (a bare map passes through), with an error that names the shape when
# an index is out of range.

# %%
#| export: viz
import math

import numpy as np
import torch


def _select(weights: torch.Tensor, index: int, name: str) -> torch.Tensor:
    if not -weights.size(0) <= index < weights.size(0):
        raise ValueError(f"{name}={index} is out of range for attention of shape {list(weights.shape)}")
    return weights[index]


def attention_matrix(attention: torch.Tensor | np.ndarray, batch_index: int = 0, head: int = 0) -> np.ndarray:
    """One [T_q, T_k] map from attention in the bertviz layout [batch, heads, T_q, T_k].

    A bare [T_q, T_k] map, or [heads, T_q, T_k], is taken as it is.
    """
    weights = torch.as_tensor(attention).detach().float().cpu()
    if weights.dim() not in (2, 3, 4):
        raise ValueError(
            "attention must be [T_q, T_k], [heads, T_q, T_k] or [batch, heads, T_q, T_k]; "
            f"got shape {list(weights.shape)}"
        )
    if weights.dim() == 4:
        weights = _select(weights, batch_index, "batch_index")  # (heads, T_q, T_k)
    if weights.dim() == 3:
        weights = _select(weights, head, "head")                # (T_q, T_k)
    return weights.numpy()


def _tick_step(count: int, most: int = 48) -> int:
    """Label every token of a short sentence, every k-th one of a long one."""
    return max(1, math.ceil(count / most))

# %% [markdown]
# `plot_attention` draws the map. Unless it is given axes to draw in, it sizes the figure to the tokens;
# long inputs get every $k$-th label, so that even 512 tokens stay readable.

# %%
#| export: viz
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from annotated_bert.viz import _tick_step, attention_matrix


def plot_attention(attention: torch.Tensor | np.ndarray, tokens: Sequence[str],
                   query_tokens: Sequence[str] | None = None, batch_index: int = 0, head: int = 0,
                   ax: plt.Axes | None = None, title: str | None = None) -> plt.Axes:
    """Heatmap of one head: rows are queries, columns the keys they attend to. Returns the axes."""
    weights = attention_matrix(attention, batch_index, head)  # (T_q, T_k)
    query_tokens = tokens if query_tokens is None else query_tokens
    if weights.shape != (len(query_tokens), len(tokens)):
        raise ValueError(
            f"attention map is {list(weights.shape)} but there are {len(query_tokens)} query tokens "
            f"and {len(tokens)} key tokens"
        )
    if ax is None:
        width = min(10.0, 2.0 + 0.35 * len(tokens))
        height = min(10.0, max(2.0, width * len(query_tokens) / len(tokens)))
        _, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(weights, cmap="Blues", vmin=0.0, vmax=max(float(weights.max()), 1e-9),
                      aspect="auto", interpolation="nearest")
    for axis, labels, rotation in ((ax.xaxis, tokens, 90), (ax.yaxis, query_tokens, 0)):
        step = _tick_step(len(labels))
        axis.set_ticks(range(0, len(labels), step))
        axis.set_ticklabels([str(label) for label in list(labels)[::step]], rotation=rotation, fontsize=8)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return ax

# %% [markdown]
# Head 2 of the second sequence; the image holds exactly that map:

# %%
ax = plot_attention(toy_attention, tokens, batch_index=1, head=2, title="batch_index=1, head=2")
assert np.array_equal(ax.images[0].get_array(), toy_attention[1, 2].numpy())
plt.show()

# %% [markdown]
# ## 2. Every head
#
# `plot_attention_heads` draws a static grid, one `plot_attention` panel per head, for the page and for
# saved figures. It and the interactive chart of section 3 begin with the same check, so that a tensor of
# the wrong shape fails with its shape named before anything is drawn:

# %%
#| export: viz
from collections.abc import Sequence

import numpy as np
import torch


def attention_maps(attention: torch.Tensor | np.ndarray, tokens: Sequence, batch_index: int = 0) -> torch.Tensor:
    """Attention in the bertviz layout [batch, heads, T, T] (tensor or array) as a float tensor, checked."""
    maps = attention if torch.is_tensor(attention) else torch.as_tensor(np.asarray(attention))
    maps = maps.detach().float().cpu()  # (B, heads, T, T)
    if maps.dim() != 4 or maps.size(-1) != maps.size(-2):
        raise ValueError(f"attention must have shape [batch, heads, seq_len, seq_len]; got {list(maps.shape)}")
    if maps.size(-1) != len(tokens):
        raise ValueError(
            f"attention of shape {list(maps.shape)} covers {maps.size(-1)} positions "
            f"but {len(tokens)} tokens were given"
        )
    if not -maps.size(0) <= batch_index < maps.size(0):
        raise ValueError(f"batch_index {batch_index} is out of range for attention of shape {list(maps.shape)}")
    return maps

# %% [markdown]
# The grid reuses `plot_attention` for each panel. Each panel keeps its own color scale, since one
# sharp head would otherwise wash out a diffuse one, and labels at most about 24 tokens, since a
# panel is small.

# %%
#| export: viz
import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from annotated_bert.viz import attention_maps, plot_attention


def plot_attention_heads(attention: torch.Tensor | np.ndarray, tokens: Sequence[str], batch_index: int = 0,
                         ncols: int = 4, title: str | None = None) -> plt.Figure:
    """A grid of heatmaps, one per head, of attention [batch, heads, T, T] for one sequence."""
    maps = attention_maps(attention, tokens, batch_index)  # (B, heads, T, T)
    num_heads = maps.size(1)
    ncols = max(1, min(ncols, num_heads))
    side = min(4.0, 1.6 + 0.22 * len(tokens))  # inches per panel
    fig, axes = plt.subplots(math.ceil(num_heads / ncols), ncols, squeeze=False, layout="constrained",
                             figsize=(1.25 * side * ncols, 1.1 * side * math.ceil(num_heads / ncols)))
    label_step = max(1, math.ceil(len(tokens) / 24))
    for head, ax in enumerate(axes.flat):
        if head >= num_heads:
            ax.remove()  # the unused end of the last row
            continue
        plot_attention(maps, tokens, batch_index=batch_index, head=head, ax=ax, title=f"head {head}")
        for axis, rotation in ((ax.xaxis, 90), (ax.yaxis, 0)):
            axis.set_ticks(range(0, len(tokens), label_step))
            axis.set_ticklabels(list(tokens)[::label_step], rotation=rotation, fontsize=8)
        if head % ncols:
            ax.set_ylabel("")
        if head + ncols < num_heads:
            ax.set_xlabel("")
    if title:
        fig.suptitle(title)
    return fig

# %% [markdown]
# The four heads of the first sequence:

# %%
fig = plot_attention_heads(toy_attention, tokens, ncols=4, title="four made-up heads")
assert [ax.get_title() for ax in fig.axes if ax.images] == [f"head {head}" for head in range(4)]
plt.show()

# %% [markdown]
# ## 3. The interactive chart
#
# `attention_chart` draws the same maps as an altair chart, with a dropdown that picks the head and a
# tooltip on each cell (query token, key token, weight). Given a tuple of per-layer tensors, what a full
# model returns (chapter 6), it adds a dropdown for the layer. It takes more arguments, so it checks more:
# every layer must have the shape of the first, `heads` must name heads that exist, and `start` one layer
# and one of those heads.

# %%
#| export: viz
from collections.abc import Sequence

import numpy as np
import torch

from annotated_bert.viz import attention_maps


def checked_chart_inputs(attention: torch.Tensor | np.ndarray | Sequence[torch.Tensor], tokens: Sequence[str],
                         batch_index: int = 0, heads: Sequence[int] | None = None,
                         start: tuple[int, int] | None = None) -> tuple[list[torch.Tensor], list[int], tuple[int, int]]:
    """attention_chart's arguments, checked: (maps, one [B, heads, T, T] per layer; heads; (layer, head))."""
    layers = list(attention) if isinstance(attention, (tuple, list)) else [attention]
    if not layers:
        raise ValueError("attention is an empty sequence of layers")
    maps = [attention_maps(layer, tokens, batch_index) for layer in layers]  # each (B, heads, T, T)
    if any(layer_maps.shape != maps[0].shape for layer_maps in maps):
        raise ValueError(f"layers differ in shape: {[list(layer_maps.shape) for layer_maps in maps]}")
    num_heads = maps[0].size(1)
    heads = list(range(num_heads)) if heads is None else [int(head) for head in heads]
    if not heads or any(not 0 <= head < num_heads for head in heads):
        raise ValueError(f"heads must be a non-empty list of indices below {num_heads}; got {heads}")
    start_layer, start_head = (0, heads[0]) if start is None else (int(start[0]), int(start[1]))
    if not (0 <= start_layer < len(maps) and start_head in heads):
        raise ValueError(f"start must be (layer, head) with layer below {len(maps)} and head in {heads}; "
                         f"got {start}")
    return maps, heads, (start_layer, start_head)

# %% [markdown]
# The chart has to stay usable on BERT's longest input, 512 tokens: one row per cell
# would be $12 \times 512^2 \approx 3$ million rows, far past altair's limit of 5,000 rows per
# chart (and too big for a notebook). So the chart ships one compact record per (layer, head,
# query) holding that query's whole row of weights, rounded to 4 decimals, and lets the browser
# expand only the selected head: vega-lite `split`s the row and `flatten`s it into one row per
# key, a `window` numbers the keys, and a `lookup` fetches each key's token from a small table.
# The row travels as one string of whole numbers of ten-thousandths ("9661 12 0 ..."), not as a
# list of floats: altair walks a list element by element when it builds the chart, which took a
# minute at 512 tokens, while a string is a single value; it is also half the size.

# %%
#| export: viz
from collections.abc import Sequence

import altair as alt
import torch
from altair.expr.core import Expression


def attention_row_records(maps: list[torch.Tensor], tokens: Sequence[str], batch_index: int,
                          heads: list[int]) -> list[dict]:
    """One record per (layer, head, query) of `maps` (one [B, heads, T, T] per layer): its row of weights
    as one string of ten-thousandths."""
    ten_thousandths = [torch.round(layer_maps[batch_index] * 10_000).long() for layer_maps in maps]  # (heads, T, T)
    return [
        {"layer": layer, "head": head, "query": query, "query_token": str(tokens[query]),
         "weights": " ".join(map(str, row))}
        for layer, layer_rows in enumerate(ten_thousandths)
        for head in heads
        for query, row in enumerate(layer_rows[head].tolist())
    ]


def expanded_rows(chart: alt.Chart, selected: Expression, tokens: Sequence[str]) -> alt.Chart:
    """In the browser: keep the records that `selected` picks, one row per (query, key), with the key's token."""
    key_tokens = alt.Data(values=[{"key": key, "key_token": str(token)} for key, token in enumerate(tokens)])
    return (
        chart.transform_filter(selected)  # expand only the chosen head's rows
        .transform_calculate(weight_list="split(datum.weights, ' ')")
        .transform_flatten(["weight_list"], as_=["weight_text"])
        .transform_window(key_number="row_number()", groupby=["layer", "head", "query"])
        .transform_calculate(key="datum.key_number - 1", weight="toNumber(datum.weight_text) / 10000")
        .transform_lookup(lookup="key", from_=alt.LookupData(key_tokens, "key", ["key_token"]))
    )

# %% [markdown]
# The dropdowns are vega-lite parameters bound to select boxes. The layer's appears only when
# there are several layers, and the chart shows the records of the chosen layer and head.

# %%
#| export: viz
import altair as alt
from altair.expr.core import Expression


def chart_selectors(heads: list[int], num_layers: int,
                    start: tuple[int, int]) -> tuple[list[alt.Parameter], Expression]:
    """The head (and, for several layers, layer) dropdowns, opening on start = (layer, head), and the
    condition that picks the chosen records."""
    start_layer, start_head = start
    head_param = alt.param(name="head", value=start_head, bind=alt.binding_select(options=heads, name="head "))
    params, selected = [head_param], alt.datum.head == head_param
    if num_layers > 1:
        layer_param = alt.param(name="layer", value=start_layer,
                                bind=alt.binding_select(options=list(range(num_layers)), name="layer "))
        params.append(layer_param)
        selected = selected & (alt.datum.layer == layer_param)
    return params, selected

# %% [markdown]
# The chart puts the pieces together: the records, expanded for the chosen head, become one
# rectangle per (query, key), colored by weight, with the tokens on the axes and in the tooltip.

# %%
#| export: viz
import json
from collections.abc import Sequence

import altair as alt
import numpy as np
import torch

from annotated_bert.viz import attention_row_records, chart_selectors, checked_chart_inputs, expanded_rows


def attention_chart(attention: torch.Tensor | np.ndarray | Sequence[torch.Tensor], tokens: Sequence[str],
                    batch_index: int = 0, heads: Sequence[int] | None = None,
                    start: tuple[int, int] | None = None) -> alt.Chart:
    """Interactive heatmap of attention [batch, heads, T, T], or of a tuple of them (one per layer).

    A dropdown picks the head (and the layer, for a tuple); hovering a cell shows the query token, the key token
    and the weight. One record per (layer, head, query) carries its row of weights. `start`: the (layer, head)
    the chart opens on (default: layer 0, the first of `heads`). A weight of 0 is white."""
    maps, heads, start = checked_chart_inputs(attention, tokens, batch_index, heads, start)
    params, selected = chart_selectors(heads, len(maps), start)
    records = alt.Data(values=attention_row_records(maps, tokens, batch_index, heads))
    token_axis = alt.Axis(labelExpr=f"{json.dumps([str(token) for token in tokens])}[datum.value]",
                          labelOverlap=True, ticks=len(tokens) <= 64)  # a token's label, not its index
    side = min(600, max(240, 22 * len(tokens)))
    return (
        expanded_rows(alt.Chart(records), selected, tokens)
        .mark_rect()
        .encode(
            x=alt.X("key:O", title="key (attended to)", axis=token_axis),
            y=alt.Y("query:O", title="query", axis=token_axis),
            color=alt.Color("weight:Q", title="weight",
                            scale=alt.Scale(domainMin=0, range=["white", "#08306b"], interpolate="rgb")),  # white is 0
            tooltip=[alt.Tooltip("query_token:N", title="query"), alt.Tooltip("key_token:N", title="key"),
                     alt.Tooltip("weight:Q", format=".4f")],
        )
        .add_params(*params)
        .properties(width=side, height=side, title="attention weights: choose a head, hover a cell")
    )

# %% [markdown]
# The made-up maps of the second sequence, as one layer: one record per (head, query), 4 × 6 of them.
# Pick a head in the dropdown under the chart and hover a cell.

# %%
alt.renderers.enable("mimetype")  # JupyterLab draws vega-lite offline from this mimetype
chart = attention_chart(toy_attention, tokens, batch_index=1)
assert len(chart.to_dict()["data"]["values"]) == 4 * len(tokens)
chart

# %% [markdown]
# ## 4. What each head does
#
# Chapters 6 and 9 summarise every head of a trained model with the measure of Clark, Khandelwal, Levy and
# Manning ("What Does BERT Look At?", 2019): for each layer and head, the mean share of an ordinary token's
# attention (neither `[CLS]` nor `[SEP]`, nor padding) that goes to five kinds of key: `[CLS]`, `[SEP]`, the
# previous token, the next token, and the token itself.
#
# The previous and next tokens are counted only where that neighbour is itself an ordinary token, so that
# a head fixed on `[CLS]` does not also look like a previous-token head for the first word.

# %%
#| export: viz
ATTENTION_PATTERNS = ("[CLS]", "[SEP]", "previous", "next", "itself")

# %% [markdown]
# First the queries each pattern is averaged over, as masks over the batch's positions:

# %%
#| export: viz
import torch


def pattern_queries(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, cls_token_id: int,
                    sep_token_id: int) -> dict[str, torch.Tensor]:
    """For each pattern, the queries [B, T] it is averaged over: the ordinary tokens (real, neither [CLS]
    nor [SEP]); for "previous" and "next", only those whose neighbour on that side is ordinary too."""
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape [batch, seq_len]; got {list(input_ids.shape)}")
    real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else \
        torch.as_tensor(attention_mask).cpu().bool()                                          # (B, T)
    if real.shape != input_ids.shape:
        raise ValueError(f"attention_mask {list(real.shape)} must have the shape of input_ids {list(input_ids.shape)}")
    ordinary = real & (input_ids != cls_token_id) & (input_ids != sep_token_id)               # (B, T)
    if not ordinary.any():
        raise ValueError("no ordinary token (real, neither [CLS] nor [SEP]) to average over")
    previous_ok, next_ok = torch.zeros_like(ordinary), torch.zeros_like(ordinary)             # (B, T)
    previous_ok[:, 1:] = ordinary[:, 1:] & ordinary[:, :-1]
    next_ok[:, :-1] = ordinary[:, :-1] & ordinary[:, 1:]
    return {"[CLS]": ordinary, "[SEP]": ordinary, "previous": previous_ok, "next": next_ok, "itself": ordinary}

# %% [markdown]
# The summary: for each layer and head, each pattern's share of attention, averaged over its queries.

# %%
#| export: viz
from collections.abc import Sequence

import numpy as np
import torch

from annotated_bert.viz import ATTENTION_PATTERNS, attention_maps, pattern_queries


def attention_pattern_summary(attentions: torch.Tensor | Sequence[torch.Tensor], input_ids: torch.Tensor,
                              cls_token_id: int, sep_token_id: int,
                              attention_mask: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """The mean share of attention that ordinary tokens pay to five kinds of key, per layer and head.

    attentions: [batch, heads, T, T] for one layer, or a tuple of them (one per layer); input_ids and the optional
    1/0 attention_mask: [batch, T]. Queries are the real tokens that are neither [CLS] nor [SEP]. Returns
    {pattern: array [layers, heads]} for ATTENTION_PATTERNS: the share on [CLS] keys, on [SEP] keys, on the token
    before, on the token after (only where that neighbour is an ordinary token; else NaN), and on the query itself."""
    layers = list(attentions) if isinstance(attentions, (tuple, list)) else [attentions]
    input_ids = torch.as_tensor(input_ids).cpu()
    queries = pattern_queries(input_ids, attention_mask, cls_token_id, sep_token_id)
    key_is_cls = (input_ids == cls_token_id)[:, None, None, :]                                # (B, 1, 1, T)
    key_is_sep = (input_ids == sep_token_id)[:, None, None, :]                                # (B, 1, 1, T)
    summary = {pattern: [] for pattern in ATTENTION_PATTERNS}
    for layer in layers:
        maps = attention_maps(layer, range(input_ids.size(1)))                                # (B, heads, T, T)
        if maps.size(0) != input_ids.size(0):
            raise ValueError(f"attention of shape {list(maps.shape)} is not for {input_ids.size(0)} sequences")
        edge = maps.new_zeros(*maps.shape[:2], 1)                                             # (B, heads, 1)
        shares = {                                                                            # each (B, heads, T)
            "[CLS]": (maps * key_is_cls).sum(-1),
            "[SEP]": (maps * key_is_sep).sum(-1),
            "previous": torch.cat([edge, maps.diagonal(-1, dim1=-2, dim2=-1)], dim=-1),
            "next": torch.cat([maps.diagonal(1, dim1=-2, dim2=-1), edge], dim=-1),
            "itself": maps.diagonal(0, dim1=-2, dim2=-1),
        }
        for pattern, share in shares.items():
            weights = queries[pattern][:, None, :].float()                                    # (B, 1, T)
            summary[pattern].append((share * weights).sum((0, 2)) / weights.sum())            # (heads,)
    return {pattern: torch.stack(rows).double().numpy() for pattern, rows in summary.items()}

# %% [markdown]
# A check on heads whose behaviour we know because we write them by hand: on `[CLS] a b c [SEP]`, head 0
# looks at the previous token, head 1 at `[CLS]`, head 2 at itself.

# %%
made_up = torch.zeros(1, 3, 5, 5)                                                          # (B, heads, T, T)
made_up[0, 0, 0, 0] = 1
made_up[0, 0, torch.arange(1, 5), torch.arange(0, 4)] = 1     # previous token
made_up[0, 1, :, 0] = 1                                       # [CLS]
made_up[0, 2] = torch.eye(5)                                  # itself
made_up_summary = attention_pattern_summary(made_up, torch.tensor([[101, 7, 8, 9, 102]]), 101, 102)
pd.DataFrame({pattern: shares[0] for pattern, shares in made_up_summary.items()},  # layer 0's [heads] row
             index=["head 0", "head 1", "head 2"]).round(2)

# %% [markdown]
# Head 0's previous-token share is 1 although its first word looks at `[CLS]`: that query has no
# ordinary token before it and is not counted. Its `[CLS]` share is the one query of three that looks
# there.

# %% [markdown]
# ### One heatmap per pattern
#
# Layers down, heads across, each cell the share of the head's attention that goes to that kind of key,
# written in while the grid is small enough to read.

# %%
#| export: viz
import math

import matplotlib.pyplot as plt
import numpy as np


def plot_attention_patterns(summary: dict[str, np.ndarray], ncols: int = 2, title: str | None = None) -> plt.Figure:
    """One heatmap per pattern of attention_pattern_summary (layers down, heads across, shares written in)."""
    if not summary:
        raise ValueError("summary is empty: pass the dict that attention_pattern_summary returns")
    grids = {pattern: np.asarray(shares, dtype=float) for pattern, shares in summary.items()}
    shapes = {grid.shape for grid in grids.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"every pattern must be one [layers, heads] array; got shapes {sorted(shapes)}")
    num_layers, num_heads = next(iter(shapes))
    ncols = max(1, min(ncols, len(grids)))
    nrows = math.ceil(len(grids) / ncols)
    panel_width = max(2.2, 1.0 + 0.45 * num_heads)          # wide enough for its title, however few the heads
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                             figsize=(ncols * panel_width, nrows * (0.9 + 0.4 * num_layers)))
    for ax, (pattern, grid) in zip(axes.flat, grids.items()):
        image = ax.imshow(grid, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        if num_layers * num_heads <= 400:  # write the shares in while they stay readable
            for (layer, head), share in np.ndenumerate(grid):
                ax.text(head, layer, f"{share:.2f}".removeprefix("0"), ha="center", va="center", fontsize=7,
                        color="white" if share > 0.6 else "black")
        label = {"previous": "the previous token", "next": "the next token"}.get(pattern, pattern)
        ax.set_title(f"to {label}", fontsize=10)
        ax.set(xlabel="head", ylabel="layer", xticks=range(num_heads), yticks=range(num_layers))
    for ax in axes.flat[len(grids):]:
        ax.remove()
    fig.colorbar(image, ax=list(axes.flat[: len(grids)]), fraction=0.02, pad=0.01,
                 label="mean share of a query's attention")
    if title:
        fig.suptitle(title)
    return fig

# %% [markdown]
# The hand-made heads of above, drawn: one layer of three heads, each pure in its pattern.

# %%
fig = plot_attention_patterns(made_up_summary, ncols=5, title="three hand-made heads")
