"""Loading and saving checkpoints: every naming variant BERT checkpoints use, and every way one can be wrong."""

import json
import warnings

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from annotated_bert import BertConfig, BertModel
from annotated_bert.pretrained import HF_NAMES, from_hf_name, load_hf_state_dict, to_hf_name

SMALL = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
             max_position_embeddings=20)


@pytest.fixture(scope="module")
def reference():
    """A small transformers BertModel, its state dict under Hugging Face's names, and a batch."""
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig(**SMALL)).eval()
    input_ids = torch.randint(1, SMALL["vocab_size"], (2, 7))
    with torch.no_grad():
        expected = model(input_ids).last_hidden_state
    return model.state_dict(), input_ids, expected


def write_checkpoint(directory, state_dict, config=SMALL, bin_format=False):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    tensors = {name: tensor.contiguous() for name, tensor in state_dict.items()}
    if bin_format:
        torch.save(tensors, directory / "pytorch_model.bin")
    else:
        save_file(tensors, directory / "model.safetensors")
    return directory


def loads_correctly(directory, input_ids, expected):
    with torch.no_grad():
        got = BertModel.from_pretrained(directory)(input_ids).last_hidden_state
    return (got - expected).abs().max().item() < 1e-5


def test_the_table_names_every_parameter_both_ways():
    model = BertModel(BertConfig(**SMALL))
    ours = list(model.state_dict())
    theirs = [to_hf_name(name) for name in ours]
    assert len(set(theirs)) == len(ours)
    assert [from_hf_name(name) for name in theirs] == ours
    assert to_hf_name("encoder.layers.1.feed_forward.expand.weight") == "encoder.layer.1.intermediate.dense.weight"
    assert len(HF_NAMES) == 13


@pytest.mark.parametrize("variant", ["plain", "bert. prefix", "legacy gamma/beta", "pytorch_model.bin"])
def test_checkpoint_variants_load(reference, tmp_path, variant):
    state_dict, input_ids, expected = reference
    if variant == "bert. prefix":  # as BertForPreTraining saves its encoder
        state_dict = {f"bert.{name}": tensor for name, tensor in state_dict.items()}
    if variant == "legacy gamma/beta":  # as old TensorFlow-converted checkpoints name LayerNorm
        state_dict = {name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"):
                      tensor for name, tensor in state_dict.items()}
    directory = write_checkpoint(tmp_path / "ckpt", state_dict, bin_format=variant == "pytorch_model.bin")
    assert loads_correctly(directory, input_ids, expected)


def test_position_ids_buffer_is_ignored(reference, tmp_path):
    state_dict, input_ids, expected = reference
    state_dict = {**state_dict, "embeddings.position_ids": torch.arange(SMALL["max_position_embeddings"])[None]}
    assert loads_correctly(write_checkpoint(tmp_path / "ckpt", state_dict), input_ids, expected)


def test_pretraining_heads_are_dropped_with_a_warning(reference, tmp_path):
    state_dict, input_ids, expected = reference
    state_dict = {**state_dict, "cls.seq_relationship.weight": torch.zeros(2, SMALL["hidden_size"])}
    directory = write_checkpoint(tmp_path / "ckpt", state_dict)
    with pytest.warns(UserWarning, match=r"cls\.\*"):
        assert loads_correctly(directory, input_ids, expected)


