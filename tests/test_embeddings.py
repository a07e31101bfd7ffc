"""Chapter 04's embeddings: shapes, the formula, parity with Hugging Face, and clear errors for bad ids."""

import math
import re

import pytest
import torch
from torch import nn

from annotated_bert.embeddings import BertEmbeddings, check_ids, sinusoidal_positions

transformers = pytest.importorskip("transformers")
from transformers.models.bert.modeling_bert import BertEmbeddings as HFBertEmbeddings  # noqa: E402

OUR_NAME_TO_HF = {
    "token.weight": "word_embeddings.weight",
    "position.weight": "position_embeddings.weight",
    "segment.weight": "token_type_embeddings.weight",
    "layer_norm.weight": "LayerNorm.weight",
    "layer_norm.bias": "LayerNorm.bias",
}


def small_embeddings(**overrides):
    settings = dict(vocab_size=50, hidden_size=12, max_position_embeddings=16)
    settings.update(overrides)
    return BertEmbeddings(**settings)


def random_ids(vocab_size, batch=3, seq_len=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (batch, seq_len), generator=generator)


# ---- shapes and defaults --------------------------------------------------------------------------


@pytest.mark.parametrize("batch, seq_len, hidden_size", [(1, 1, 4), (2, 7, 12), (3, 16, 33), (0, 5, 8)])
def test_output_shape(batch, seq_len, hidden_size):
    embeddings = small_embeddings(hidden_size=hidden_size).eval()
    input_ids = random_ids(50, batch, seq_len)
    assert embeddings(input_ids).shape == (batch, seq_len, hidden_size)
    assert embeddings(input_ids, torch.ones_like(input_ids)).shape == (batch, seq_len, hidden_size)


def test_an_input_without_positions_is_named():
    with pytest.raises(ValueError, match=r"input_ids has 0 positions; BERT reads from 1 \(\[CLS\] at least\)"):
        small_embeddings()(random_ids(50, 4, 0))


def test_token_type_ids_default_to_zeros():
    embeddings = small_embeddings().eval()
    input_ids = random_ids(50)
    assert torch.equal(embeddings(input_ids), embeddings(input_ids, torch.zeros_like(input_ids)))
    assert not torch.equal(embeddings(input_ids), embeddings(input_ids, torch.ones_like(input_ids)))


def test_int32_ids_are_accepted():
    embeddings = small_embeddings().eval()
    input_ids = random_ids(50)
    assert torch.equal(embeddings(input_ids.int(), input_ids.int() % 2), embeddings(input_ids, input_ids % 2))


def test_output_is_layer_norm_of_the_sum():
    torch.manual_seed(0)
    embeddings = small_embeddings().eval()
    nn.init.normal_(embeddings.layer_norm.weight)
    nn.init.normal_(embeddings.layer_norm.bias)
    input_ids, token_type_ids = random_ids(50), random_ids(2, seed=1)
    summed = (embeddings.token.weight[input_ids] + embeddings.segment.weight[token_type_ids]
              + embeddings.position.weight[: input_ids.size(1)])
    mean = summed.mean(-1, keepdim=True)
    variance = summed.var(-1, keepdim=True, correction=0)
    expected = (summed - mean) / torch.sqrt(variance + 1e-12) * embeddings.layer_norm.weight + embeddings.layer_norm.bias
    torch.testing.assert_close(embeddings(input_ids, token_type_ids), expected, atol=1e-5, rtol=1e-5)


def test_each_position_has_mean_zero_and_std_one_at_init():
    output = small_embeddings().eval()(random_ids(50))
    torch.testing.assert_close(output.mean(-1), torch.zeros(output.shape[:2]), atol=1e-5, rtol=0)
    torch.testing.assert_close(output.std(-1, correction=0), torch.ones(output.shape[:2]), atol=1e-4, rtol=0)


def test_the_same_token_at_another_position_gets_another_vector():
    embeddings = small_embeddings().eval()
    output = embeddings(torch.full((1, 5), 7))
    assert not torch.allclose(output[0, 0], output[0, 1])


# ---- parity with Hugging Face -----------------------------------------------------------------------


HF_CONFIGS = [
    dict(vocab_size=99, hidden_size=32),
    dict(vocab_size=30, hidden_size=8, max_position_embeddings=20, type_vocab_size=2, pad_token_id=0),
    dict(vocab_size=120, hidden_size=48, max_position_embeddings=64, type_vocab_size=3, pad_token_id=5),
    dict(vocab_size=17, hidden_size=5, max_position_embeddings=9, type_vocab_size=1, layer_norm_eps=1e-6),
]


