"""Time our BertModel against transformers' BertModel, in one process, interleaved.

    python tools/bench.py                 # MiniLM and BERT-base sizes, inference and a training step
    python tools/bench.py --quick         # a tiny model, a few repeats: a smoke test

Both models hold the same weights (ours is loaded from the checkpoint transformers saved) and use their
default attention: ours the fused scaled_dot_product_attention when no probabilities are asked for,
theirs "sdpa". Runs alternate ours, theirs, ours, theirs, ... so that both see the same machine state;
each reported time is the median over the repeats. The ratio is ours / theirs: below 1.0 we are faster.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings

import torch
import transformers

from annotated_bert import BertModel

SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                 batch=2, seq_len=32),
    "MiniLM (6 x 384)": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                             intermediate_size=1536, batch=8, seq_len=128),
    "BERT-base (12 x 768)": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                 intermediate_size=3072, batch=4, seq_len=128),
}


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
    """transformers' model and ours with the same random weights, both in eval mode."""
    torch.manual_seed(0)
    config = {k: v for k, v in size.items() if k not in ("batch", "seq_len")}
    theirs = transformers.BertModel(transformers.BertConfig(vocab_size=30522, **config)).eval()
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.save_pretrained(directory)
        ours = BertModel.from_pretrained(directory)
    return ours, theirs


def make_batch(size: dict):
    generator = torch.Generator().manual_seed(1)
    batch, seq_len = size["batch"], size["seq_len"]
    input_ids = torch.randint(1000, 30522, (batch, seq_len), generator=generator)
    attention_mask = torch.ones(batch, seq_len, dtype=torch.long)
    attention_mask[-1, seq_len // 2:] = 0  # one padded row, as real batches have
    return input_ids, attention_mask


def inference(model, input_ids, attention_mask):
    model.eval()
    with torch.inference_mode():
        model(input_ids, attention_mask=attention_mask)


def training_step(model, input_ids, attention_mask):
    model.train()
    model.zero_grad(set_to_none=True)
    output = model(input_ids, attention_mask=attention_mask)
    (output.last_hidden_state.float().pow(2).mean() + output.pooler_output.sum()).backward()


def interleaved_medians(task, ours, theirs, batch, repeats: int, warmup: int = 2):
    for _ in range(warmup):
        task(ours, *batch)
        task(theirs, *batch)
    times = {"ours": [], "theirs": []}
    for _ in range(repeats):
        for name, model in (("ours", ours), ("theirs", theirs)):
            started = time.perf_counter()
            task(model, *batch)
            times[name].append(time.perf_counter() - started)
    return statistics.median(times["ours"]), statistics.median(times["theirs"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--sizes", nargs="+", default=["MiniLM (6 x 384)", "BERT-base (12 x 768)"],
                        choices=list(SIZES))
    parser.add_argument("--quick", action="store_true", help="the tiny size, 3 repeats: a smoke test")
    args = parser.parse_args(argv)
    sizes, repeats = (["tiny"], 3) if args.quick else (args.sizes, args.repeats)
    transformers.utils.logging.disable_progress_bar()

    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
          f"Python {platform.python_version()}")
    print(f"Median of {repeats} interleaved runs after warm-up; ratio = ours / theirs (below 1.0: ours is faster).")
    print()
    print("| size | batch x tokens | task | ours (ms) | transformers (ms) | ratio |")
    print("|---|---|---|---:|---:|---:|")
    ratios = []
    for size_name in sizes:
        size = SIZES[size_name]
        ours, theirs = make_pair(size)
        batch = make_batch(size)
        for task_name, task in (("inference", inference), ("training step", training_step)):
            ours_s, theirs_s = interleaved_medians(task, ours, theirs, batch, repeats)
            ratios.append(ours_s / theirs_s)
            print(f"| {size_name} | {size['batch']} x {size['seq_len']} | {task_name} | {ours_s * 1e3:.1f} "
                  f"| {theirs_s * 1e3:.1f} | {ours_s / theirs_s:.2f} |", flush=True)
    return 0 if all(ratio > 0 for ratio in ratios) else 1


if __name__ == "__main__":
    sys.exit(main())
