"""Time our BertModel against transformers' BertModel, in one process, interleaved.

    python tools/bench.py                      # MiniLM and BERT-base sizes, inference and a training step
    python tools/bench.py --sizes minilm --repeats 41
    python tools/bench.py --quick              # a tiny model, a few repeats: a smoke test

Both models hold the same weights (transformers' random model is saved and ours loads that checkpoint) and
use their default attention: ours the fused scaled_dot_product_attention when no probabilities are asked
for, theirs "sdpa". Inference is eval mode under torch.inference_mode; a training step is train mode (dropout
on), a forward pass and the backward pass of a scalar loss. The runs alternate ours, theirs, theirs, ours, ...
(who goes first flips every repeat) so that both see the same machine state, after warm-up runs of each.

Each time in the table is the median over the repeats; "ratio" is ours / theirs of those medians (below 1.0:
ours is faster). "paired ratio" is the median of ours / theirs within each back-to-back pair, with its
quartiles: on a shared, noisy machine it is the steadier number, and a wide range says the machine was busy.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings

import torch
import transformers

from annotated_bert import BertForPreTraining, BertModel

# Each size: the model's config (transformers' field names) plus the batch it is timed on.
SIZES = {
    "tiny": dict(label="tiny (2 x 64)", vocab_size=1000, hidden_size=64, num_hidden_layers=2,
                 num_attention_heads=4, intermediate_size=256, batch=2, seq_len=32),
    "minilm": dict(label="MiniLM (6 x 384)", vocab_size=30522, hidden_size=384, num_hidden_layers=6,
                   num_attention_heads=12, intermediate_size=1536, batch=8, seq_len=128),
    "base": dict(label="BERT-base (12 x 768)", vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                 num_attention_heads=12, intermediate_size=3072, batch=4, seq_len=128),
}
NOT_CONFIG = ("label", "batch", "seq_len")
# The pretraining step is timed at the book's own configuration (chapter 9's shipped model), read from
# its checkpoint's training.json when it exists.
BOOK_CHECKPOINT = os.path.join(os.path.dirname(__file__), "..", "checkpoints", "bert-shakespeare")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def make_pair(size: dict):
    """Ours and transformers' model with the same random weights, ours loaded from the checkpoint theirs saved."""
    torch.manual_seed(0)
    config = {key: value for key, value in size.items() if key not in NOT_CONFIG}
    theirs = transformers.BertModel(transformers.BertConfig(**config)).eval()
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.save_pretrained(directory)
        ours = BertModel.from_pretrained(directory)
    return ours, theirs  # from_pretrained is strict: every tensor matched by name and shape


