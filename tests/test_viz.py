"""Appendix A5's drawings: one head's heatmap, the grid of every head and the interactive altair chart."""

import matplotlib

matplotlib.use("Agg")

import altair as alt  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from annotated_bert.viz import attention_chart, attention_matrix, plot_attention, plot_attention_heads  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def random_attention(batch, heads, seq_len, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(batch, heads, seq_len, seq_len, generator=generator)).softmax(-1)


def words(seq_len):
    return ["[CLS]"] + [f"w{i}" for i in range(1, seq_len - 1)] + ["[SEP]"]


def heatmap_axes(fig):
    """The panels with an image; every other axis of the grid must be a colorbar."""
    panels = [ax for ax in fig.axes if ax.images]
    others = [ax for ax in fig.axes if not ax.images]
    assert all(hasattr(ax, "_colorbar") for ax in others)
    return panels


# ---- attention_matrix and plot_attention ------------------------------------------------


def test_attention_matrix_picks_batch_and_head():
    weights = torch.rand(2, 3, 4, 5)  # (batch, heads, T_q, T_k), the bertviz layout
    np.testing.assert_array_equal(attention_matrix(weights, batch_index=1, head=2), weights[1, 2].numpy())
    np.testing.assert_array_equal(attention_matrix(weights[0], head=1), weights[0, 1].numpy())
    np.testing.assert_array_equal(attention_matrix(weights[0, 0]), weights[0, 0].numpy())
    np.testing.assert_array_equal(attention_matrix(weights[0, 0].numpy()), weights[0, 0].numpy())


def test_attention_matrix_errors():
    with pytest.raises(ValueError, match=r"got shape \[2, 2, 2, 4, 5\]"):
        attention_matrix(torch.rand(2, 2, 2, 4, 5))
    with pytest.raises(ValueError, match=r"head=3 is out of range for attention of shape \[3, 4, 5\]"):
        attention_matrix(torch.rand(2, 3, 4, 5), head=3)
    with pytest.raises(ValueError, match=r"batch_index=2 is out of range"):
        attention_matrix(torch.rand(2, 3, 4, 5), batch_index=2)


def test_plot_attention_4d_input():
    tokens = ["[CLS]", "the", "cat", "[SEP]"]
    weights = torch.rand(2, 3, 4, 4).softmax(-1)
    ax = plot_attention(weights, tokens, batch_index=1, head=2, title="layer 0")
    np.testing.assert_allclose(ax.images[0].get_array(), weights[1, 2].numpy())
    assert [label.get_text() for label in ax.get_xticklabels()] == tokens
    assert ax.get_title() == "layer 0"


def test_plot_attention_2d_input_with_query_tokens():
    fig, ax = plt.subplots()
    returned = plot_attention(torch.rand(2, 3), ["a", "b", "c"], query_tokens=["x", "y"], ax=ax)
    assert returned is ax
    assert [label.get_text() for label in ax.get_yticklabels()] == ["x", "y"]


def test_plot_attention_token_count_mismatch():
    with pytest.raises(ValueError, match=r"attention map is \[4, 4\] but there are 3 query tokens and 3 key"):
        plot_attention(torch.rand(1, 1, 4, 4), ["a", "b", "c"])


def test_plot_attention_512_tokens():
    tokens = [f"tok{i}" for i in range(512)]
    weights = torch.rand(1, 1, 512, 512).softmax(-1)
    ax = plot_attention(weights, tokens)
    ax.figure.canvas.draw()
    labels = ax.get_xticklabels()
    assert 1 < len(labels) <= 48  # a readable subset of the labels
    width, height = ax.figure.get_size_inches()
    assert width <= 10 and height <= 10


# ---- plot_attention_heads ----------------------------------------------------------------


@pytest.mark.parametrize("heads, ncols, grid", [(4, 4, (1, 4)), (4, 2, (2, 2)), (6, 4, (2, 4)), (1, 4, (1, 1))])
def test_grid_has_one_panel_per_head(heads, ncols, grid):
    attention = random_attention(2, heads, 6)
    fig = plot_attention_heads(attention, words(6), batch_index=1, ncols=ncols, title="toy")
    assert isinstance(fig, Figure)
    panels = heatmap_axes(fig)
    assert [ax.get_title() for ax in panels] == [f"head {head}" for head in range(heads)]
    assert panels[0].get_subplotspec().get_gridspec().get_geometry() == grid
    assert fig._suptitle.get_text() == "toy"
    for head, ax in enumerate(panels):
        assert np.allclose(ax.images[0].get_array(), attention[1, head].numpy())
        assert [label.get_text() for label in ax.get_xticklabels()] == words(6)


def test_grid_takes_numpy():
    attention = random_attention(1, 3, 5).numpy()
    fig = plot_attention_heads(attention, words(5))
    assert len(heatmap_axes(fig)) == 3


def test_grid_at_512_tokens_and_12_heads():
    tokens = words(512)
    fig = plot_attention_heads(random_attention(1, 12, 512), tokens, ncols=4)
    panels = heatmap_axes(fig)
    assert len(panels) == 12
    assert all(ax.images[0].get_array().shape == (512, 512) for ax in panels)
    assert len(panels[0].get_xticklabels()) <= 24  # thinned: a small panel cannot show 512 labels
    fig.canvas.draw()


