"""annotated_bert.encoder (chapter 3): GELU, the feed-forward network, BERT's post-LN layer and the stack."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from annotated_bert.attention import key_padding_mask
from annotated_bert.encoder import Encoder, EncoderLayer, EncoderOutput, FeedForward, gelu

# (hidden_size, num_heads, intermediate_size): BERT's 4x ratio, other ratios, one head, many heads.
CONFIGS = [(32, 4, 128), (48, 3, 80), (24, 1, 37), (64, 8, 50)]


def padded_batch(hidden_size: int, lengths=(9, 6, 1), seed: int = 0):
    """Random hidden states [B, T, H] and a 1/0 attention_mask [B, T] with the given real lengths."""
    generator = torch.Generator().manual_seed(seed)
    seq_len = max(lengths)
    hidden_states = torch.randn(len(lengths), seq_len, hidden_size, generator=generator)
    attention_mask = torch.tensor([[1] * length + [0] * (seq_len - length) for length in lengths])
    return hidden_states, attention_mask


def randomise_norms(module: nn.Module) -> None:
    """Give every LayerNorm random γ and β, so that parity tests cover them too."""
    with torch.no_grad():
        for norm in (m for m in module.modules() if isinstance(m, nn.LayerNorm)):
            norm.weight.normal_(1.0, 0.2)
            norm.bias.normal_(0.0, 0.2)


# ---- GELU ---------------------------------------------------------------------------------------------------


def test_gelu_is_torch_exact_gelu():
    x64 = torch.linspace(-10, 10, 20001, dtype=torch.float64)
    assert torch.allclose(gelu(x64), F.gelu(x64), atol=1e-12, rtol=0)
    x32 = x64.float()
    assert torch.allclose(gelu(x32), F.gelu(x32), atol=1e-5, rtol=0)


def test_gelu_known_values():
    # GELU(x) = x Φ(x): Φ(0) = 1/2, Φ(1) = 0.8413447460685429, Φ(-1) = 1 - Φ(1).
    values = gelu(torch.tensor([0.0, 1.0, -1.0, 10.0, -10.0], dtype=torch.float64))
    expected = torch.tensor([0.0, 0.8413447460685429, -0.15865525393145707, 10.0, 0.0], dtype=torch.float64)
    assert torch.allclose(values, expected, atol=1e-12)


def test_gelu_is_not_the_tanh_approximation():
    x = torch.linspace(-6, 6, 12001, dtype=torch.float64)
    gap = (gelu(x) - F.gelu(x, approximate="tanh")).abs().max().item()
    assert 1e-4 < gap < 1e-3  # about 4.7e-4: enough to fail a 1e-5 parity test


# ---- FeedForward --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hidden_size, intermediate_size", [(32, 128), (24, 37)])
def test_feed_forward_shapes(hidden_size, intermediate_size):
    feed_forward = FeedForward(hidden_size, intermediate_size)
    assert feed_forward.expand.weight.shape == (intermediate_size, hidden_size)
    assert feed_forward.contract.weight.shape == (hidden_size, intermediate_size)
    for shape in [(2, 7, hidden_size), (7, hidden_size), (1, 1, hidden_size)]:
        assert feed_forward(torch.randn(*shape)).shape == shape


def test_feed_forward_is_linear_gelu_linear_per_position():
    torch.manual_seed(0)
    feed_forward = FeedForward(16, 40)
    hidden_states = torch.randn(3, 5, 16)
    by_hand = feed_forward.contract(gelu(feed_forward.expand(hidden_states)))
    assert torch.allclose(feed_forward(hidden_states), by_hand, atol=1e-6)
    # Position-wise: each position alone gives what it gives inside the sequence.
    one_at_a_time = torch.cat([feed_forward(hidden_states[:, t : t + 1]) for t in range(5)], dim=1)
    assert torch.allclose(feed_forward(hidden_states), one_at_a_time, atol=1e-6)


def test_feed_forward_has_no_dropout_inside():
    assert not any(isinstance(module, nn.Dropout) for module in FeedForward(8, 32).modules())


# ---- EncoderLayer: equal to PyTorch's and to Hugging Face's layer ------------------------------------------


def torch_layer_from(layer: EncoderLayer) -> nn.TransformerEncoderLayer:
    """nn.TransformerEncoderLayer configured the BERT way, holding a copy of `layer`'s weights."""
    attention = layer.attention
    torch_layer = nn.TransformerEncoderLayer(
        d_model=layer.hidden_size, nhead=layer.num_heads,
        dim_feedforward=layer.feed_forward.expand.out_features, dropout=0.0, activation="gelu",
        layer_norm_eps=1e-12, batch_first=True, norm_first=False,
    )
    with torch.no_grad():
        torch_layer.self_attn.in_proj_weight.copy_(
            torch.cat([attention.query.weight, attention.key.weight, attention.value.weight]))
        torch_layer.self_attn.in_proj_bias.copy_(
            torch.cat([attention.query.bias, attention.key.bias, attention.value.bias]))
        torch_layer.self_attn.out_proj.load_state_dict(attention.output.state_dict())
        torch_layer.linear1.load_state_dict(layer.feed_forward.expand.state_dict())
        torch_layer.linear2.load_state_dict(layer.feed_forward.contract.state_dict())
        torch_layer.norm1.load_state_dict(layer.attention_norm.state_dict())
        torch_layer.norm2.load_state_dict(layer.output_norm.state_dict())
    return torch_layer.eval()