def make_batch(size: dict):
    """Random ids, with the last row half padding, as real batches have."""
    generator = torch.Generator().manual_seed(1)
    batch, seq_len = size["batch"], size["seq_len"]
    input_ids = torch.randint(1, size["vocab_size"], (batch, seq_len), generator=generator)
    attention_mask = torch.ones(batch, seq_len, dtype=torch.long)
    attention_mask[-1, seq_len // 2:] = 0
    input_ids[attention_mask == 0] = 0  # [PAD]
    return input_ids, attention_mask


def inference(model, input_ids, attention_mask):
    model.eval()
    with torch.inference_mode():
        model(input_ids, attention_mask=attention_mask)


def training_step(model, input_ids, attention_mask):
    model.train()
    model.zero_grad(set_to_none=True)
    output = model(input_ids, attention_mask=attention_mask)
    (output.last_hidden_state.pow(2).mean() + output.pooler_output.sum()).backward()


TASKS = {"inference": inference, "training step": training_step}


def book_size() -> dict:
    """The book's pretraining configuration: its model (config.json), sequence length and batch (training.json)."""
    with open(os.path.join(BOOK_CHECKPOINT, "config.json")) as file:
        model = json.load(file)
    with open(os.path.join(BOOK_CHECKPOINT, "training.json")) as file:
        training = json.load(file)["config"]
    return dict(label=f"book ({model['num_hidden_layers']} x {model['hidden_size']})",
                **{key: model[key] for key in ("vocab_size", "hidden_size", "num_hidden_layers",
                                               "num_attention_heads", "intermediate_size",
                                               "max_position_embeddings")},
                batch=training["batch_size"], seq_len=training["max_seq_len"],
                # as chapter 7's num_to_predict: 15% of a full-length pair, at most max_predictions
                predictions=min(training["max_predictions"],
                                max(1, round(training["max_seq_len"] * training["masked_lm_prob"]))))


def make_pretraining_pair(size: dict):
    """Our BertForPreTraining and transformers', same random weights (ours loads the checkpoint theirs saved)."""
    torch.manual_seed(0)
    config = {key: value for key, value in size.items() if key not in NOT_CONFIG + ("predictions",)}
    theirs = transformers.BertForPreTraining(transformers.BertConfig(**config))
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.save_pretrained(directory)
        ours = BertForPreTraining.from_pretrained(directory)
    return ours, theirs


def make_pretraining_batch(size: dict):
    """Full-length pairs with `predictions` masked positions each, as chapter 7's collate makes them."""
    generator = torch.Generator().manual_seed(2)
    batch, seq_len, predictions = size["batch"], size["seq_len"], size["predictions"]
    input_ids = torch.randint(5, size["vocab_size"], (batch, seq_len), generator=generator)
    token_type_ids = (torch.arange(seq_len) >= seq_len // 2).long().expand(batch, -1)
    positions = torch.stack([torch.randperm(seq_len - 2, generator=generator)[:predictions].sort().values + 1
                             for _ in range(batch)])                                  # (B, P)
    labels = torch.randint(5, size["vocab_size"], (batch, predictions), generator=generator)
    full_labels = torch.full((batch, seq_len), -100).scatter(1, positions, labels)     # (B, T), theirs
    next_sentence = torch.randint(0, 2, (batch,), generator=generator)
    return input_ids, token_type_ids, positions, labels, full_labels, next_sentence


def pretraining_step(model, input_ids, token_type_ids, positions, labels, full_labels, next_sentence):
    """Forward with both losses, backward and an AdamW step, each model as it is meant to be used: ours
    scores the masked positions only, transformers' BertForPreTraining every position."""
    model.train()
    if isinstance(model, BertForPreTraining):
        loss = model(input_ids, token_type_ids, masked_positions=positions, masked_labels=labels,
                     next_sentence_labels=next_sentence).loss
    else:
        loss = model(input_ids, token_type_ids=token_type_ids, labels=full_labels,
                     next_sentence_label=next_sentence).loss
    loss.backward()
    model.optimizer.step()
    model.optimizer.zero_grad(set_to_none=True)


def interleaved_times(task, ours, theirs, batch, repeats: int, warmup: int = 2) -> dict:
    """Seconds per run of each model, over `repeats` back-to-back pairs whose order flips every time."""
    for _ in range(warmup):
        task(ours, *batch)
        task(theirs, *batch)
    times = {"ours": [], "theirs": []}
    for repeat in range(repeats):
        pair = [("ours", ours), ("theirs", theirs)]
        for name, model in pair if repeat % 2 == 0 else reversed(pair):
            started = time.perf_counter()
            task(model, *batch)
            times[name].append(time.perf_counter() - started)
    return times


def quartiles(values) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, median, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, median, high


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of each model per row (default 15)")
    parser.add_argument("--sizes", nargs="+", default=["minilm", "base"], choices=list(SIZES),
                        help="model sizes to time (default: minilm base)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS), metavar="TASK",
                        help="'inference' and/or 'training step' (default both)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="the tiny size, 3 repeats: a smoke test")
    parser.add_argument("--no-pretraining", action="store_true",
                        help="skip the pretraining step at the book's configuration (chapter 9's checkpoint)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    sizes, repeats = (["tiny"], 3) if args.quick else (args.sizes, args.repeats)
    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()

    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
          f"Python {platform.python_version()}")
    print(f"Median of {repeats} interleaved runs of each after warm-up; ratio = ours / theirs "
          "(below 1.0: ours is faster).")
    print()
    print("| size | batch x tokens | task | ours (ms) | transformers (ms) | ratio | paired ratio (quartiles) |")
    print("|---|---|---|---:|---:|---:|---:|")
    ok = True
    for size_name in sizes:
        size = SIZES[size_name]
        ours, theirs = make_pair(size)
        assert theirs.config._attn_implementation == "sdpa", theirs.config._attn_implementation
        batch = make_batch(size)
        for task_name in args.tasks:
            times = interleaved_times(TASKS[task_name], ours, theirs, batch, repeats)
            ours_s, theirs_s = statistics.median(times["ours"]), statistics.median(times["theirs"])
            low, paired, high = quartiles([o / t for o, t in zip(times["ours"], times["theirs"])])
            ok = ok and ours_s > 0 and theirs_s > 0
            print(f"| {size['label']} | {size['batch']} x {size['seq_len']} | {task_name} | {ours_s * 1e3:.1f} "
                  f"| {theirs_s * 1e3:.1f} | {ours_s / theirs_s:.2f} | {paired:.2f} ({low:.2f}-{high:.2f}) |",
                  flush=True)
        del ours, theirs
        gc.collect()
    if not (args.quick or args.no_pretraining) and os.path.isdir(BOOK_CHECKPOINT):
        size = book_size()
        ours, theirs = make_pretraining_pair(size)
        for model in (ours, theirs):
            model.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batch = make_pretraining_batch(size)
        times = interleaved_times(pretraining_step, ours, theirs, batch, repeats)
        ours_s, theirs_s = statistics.median(times["ours"]), statistics.median(times["theirs"])
        low, paired, high = quartiles([o / t for o, t in zip(times["ours"], times["theirs"])])
        print(f"| {size['label']} | {size['batch']} x {size['seq_len']} | pretraining step (MLM + NSP, AdamW) "
              f"| {ours_s * 1e3:.1f} | {theirs_s * 1e3:.1f} | {ours_s / theirs_s:.2f} "
              f"| {paired:.2f} ({low:.2f}-{high:.2f}) |", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
