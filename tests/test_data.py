"""Chapter 07's pretraining data: BERT's pair rules, the masking rule's statistics, batches, and clear errors."""

import math
import random
import re
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from annotated_bert.data import (
    CLS,
    MASK,
    PAD,
    SEP,
    PretrainingDataset,
    TrainingInstance,
    check_tokenizer,
    collate_pretraining_batch,
    create_instances,
    create_instances_from_document,
    is_ordinary_token,
    mask_instance,
    masking_candidates,
    num_to_predict,
    replacement_vocabulary,
    tokenize_documents,
    truncate_seq_pair,
)
from annotated_bert.tokenization import BertTokenizer

WORDS = ["the", "king", "is", "dead", "long", "live", "thee", "thou", "art", "a", "fool", "lord", "lady",
         "night", "day", "love", "death", "sweet", "good", "my", ",", ".", "!", "?", "[", "]"]
PIECES = ["un", "##bel", "##ie", "##va", "##bly", "gentle", "##man", "##men", "for", "##sooth"]
SPECIALS = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused2]"]
Z = 3.2905  # two-sided 99.9% quantile of the normal distribution


def binomial_bounds(probability, trials):
    half_width = Z * math.sqrt(probability * (1 - probability) / trials)
    return probability - half_width, probability + half_width


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    vocab_file = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab_file.write_text("\n".join(SPECIALS + WORDS + PIECES) + "\n", encoding="utf-8")
    return BertTokenizer(str(vocab_file))


def random_documents(rng, num_documents=20, max_sentences=15, max_sentence_tokens=12):
    """Token documents of ordinary tokens of the test vocabulary."""
    vocabulary = WORDS + ["un", "gentle", "for"]
    return [[[rng.choice(vocabulary) for _ in range(rng.randint(1, max_sentence_tokens))]
             for _ in range(rng.randint(1, max_sentences))]
            for _ in range(num_documents)]


def named_documents(num_documents, sentences, sentence_tokens):
    """Documents whose every token names its document, sentence and place: 'd3s7t1'."""
    return [[[f"d{d}s{s}t{t}" for t in range(sentence_tokens)] for s in range(sentences)]
            for d in range(num_documents)]


def document_of(token):
    return int(re.match(r"d(\d+)s", token)[1])


def split(instance):
    sep = instance.tokens.index(SEP)
    return list(instance.tokens[1:sep]), list(instance.tokens[sep + 1:-1])


# ---- pairs ---------------------------------------------------------------------------------------

documents_strategy = st.lists(
    st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=30), min_size=1, max_size=8),
    min_size=2, max_size=6)


@settings(max_examples=150, deadline=None)
@given(documents=documents_strategy, max_seq_len=st.integers(5, 48),
       short_seq_prob=st.sampled_from([0.0, 0.1, 1.0]), seed=st.integers(0, 2**32))
def test_layout_segment_ids_and_lengths(documents, max_seq_len, short_seq_prob, seed):
    instances = create_instances(documents, max_seq_len=max_seq_len, short_seq_prob=short_seq_prob, seed=seed)
    assert instances
    for instance in instances:
        tokens, segments = instance.tokens, instance.segment_ids
        assert len(tokens) <= max_seq_len
        # truncation never cuts [CLS] or a [SEP]: exactly one [CLS], first; exactly two [SEP], one of them last
        assert tokens[0] == CLS and tokens.count(CLS) == 1
        assert tokens[-1] == SEP and tokens.count(SEP) == 2
        tokens_a, tokens_b = split(instance)
        assert len(tokens_a) >= 1 and len(tokens_b) >= 1
        assert segments == (0,) * (len(tokens_a) + 2) + (1,) * (len(tokens_b) + 1)
        assert instance.masked_positions == () and instance.masked_labels == ()


