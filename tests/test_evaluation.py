"""Chapter 9's held-out yardsticks and probes: the count table, frequency bands, pseudo-log-likelihood, minimal
pairs, the word-bigram model, segment pairs for next-sentence prediction, and the report."""

import math
from collections import Counter

import pytest
import torch

from annotated_bert.corpus import Document, load_shakespeare
from annotated_bert.data import MASK, collate_pretraining_batch
from annotated_bert.evaluation import (
    NeighbourCountTable,
    WordBigramModel,
    accuracy_by_band,
    held_out_report,
    masked_copies,
    minimal_pair_accuracy,
    minimal_pair_probes,
    next_sentence_accuracy,
    pseudo_log_likelihood,
    report_row,
    segment_pairs,
    swapped_word_pairs,
    thou_agreement_pairs,
)
from annotated_bert.tokenization import BOOK_VOCABULARY as VOCAB
from annotated_bert.tokenization import BertTokenizer
from annotated_bert.training import TrainingConfig, build_model
from tests.test_training import TINY


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer.from_pretrained(VOCAB)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return build_model(TrainingConfig(**TINY), tokenizer).eval()


def test_count_table_backs_off_from_both_neighbours_to_one_to_none():
    table = NeighbourCountTable([[["a", "x", "b"], ["a", "x", "b"], ["a", "y", "c"]], [["d", "z", "z", "z", "z"]]])
    assert table.guess("a", "b") == "x"                    # seen between a and b (twice)
    assert table.guess("a", "c") == "y"
    assert table.guess("a", "q") == "x"                    # never a _ q: the most frequent after a
    assert table.guess("q", "c") == "y"                    # nothing after q: the most frequent before c
    assert table.guess("q", "q") == "z"                    # nothing known: the most frequent token
    assert table.guess(MASK, "b") == table.guess(None, "b") == "x"   # a hidden neighbour is not used
    assert table.guess("[CLS]", "[SEP]") == "z"


def test_count_table_reads_the_batch_as_the_model_does(tokenizer):
    table = NeighbourCountTable([[tokenizer.tokenize("my lord , my lord , my lord")]])
    tokens = ["[CLS]", "my", MASK, ",", "my", MASK, "[SEP]", "[SEP]"]
    ids = torch.tensor([tokenizer.convert_tokens_to_ids(tokens)])
    batch = {"input_ids": ids, "masked_positions": torch.tensor([[2, 5]])}
    guesses = table.predict(batch, tokenizer)
    assert guesses.shape == (1, 2)
    assert tokenizer.convert_ids_to_tokens(guesses[0].tolist()) == ["lord", "lord"]


def test_frequency_bands_split_the_masked_tokens(tokenizer):
    counts = Counter({token: 5000 - rank for rank, token in enumerate(list(tokenizer.vocab)[5:2005])})
    labels = torch.tensor([[tokenizer.vocab[token] for token in list(tokenizer.vocab)[5:2005:20]]])   # 100 tokens
    batch = {"masked_labels": torch.cat([labels, torch.tensor([[-100]])], 1)}
    right = torch.cat([labels, torch.tensor([[0]])], 1)
    result = accuracy_by_band([right], [batch], tokenizer, counts)
    assert result["all"] == {"accuracy": 1.0, "tokens": 100}
    assert [result[band]["tokens"] for band in ("frequent", "mid", "rare")] == [5, 45, 50]
    wrong = accuracy_by_band([torch.zeros_like(right)], [batch], tokenizer, counts)
    assert wrong["all"]["accuracy"] == 0.0


