"""BertForPreTraining: parity with transformers, the tied decoder, the losses, checkpoints both ways, bad input."""

import pytest
import torch
import transformers
from safetensors.torch import load_file

from annotated_bert import BertConfig
from annotated_bert.checkpoints import load_state_dict
from annotated_bert.pretraining import BertForPreTraining

SMALL = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             max_position_embeddings=32)


def small_batch(seed=0, batch_size=3, seq_len=9, predictions=3):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, SMALL["vocab_size"], (batch_size, seq_len), generator=generator)  # (B, T)
    input_ids[1, 6:] = 0                                                     # padding
    attention_mask = (input_ids != 0).long()
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 4:] = 1
    token_type_ids[1, 6:] = 0
    masked_positions = torch.tensor([[1, 3, 7], [2, 5, 0], [4, 6, 8]])[:, :predictions]   # (B, P), row 1 padded
    masked_labels = torch.randint(5, SMALL["vocab_size"], masked_positions.shape, generator=generator)
    masked_labels[1, 2] = -100
    next_sentence_labels = torch.tensor([0, 1, 1])
    return dict(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                masked_positions=masked_positions, masked_labels=masked_labels,
                next_sentence_labels=next_sentence_labels)


def full_labels(batch):
    """transformers' `labels`: [B, T], -100 except at the masked positions."""
    labels = torch.full_like(batch["input_ids"], -100)
    real = batch["masked_labels"] != -100
    rows = torch.arange(labels.shape[0]).unsqueeze(1).expand_as(real)
    labels[rows[real], batch["masked_positions"][real]] = batch["masked_labels"][real]
    return labels


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Our model and transformers' with the same weights (ours saved, theirs loaded from it), in eval mode."""
    torch.manual_seed(0)
    ours = BertForPreTraining(BertConfig(**SMALL)).eval()
    with torch.no_grad():  # a non-zero output bias, so that its name and loading matter
        ours.mlm_head.bias.normal_()
    directory = tmp_path_factory.mktemp("ours")
    ours.save_pretrained(directory)
    theirs = transformers.BertForPreTraining.from_pretrained(directory, attn_implementation="eager").eval()
    return ours, theirs