def test_every_sentence_is_used_and_is_next_pairs_continue_their_document():
    # Sentences of 3 tokens and 36 slots (max_seq_len 39): chunks fill the slots exactly, nothing is truncated.
    documents = named_documents(num_documents=6, sentences=40, sentence_tokens=3)
    instances = create_instances(documents, max_seq_len=39, short_seq_prob=0.0, seed=0)
    for instance in instances:
        tokens_a, tokens_b = split(instance)
        if not instance.is_random_next:
            assert {document_of(token) for token in tokens_a + tokens_b} == {document_of(tokens_a[0])}
            a_last, b_first = (tuple(map(int, re.findall(r"\d+", token))) for token in (tokens_a[-1], tokens_b[0]))
            assert (b_first[1], b_first[2]) == (a_last[1] + 1, 0)  # B starts with the sentence after A's last
    # every sentence is read in A or in a true B: the sentences a random B left unused were put back
    used = {token for instance in instances for token in split(instance)[0]}
    used |= {token for instance in instances if not instance.is_random_next for token in split(instance)[1]}
    assert used == {token for document in documents for sentence in document for token in sentence}


@pytest.mark.parametrize("num_documents", [2, 3, 10])
def test_not_next_b_never_comes_from_a_own_document(num_documents):
    # With 2 documents the original's ten retries fail once in 1024 pairs; ours never does.
    documents = named_documents(num_documents, sentences=30, sentence_tokens=2)
    instances = create_instances(documents, max_seq_len=16, short_seq_prob=0.1, dupe_factor=80, seed=1)
    negatives = [instance for instance in instances if instance.is_random_next]
    assert len(negatives) > 500
    for instance in negatives:
        tokens_a, tokens_b = split(instance)
        a_documents, b_documents = {document_of(t) for t in tokens_a}, {document_of(t) for t in tokens_b}
        assert len(a_documents) == 1 and len(b_documents) == 1 and a_documents != b_documents


def test_next_or_random_is_half_and_half():
    # One-token sentences and a fixed target: every chunk has many sentences, except one that starts at
    # a document's last sentence, which has no true continuation and is always NotNext. Leave those out.
    documents = named_documents(num_documents=40, sentences=300, sentence_tokens=1)
    instances = create_instances(documents, max_seq_len=24, short_seq_prob=0.0, dupe_factor=3, seed=2)
    last_tokens = {document[-1][0] for document in documents}
    forced = [instance for instance in instances if split(instance)[0] == [instance.tokens[1]]
              and instance.tokens[1] in last_tokens]
    assert all(instance.is_random_next for instance in forced)
    free = [instance for instance in instances if instance not in forced]
    share = sum(instance.is_random_next for instance in free) / len(free)
    low, high = binomial_bounds(0.5, len(free))
    assert len(free) > 2000 and low < share < high, (share, low, high, len(free))


def test_on_the_real_corpus_the_coin_is_fair_and_not_next_b_comes_from_another_scene():
    """The rules run on a copy of the training scenes whose every token is its address (scene, sentence): the
    lengths are the real ones, so the draws and the labels are those of the real pairs, and each token says
    where it came from. A chunk of one sentence (the last of its scene, or one that fills the target) is always
    NotNext; every other pair met the coin, which comes out fair; no NotNext B comes from A's own scene."""
    from annotated_bert.corpus import load_shakespeare, split_by_play
    from annotated_bert.tokenization import BOOK_VOCABULARY

    max_seq_len = 128
    training, _ = split_by_play(load_shakespeare())
    book_tokenizer = BertTokenizer(BOOK_VOCABULARY / "vocab.txt")
    token_documents = tokenize_documents(training, book_tokenizer)
    addressed_documents = [[[(scene_index, sentence_index)] * len(segment)
                            for sentence_index, segment in enumerate(document)]
                           for scene_index, document in enumerate(token_documents)]
    real = create_instances(token_documents, max_seq_len=max_seq_len, short_seq_prob=0.0, seed=0)
    addressed = create_instances(addressed_documents, max_seq_len=max_seq_len, short_seq_prob=0.0, seed=0)
    assert [(len(pair.tokens), pair.is_random_next) for pair in addressed] == \
        [(len(pair.tokens), pair.is_random_next) for pair in real]                 # the same draws, the same pairs
    coin, one_sentence_chunks, b_from_own_scene = [], [], 0
    for pair in addressed:
        sep = pair.tokens.index(SEP)
        a_sentences = sorted(set(pair.tokens[1:sep]))
        scene_index, sentence_index = a_sentences[0]
        sentences = token_documents[scene_index]
        last_or_long = sentence_index == len(sentences) - 1 or len(sentences[sentence_index]) >= max_seq_len - 3
        if len(a_sentences) == 1 and last_or_long:
            one_sentence_chunks.append(pair.is_random_next)
        else:
            coin.append(pair.is_random_next)
        if pair.is_random_next:
            b_from_own_scene += any(b_scene == scene_index for b_scene, _ in pair.tokens[sep + 1:-1])
    low, high = binomial_bounds(0.5, len(coin))
    assert b_from_own_scene == 0 and one_sentence_chunks and all(one_sentence_chunks)
    assert len(coin) > 3000 and low < sum(coin) / len(coin) < high


