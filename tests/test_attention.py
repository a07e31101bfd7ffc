"""Chapter 01: scaled dot-product attention, its input checks and the padding mask."""

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from annotated_bert.attention import attention, check_attention_inputs, key_padding_mask


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def qkv(*batch, t_q=5, t_k=6, d_k=8, d_v=3):
    return (torch.randn(*batch, t_q, d_k), torch.randn(*batch, t_k, d_k), torch.randn(*batch, t_k, d_v))


# --- shapes and the softmax ---------------------------------------------------------------------

@pytest.mark.parametrize("batch", [(), (2,), (2, 4)], ids=["unbatched", "batched", "batch-and-heads"])
def test_output_and_probability_shapes(batch):
    query, key, value = qkv(*batch)
    output, attention_probs = attention(query, key, value)
    assert output.shape == (*batch, 5, 3)
    assert attention_probs.shape == (*batch, 5, 6)


def test_leading_dimensions_broadcast():
    query = torch.randn(2, 4, 5, 8)          # (B, heads, T_q, d_k)
    key, value = torch.randn(2, 1, 6, 8), torch.randn(2, 1, 6, 3)  # shared by the heads
    output, attention_probs = attention(query, key, value)
    assert output.shape == (2, 4, 5, 3) and attention_probs.shape == (2, 4, 5, 6)


def test_probabilities_are_a_distribution_over_keys():
    query, key, value = qkv(3)
    _, attention_probs = attention(query, key, value)
    assert (attention_probs >= 0).all()
    torch.testing.assert_close(attention_probs.sum(-1), torch.ones(3, 5))


def test_unbatched_equals_each_item_of_the_batch():
    query, key, value = qkv(3)
    output, _ = attention(query, key, value)
    for index in range(3):
        single, _ = attention(query[index], key[index], value[index])
        torch.testing.assert_close(single, output[index])


# --- agreement with PyTorch ---------------------------------------------------------------------

def test_matches_pytorch_without_mask():
    query, key, value = qkv(2, 4)
    output, _ = attention(query, key, value)
    expected = F.scaled_dot_product_attention(query, key, value)
    assert torch.allclose(output, expected, atol=1e-6)


@pytest.mark.parametrize("mask_shape", [(2, 1, 1, 6), (2, 4, 5, 6), (5, 6)], ids=["keys", "full", "shared"])
def test_matches_pytorch_with_bool_mask(mask_shape):
    query, key, value = qkv(2, 4)
    mask = torch.rand(mask_shape) > 0.4
    mask[..., 0] = True  # no fully hidden rows: PyTorch treats those differently (see below)
    output, _ = attention(query, key, value, mask)
    expected = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    assert torch.allclose(output, expected, atol=1e-6)


def test_probabilities_match_an_explicit_softmax():
    query, key, value = qkv(2)
    _, attention_probs = attention(query, key, value)
    expected = torch.softmax(query @ key.transpose(-2, -1) / 8**0.5, dim=-1)
    torch.testing.assert_close(attention_probs, expected)


# --- masks --------------------------------------------------------------------------------------

def test_masked_keys_get_exactly_zero_probability():
    query, key, value = qkv(2, 4)
    attention_mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    _, attention_probs = attention(query, key, value, key_padding_mask(attention_mask))
    assert (attention_probs[0, :, :, 4:] == 0).all()
    assert (attention_probs[1] > 0).all()
    torch.testing.assert_close(attention_probs.sum(-1), torch.ones(2, 4, 5))


def test_padding_does_not_change_real_outputs():
    real = torch.randn(1, 2, 4, 8)                                       # (B, heads, T, d)
    junk = 1000 * torch.randn(1, 2, 3, 8)                                # padding of any content
    padded = torch.cat([real, junk], dim=2)
    mask = key_padding_mask(torch.tensor([[1] * 4 + [0] * 3]))
    alone, alone_probs = attention(real, real, real)
    with_padding, padded_probs = attention(padded, padded, padded, mask)
    assert torch.allclose(with_padding[:, :, :4], alone, atol=1e-6)
    assert torch.allclose(padded_probs[:, :, :4, :4], alone_probs, atol=1e-6)


def test_fully_masked_row_stays_finite():
    query, key, value = qkv(2)
    mask = torch.ones(2, 5, 6, dtype=torch.bool)
    mask[0, 2] = False                    # query 2 of the first sequence may see nothing
    output, attention_probs = attention(query, key, value, mask)
    assert torch.isfinite(output).all() and torch.isfinite(attention_probs).all()
    torch.testing.assert_close(attention_probs[0, 2], torch.full((6,), 1 / 6))
    # The other rows are untouched by it.
    expected, _ = attention(query[0, [0, 1, 3, 4]], key[0], value[0])
    torch.testing.assert_close(output[0, [0, 1, 3, 4]], expected)


def test_fully_masked_batch_stays_finite_in_half_precision():
    query, key, value = (tensor.half() for tensor in qkv(1))
    output, attention_probs = attention(query, key, value, torch.zeros(1, 5, 6, dtype=torch.bool))
    assert torch.isfinite(output).all() and torch.isfinite(attention_probs).all()