@pytest.mark.parametrize("hidden_size, num_heads, intermediate_size", CONFIGS)
def test_layer_equals_torch_transformer_encoder_layer(hidden_size, num_heads, intermediate_size):
    torch.manual_seed(hidden_size)
    layer = EncoderLayer(hidden_size, num_heads, intermediate_size).eval()
    randomise_norms(layer)
    torch_layer = torch_layer_from(layer)
    hidden_states, attention_mask = padded_batch(hidden_size)
    real = attention_mask.bool()
    with torch.no_grad():
        ours, _ = layer(hidden_states, key_padding_mask(attention_mask))
        # PyTorch's padding mask says True = ignore: the opposite of ours.
        theirs = torch_layer(hidden_states, src_key_padding_mask=~real)
    assert torch.allclose(ours[real], theirs[real], atol=1e-5, rtol=0)


def test_torch_defaults_are_not_bert():
    """The parity above rests on BERT's settings: PyTorch's defaults (eps 1e-5, ReLU) or pre-LN break it."""
    torch.manual_seed(0)
    layer = EncoderLayer(32, 4, 37).eval()
    hidden_states, attention_mask = padded_batch(32)
    real = attention_mask.bool()
    with torch.no_grad():
        ours, _ = layer(hidden_states, key_padding_mask(attention_mask))
        for change in [dict(layer_norm_eps=1e-5), dict(norm_first=True),
                       dict(activation=lambda x: F.gelu(x, approximate="tanh"))]:
            torch_layer = torch_layer_from(layer)
            other = nn.TransformerEncoderLayer(32, 4, 37, dropout=0.0, batch_first=True,
                                               **({"activation": "gelu", "layer_norm_eps": 1e-12} | change))
            other.load_state_dict(torch_layer.state_dict())
            theirs = other.eval()(hidden_states, src_key_padding_mask=~real)
            assert (ours - theirs)[real].abs().max() > 1e-5, change


def hugging_face_encoder_from(encoder: Encoder):
    """transformers' BertEncoder (eager attention, no dropout) holding a copy of `encoder`'s weights."""
    transformers = pytest.importorskip("transformers")
    from transformers.models.bert.modeling_bert import BertEncoder

    first = encoder.layers[0]
    config = transformers.BertConfig(
        hidden_size=first.hidden_size, num_hidden_layers=len(encoder.layers), num_attention_heads=first.num_heads,
        intermediate_size=first.feed_forward.expand.out_features, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12, hidden_act="gelu", attn_implementation="eager",
    )
    reference = BertEncoder(config).eval()
    names = {
        "attention.query": "attention.self.query", "attention.key": "attention.self.key",
        "attention.value": "attention.self.value", "attention.output": "attention.output.dense",
        "attention_norm": "attention.output.LayerNorm", "feed_forward.expand": "intermediate.dense",
        "feed_forward.contract": "output.dense", "output_norm": "output.LayerNorm",
    }
    state = {}
    for index, layer in enumerate(encoder.layers):
        for ours, theirs in names.items():
            for kind in ("weight", "bias"):
                state[f"layer.{index}.{theirs}.{kind}"] = layer.get_submodule(ours).get_parameter(kind)
    reference.load_state_dict(state, strict=True)
    return reference


@pytest.mark.parametrize("hidden_size, num_heads, intermediate_size", CONFIGS[:3])
def test_encoder_equals_hugging_face_bert_encoder(hidden_size, num_heads, intermediate_size):
    torch.manual_seed(100 + hidden_size)
    encoder = Encoder(3, hidden_size, num_heads, intermediate_size).eval()
    randomise_norms(encoder)
    reference = hugging_face_encoder_from(encoder)
    hidden_states, attention_mask = padded_batch(hidden_size)
    real = attention_mask.bool()
    additive_mask = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    with torch.no_grad():
        ours = encoder(hidden_states, key_padding_mask(attention_mask)).last_hidden_state
        theirs = reference(hidden_states, attention_mask=additive_mask).last_hidden_state
    assert torch.allclose(ours[real], theirs[real], atol=1e-5, rtol=0)