def test_decoder_is_the_embedding():
    model = BertForPreTraining(BertConfig(**SMALL))
    embedding, decoder = model.bert.embeddings.token.weight, model.mlm_head.decoder.weight
    assert decoder is embedding and decoder.data_ptr() == embedding.data_ptr()
    assert sum(parameter.numel() for parameter in model.parameters()) == \
        sum(parameter.numel() for parameter in transformers.BertForPreTraining(transformers.BertConfig(**SMALL)).parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(**small_batch()).loss.backward()
    optimizer.step()
    assert model.mlm_head.decoder.weight is model.bert.embeddings.token.weight


def test_bert_base_parameter_count():
    model = BertForPreTraining(BertConfig())
    assert sum(parameter.numel() for parameter in model.parameters()) == 110_106_428


def test_parity_with_transformers(pair):
    ours, theirs = pair
    batch = small_batch()
    with torch.no_grad():
        our_output = ours(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                          masked_labels=full_labels(batch), next_sentence_labels=batch["next_sentence_labels"])
        their_output = theirs(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                              attention_mask=batch["attention_mask"], labels=full_labels(batch),
                              next_sentence_label=batch["next_sentence_labels"])
    real = batch["attention_mask"].bool()
    assert our_output.prediction_logits.shape == (3, 9, SMALL["vocab_size"])
    torch.testing.assert_close(our_output.prediction_logits[real], their_output.prediction_logits[real],
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(our_output.seq_relationship_logits, their_output.seq_relationship_logits,
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(our_output.loss, their_output.loss, atol=1e-5, rtol=0)


def test_gathered_logits_and_loss_equal_all_positions(pair):
    ours, _ = pair
    batch = small_batch()
    with torch.no_grad():
        gathered = ours(**batch)
        everywhere = ours(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                          masked_labels=full_labels(batch), next_sentence_labels=batch["next_sentence_labels"])
    rows = torch.arange(3).unsqueeze(1)
    assert gathered.prediction_logits.shape == (3, 3, SMALL["vocab_size"])
    torch.testing.assert_close(gathered.prediction_logits,
                               everywhere.prediction_logits[rows, batch["masked_positions"]], atol=1e-6, rtol=0)
    torch.testing.assert_close(gathered.mlm_loss, everywhere.mlm_loss, atol=1e-6, rtol=0)
    torch.testing.assert_close(gathered.loss, gathered.mlm_loss + gathered.nsp_loss)


def test_mlm_loss_is_a_mean_over_real_masked_tokens(pair):
    ours, _ = pair
    batch = small_batch()
    with torch.no_grad():
        output = ours(**batch)
    real = batch["masked_labels"] != -100
    per_token = torch.nn.functional.cross_entropy(output.prediction_logits[real], batch["masked_labels"][real])
    torch.testing.assert_close(output.mlm_loss, per_token)


def test_not_next_labels_count():
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig(**SMALL)).eval()
    batch = small_batch()
    with torch.no_grad():
        logits = model(batch["input_ids"]).seq_relationship_logits
        all_is_next = model(batch["input_ids"], next_sentence_labels=torch.zeros(3, dtype=torch.long)).nsp_loss
        all_not_next = model(batch["input_ids"], next_sentence_labels=torch.ones(3, dtype=torch.long)).nsp_loss
    assert not torch.isclose(all_is_next, all_not_next)
    torch.testing.assert_close(all_not_next, -logits.log_softmax(-1)[:, 1].mean())
    assert model(batch["input_ids"], next_sentence_labels=torch.ones(3, dtype=torch.long)).mlm_loss is None


def test_round_trip_ours_transformers_ours(pair, tmp_path):
    ours, theirs = pair
    theirs.save_pretrained(tmp_path / "theirs")
    ours.save_pretrained(tmp_path / "ours")
    assert load_file(tmp_path / "ours" / "model.safetensors").keys() == \
        load_file(tmp_path / "theirs" / "model.safetensors").keys()    # the same names, the tied weight once
    again = BertForPreTraining.from_pretrained(tmp_path / "theirs")
    assert again.mlm_head.decoder.weight is again.bert.embeddings.token.weight
    for (name, before), (_, after) in zip(ours.state_dict().items(), again.state_dict().items()):
        assert torch.equal(before, after), name
    batch = small_batch()
    with torch.no_grad():
        torch.testing.assert_close(again(**batch).loss, ours(**batch).loss)


def test_loads_legacy_redundant_names(pair, tmp_path):
    ours, theirs = pair
    state = {name: tensor.clone() for name, tensor in theirs.state_dict().items()}
    assert "cls.predictions.decoder.weight" in state and "cls.predictions.decoder.bias" in state
    state["bert.embeddings.position_ids"] = torch.arange(SMALL["max_position_embeddings"])
    model = BertForPreTraining(BertConfig(**SMALL))
    load_state_dict(model, state)
    assert torch.equal(model.mlm_head.bias, ours.mlm_head.bias)
    del state["cls.seq_relationship.weight"]
    with pytest.raises(ValueError, match="missing.*cls.seq_relationship.weight"):
        load_state_dict(model, state)


@pytest.mark.parametrize("change, message", [
    (dict(masked_positions=torch.tensor([[1, 3, 9], [2, 5, 0], [4, 6, 8]])), r"masked_positions\[0, 2\] is 9, outside \[0, seq_len=9\)"),
    (dict(masked_positions=torch.tensor([[1, 3, -1], [2, 5, 0], [4, 6, 8]])), r"masked_positions\[0, 2\] is -1, outside"),
    (dict(masked_positions=torch.tensor([1, 3, 4])), r"\[B, P\] with B = 3.*got \[3\]"),
    (dict(masked_labels=torch.zeros(3, 2, dtype=torch.long)), r"shape of masked_positions, \[3, 3\]; got \[3, 2\]"),
    (dict(next_sentence_labels=torch.tensor([0, 2, 1])), r"0 \(IsNext\) or 1 \(NotNext\); got \[0, 1, 2\]"),
    (dict(next_sentence_labels=torch.tensor([0, 1])), r"\[B\] = \[3\]; got \[2\]"),
])
def test_bad_input_names_the_shapes(change, message):
    model = BertForPreTraining(BertConfig(**SMALL))
    with pytest.raises(ValueError, match=message):
        model(**{**small_batch(), **change})


def test_full_labels_without_positions_must_match_input_ids():
    model = BertForPreTraining(BertConfig(**SMALL))
    batch = small_batch()
    with pytest.raises(ValueError, match=r"input_ids \(no masked_positions\), \[3, 9\]; got \[3, 3\]"):
        model(batch["input_ids"], masked_labels=batch["masked_labels"])


def test_refuses_an_untied_decoder_weight(pair):
    _, theirs = pair
    state = {name: tensor.clone() for name, tensor in theirs.state_dict().items()}
    state["cls.predictions.decoder.weight"] = state["cls.predictions.decoder.weight"] + 1
    with pytest.raises(ValueError, match="cls.predictions.decoder.weight differs from bert.embeddings.word_embeddings.weight"):
        load_state_dict(BertForPreTraining(BertConfig(**SMALL)), state)