def test_a_missing_key_is_named(reference, tmp_path):
    state_dict, _, _ = reference
    state_dict = {k: v for k, v in state_dict.items() if k != "encoder.layer.1.output.dense.bias"}
    directory = write_checkpoint(tmp_path / "ckpt", state_dict)
    with pytest.raises(ValueError, match=r"missing from the checkpoint \(1\): encoder\.layer\.1\.output\.dense\.bias"):
        BertModel.from_pretrained(directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        BertModel.from_pretrained(directory, strict=False)  # loads; that one tensor stays as initialised


def test_an_unexpected_key_is_named(reference, tmp_path):
    state_dict, _, _ = reference
    directory = write_checkpoint(tmp_path / "ckpt", {**state_dict, "encoder.layer.9.output.dense.bias": torch.zeros(16)})
    with pytest.raises(ValueError, match=r"unexpected in the checkpoint \(1\): encoder\.layer\.9\.output\.dense\.bias"):
        BertModel.from_pretrained(directory)


def test_a_shape_mismatch_names_both_shapes_even_when_not_strict(reference, tmp_path):
    state_dict, _, _ = reference
    state_dict = {**state_dict, "embeddings.token_type_embeddings.weight": torch.zeros(3, SMALL["hidden_size"])}
    directory = write_checkpoint(tmp_path / "ckpt", state_dict)
    message = r"embeddings\.token_type_embeddings\.weight: checkpoint \[3, 16\], model \[2, 16\]"
    for strict in (True, False):
        with pytest.raises(ValueError, match=message):
            BertModel.from_pretrained(directory, strict=strict)


def test_missing_files_are_named(reference, tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(SMALL))
    with pytest.raises(FileNotFoundError, match="neither model.safetensors nor pytorch_model.bin"):
        BertModel.from_pretrained(tmp_path)


def test_saved_checkpoint_uses_hugging_face_names_and_config(tmp_path):
    model = BertModel(BertConfig(**SMALL))
    model.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    assert set(tensors) == set(transformers.BertModel(transformers.BertConfig(**SMALL)).state_dict()) - {
        "embeddings.position_ids", "embeddings.token_type_ids"}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertModel"]
    assert BertConfig.from_json_file(tmp_path / "config.json") == model.config


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="hidden_size 10 is not divisible by num_attention_heads 3"):
        BertConfig(hidden_size=10, num_attention_heads=3)
    with pytest.raises(ValueError, match="hidden_act 'relu' is not supported"):
        BertConfig(hidden_act="relu")
    with pytest.raises(ValueError, match="position_embedding_type 'relative_key'"):
        BertConfig(position_embedding_type="relative_key")
    with pytest.raises(ValueError, match="num_hidden_layers must be a positive integer"):
        BertConfig(num_hidden_layers=0)
    with pytest.raises(ValueError, match="model_type 'roberta', not 'bert'"):
        BertConfig.from_dict({"model_type": "roberta"})


def test_config_round_trips_and_keeps_unknown_keys(tmp_path):
    values = {**SMALL, "architectures": ["BertForMaskedLM"], "transformers_version": "4.8.2"}
    config = BertConfig.from_dict(values)
    assert config.extra == {"architectures": ["BertForMaskedLM"], "transformers_version": "4.8.2"}
    config.to_json_file(tmp_path / "config.json")
    assert BertConfig.from_json_file(tmp_path / "config.json") == config
    theirs = transformers.BertConfig.from_json_file(str(tmp_path / "config.json"))
    assert all(getattr(theirs, key) == value for key, value in SMALL.items())


def test_initialisation_is_berts():
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=128))
    weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, torch.nn.Linear)])
    assert abs(weights.std().item() - 0.02) < 0.001
    assert all(m.bias.abs().max() == 0 for m in model.modules() if isinstance(m, torch.nn.Linear))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) and m.eps == 1e-12 for m in norms)
    assert torch.all(model.embeddings.token.weight[0] == 0)  # the [PAD] row


@pytest.mark.parametrize("make_input, message", [
    (lambda: dict(input_ids=torch.tensor([[1, 50]])), r"outside \[0, vocab_size=50\)"),
    (lambda: dict(input_ids=torch.ones(1, 21, dtype=torch.long)), "21 positions but max_position_embeddings is 20"),
    (lambda: dict(input_ids=torch.ones(1, 3, dtype=torch.long), token_type_ids=torch.tensor([[0, 1, 2]])),
     r"outside \[0, type_vocab_size=2\)"),
    (lambda: dict(input_ids=torch.ones(2, 3, dtype=torch.long), attention_mask=torch.ones(2, 4)),
     r"attention_mask must have the shape of input_ids \[2, 3\]; got \[2, 4\]"),
    (lambda: dict(input_ids=torch.ones(3, dtype=torch.long)), r"\[batch, seq_len\]"),
])
def test_bad_input_is_named(make_input, message):
    model = BertModel(BertConfig(**SMALL)).eval()
    with pytest.raises(ValueError, match=message):
        model(**make_input())


def test_attention_mask_none_means_all_real_and_token_types_default_to_zero():
    model = BertModel(BertConfig(**SMALL)).eval()
    input_ids = torch.randint(1, 50, (2, 5))
    with torch.no_grad():
        plain = model(input_ids).last_hidden_state
        explicit = model(input_ids, torch.zeros_like(input_ids), torch.ones_like(input_ids)).last_hidden_state
    assert torch.allclose(plain, explicit, atol=1e-6)


def test_direct_load_reports_every_problem_at_once(reference):
    state_dict, _, _ = reference
    broken = {k: v for k, v in state_dict.items() if "pooler" not in k}
    broken["encoder.layer.0.attention.self.query.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError) as error:
        load_hf_state_dict(BertModel(BertConfig(**SMALL)), broken)
    text = str(error.value)
    assert "pooler.dense.weight" in text and "pooler.dense.bias" in text
    assert "encoder.layer.0.attention.self.query.weight: checkpoint [3, 3], model [16, 16]" in text
