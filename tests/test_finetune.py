"""Chapter 10's `finetune`: parity of BertForSequenceClassification with transformers, checkpoints both ways, a
fresh classifier on checkpoints without one, the feature extractor's choices, padding invariance, bad input."""

import json
import warnings

import pytest
import torch
import transformers
from safetensors.torch import load_file

from annotated_bert import BertConfig, BertForPreTraining, BertForSequenceClassification, BertModel
from annotated_bert.finetune import (FEATURE_LAYERS, FEATURE_POOLINGS, extract_features, feature_size, fine_tune,
                                     pool_hidden_states, predict_logits)

SMALL = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             max_position_embeddings=32)
FIVE_LAYERS = dict(SMALL, num_hidden_layers=5, hidden_size=24, num_attention_heads=2)


def batch(seed=0, batch_size=4, seq_len=10, vocab_size=99):
    """Ids with two padded rows and two segments, as a tokenizer gives them for pairs."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab_size, (batch_size, seq_len), generator=generator)     # (B, T)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 6:] = 0
    attention_mask[3, 3:] = 0
    input_ids[attention_mask == 0] = 0
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 5:] = 1
    token_type_ids[attention_mask == 0] = 0
    return dict(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)


def largest_difference(ours, theirs, inputs):
    with torch.no_grad():
        return (ours(**inputs).logits - theirs(**inputs).logits).abs().max().item()


@pytest.mark.parametrize("num_labels", [1, 2, 3, 7])
def test_parity_with_transformers_both_ways(tmp_path, num_labels):
    torch.manual_seed(num_labels)
    ours = BertForSequenceClassification(BertConfig(**SMALL), num_labels=num_labels).eval()
    with torch.no_grad():
        ours.classifier.bias.normal_()  # a non-zero bias, so that its name and loading matter
    ours.save_pretrained(tmp_path / "ours")
    theirs, info = transformers.BertForSequenceClassification.from_pretrained(
        tmp_path / "ours", attn_implementation="eager", output_loading_info=True)
    theirs.eval()
    assert theirs.num_labels == num_labels
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs = batch(num_labels)
    assert largest_difference(ours, theirs, inputs) < 1e-5

    theirs.save_pretrained(tmp_path / "theirs")  # and back: their file, our loader, num_labels from it
    reloaded = BertForSequenceClassification.from_pretrained(tmp_path / "theirs")
    assert reloaded.num_labels == num_labels and not reloaded.training
    assert largest_difference(reloaded, theirs, inputs) < 1e-5


@pytest.mark.parametrize("num_labels", [2, 3])
def test_losses_match_transformers(tmp_path, num_labels):
    torch.manual_seed(0)
    ours = BertForSequenceClassification(BertConfig(**SMALL), num_labels=num_labels).eval()
    ours.save_pretrained(tmp_path)
    theirs = transformers.BertForSequenceClassification.from_pretrained(tmp_path).eval()
    inputs, labels = batch(), torch.tensor([0, 1, num_labels - 1, 1])
    with torch.no_grad():
        assert torch.allclose(ours(**inputs, labels=labels).loss, theirs(**inputs, labels=labels).loss, atol=1e-6)


def test_saved_names_are_transformers_names(tmp_path):
    model = BertForSequenceClassification(BertConfig(**SMALL), num_labels=3)
    model.save_pretrained(tmp_path)
    names = set(load_file(tmp_path / "model.safetensors"))
    assert {"classifier.weight", "classifier.bias", "bert.pooler.dense.weight",
            "bert.embeddings.word_embeddings.weight"} <= names
    assert all(name.startswith(("bert.", "classifier.")) for name in names)
    reference = transformers.BertForSequenceClassification(transformers.BertConfig(**SMALL, num_labels=3))
    assert names == set(reference.state_dict()) - {"bert.embeddings.position_ids"}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and len(config["id2label"]) == 3


def test_bert_model_checkpoint_gives_a_fresh_classifier(tmp_path):
    torch.manual_seed(0)
    encoder = BertModel(BertConfig(**SMALL)).eval()
    encoder.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="no classifier.weight or classifier.bias in the checkpoint.*starts fresh"):
        model = BertForSequenceClassification.from_pretrained(tmp_path, num_labels=3)
    assert model.classifier.weight.shape == (3, SMALL["hidden_size"])
    assert torch.equal(model.classifier.bias, torch.zeros(3))          # BERT's initialisation: bias 0
    assert 0.01 < model.classifier.weight.std().item() < 0.03          # weights ~ N(0, 0.02²)
    inputs = batch()
    with torch.no_grad():  # the encoder's weights did arrive
        assert torch.allclose(model.bert(**inputs).pooler_output, encoder(**inputs).pooler_output, atol=1e-6)


def test_pretraining_checkpoint_drops_its_heads_and_says_so(tmp_path):
    torch.manual_seed(0)
    pretrained = BertForPreTraining(BertConfig(**SMALL)).eval()
    pretrained.save_pretrained(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = BertForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 1, messages  # one warning that says everything, not one per cause
    assert "starts fresh" in messages[0] and "task heads" in messages[0] and "cls.*" in messages[0]
    inputs = batch()
    with torch.no_grad():
        assert torch.allclose(model.bert(**inputs).last_hidden_state,
                              pretrained.bert(**inputs).last_hidden_state, atol=1e-6)


def test_checkpoint_without_classifier_needs_num_labels(tmp_path):
    BertModel(BertConfig(**SMALL)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no classifier.*pass num_labels"):
        BertForSequenceClassification.from_pretrained(tmp_path)


def test_wrong_num_labels_for_the_checkpoint_is_an_error(tmp_path):
    BertForSequenceClassification(BertConfig(**SMALL), num_labels=3).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"classifier.weight in the checkpoint is \[3, 32\].*num_labels is 5"):
        BertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)


@pytest.mark.parametrize("num_labels", [0, -1, 2.0, True, "3"])
def test_bad_num_labels(num_labels):
    with pytest.raises(ValueError, match="num_labels must be a positive integer"):
        BertForSequenceClassification(BertConfig(**SMALL), num_labels=num_labels)


def test_bad_labels():
    model = BertForSequenceClassification(BertConfig(**SMALL), num_labels=3).eval()
    inputs = batch()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\); got values from 0 to 3"):
        model(**inputs, labels=torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"labels must have shape \[B\] = \[4\]"):
        model(**inputs, labels=torch.tensor([[0, 1, 2, 1]]))


@pytest.mark.parametrize("layers", FEATURE_LAYERS)
@pytest.mark.parametrize("pooling", FEATURE_POOLINGS)
def test_feature_shapes(layers, pooling):
    config = BertConfig(**FIVE_LAYERS)
    model = BertModel(config)
    features = extract_features(model, **batch(), layers=layers, pooling=pooling)
    expected = 4 * config.hidden_size if layers == "concat4" else config.hidden_size
    assert features.shape == (4, expected) == (4, feature_size(config, layers))


def test_feature_layers_compute_what_they_say():
    torch.manual_seed(0)
    model = BertModel(BertConfig(**FIVE_LAYERS)).eval()
    inputs = batch()
    with torch.no_grad():
        hidden = model(**inputs, output_hidden_states=True).hidden_states                  # 6 of (B, T, H)
    assert len(hidden) == 6
    last_four = hidden[2:]
    cls = {name: extract_features(model, **inputs, layers=name) for name in FEATURE_LAYERS}
    assert torch.allclose(cls["last"], hidden[-1][:, 0])
    assert torch.allclose(cls["sum4"], sum(h[:, 0] for h in last_four), atol=1e-6)
    assert torch.allclose(cls["concat4"], torch.cat([h[:, 0] for h in last_four], dim=-1))
    mean = extract_features(model, **inputs, pooling="mean")
    real = inputs["attention_mask"][3].bool()                                             # row 3: 3 real tokens
    assert torch.allclose(mean[3], hidden[-1][3, real].mean(0), atol=1e-6)


@pytest.mark.parametrize("layers", FEATURE_LAYERS)
@pytest.mark.parametrize("pooling", FEATURE_POOLINGS)
def test_padding_does_not_change_features(layers, pooling):
    torch.manual_seed(1)
    model = BertModel(BertConfig(**FIVE_LAYERS))
    short = torch.tensor([[2, 11, 12, 13, 3]])                                          # (1, 5)
    longer = torch.tensor([[2, 21, 22, 23, 24, 25, 26, 27, 28, 3]])                     # (1, 10)
    padded = torch.cat([torch.nn.functional.pad(short, (0, 5)), longer])                # (2, 10)
    mask = (padded != 0).long()
    alone = extract_features(model, short, layers=layers, pooling=pooling)
    in_batch = extract_features(model, padded, attention_mask=mask, layers=layers, pooling=pooling)
    assert (alone[0] - in_batch[0]).abs().max().item() < 1e-5
    assert (extract_features(model, longer, layers=layers, pooling=pooling)[0] - in_batch[1]).abs().max() < 1e-5


def test_features_are_frozen_and_mode_is_restored():
    model = BertForSequenceClassification(BertConfig(**SMALL), num_labels=2).train()
    first = extract_features(model, **batch())                        # a model with a head: its .bert is used
    second = extract_features(model, **batch())
    assert torch.equal(first, second) and not first.requires_grad      # eval mode inside: no dropout
    assert model.training and model.bert.training                      # and the mode comes back


def test_bad_feature_choices():
    model = BertModel(BertConfig(**SMALL))
    with pytest.raises(ValueError, match=r"layers must be one of \['last', 'sum4', 'concat4'\]; got 'sum_last_four'"):
        extract_features(model, **batch(), layers="sum_last_four")
    with pytest.raises(ValueError, match=r"pooling must be one of \['cls', 'mean'\]; got 'max'"):
        extract_features(model, **batch(), pooling="max")
    with pytest.raises(ValueError, match="combines the last four layers, but the model has 2"):
        extract_features(model, **batch(), layers="concat4")
    with pytest.raises(TypeError, match="must be a BertModel"):
        extract_features(torch.nn.Linear(3, 3), **batch())
    hidden = (torch.zeros(2, 5, 8),) * 5
    with pytest.raises(ValueError, match=r"attention_mask must be \[B, T\] = \[2, 5\]"):
        pool_hidden_states(hidden, torch.ones(2, 4), pooling="mean")


def test_fine_tune_learns_a_toy_task():
    """The label is the token after [CLS] (7 or 8): fine_tune must learn it, through the whole model."""
    torch.manual_seed(0)
    config = BertConfig(**SMALL, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForSequenceClassification(config, num_labels=2)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(10, 99, (64, 8), generator=generator)                      # (N, T)
    labels = torch.arange(64) % 2
    input_ids[:, 0], input_ids[:, 1] = 2, 7 + labels
    attention_mask = torch.ones_like(input_ids)
    attention_mask[::3, 6:] = 0
    input_ids[attention_mask == 0] = 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 40 steps of a tiny model: a second thread only adds waiting on a busy machine
    try:
        losses = fine_tune(model, input_ids, attention_mask, labels, epochs=10, batch_size=16, learning_rate=1e-2)
    finally:
        torch.set_num_threads(threads)
    assert len(losses) == 10 * 4 and not model.training
    assert max(losses[-4:]) < 0.1 < 0.6 < min(losses[:4])
    predictions = predict_logits(model, input_ids, attention_mask, batch_size=10)             # (N, 2)
    assert predictions.shape == (64, 2)
    assert torch.equal(predictions.argmax(-1), labels)
    with torch.no_grad():  # batches, trimmed of padding columns, give what one padded batch gives
        assert torch.allclose(predictions, model(input_ids, attention_mask=attention_mask).logits, atol=1e-5)
    with pytest.raises(ValueError, match=r"labels \[N\]"):
        fine_tune(model, input_ids, attention_mask, labels[:10])


def test_progress_bars_only_when_asked(capsys):
    """fine_tune and predict_logits draw tqdm's bar on stderr with progress=True, and nothing by default."""
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**SMALL), num_labels=2)
    inputs = batch(batch_size=6)
    input_ids, attention_mask, labels = inputs["input_ids"], inputs["attention_mask"], torch.arange(6) % 2
    fine_tune(model, input_ids, attention_mask, labels, epochs=1, batch_size=4)
    predict_logits(model, input_ids, attention_mask, batch_size=4)
    assert capsys.readouterr().err == ""
    fine_tune(model, input_ids, attention_mask, labels, epochs=2, batch_size=4, progress=True)
    bar = capsys.readouterr().err
    assert "fine-tuning" in bar and "4/4" in bar
    predict_logits(model, input_ids, attention_mask, batch_size=4, progress=True)
    bar = capsys.readouterr().err
    assert "predicting" in bar and "2/2" in bar
