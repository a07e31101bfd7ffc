"""Property tests: random values, good and bad, for BertConfig, TrainingConfig and the tokenizer.

Each either raises a ValueError or TypeError that names what is wrong, or gives a correct result.
"""

import json
import math
from dataclasses import fields

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotated_bert import BertConfig, BertModel, BertTokenizer
from annotated_bert.tokenization import BOOK_VOCABULARY
from annotated_bert.training import TrainingConfig, model_config

# Values a careless caller might pass for any setting: the edges, the wrong types, the non-finite.
ODD_VALUES = st.sampled_from([0, -1, 1, 2, 3, True, False, None, 0.5, -0.5, 1.0, 1.5, 1e-12, 1e30, math.inf, -math.inf,
                              math.nan, "3", "gelu", "relu", "absolute", [], (0.9, 0.999), (0.9,), (1.0, 0.5)])
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def named(error: Exception, names) -> bool:
    return any(name in str(error) for name in names)


BERT_FIELDS = [field.name for field in fields(BertConfig) if field.name != "extra"]
SMALL_BERT = dict(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                  max_position_embeddings=8)


@SETTINGS
@given(st.dictionaries(st.sampled_from(BERT_FIELDS), ODD_VALUES, max_size=4))
def test_a_bert_config_of_random_values_is_refused_by_name_or_builds_a_working_model(changes):
    try:
        config = BertConfig(**{**SMALL_BERT, **changes})
    except (ValueError, TypeError) as error:
        assert named(error, changes), (changes, error)
        return
    assert BertConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    if config.vocab_size * config.hidden_size > 10**5 or config.max_position_embeddings > 64 \
            or config.intermediate_size * config.num_hidden_layers > 10**4:
        return                                          # valid, but too big to build here
    model = BertModel(config).eval()
    ids = torch.randint(0, config.vocab_size, (2, min(3, config.max_position_embeddings)))
    output = model(ids)
    assert output.last_hidden_state.shape == (*ids.shape, config.hidden_size)
    assert output.last_hidden_state.isfinite().all(), changes


TRAINING_FIELDS = [field.name for field in fields(TrainingConfig)]
SMALL_RUN = dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16, max_seq_len=16,
                 long_seq_len=32, batch_size=8, steps=10, log_every=1, eval_every=0, checkpoint_every=0)


@SETTINGS
@given(st.dictionaries(st.sampled_from(TRAINING_FIELDS), ODD_VALUES, max_size=4))
def test_a_training_config_of_random_values_is_refused_by_name_or_describes_a_run(changes):
    try:
        config = TrainingConfig(**{**SMALL_RUN, **changes})
    except (ValueError, TypeError) as error:
        related = {*changes, "batch_size", "grad_accumulation", "log_every", "checkpoint_every", "long_seq_len",
                   "max_seq_len", "hidden_size", "num_attention_heads"}   # the settings that must agree
        assert named(error, related), (changes, error)
        return
    assert TrainingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert 0 <= config.warmup_steps < config.steps and 0 <= config.long_steps < config.steps
    assert 0 < config.masked_lm_prob < 1 and config.max_grad_norm > 0 and config.adam_epsilon > 0
    if config.long_steps:
        assert config.long_batch_size * config.long_seq_len == config.batch_size * config.max_seq_len
    assert model_config(config, vocab_size=100).max_position_embeddings == config.positions


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer.from_pretrained(BOOK_VOCABULARY)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60), max_length=st.one_of(st.integers(-2, 24), ODD_VALUES))
def test_the_tokenizer_on_random_text_and_lengths(tokenizer, text, max_length):
    tokens = tokenizer.tokenize(text)
    assert all(token in tokenizer.vocab for token in tokens)
    assert tokenizer.tokenize(tokenizer.decode(tokenizer.convert_tokens_to_ids(tokens))) == tokens   # decode inverts
    try:
        encoded = tokenizer(text, "and a second part", truncation=True, max_length=max_length)
    except (ValueError, TypeError) as error:
        assert "max_length" in str(error), (max_length, error)
        return
    ids = encoded["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id and ids.count(tokenizer.sep_token_id) >= 2
    assert len(ids) <= (tokenizer.model_max_length if max_length is None else max_length) and all(0 <= token_id < len(tokenizer) for token_id in ids)
    assert len(encoded["token_type_ids"]) == len(ids) == sum(encoded["attention_mask"])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.none(), st.integers(), st.binary(max_size=5), st.floats(), st.dictionaries(st.text(), st.text())))
def test_the_tokenizer_refuses_what_is_not_text_by_type(tokenizer, value):
    with pytest.raises(TypeError, match="must be a str"):
        tokenizer.tokenize(value)
    with pytest.raises(TypeError, match="must be a str"):
        tokenizer(value)