@pytest.mark.parametrize("shape", [(5, 5), (3, 5, 5), (1, 2, 5, 4), (1, 1, 2, 5, 5)])
def test_grid_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=str(list(shape)).replace("[", r"\[").replace("]", r"\]")):
        plot_attention_heads(torch.rand(shape), words(5))
    assert not plt.get_fignums()  # failed before drawing anything


def test_grid_rejects_wrong_token_count_and_batch_index():
    with pytest.raises(ValueError, match=r"\[1, 2, 5, 5\].*4 tokens"):
        plot_attention_heads(random_attention(1, 2, 5), words(4))
    with pytest.raises(ValueError, match=r"batch_index 3.*\[2, 2, 5, 5\]"):
        plot_attention_heads(random_attention(2, 2, 5), words(5), batch_index=3)


# ---- attention_chart ---------------------------------------------------------------------


def decoded_rows(spec):
    """The chart's records back as {(layer, head, query): weights}, as the browser will expand them."""
    return {
        (record["layer"], record["head"], record["query"]): np.array(record["weights"].split(), dtype=float) / 10_000
        for record in spec["data"]["values"]
    }


def tooltip_fields(spec):
    return {tooltip["field"] for tooltip in spec["encoding"]["tooltip"]}


def test_chart_small():
    attention = random_attention(2, 4, 6)
    chart = attention_chart(attention, words(6), batch_index=1)
    assert isinstance(chart, alt.Chart)
    spec = chart.to_dict()
    assert {"query_token", "key_token", "weight"} <= tooltip_fields(spec)
    assert spec["mark"]["type"] == "rect"
    [head_param] = spec["params"]
    assert head_param["name"] == "head" and head_param["bind"]["options"] == [0, 1, 2, 3]
    transforms = [next(iter(transform)) for transform in spec["transform"]]
    assert transforms[:3] == ["filter", "calculate", "flatten"] and "lookup" in transforms
    rows = decoded_rows(spec)
    assert len(rows) == 4 * 6
    for (layer, head, query), weights in rows.items():
        assert layer == 0
        assert np.allclose(weights, attention[1, head, query].numpy(), atol=5e-5)
    assert [record["query_token"] for record in spec["data"]["values"][:6]] == words(6)


def test_chart_takes_numpy_and_a_subset_of_heads():
    spec = attention_chart(random_attention(1, 4, 5).numpy(), words(5), heads=[3, 1]).to_dict()
    assert spec["params"][0]["bind"]["options"] == [3, 1] and spec["params"][0]["value"] == 3
    assert {head for _, head, _ in decoded_rows(spec)} == {1, 3}


def test_chart_with_layers_has_a_layer_selector():
    layers = tuple(random_attention(1, 2, 5, seed=seed) for seed in range(3))
    spec = attention_chart(layers, words(5)).to_dict()
    params = {param["name"]: param for param in spec["params"]}
    assert set(params) == {"head", "layer"} and params["layer"]["bind"]["options"] == [0, 1, 2]
    rows = decoded_rows(spec)
    assert len(rows) == 3 * 2 * 5
    assert np.allclose(rows[(2, 1, 4)], layers[2][0, 1, 4].numpy(), atol=5e-5)


def test_chart_at_512_tokens_and_12_heads():
    """6,144 records of 512 weights each: past altair's 5,000-row limit unless passed as alt.Data."""
    chart = attention_chart(random_attention(1, 12, 512), words(512))
    spec = chart.to_dict()
    assert len(spec["data"]["values"]) == 12 * 512
    assert {"query_token", "key_token", "weight"} <= tooltip_fields(spec)
    assert len(chart.to_json()) < 20_000_000


@pytest.mark.parametrize("shape", [(5, 5), (2, 5, 5), (1, 2, 5, 4)])
def test_chart_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=str(list(shape)).replace("[", r"\[").replace("]", r"\]")):
        attention_chart(torch.rand(shape), words(5))


def test_chart_rejects_bad_tokens_heads_and_layers():
    attention = random_attention(1, 2, 5)
    with pytest.raises(ValueError, match="6 tokens"):
        attention_chart(attention, words(6))
    with pytest.raises(ValueError, match=r"below 2.*\[0, 2\]"):
        attention_chart(attention, words(5), heads=[0, 2])
    with pytest.raises(ValueError, match=r"layers differ.*\[1, 3, 5, 5\]"):
        attention_chart((attention, random_attention(1, 3, 5)), words(5))
    with pytest.raises(ValueError, match="empty"):
        attention_chart((), words(5))


def test_chart_opens_on_the_head_asked_for_and_draws_zero_white():
    layers = tuple(random_attention(1, 3, 5, seed=seed) for seed in range(2))
    spec = attention_chart(layers, words(5), start=(1, 2)).to_dict()
    params = {param["name"]: param["value"] for param in spec["params"]}
    assert params == {"head": 2, "layer": 1}
    scale = spec["encoding"]["color"]["scale"]
    assert scale["domainMin"] == 0 and scale["range"][0] == "white"
    with pytest.raises(ValueError, match="start must be"):
        attention_chart(layers, words(5), start=(2, 0))
