"""Chapter 2's multi-head attention: shapes, heads, the fused path, PyTorch's own layer, padding, errors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from annotated_bert.attention import (
    MultiHeadAttention,
    attention,
    key_padding_mask,
    merge_heads,
    split_heads,
)

CONFIGS = [  # hidden_size, num_heads, batch, seq_len
    (8, 1, 1, 1),
    (32, 4, 2, 7),
    (48, 6, 3, 11),
    (64, 16, 2, 5),
]


def padded_attention_mask(batch: int, seq_len: int) -> torch.Tensor:
    """1/0 mask [batch, seq_len]: sequence b has seq_len - b real tokens (at least one)."""
    lengths = torch.tensor([max(1, seq_len - b) for b in range(batch)])
    return (torch.arange(seq_len)[None, :] < lengths[:, None]).long()


def layer_and_inputs(hidden_size, num_heads, batch, seq_len, seed=0):
    torch.manual_seed(seed)
    layer = MultiHeadAttention(hidden_size, num_heads).eval()
    hidden_states = torch.randn(batch, seq_len, hidden_size)
    return layer, hidden_states, padded_attention_mask(batch, seq_len)


@pytest.mark.parametrize("hidden_size, num_heads, batch, seq_len", CONFIGS)
def test_shapes(hidden_size, num_heads, batch, seq_len):
    layer, hidden_states, attention_mask = layer_and_inputs(hidden_size, num_heads, batch, seq_len)
    output, probs = layer(hidden_states, key_padding_mask(attention_mask), output_attentions=True)
    assert output.shape == (batch, seq_len, hidden_size)
    assert probs.shape == (batch, num_heads, seq_len, seq_len)
    assert torch.allclose(probs.sum(-1), torch.ones(batch, num_heads, seq_len), atol=1e-6)
    fused_output, no_probs = layer(hidden_states, key_padding_mask(attention_mask))
    assert fused_output.shape == (batch, seq_len, hidden_size) and no_probs is None


def test_split_heads_takes_contiguous_feature_slices():
    x = torch.randn(2, 5, 12)
    heads = split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    for head in range(3):
        assert torch.equal(heads[:, head], x[..., 4 * head:4 * (head + 1)])


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), seq_len=st.integers(1, 9), num_heads=st.integers(1, 6), d_head=st.integers(1, 5))
def test_split_merge_round_trip(batch, seq_len, num_heads, d_head):
    x = torch.randn(batch, seq_len, num_heads * d_head)
    heads = split_heads(x, num_heads)
    assert heads.shape == (batch, num_heads, seq_len, d_head)
    assert torch.equal(merge_heads(heads), x)
    assert torch.equal(split_heads(merge_heads(heads), num_heads), heads)


def test_split_and_merge_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"num_heads=5.*\[2, 3, 12\]"):
        split_heads(torch.randn(2, 3, 12), 5)
    with pytest.raises(ValueError, match=r"\[3, 12\]"):
        split_heads(torch.randn(3, 12), 4)
    with pytest.raises(ValueError, match=r"\[2, 3, 12\]"):
        merge_heads(torch.randn(2, 3, 12))


def test_module_is_the_explicit_computation():
    """Steps 1-5 by hand, with chapter 1's attention and per-head loops, give the module's output."""
    layer, hidden_states, attention_mask = layer_and_inputs(32, 4, 2, 7)
    mask = key_padding_mask(attention_mask)
    with torch.no_grad():
        output, probs = layer(hidden_states, mask, output_attentions=True)
        contexts = []
        for head in range(4):
            rows = slice(8 * head, 8 * (head + 1))
            q, k, v = (
                hidden_states @ proj.weight[rows].T + proj.bias[rows] for proj in (layer.query, layer.key, layer.value)
            )
            context, head_probs = attention(q, k, v, mask[:, 0])
            assert torch.allclose(head_probs, probs[:, head], atol=1e-6)
            contexts.append(context)
        expected = layer.output(torch.cat(contexts, dim=-1))
    assert torch.allclose(output, expected, atol=1e-6)


@pytest.mark.parametrize("hidden_size, num_heads, batch, seq_len", CONFIGS)
def test_fused_path_equals_explicit_path(hidden_size, num_heads, batch, seq_len):
    layer, hidden_states, attention_mask = layer_and_inputs(hidden_size, num_heads, batch, seq_len)
    for mask in (None, key_padding_mask(attention_mask)):
        with torch.no_grad():
            explicit, _ = layer(hidden_states, mask, output_attentions=True)
            fused, _ = layer(hidden_states, mask)
        assert (fused - explicit).abs().max() < 1e-6


def test_fused_path_equals_explicit_path_with_a_full_mask():
    """A [B, 1, T, T] mask (here causal), and a row with no visible key at all: both paths agree."""
    layer, hidden_states, _ = layer_and_inputs(32, 4, 2, 6)
    causal = torch.ones(6, 6, dtype=torch.bool).tril()[None, None].repeat(2, 1, 1, 1)  # (B, 1, T, T)
    causal[1, 0, 2] = False  # query 2 of sequence 1 may see nothing: it averages all values
    with torch.no_grad():
        explicit, probs = layer(hidden_states, causal, output_attentions=True)
        fused, _ = layer(hidden_states, causal)
    assert torch.allclose(probs[1, :, 2], torch.full((4, 6), 1 / 6))
    assert (fused - explicit).abs().max() < 1e-6
    assert torch.isfinite(fused).all()


def test_sequence_of_only_padding_gives_finite_equal_outputs():
    layer, hidden_states, _ = layer_and_inputs(16, 2, 2, 4)
    attention_mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]])
    with torch.no_grad():
        explicit, _ = layer(hidden_states, key_padding_mask(attention_mask), output_attentions=True)
        fused, _ = layer(hidden_states, key_padding_mask(attention_mask))
    assert torch.isfinite(fused).all() and (fused - explicit).abs().max() < 1e-6


@pytest.mark.parametrize("hidden_size, num_heads, batch, seq_len", CONFIGS)
def test_equals_torch_multihead_attention_with_copied_weights(hidden_size, num_heads, batch, seq_len):
    layer, hidden_states, attention_mask = layer_and_inputs(hidden_size, num_heads, batch, seq_len)
    torch_layer = nn.MultiheadAttention(hidden_size, num_heads, batch_first=True).eval()
    with torch.no_grad():
        torch_layer.in_proj_weight.copy_(torch.cat([layer.query.weight, layer.key.weight, layer.value.weight]))
        torch_layer.in_proj_bias.copy_(torch.cat([layer.query.bias, layer.key.bias, layer.value.bias]))
        torch_layer.out_proj.weight.copy_(layer.output.weight)
        torch_layer.out_proj.bias.copy_(layer.output.bias)
        ours, our_probs = layer(hidden_states, key_padding_mask(attention_mask), output_attentions=True)
        fused, _ = layer(hidden_states, key_padding_mask(attention_mask))
        # nn.MultiheadAttention's key_padding_mask is True where a key is IGNORED: the opposite of ours.
        theirs, their_probs = torch_layer(
            hidden_states, hidden_states, hidden_states,
            key_padding_mask=attention_mask == 0, average_attn_weights=False,
        )
    assert (ours - theirs).abs().max() < 1e-6
    assert (fused - theirs).abs().max() < 1e-6
    assert (our_probs - their_probs).abs().max() < 1e-6


@pytest.mark.parametrize("output_attentions", [True, False])
def test_padding_does_not_change_real_positions(output_attentions):
    layer, hidden_states, _ = layer_and_inputs(32, 4, 1, 5)
    padded = torch.cat([hidden_states, 100 * torch.randn(1, 3, 32)], dim=1)  # loud garbage in the padding
    attention_mask = torch.tensor([[1] * 5 + [0] * 3])
    with torch.no_grad():
        alone, _ = layer(hidden_states, output_attentions=output_attentions)
        with_padding, probs = layer(padded, key_padding_mask(attention_mask), output_attentions=output_attentions)
    assert (with_padding[:, :5] - alone).abs().max() < 1e-5
    if output_attentions:
        assert probs[..., 5:].abs().max() == 0  # no query attends to padding


def test_dropout_acts_in_training_only():
    torch.manual_seed(0)
    layer = MultiHeadAttention(32, 4, dropout=0.5)
    no_dropout = MultiHeadAttention(32, 4)
    no_dropout.load_state_dict(layer.state_dict())
    hidden_states = torch.randn(2, 6, 32)
    layer.eval(), no_dropout.eval()
    assert torch.allclose(layer(hidden_states)[0], no_dropout(hidden_states)[0], atol=1e-6)
    layer.train()
    for output_attentions in (True, False):
        trained, probs = layer(hidden_states, output_attentions=output_attentions)
        assert not torch.allclose(trained, no_dropout(hidden_states)[0], atol=1e-3)
    # the probabilities returned are those before dropout: rows still sum to one
    _, probs = layer(hidden_states, output_attentions=True)
    assert torch.allclose(probs.sum(-1), torch.ones(2, 4, 6), atol=1e-6)


def test_hidden_size_not_divisible_by_heads():
    with pytest.raises(ValueError, match="hidden_size 30 is not divisible by num_heads 4"):
        MultiHeadAttention(30, 4)


def test_wrong_rank_hidden_states():
    layer = MultiHeadAttention(16, 2)
    with pytest.raises(ValueError, match=r"\[batch, seq_len, hidden_size=16\].*\[5, 16\]"):
        layer(torch.randn(5, 16))
    with pytest.raises(ValueError, match=r"\[1, 2, 5, 16\]"):
        layer(torch.randn(1, 2, 5, 16))


def test_wrong_hidden_size():
    layer = MultiHeadAttention(16, 2)
    with pytest.raises(ValueError, match=r"hidden_size=16.*\[2, 5, 12\]"):
        layer(torch.randn(2, 5, 12))


@pytest.mark.parametrize("output_attentions", [True, False])
def test_mask_that_cannot_broadcast(output_attentions):
    layer = MultiHeadAttention(16, 2)
    hidden_states = torch.randn(2, 5, 16)
    # a 1/0 attention_mask turned bool but not given its [B, 1, 1, T] shape
    with pytest.raises(ValueError, match=r"\[2, 5\].*\[2, 2, 5, 5\]"):
        layer(hidden_states, torch.ones(2, 5, dtype=torch.bool), output_attentions=output_attentions)
    with pytest.raises(ValueError, match=r"\[2, 1, 1, 6\].*\[2, 2, 5, 5\]"):
        layer(hidden_states, torch.ones(2, 1, 1, 6, dtype=torch.bool), output_attentions=output_attentions)
    with pytest.raises(ValueError, match="bool"):
        layer(hidden_states, torch.ones(2, 1, 1, 5), output_attentions=output_attentions)


@pytest.mark.parametrize("output_attentions", [True, False])
def test_gradients_reach_all_four_projections(output_attentions):
    layer, hidden_states, attention_mask = layer_and_inputs(32, 4, 2, 7)
    hidden_states.requires_grad_(True)
    output, _ = layer(hidden_states, key_padding_mask(attention_mask), output_attentions=output_attentions)
    output.pow(2).sum().backward()
    for name in ("query", "key", "value", "output"):
        projection = getattr(layer, name)
        assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0, name
        if name != "key":
            assert projection.bias.grad is not None and projection.bias.grad.abs().sum() > 0, name
    # The key bias adds the same q . b_K to every score of a query's row, and softmax ignores such
    # shifts: its gradient is zero up to rounding (chapter 2 shows it does nothing).
    assert layer.key.bias.grad.abs().max() < 1e-5
    assert hidden_states.grad.abs().sum() > 0


def test_key_bias_does_not_change_the_output():
    layer, hidden_states, attention_mask = layer_and_inputs(32, 4, 2, 7)
    mask = key_padding_mask(attention_mask)
    with torch.no_grad():
        before, probs_before = layer(hidden_states, mask, output_attentions=True)
        layer.key.bias.add_(torch.randn(32))
        after, probs_after = layer(hidden_states, mask, output_attentions=True)
    assert torch.allclose(probs_before, probs_after, atol=1e-6) and torch.allclose(before, after, atol=1e-5)