# ---- EncoderLayer: BERT's structure -------------------------------------------------------------------------


@pytest.mark.parametrize("scale, shift", [(1.0, 0.0), (50.0, 3.0), (1e-3, -7.0)])
def test_layer_is_post_ln(scale, shift):
    """With γ = 1 and β = 0 a post-LN layer's output has mean 0 and variance 1 at every position."""
    torch.manual_seed(0)
    layer = EncoderLayer(32, 4, 37).eval()
    hidden_states = scale * torch.randn(2, 7, 32) + shift
    with torch.no_grad():
        output, _ = layer(hidden_states)
    assert torch.allclose(output.mean(dim=-1), torch.zeros(2, 7), atol=1e-5)
    assert torch.allclose(output.var(dim=-1, correction=0), torch.ones(2, 7), atol=1e-4)


def test_layer_order_by_hand():
    """a = LN(x + MHA(x)); y = LN(a + FFN(a)), with the layer's own parts."""
    torch.manual_seed(0)
    layer = EncoderLayer(24, 3, 40).eval()
    randomise_norms(layer)
    x = torch.randn(2, 6, 24)
    with torch.no_grad():
        attended, _ = layer.attention(x)
        a = layer.attention_norm(x + attended)
        y = layer.output_norm(a + layer.feed_forward(a))
        output, _ = layer(x)
    assert torch.allclose(output, y, atol=1e-6)


def test_layer_norm_eps_is_bert_default_and_configurable():
    layer = EncoderLayer(32, 4, 37)
    assert layer.attention_norm.eps == 1e-12 and layer.output_norm.eps == 1e-12
    encoder = Encoder(2, 32, 4, 37, layer_norm_eps=1e-7)
    assert all(norm.eps == 1e-7 for norm in encoder.modules() if isinstance(norm, nn.LayerNorm))
    assert sum(isinstance(module, nn.LayerNorm) for module in encoder.modules()) == 4


def test_bert_base_layer_parameter_count():
    layer = EncoderLayer(hidden_size=768, num_heads=12, intermediate_size=3072)
    assert sum(parameter.numel() for parameter in layer.parameters()) == 7_087_872


def test_encoder_layers_do_not_share_weights():
    encoder = Encoder(3, 32, 4, 37)
    one_layer = sum(parameter.numel() for parameter in encoder.layers[0].parameters())
    assert sum(parameter.numel() for parameter in encoder.parameters()) == 3 * one_layer
    assert not torch.equal(encoder.layers[0].attention.query.weight, encoder.layers[1].attention.query.weight)


# ---- Encoder: outputs, masks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 3])
def test_encoder_output_shapes(num_layers):
    torch.manual_seed(0)
    encoder = Encoder(num_layers, 24, 3, 40).eval()
    hidden_states, attention_mask = padded_batch(24)
    batch, seq_len, _ = hidden_states.shape
    outputs = encoder(hidden_states, key_padding_mask(attention_mask), output_attentions=True,
                      output_hidden_states=True)
    assert isinstance(outputs, EncoderOutput)
    assert outputs.last_hidden_state.shape == (batch, seq_len, 24)
    assert len(outputs.hidden_states) == num_layers + 1
    assert all(h.shape == (batch, seq_len, 24) for h in outputs.hidden_states)
    assert outputs.hidden_states[0] is hidden_states
    assert torch.equal(outputs.hidden_states[-1], outputs.last_hidden_state)
    assert len(outputs.attentions) == num_layers
    for attention_probs in outputs.attentions:
        assert attention_probs.shape == (batch, 3, seq_len, seq_len)
        assert torch.allclose(attention_probs.sum(-1), torch.ones(batch, 3, seq_len), atol=1e-5)
        # No probability on padding keys.
        assert attention_probs.masked_select(~attention_mask.bool()[:, None, None, :]).abs().max() == 0


def test_encoder_returns_only_what_is_asked():
    outputs = Encoder(2, 16, 2, 30).eval()(torch.randn(1, 4, 16))
    assert outputs.hidden_states is None and outputs.attentions is None