def test_causal_mask_hides_the_future():
    x = torch.randn(4, 8)
    _, attention_probs = attention(x, x, x, torch.ones(4, 4, dtype=torch.bool).tril())
    assert (attention_probs.triu(diagonal=1) == 0).all()


# --- dropout ------------------------------------------------------------------------------------

def test_dropout_applies_to_output_but_returned_probabilities_are_clean():
    query, key, value = qkv(2, t_q=16, t_k=16)
    dropout = nn.Dropout(p=0.5).train()
    output, attention_probs = attention(query, key, value, dropout=dropout)
    clean_output, clean_probs = attention(query, key, value)
    torch.testing.assert_close(attention_probs, clean_probs)        # returned before dropout
    assert not torch.allclose(output, clean_output)                 # the output used dropped weights

    # Same seed, same dropout mask: the output is exactly dropout(probs) @ value.
    torch.manual_seed(1)
    output, attention_probs = attention(query, key, value, dropout=dropout)
    torch.manual_seed(1)
    torch.testing.assert_close(output, dropout(attention_probs) @ value)


def test_dropout_in_eval_mode_changes_nothing():
    query, key, value = qkv(2)
    output, _ = attention(query, key, value, dropout=nn.Dropout(p=0.5).eval())
    torch.testing.assert_close(output, attention(query, key, value)[0])


# --- key_padding_mask ---------------------------------------------------------------------------

def test_key_padding_mask_shape_and_values():
    attention_mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    mask = key_padding_mask(attention_mask)
    assert mask.shape == (2, 1, 1, 3) and mask.dtype == torch.bool
    assert mask[:, 0, 0].tolist() == [[True, True, True], [True, False, False]]
    assert key_padding_mask(attention_mask.bool()).equal(mask)


@pytest.mark.parametrize("bad", [torch.ones(3), torch.ones(1, 2, 3)], ids=["1-D", "3-D"])
def test_key_padding_mask_rejects_wrong_rank(bad):
    with pytest.raises(ValueError, match=r"\[batch, seq_len\]; got " + re.escape(str(list(bad.shape)))):
        key_padding_mask(bad)


def test_key_padding_mask_rejects_an_additive_mask():
    additive = torch.tensor([[0.0, 0.0, -10000.0]])  # would become the opposite bool mask
    with pytest.raises(ValueError, match=r"only 1 \(real token\) and 0 \(padding\)"):
        key_padding_mask(additive)


# --- bad input ----------------------------------------------------------------------------------

def test_mismatched_d_k():
    with pytest.raises(ValueError, match=r"last dimension d_k.*query \[2, 5, 8\], key \[2, 6, 7\]"):
        attention(torch.randn(2, 5, 8), torch.randn(2, 6, 7), torch.randn(2, 6, 3))


def test_mismatched_key_and_value_lengths():
    with pytest.raises(ValueError, match=r"number of positions.*key \[2, 6, 8\], value \[2, 4, 3\]"):
        attention(torch.randn(2, 5, 8), torch.randn(2, 6, 8), torch.randn(2, 4, 3))


def test_different_ranks():
    with pytest.raises(ValueError, match=r"same rank.*query \[2, 5, 8\], key \[5, 8\]"):
        attention(torch.randn(2, 5, 8), torch.randn(5, 8), torch.randn(5, 3))


def test_rank_one():
    with pytest.raises(ValueError, match=r"at least 2.*query \[8\]"):
        attention(torch.randn(8), torch.randn(8), torch.randn(8))


def test_batch_dimensions_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"do not broadcast.*query \[2, 5, 8\], key \[3, 6, 8\]"):
        attention(torch.randn(2, 5, 8), torch.randn(3, 6, 8), torch.randn(3, 6, 3))


@pytest.mark.parametrize("dtype", [torch.long, torch.float32])
def test_non_bool_mask(dtype):
    query, key, value = qkv(2)
    with pytest.raises(ValueError, match=rf"mask must be a bool tensor.*{dtype}"):
        attention(query, key, value, torch.ones(2, 5, 6, dtype=dtype))


@pytest.mark.parametrize(
    "mask_shape",
    [(2, 1, 1, 6), (3, 5, 6), (2, 5, 5), (2, 5, 7)],
    ids=["4-D key mask on 3-D inputs", "wrong batch", "wrong key count", "too many keys"],
)
def test_mask_that_cannot_broadcast(mask_shape):
    query, key, value = qkv(2)
    expected = re.escape(
        f"mask of shape {list(mask_shape)} cannot broadcast to the attention scores' shape [2, 5, 6]"
    )
    with pytest.raises(ValueError, match=expected):
        attention(query, key, value, torch.ones(mask_shape, dtype=torch.bool))


def test_check_attention_inputs_accepts_good_inputs():
    query, key, value = qkv(2, 4)
    assert check_attention_inputs(query, key, value, key_padding_mask(torch.ones(2, 6))) is None