@pytest.mark.parametrize("settings", HF_CONFIGS)
def test_matches_transformers_with_copied_weights(settings):
    config = transformers.BertConfig(num_hidden_layers=1, num_attention_heads=1, intermediate_size=7, **settings)
    torch.manual_seed(0)
    theirs = HFBertEmbeddings(config).eval()
    for parameter in theirs.parameters():  # random everywhere, LayerNorm's scale and shift included
        nn.init.normal_(parameter, std=0.5)
    ours = BertEmbeddings(config.vocab_size, config.hidden_size, config.max_position_embeddings,
                          config.type_vocab_size, config.hidden_dropout_prob, config.layer_norm_eps,
                          config.pad_token_id).eval()
    hf_weights = theirs.state_dict()
    ours.load_state_dict({name: hf_weights[hf_name] for name, hf_name in OUR_NAME_TO_HF.items()})

    for seq_len in (1, 5, config.max_position_embeddings):
        input_ids = random_ids(config.vocab_size, batch=3, seq_len=seq_len, seed=seq_len)
        token_type_ids = random_ids(config.type_vocab_size, batch=3, seq_len=seq_len, seed=seq_len + 1)
        with torch.no_grad():
            torch.testing.assert_close(ours(input_ids, token_type_ids),
                                       theirs(input_ids=input_ids, token_type_ids=token_type_ids),
                                       atol=1e-6, rtol=0)
            torch.testing.assert_close(ours(input_ids), theirs(input_ids=input_ids), atol=1e-6, rtol=0)


def test_parameter_names_and_shapes_map_onto_a_transformers_bert_model():
    config = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                     intermediate_size=37)
    hf_weights = transformers.BertModel(config).embeddings.state_dict()
    ours = BertEmbeddings(config.vocab_size, config.hidden_size).state_dict()
    assert set(ours) == set(OUR_NAME_TO_HF)
    for name, hf_name in OUR_NAME_TO_HF.items():
        assert ours[name].shape == hf_weights[hf_name].shape, name


# ---- BERT's facts --------------------------------------------------------------------------------


def test_defaults_are_berts():
    embeddings = BertEmbeddings(vocab_size=30522, hidden_size=8)
    assert embeddings.position.num_embeddings == 512
    assert embeddings.segment.num_embeddings == 2  # rows for sentences A and B: no padding row
    assert embeddings.token.padding_idx == 0
    assert embeddings.layer_norm.eps == 1e-12
    assert embeddings.dropout.p == 0.1


def test_bert_base_parameter_count():
    with torch.device("meta"):
        embeddings = BertEmbeddings(vocab_size=30522, hidden_size=768)
    count = sum(parameter.numel() for parameter in embeddings.parameters())
    assert count == (30522 + 512 + 2) * 768 + 2 * 768 == 23_837_184


def test_positions_are_learned_parameters():
    embeddings = small_embeddings()
    assert embeddings.position.weight.requires_grad
    assert any(parameter is embeddings.position.weight for parameter in embeddings.parameters())
    output = embeddings(random_ids(50))
    (output * torch.randn_like(output)).sum().backward()
    gradient_rows = embeddings.position.weight.grad.norm(dim=-1)
    assert (gradient_rows[:7] > 0).all()       # the positions that were used
    assert (gradient_rows[7:] == 0).all()      # and only those


@pytest.mark.parametrize("pad_token_id", [0, 3])
def test_padding_row_is_zero_after_construction_and_gets_no_gradient(pad_token_id):
    torch.manual_seed(0)
    embeddings = small_embeddings(pad_token_id=pad_token_id)
    assert torch.count_nonzero(embeddings.token.weight[pad_token_id]) == 0
    assert torch.count_nonzero(embeddings.token.weight) > 0
    input_ids = random_ids(50)
    input_ids[:, -2:] = pad_token_id
    output = embeddings(input_ids)
    (output * torch.randn_like(output)).sum().backward()
    assert torch.count_nonzero(embeddings.token.weight.grad[pad_token_id]) == 0


def test_padded_positions_still_have_nonzero_outputs():
    embeddings = small_embeddings().eval()
    output = embeddings(torch.tensor([[2, 7, 0, 0]]))
    assert (output[0, 2:].norm(dim=-1) > 1).all()  # LayerNorm of position + segment: masks handle padding


def test_dropout_is_on_in_training_and_off_in_evaluation():
    torch.manual_seed(0)
    embeddings = small_embeddings(hidden_size=64, dropout=0.5)
    input_ids = random_ids(50, batch=4, seq_len=16)
    evaluated = embeddings.eval()(input_ids)
    assert torch.equal(evaluated, embeddings(input_ids))
    trained = embeddings.train()(input_ids)
    zeroed = trained == 0
    assert 0.4 < zeroed.float().mean().item() < 0.6
    torch.testing.assert_close(trained[~zeroed], evaluated[~zeroed] / 0.5)


# ---- sinusoidal positions -------------------------------------------------------------------------