@pytest.mark.parametrize("hidden_size, num_heads, intermediate_size", CONFIGS)
def test_padding_invariance_through_the_stack(hidden_size, num_heads, intermediate_size):
    torch.manual_seed(1)
    encoder = Encoder(3, hidden_size, num_heads, intermediate_size).eval()
    hidden_states, attention_mask = padded_batch(hidden_size)
    noisy = hidden_states.clone()
    noisy[~attention_mask.bool()] = 1000 * torch.randn(int((attention_mask == 0).sum()), hidden_size)
    with torch.no_grad():
        padded = encoder(noisy, key_padding_mask(attention_mask)).last_hidden_state
        for row, length in enumerate(attention_mask.sum(dim=1).tolist()):
            alone = encoder(hidden_states[row : row + 1, :length]).last_hidden_state
            assert torch.allclose(padded[row : row + 1, :length], alone, atol=1e-5, rtol=0)


def test_output_attentions_does_not_change_hidden_states():
    torch.manual_seed(0)
    encoder = Encoder(3, 48, 3, 80).eval()
    hidden_states, attention_mask = padded_batch(48)
    mask = key_padding_mask(attention_mask)
    with torch.no_grad():
        fused = encoder(hidden_states, mask, output_attentions=False).last_hidden_state
        explicit = encoder(hidden_states, mask, output_attentions=True).last_hidden_state
    assert torch.allclose(fused, explicit, atol=1e-5, rtol=0)


# ---- dropout ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dropout, attention_dropout", [(0.5, 0.0), (0.0, 0.5), (0.1, 0.1)])
@pytest.mark.parametrize("output_attentions", [False, True])
def test_dropout_active_in_train_mode_only(dropout, attention_dropout, output_attentions):
    torch.manual_seed(0)
    encoder = Encoder(2, 32, 4, 37, dropout=dropout, attention_dropout=attention_dropout)
    hidden_states, attention_mask = padded_batch(32)
    mask = key_padding_mask(attention_mask)
    encoder.train()
    first = encoder(hidden_states, mask, output_attentions=output_attentions).last_hidden_state
    second = encoder(hidden_states, mask, output_attentions=output_attentions).last_hidden_state
    assert not torch.equal(first, second)
    encoder.eval()
    first = encoder(hidden_states, mask, output_attentions=output_attentions).last_hidden_state
    second = encoder(hidden_states, mask, output_attentions=output_attentions).last_hidden_state
    assert torch.equal(first, second)


def test_no_dropout_means_train_equals_eval():
    torch.manual_seed(0)
    encoder = Encoder(2, 32, 4, 37, dropout=0.0, attention_dropout=0.0)
    hidden_states = torch.randn(2, 5, 32)
    in_train = encoder.train()(hidden_states).last_hidden_state
    in_eval = encoder.eval()(hidden_states).last_hidden_state
    assert torch.allclose(in_train, in_eval, atol=1e-6)


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    encoder = Encoder(2, 16, 2, 30)
    encoder(torch.randn(2, 5, 16)).last_hidden_state.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


# ---- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(7, 32), (2, 7, 16), (1, 2, 7, 32)])
@pytest.mark.parametrize("which", ["layer", "encoder"])
def test_bad_hidden_states_raise_value_error_naming_shapes(shape, which):
    module = EncoderLayer(32, 4, 37) if which == "layer" else Encoder(2, 32, 4, 37)
    with pytest.raises(ValueError) as error:
        module(torch.randn(*shape))
    message = str(error.value)
    assert str(list(shape)) in message and "hidden_size=32" in message


def test_feed_forward_wrong_width_names_shapes():
    with pytest.raises(ValueError, match=r"hidden_size=32.*\[2, 7, 16\]"):
        FeedForward(32, 37)(torch.randn(2, 7, 16))


def test_numeric_mask_is_rejected():
    """A 1/0 attention_mask must go through key_padding_mask; passing it raw is an error, not a silent bug."""
    hidden_states, attention_mask = padded_batch(32)
    with pytest.raises(ValueError):
        Encoder(1, 32, 4, 37).eval()(hidden_states, attention_mask)


def test_hidden_size_not_divisible_by_heads():
    with pytest.raises(ValueError, match="divisible"):
        EncoderLayer(30, 4, 37)


def test_dropout_sites_match_bert():
    """Three sites: attention probabilities, and before each residual add (one module serves both)."""
    layer = EncoderLayer(32, 4, 37, dropout=0.1, attention_dropout=0.2)
    dropouts = {name: module.p for name, module in layer.named_modules() if isinstance(module, nn.Dropout)}
    assert dropouts == {"attention.dropout": 0.2, "dropout": 0.1}


def test_gelu_float32_error_is_tiny():
    x = torch.linspace(-8, 8, 4001)
    assert (gelu(x).double() - F.gelu(x.double())).abs().max() < 1e-6
    assert math.isclose(gelu(torch.tensor(2.0)).item(), 2.0 * 0.9772498680518208, rel_tol=1e-6)
