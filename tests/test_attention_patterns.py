"""viz.attention_pattern_summary on hand-made maps whose answers are known, and plot_attention_patterns."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from annotated_bert.viz import ATTENTION_PATTERNS, attention_pattern_summary, plot_attention_patterns  # noqa: E402

CLS, SEP = 1, 2
# [CLS] a b c [SEP] [PAD]: ordinary queries are positions 1, 2, 3
INPUT_IDS = torch.tensor([[CLS, 5, 6, 7, SEP, 0]])
MASK = torch.tensor([[1, 1, 1, 1, 1, 0]])


def one_hot_map(targets):
    """A one-head map in which query i puts all its weight on key targets[i]."""
    maps = torch.zeros(1, 1, 6, 6)
    for query, key in enumerate(targets):
        maps[0, 0, query, key] = 1.0
    return maps


@pytest.mark.parametrize("targets, pattern", [
    ([0, 0, 0, 0, 0, 0], "[CLS]"),
    ([4, 4, 4, 4, 4, 4], "[SEP]"),
    ([0, 0, 1, 2, 3, 4], "previous"),
    ([1, 2, 3, 4, 5, 5], "next"),
    ([0, 1, 2, 3, 4, 5], "itself"),
])
def test_a_pure_head_scores_one_on_its_pattern(targets, pattern):
    summary = attention_pattern_summary(one_hot_map(targets), INPUT_IDS, CLS, SEP, MASK)
    assert set(summary) == set(ATTENTION_PATTERNS)
    assert summary[pattern].shape == (1, 1)
    assert summary[pattern][0, 0] == pytest.approx(1.0)
    if pattern in ("[CLS]", "[SEP]", "itself"):  # these heads give nothing to any other kind of key
        for other in set(ATTENTION_PATTERNS) - {pattern, "previous", "next"}:
            assert summary[other][0, 0] == pytest.approx(0.0)


def test_uniform_attention_and_layers():
    uniform = torch.full((1, 3, 6, 6), 1 / 6)
    summary = attention_pattern_summary((uniform, uniform), INPUT_IDS, CLS, SEP, MASK)
    assert summary["[CLS]"].shape == (2, 3)
    assert np.allclose(summary["[CLS]"], 1 / 6) and np.allclose(summary["itself"], 1 / 6)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"input_ids must have shape \[batch, seq_len\]"):
        attention_pattern_summary(one_hot_map(range(6)), INPUT_IDS[0], CLS, SEP)
    with pytest.raises(ValueError, match="no ordinary token"):
        attention_pattern_summary(one_hot_map(range(6)), torch.tensor([[CLS, SEP, 0, 0, 0, 0]]), CLS, SEP,
                                  torch.tensor([[1, 1, 0, 0, 0, 0]]))


def test_plot_draws_one_panel_per_pattern():
    summary = attention_pattern_summary(torch.full((1, 2, 6, 6), 1 / 6), INPUT_IDS, CLS, SEP, MASK)
    figure = plot_attention_patterns(summary)
    titled = [ax for ax in figure.axes if ax.get_title()]
    assert len(titled) == len(ATTENTION_PATTERNS)
    plt.close(figure)