@pytest.mark.parametrize("pos, i", [(0, 0), (1, 0), (7, 3), (100, 50), (511, 383), (511, 0), (300, 200)])
def test_sinusoidal_closed_form(pos, i):
    hidden_size = 768
    encoding = sinusoidal_positions(512, hidden_size)
    angle = pos / 10000 ** (2 * i / hidden_size)
    assert encoding[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
    assert encoding[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


@pytest.mark.parametrize("num_positions, hidden_size", [(512, 768), (10, 1), (33, 3), (64, 7), (0, 4), (5, 2)])
def test_sinusoidal_shape_range_and_odd_sizes(num_positions, hidden_size):
    encoding = sinusoidal_positions(num_positions, hidden_size)
    assert encoding.shape == (num_positions, hidden_size)
    assert encoding.dtype == torch.float32
    if num_positions:
        assert encoding.abs().max().item() <= 1.0
        expected_first_row = torch.tensor([0.0, 1.0] * hidden_size)[:hidden_size]  # sin 0, cos 0, ...
        assert torch.equal(encoding[0], expected_first_row)
        last_pair = (hidden_size - 1) // 2
        angle = (num_positions - 1) / 10000 ** (2 * last_pair / hidden_size)
        assert encoding[-1, 2 * last_pair].item() == pytest.approx(math.sin(angle), abs=1e-6)


def test_sinusoidal_dot_product_depends_only_on_the_offset():
    encoding = sinusoidal_positions(400, 64)
    torch.testing.assert_close(encoding[10] @ encoding[3], encoding[310] @ encoding[303], atol=1e-4, rtol=0)


def test_sinusoidal_rejects_bad_sizes():
    with pytest.raises(ValueError, match="hidden_size"):
        sinusoidal_positions(4, 0)
    with pytest.raises(ValueError, match="num_positions"):
        sinusoidal_positions(-1, 8)


# ---- errors ---------------------------------------------------------------------------------------


def test_id_at_or_past_vocab_size_is_named_with_its_place_and_the_limit():
    embeddings = small_embeddings(vocab_size=50)
    input_ids = random_ids(50)
    input_ids[1, 4] = 50
    with pytest.raises(ValueError, match=r"input_ids\[1, 4\] is 50, outside \[0, vocab_size=50\)"):
        embeddings(input_ids)


def test_negative_id_is_named():
    embeddings = small_embeddings(vocab_size=50)
    input_ids = random_ids(50)
    input_ids[0, 2] = -3
    with pytest.raises(ValueError, match=r"input_ids\[0, 2\] is -3, outside \[0, vocab_size=50\)"):
        embeddings(input_ids)


def test_too_long_input_names_its_length_and_the_limit():
    embeddings = BertEmbeddings(vocab_size=50, hidden_size=8)
    with pytest.raises(ValueError, match=r"513 positions; BERT reads .* to max_position_embeddings = 512"):
        embeddings(torch.ones(1, 513, dtype=torch.long))
    assert embeddings(torch.ones(1, 512, dtype=torch.long)).shape == (1, 512, 8)


def test_token_type_two_with_two_segments_is_named():
    embeddings = small_embeddings(type_vocab_size=2)
    input_ids = random_ids(50)
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[2, 6] = 2
    with pytest.raises(ValueError, match=r"token_type_ids\[2, 6\] is 2, outside \[0, type_vocab_size=2\)"):
        embeddings(input_ids, token_type_ids)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool, torch.uint8])
def test_non_integer_ids_are_refused(dtype):
    embeddings = small_embeddings()
    with pytest.raises(ValueError, match=rf"input_ids must hold integer ids .* got dtype {dtype}"):
        embeddings(random_ids(50).to(dtype))
    input_ids = random_ids(50)
    with pytest.raises(ValueError, match=rf"token_type_ids must hold integer ids .* got dtype {dtype}"):
        embeddings(input_ids, torch.zeros_like(input_ids).to(dtype))


@pytest.mark.parametrize("shape", [(7,), (2, 3, 4), ()])
def test_wrong_rank_is_refused_with_the_shape(shape):
    embeddings = small_embeddings()
    message = f"input_ids must have shape [batch, seq_len]; got shape {list(shape)}"
    with pytest.raises(ValueError, match=re.escape(message)):
        embeddings(torch.zeros(shape, dtype=torch.long))


def test_token_type_ids_of_another_shape_are_refused():
    embeddings = small_embeddings()
    input_ids = random_ids(50, batch=2, seq_len=6)
    with pytest.raises(ValueError, match=r"token_type_ids has shape \[2, 5\]; it must match input_ids, \[2, 6\]"):
        embeddings(input_ids, torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token_type_ids must have shape \[batch, seq_len\]; got shape \[6\]"):
        embeddings(input_ids, torch.zeros(6, dtype=torch.long))


def test_check_ids_accepts_good_ids_and_refuses_lists():
    check_ids("ids", torch.tensor([[0, 4]]), 5, "limit")
    check_ids("ids", torch.zeros(2, 0, dtype=torch.long), 5, "limit")
    with pytest.raises(ValueError, match=r"ids\[0, 1\] is 5, outside \[0, limit=5\)"):
        check_ids("ids", torch.tensor([[0, 5]]), 5, "limit")
    with pytest.raises(TypeError, match="ids must be a torch.Tensor"):
        check_ids("ids", [[0, 1]], 5, "limit")
