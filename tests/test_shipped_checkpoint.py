"""The book's shipped checkpoint works in the ecosystem: its card and tokenizer configuration are what the code
writes, its front matter is the Hub's, and transformers' pipelines and auto classes use it, long inputs included."""

import json
import warnings
from pathlib import Path

import pytest
import torch
import transformers

from annotated_bert.training import checkpoint_files

SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "bert-shakespeare"
HUB_KEYS = ("license", "language", "library_name", "pipeline_tag", "tags", "datasets")


def front_matter(card: str) -> dict:
    """The YAML front matter of a model card, read for the simple keys and lists the Hub uses."""
    assert card.startswith("---\n"), "a model card opens with its front matter"
    block = card[4:card.index("\n---\n", 4)]
    values, key = {}, None
    for line in block.splitlines():
        if line.startswith("- "):
            values[key].append(line[2:].strip())
        else:
            key, _, value = line.partition(":")
            values[key] = value.strip() or []
    return values


def test_the_card_and_tokenizer_config_are_what_the_code_writes():
    for name, text in checkpoint_files(SHIPPED).items():
        assert (SHIPPED / name).read_text() == text, f"{name} differs from the code's: run `make card`"


def test_the_card_has_the_hubs_front_matter_and_the_held_out_scores():
    card = (SHIPPED / "README.md").read_text()
    matter = front_matter(card)
    assert all(matter.get(key) for key in HUB_KEYS), matter
    assert matter["pipeline_tag"] == "fill-mask" and matter["library_name"] == "transformers"
    assert matter["license"] == "mit" and "bert" in matter["tags"]
    assert "masked-LM accuracy" in card and "neighbour count table" in card and "word bigrams" in card


def test_the_tokenizer_knows_the_models_length():
    positions = json.loads((SHIPPED / "config.json").read_text())["max_position_embeddings"]
    tokenizer_config = json.loads((SHIPPED / "tokenizer_config.json").read_text())
    assert tokenizer_config["model_max_length"] == positions == 64
    assert transformers.AutoTokenizer.from_pretrained(SHIPPED).model_max_length == positions


@pytest.fixture(scope="module")
def fill_mask():
    transformers.logging.set_verbosity_error()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transformers.pipeline("fill-mask", model=str(SHIPPED), device="cpu")


def test_fill_mask_pipeline_answers_and_truncates_a_long_input(fill_mask):
    answers = fill_mask("to be or not to [MASK], that is the question.")
    assert len(answers) == 5 and all(answer["token_str"] for answer in answers)
    long_text = "my lord, [MASK] is here. " + "and the king is dead " * 200            # ~1,000 tokens
    assert len(fill_mask.tokenizer(long_text)["input_ids"]) > 64
    answers = fill_mask(long_text, tokenizer_kwargs={"truncation": True})
    assert len(answers) == 5


def test_auto_model_for_masked_lm_loads_every_weight_it_needs():
    model, info = transformers.AutoModelForMaskedLM.from_pretrained(SHIPPED, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(SHIPPED)
    batch = tokenizer("the king is dead " * 100, truncation=True, return_tensors="pt")
    assert batch["input_ids"].shape[1] == 64
    with torch.no_grad():
        assert model(**batch).logits.shape == (1, 64, tokenizer.vocab_size)