def test_short_sequence_rule():
    documents = named_documents(num_documents=100, sentences=60, sentence_tokens=4)
    def lengths(short_seq_prob):
        instances = create_instances(documents, max_seq_len=40, short_seq_prob=short_seq_prob, seed=3)
        return sorted(len(instance.tokens) for instance in instances)

    full = lengths(0.0)
    assert full[len(full) // 2] == 40 and full.count(40) > 0.6 * len(full)
    short = lengths(1.0)  # every document draws a target from 2 to 37 tokens
    assert short[0] <= 12 and short[len(short) // 2] < 30 and len(set(short)) >= 8


def test_truncate_seq_pair_trims_the_longer_side_from_either_end():
    first_kept = set()
    for seed in range(40):
        tokens_a, tokens_b = list(range(20)), list(range(100, 105))
        truncate_seq_pair(tokens_a, tokens_b, 24, random.Random(seed))
        assert tokens_b == list(range(100, 105)) and len(tokens_a) == 19  # only the longer side is cut
        first_kept.add(tokens_a[0])
    assert first_kept == {0, 1}  # from the front (0 dropped) or from the back (0 kept)
    tokens_a, tokens_b = list(range(10)), list(range(100, 110))
    truncate_seq_pair(tokens_a, tokens_b, 6, random.Random(0))
    assert len(tokens_a) == len(tokens_b) == 3
    for side in (tokens_a, tokens_b):
        assert side == list(range(side[0], side[0] + 3))  # a contiguous piece of the original
    short_a, long_b = [1], list(range(10))
    truncate_seq_pair(short_a, long_b, 4, random.Random(0))
    assert short_a == [1] and len(long_b) == 3


def test_create_instances_from_document_covers_one_document():
    documents = named_documents(num_documents=3, sentences=10, sentence_tokens=5)
    instances = create_instances_from_document(documents, 1, 30, 0.0, random.Random(0))
    assert instances and all(document_of(split(instance)[0][0]) == 1 for instance in instances)


# ---- determinism ---------------------------------------------------------------------------------


def test_same_seed_same_instances_and_different_seeds_differ():
    documents = random_documents(random.Random(0))
    first = create_instances(documents, max_seq_len=32, seed=7)
    assert first == create_instances(documents, max_seq_len=32, seed=7)
    assert first != create_instances(documents, max_seq_len=32, seed=8)


def test_the_global_random_generator_is_untouched(tokenizer):
    documents = random_documents(random.Random(0))
    random.seed(123)
    state = random.getstate()
    instances = create_instances(documents, max_seq_len=32, seed=7)
    dataset = PretrainingDataset(instances, tokenizer, seed=1)
    [dataset[index] for index in range(len(dataset))]
    assert random.getstate() == state


# ---- masking -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pairs():
    return create_instances(random_documents(random.Random(1), num_documents=60), max_seq_len=48, seed=4)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(3, 300), masked_lm_prob=st.floats(0.01, 0.5), max_predictions=st.integers(1, 80),
       seed=st.integers(0, 2**32))
def test_exactly_num_to_predict_positions(length, masked_lm_prob, max_predictions, seed):
    rng = random.Random(seed)
    tokens_a = [rng.choice(WORDS) for _ in range(max(1, (length - 3) // 2))]
    tokens_b = [rng.choice(WORDS) for _ in range(max(1, length - 3 - len(tokens_a)))]
    tokens = (CLS, *tokens_a, SEP, *tokens_b, SEP)
    pair = TrainingInstance(tokens, (0,) * (len(tokens_a) + 2) + (1,) * (len(tokens_b) + 1), False)
    masked = mask_instance(pair, WORDS, rng, masked_lm_prob=masked_lm_prob, max_predictions=max_predictions)
    expected = min(max_predictions, max(1, int(round(len(tokens) * masked_lm_prob))))
    assert len(masked.masked_positions) == min(expected, len(tokens) - 3) == num_to_predict(
        len(tokens), masked_lm_prob, max_predictions)
    assert list(masked.masked_positions) == sorted(set(masked.masked_positions))
    assert masked.masked_labels == tuple(tokens[position] for position in masked.masked_positions)


def test_python_rounding_of_the_count():
    assert [num_to_predict(n) for n in (5, 10, 30, 50, 70, 128, 130, 512)] == [1, 2, 4, 8, 10, 19, 20, 20]


def test_special_tokens_and_padding_are_never_masked(tokenizer, pairs):
    rng = random.Random(5)
    special_ids = {tokenizer.vocab[token] for token in SPECIALS}
    replacements = replacement_vocabulary(tokenizer)
    masked = [mask_instance(pair, replacements, rng) for pair in pairs]
    batch = collate_pretraining_batch(masked, tokenizer, pad_to=64)
    real = batch["masked_labels"] != -100
    assert batch["attention_mask"].gather(1, batch["masked_positions"])[real].eq(1).all()
    assert not any(label in special_ids for label in batch["masked_labels"][real].tolist())
    for pair in masked:
        assert all(is_ordinary_token(label) for label in pair.masked_labels)
        assert pair.tokens[0] == CLS and pair.tokens.count(SEP) == 2  # [CLS]/[SEP] themselves untouched


def test_unk_and_unused_tokens_are_never_chosen():
    tokens = (CLS, "[UNK]", "king", "[unused1]", SEP, "[UNK]", SEP)
    pair = TrainingInstance(tokens, (0, 0, 0, 0, 0, 1, 1), False)
    for seed in range(20):
        masked = mask_instance(pair, WORDS, random.Random(seed), masked_lm_prob=0.9)
        assert masked.masked_positions == (2,)


def test_the_80_10_10_rule_within_binomial_bounds(tokenizer, pairs):
    replacements = replacement_vocabulary(tokenizer)
    rng = random.Random(6)
    counts = {"mask": 0, "random": 0, "same": 0}
    for _ in range(40):
        for pair in pairs:
            masked = mask_instance(pair, replacements, rng)
            for position, label in zip(masked.masked_positions, masked.masked_labels):
                token = masked.tokens[position]
                counts["mask" if token == MASK else "same" if token == label else "random"] += 1
    total = sum(counts.values())
    # a random draw equals the original token once in len(replacements)
    same_by_chance = 0.1 / len(replacements)
    expected = {"mask": 0.8, "random": 0.1 - same_by_chance, "same": 0.1 + same_by_chance}
    assert total > 20_000
    for outcome, probability in expected.items():
        low, high = binomial_bounds(probability, total)
        assert low < counts[outcome] / total < high, (outcome, counts[outcome] / total, low, high)


def test_random_replacements_are_never_special_tokens(tokenizer, pairs):
    replacements = replacement_vocabulary(tokenizer)
    assert not set(replacements) & set(SPECIALS)
    assert "[" in replacements and "]" in replacements and "##bel" in replacements  # punctuation and pieces stay
    assert replacements == [token for token in tokenizer.ids_to_tokens if token not in SPECIALS]
    rng = random.Random(7)
    inserted = set()
    for _ in range(10):
        for pair in pairs:
            masked = mask_instance(pair, replacements, rng)
            inserted.update(masked.tokens[position] for position in masked.masked_positions)
    assert MASK in inserted and not (inserted - {MASK}) & set(SPECIALS)


def test_mask_instance_does_not_modify_its_input_and_refuses_a_masked_pair(pairs):
    pair = pairs[0]
    before = (pair.tokens, pair.masked_positions)
    masked = mask_instance(pair, WORDS, random.Random(0))
    assert (pair.tokens, pair.masked_positions) == before
    with pytest.raises(ValueError, match="already masked"):
        mask_instance(masked, WORDS, random.Random(0))


def whole_word_pair(rng, length=60):
    words = [["un", "##bel", "##ie", "##va", "##bly"], ["gentle", "##man"], ["gentle", "##men"],
             ["for", "##sooth"], ["king"], ["thee"], ["lord"], ["."]]
    tokens_a = [piece for _ in range(length) for piece in rng.choice(words)][:length]
    tokens_b = ["##man", "king", "gentle", "##men"]  # a piece right after [SEP] starts its own group
    tokens = (CLS, *tokens_a, SEP, *tokens_b, SEP)
    return TrainingInstance(tokens, (0,) * (len(tokens_a) + 2) + (1,) * (len(tokens_b) + 1), True)


def test_whole_word_masking_masks_whole_words():
    rng = random.Random(8)
    for _ in range(300):
        pair = whole_word_pair(rng)
        masked = mask_instance(pair, WORDS, rng, whole_word=True)
        chosen = set(masked.masked_positions)
        assert 1 <= len(chosen) <= num_to_predict(len(pair.tokens))
        words = masking_candidates(pair.tokens, whole_word=True)
        for word in words:
            assert set(word) <= chosen or not set(word) & chosen
            assert not pair.tokens[word[0]].startswith("##") or word[0] == pair.tokens.index(SEP) + 1
        assert masked.masked_labels == tuple(pair.tokens[position] for position in masked.masked_positions)


def test_whole_word_grouping():
    tokens = (CLS, "un", "##bel", "king", SEP, "##man", "gentle", "##man", SEP)
    assert masking_candidates(tokens, whole_word=True) == [[1, 2], [3], [5], [6, 7]]
    assert masking_candidates(tokens, whole_word=False) == [[1], [2], [3], [5], [6], [7]]


def test_same_rng_same_masks(pairs):
    first = [mask_instance(pair, WORDS, random.Random(9)) for pair in pairs]
    assert first == [mask_instance(pair, WORDS, random.Random(9)) for pair in pairs]
    assert first != [mask_instance(pair, WORDS, random.Random(10)) for pair in pairs]


# ---- static and dynamic masking ------------------------------------------------------------------


def test_dynamic_masking_is_reproducible_per_seed_epoch_and_index(tokenizer, pairs):
    one, two = PretrainingDataset(pairs, tokenizer, seed=3), PretrainingDataset(pairs, tokenizer, seed=3)
    one.set_epoch(2)
    two.set_epoch(2)
    in_order = [one[index] for index in range(len(pairs))]
    assert in_order == [two[index] for index in reversed(range(len(pairs)))][::-1]  # order does not matter
    assert one[-1] == one[len(pairs) - 1]
    epoch_2 = [one[index].masked_positions for index in range(len(pairs))]
    one.set_epoch(3)
    epoch_3 = [one[index].masked_positions for index in range(len(pairs))]
    assert sum(a != b for a, b in zip(epoch_2, epoch_3)) > 0.9 * len(pairs)
    other_seed = PretrainingDataset(pairs, tokenizer, seed=4)
    other_seed.set_epoch(3)
    assert epoch_3 != [other_seed[index].masked_positions for index in range(len(pairs))]
    with pytest.raises(IndexError):
        one[len(pairs)]


def test_static_masking_is_fixed_across_epochs(tokenizer, pairs):
    dataset = PretrainingDataset(pairs, tokenizer, dynamic=False, seed=3)
    first = [dataset[index] for index in range(len(dataset))]
    dataset.set_epoch(5)
    assert first == [dataset[index] for index in range(len(dataset))]
    assert first == [PretrainingDataset(pairs, tokenizer, dynamic=False, seed=3)[i] for i in range(len(pairs))]
    assert all(instance.masked_positions for instance in first)


def test_dataset_keeps_its_pairs_unmasked_and_refuses_masked_ones(tokenizer, pairs):
    dataset = PretrainingDataset(pairs, tokenizer, whole_word=True)
    [dataset[index] for index in range(len(dataset))]
    assert dataset.pairs == list(pairs)
    with pytest.raises(ValueError, match="unmasked pairs"):
        PretrainingDataset([dataset[0]], tokenizer)


# ---- batches -------------------------------------------------------------------------------------


def test_collate_shapes_dtypes_padding_and_labels(tokenizer, pairs):
    rng = random.Random(11)
    instances = [mask_instance(pair, replacement_vocabulary(tokenizer), rng) for pair in pairs[:5]]
    batch = collate_pretraining_batch(instances, tokenizer)
    longest = max(len(instance.tokens) for instance in instances)
    most = max(len(instance.masked_positions) for instance in instances)
    expected_shapes = {"input_ids": (5, longest), "token_type_ids": (5, longest), "attention_mask": (5, longest),
                       "masked_positions": (5, most), "masked_labels": (5, most), "next_sentence_labels": (5,)}
    assert {key: tuple(value.shape) for key, value in batch.items()} == expected_shapes
    assert all(value.dtype == torch.long for value in batch.values())
    for row, instance in enumerate(instances):
        length, count = len(instance.tokens), len(instance.masked_positions)
        assert tokenizer.convert_ids_to_tokens(batch["input_ids"][row, :length].tolist()) == list(instance.tokens)
        assert (batch["input_ids"][row, length:] == tokenizer.vocab[PAD]).all()
        assert batch["token_type_ids"][row].tolist() == list(instance.segment_ids) + [0] * (longest - length)
        assert batch["attention_mask"][row].tolist() == [1] * length + [0] * (longest - length)
        assert batch["masked_positions"][row].tolist() == list(instance.masked_positions) + [0] * (most - count)
        labels = batch["masked_labels"][row].tolist()
        assert tokenizer.convert_ids_to_tokens(labels[:count]) == list(instance.masked_labels)
        assert labels[count:] == [-100] * (most - count)
        assert batch["next_sentence_labels"][row].item() == int(instance.is_random_next)

    fixed = collate_pretraining_batch(instances, tokenizer, pad_to=64, max_predictions=20)
    assert fixed["input_ids"].shape == (5, 64) and fixed["masked_labels"].shape == (5, 20)
    assert torch.equal(fixed["input_ids"][:, :longest], batch["input_ids"])
    assert (fixed["masked_labels"][:, most:] == -100).all()


def test_collate_with_a_dataloader(tokenizer, pairs):
    from functools import partial

    from torch.utils.data import DataLoader

    dataset = PretrainingDataset(pairs, tokenizer, seed=0)
    loader = DataLoader(dataset, batch_size=8, collate_fn=partial(collate_pretraining_batch, tokenizer=tokenizer))
    batches = list(loader)
    assert sum(batch["input_ids"].shape[0] for batch in batches) == len(pairs)
    assert set(torch.cat([batch["next_sentence_labels"] for batch in batches]).tolist()) == {0, 1}


# ---- tokenizing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeDocument:
    sentences: tuple[str, ...]


def test_tokenize_documents_drops_empty_sentences_and_documents(tokenizer):
    documents = [FakeDocument(("The king is dead.", "   ", "Long live the king!")), FakeDocument(("", " ")),
                 ["Unbelievably, gentlemen."]]
    assert tokenize_documents(documents, tokenizer) == [
        [["the", "king", "is", "dead", "."], ["long", "live", "the", "king", "!"]],
        [["un", "##bel", "##ie", "##va", "##bly", ",", "gentle", "##men", "."]],
    ]
    with pytest.raises(TypeError, match="list of sentences"):
        tokenize_documents(["The king is dead."], tokenizer)


# ---- errors --------------------------------------------------------------------------------------


def test_error_empty_corpus():
    with pytest.raises(ValueError, match="the corpus is empty"):
        create_instances([])


def test_error_one_document():
    with pytest.raises(ValueError, match=r"1 document.*different document: at least 2"):
        create_instances([[["the", "king"], ["is", "dead"]]])


@pytest.mark.parametrize("max_seq_len", [-1, 0, 4])
def test_error_max_seq_len_below_5(max_seq_len):
    with pytest.raises(ValueError, match=f"max_seq_len is {max_seq_len}; it must be at least 5"):
        create_instances([[["a"]], [["b"]]], max_seq_len=max_seq_len)
    assert create_instances([[["a"]], [["b"]]], max_seq_len=5)  # 5 is enough


def test_error_untokenized_or_empty_sentences():
    with pytest.raises(ValueError, match="document 1, sentence 0 is 'the king'.*tokenize the documents first"):
        create_instances([[["a"]], ["the king"]])
    with pytest.raises(ValueError, match="document 0 has no sentences"):
        create_instances([[], [["b"]]])
    with pytest.raises(ValueError, match="document 0 is a FakeDocument, not a list of token lists"):
        create_instances([FakeDocument(("The king is dead.",)), [["b"]]])


@pytest.mark.parametrize("missing", ["[PAD]", "[CLS]", "[SEP]", "[MASK]"])
def test_error_tokenizer_without_a_special_token(missing):
    # Our BertTokenizer refuses such a vocabulary itself; any other object with a .vocab gets the same care.
    incomplete = SimpleNamespace(vocab={token: index for index, token in enumerate(SPECIALS + WORDS)
                                        if token != missing})
    with pytest.raises(ValueError, match=re.escape(f"has no {missing}; pretraining data needs")):
        check_tokenizer(incomplete)
    with pytest.raises(ValueError, match=re.escape(f"has no {missing}")):
        replacement_vocabulary(incomplete)
    with pytest.raises(ValueError, match=re.escape(f"has no {missing}")):
        PretrainingDataset([], incomplete)


def test_errors_in_collate(tokenizer, pairs):
    masked = [mask_instance(pair, WORDS, random.Random(0)) for pair in pairs[:3]]
    longest = max(len(instance.tokens) for instance in masked)
    with pytest.raises(ValueError, match="empty batch"):
        collate_pretraining_batch([], tokenizer)
    with pytest.raises(ValueError, match=f"pad_to={longest - 1} is shorter than the longest instance"):
        collate_pretraining_batch(masked, tokenizer, pad_to=longest - 1)
    with pytest.raises(ValueError, match="max_predictions=0 is fewer"):
        collate_pretraining_batch(masked, tokenizer, max_predictions=0)
    foreign = TrainingInstance((CLS, "zounds", SEP, "king", SEP), (0, 0, 0, 1, 1), False)
    with pytest.raises(ValueError, match="instance 1 has the token 'zounds'.*another tokenizer"):
        collate_pretraining_batch([masked[0], foreign], tokenizer)


def test_error_instance_fields_disagree():
    with pytest.raises(ValueError, match="3 tokens but 2 segment ids"):
        TrainingInstance((CLS, "a", SEP), (0, 0), False)