def test_masked_copies_hide_each_piece_once():
    copies = masked_copies([[1, 7, 8, 2], [1, 9, 2]], mask_id=4, pad_id=0)
    assert copies["input_ids"].tolist() == [[1, 4, 8, 2], [1, 7, 4, 2], [1, 4, 2, 0]]
    assert copies["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0]]
    assert copies["masked_positions"].tolist() == [[1], [2], [1]]
    assert copies["hidden_ids"].tolist() == [[7], [8], [9]]
    assert copies["text_index"].tolist() == [0, 0, 1]


def test_pseudo_log_likelihood_is_the_sum_of_masked_log_probabilities(model, tokenizer):
    text = "my lord, what cheer?"
    ids = tokenizer(text)["input_ids"]
    expected = 0.0
    with torch.no_grad():
        for position in range(1, len(ids) - 1):
            masked = torch.tensor([ids])
            masked[0, position] = tokenizer.vocab[MASK]
            logits = model(masked, masked_positions=torch.tensor([[position]])).prediction_logits[0, 0]
            expected += logits.log_softmax(-1)[ids[position]].item()
    assert pseudo_log_likelihood(model, tokenizer, text) == pytest.approx(expected, abs=1e-4)
    texts = [text, "Thou art a villain.", "O"]
    one_at_a_time = pseudo_log_likelihood(model, tokenizer, texts, batch_size=1)
    assert pseudo_log_likelihood(model, tokenizer, texts, batch_size=64) == pytest.approx(one_at_a_time, abs=1e-4)
    assert one_at_a_time[0] == pytest.approx(expected, abs=1e-4) and all(score < 0 for score in one_at_a_time)


def test_pseudo_log_likelihood_refuses_a_text_longer_than_the_model(model, tokenizer):
    with pytest.raises(ValueError, match=r"text 1 is \d+ tokens with \[CLS\] and \[SEP\]; the model has 48 positions"):
        pseudo_log_likelihood(model, tokenizer, ["short", "word " * 60])


def test_swapped_word_pairs_change_only_the_order():
    sentences = [sentence for scene in load_shakespeare(["macbeth"]) for sentence in scene.sentences]
    pairs = swapped_word_pairs(sentences, 50, seed=3)
    assert len(pairs) == 50 and pairs == swapped_word_pairs(sentences, 50, seed=3)
    for real, swapped in pairs:
        a, b = real.split(), swapped.split()
        changed = [i for i in range(len(a)) if a[i] != b[i]]
        assert sorted(a) == sorted(b) and len(changed) == 2 and changed[1] == changed[0] + 1
        assert 4 <= len(a) <= 20


def test_thou_agreement_pairs_use_the_you_form():
    pairs = thou_agreement_pairs(["Thou art a villain.", "Hast thou the letter?", "What dost thou think?",
                                  "You are welcome.", "thou wilt, thou shalt"])
    assert pairs == [("Thou art a villain.", "Thou are a villain."), ("Hast thou the letter?", "Have thou the letter?"),
                     ("What dost thou think?", "What do thou think?"), ("thou wilt, thou shalt", "thou will, thou shalt")]


def test_word_bigram_probabilities_sum_to_one():
    bigrams = WordBigramModel(["the king is dead", "the queen is here", "long live the king"])
    words = list(bigrams.unigrams)
    for previous in ("the", "is", "<s>", "never-seen"):
        # P(word | previous) over every word the model knows, plus an unseen word's share, is one
        unigram_total = sum(math.exp(bigrams.unigram_log_prob(word)) for word in words)
        unseen = 1 - unigram_total
        seen = bigrams.contexts[previous]
        freed = bigrams.discount * len(bigrams.followers[previous]) / seen if seen else 1.0
        conditional = [max(bigrams.bigrams[previous, word] - bigrams.discount, 0) / max(seen, 1)
                       + freed * math.exp(bigrams.unigram_log_prob(word)) for word in words]
        assert sum(conditional) + freed * unseen == pytest.approx(1.0)
    assert bigrams.log_prob("the king is dead") > bigrams.log_prob("king the is dead")
    assert bigrams.bag_of_words_log_prob("the king is dead") == bigrams.bag_of_words_log_prob("king the is dead")


def test_minimal_pair_probes_keep_the_pairs_that_fit(tokenizer):
    sentences = ["Thou art a villain.", "Hast thou " + "the very letter " * 20 + "?", "The king is dead and gone."]
    probes = minimal_pair_probes(sentences, tokenizer, positions=16)
    assert probes["thou agreement"] == [("Thou art a villain.", "Thou are a villain.")]      # the long one left out
    assert len(probes["word order"]) == 2
    assert all(len(tokenizer(text)["input_ids"]) <= 16 for pairs in probes.values() for pair in pairs for text in pair)


def test_minimal_pair_accuracy_counts_ties_as_half():
    pairs = [("a", "b"), ("c", "d"), ("e", "f"), ("g", "h")]
    scores = {"a": 2, "b": 1, "c": 1, "d": 2, "e": 3, "f": 3, "g": 0, "h": -1}
    assert minimal_pair_accuracy(lambda texts: [scores[text] for text in texts], pairs) == 2.5 / 4


NUMBERS = "one two three four five six seven eight nine ten eleven twelve".split()   # each one WordPiece


def documents_of(plays):
    """Three scenes per play; sentence i of a scene reads "<play> <scene> <i> ." in whole WordPieces."""
    return [Document(play, play, None, scene, tuple(f"{play} {scene} {number} ." for number in NUMBERS))
            for play in plays for scene in ("morning", "noon", "night")]


def test_segment_pairs_take_negatives_from_other_scenes(tokenizer):
    documents = documents_of(["king", "queen", "duke"])
    pairs = segment_pairs(documents, tokenizer, sentences=3, max_seq_len=128, seed=0)
    kinds = Counter(kind for kind, _ in pairs)
    assert sum(kinds.values()) == 9 * 2 and set(kinds) == {"next", "same play", "other play"}
    for kind, pair in pairs:
        separator = pair.tokens.index("[SEP]")
        a, b = pair.tokens[1:separator], pair.tokens[separator + 1:-1]
        assert pair.is_random_next == (kind != "next")
        assert len(a) == len(b) == 12 and pair.segment_ids.count(0) == separator + 1
        if kind == "next":
            assert a[:2] == b[:2] and NUMBERS.index(b[2]) == NUMBERS.index(a[2]) + 3   # B starts where A ends
        elif kind == "same play":
            assert a[0] == b[0] and a[1] != b[1]
        else:
            assert a[0] != b[0]
    assert all(len(pair.tokens) <= 20 for _, pair in segment_pairs(documents, tokenizer, max_seq_len=20))


def test_next_sentence_accuracy_by_kind(model, tokenizer):
    pairs = segment_pairs(documents_of(["king", "queen"]), tokenizer, max_seq_len=48)
    with torch.no_grad():                       # an NSP head that always says NotNext
        model.nsp_head.weight.zero_()
        model.nsp_head.bias.copy_(torch.tensor([0.0, 1.0]))
    result = next_sentence_accuracy(model, tokenizer, pairs, batch_size=4)
    assert result["next"] == 0.0 and result["same play"] == 1.0 and result["other play"] == 1.0
    share = sum(kind != "next" for kind, _ in pairs) / len(pairs)
    assert result["all"] == pytest.approx(share)
    batch = collate_pretraining_batch([pair for _, pair in pairs], tokenizer)
    assert batch["masked_positions"].shape == (len(pairs), 0)


def test_held_out_report_has_every_score(tokenizer):
    scenes = load_shakespeare(["macbeth"])
    config = TrainingConfig(**TINY)
    torch.manual_seed(0)
    report = held_out_report(build_model(config, tokenizer).eval(), tokenizer, config, scenes[:-6], scenes[-6:])
    assert set(report["masked_lm"]) == {"model", "count table", "most frequent token"}
    assert set(report["masked_lm"]["model"]) == {"all", "frequent", "mid", "rare"}
    assert report["masked_lm"]["count table"]["all"]["tokens"] == report["masked_lm"]["model"]["all"]["tokens"]
    for probe in report["minimal_pairs"].values():
        assert probe["pairs"] > 0 and set(probe) == {"pairs", "model", "word bigrams", "bag of words"}
    assert report["minimal_pairs"]["word order"]["bag of words"] == 0.5
    assert 0 <= report["next_sentence"]["bert_pairs"] <= 1 and "all" in report["next_sentence"]["segments"]
    row = report_row(report)
    assert row["masked LM"] == report["masked_lm"]["model"]["all"]["accuracy"]
    assert row["× count table"] == pytest.approx(row["masked LM"] / report["masked_lm"]["count table"]["all"]["accuracy"])
    assert math.isnan(row["NSP, other play"])           # one play held out: no B from another play
