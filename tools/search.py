"""Chapter 9's recipe search: which way of spending a CPU budget on pretraining earns the most on held-out plays.

Each recipe is a set of `python -m annotated_bert.pretrain` flags over one base; every recipe of the search
gets the same time (about 14 minutes on the 2-core machine the book is built on), set through its number of
steps and the measured time of one step. A run writes its directory under _build/search/NAME/ (weights not
kept in git) and its training.json (configuration, whole log, held-out metrics and report) is copied to
checkpoints/search/NAME.json, which chapter 9 reads.

    python tools/search.py list                 # the recipes and their flags
    python tools/search.py run [NAME ...]       # train them (all by default), one after the other
    python tools/search.py run NAME --resume    # go on from an interrupted run's last checkpoint
    python tools/search.py report NAME [...]    # recompute the held-out report of runs already trained
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "_build" / "search"
RESULTS = ROOT / "checkpoints" / "search"

# Every flag a recipe may change, at the book's first recipe (chapter 9 before the search). Stating each one
# keeps a recipe's meaning fixed when TrainingConfig's defaults move to the recipe the search chose.
BASE = {"--num-hidden-layers": "2", "--hidden-size": "128", "--num-attention-heads": "2",
        "--intermediate-size": "512", "--max-seq-len": "64", "--long-fraction": "0", "--long-seq-len": "128",
        "--batch-size": "128", "--learning-rate": "2e-3", "--warmup-fraction": "0.05", "--steps": "2200",
        "--masked-lm-prob": "0.15",
        "--eval-every": "250", "--checkpoint-every": "0"}
BASE_SWITCHES = ["--next-sentence", "--speaker-names"]

# name -> (what it tries, the flags it changes). Steps: ~14 min at each size's measured seconds per step.
RECIPES = {
    "2x128": ("the book's first recipe: 2 layers of 128, 64-token pairs", {}),
    "2x128-3000": ("the same for 3,000 steps (the book's model before the search)", {"--steps": "3000"}),
    "4x128": ("twice the layers, in the same time", {"--num-hidden-layers": "4", "--steps": "1330"}),
    "2x256": ("twice the width, in the same time",
              {"--hidden-size": "256", "--num-attention-heads": "4", "--intermediate-size": "1024", "--steps": "840"}),
    "2x128-long": ("BERT's two lengths: 64-token pairs, then 128 for the last 30% of the steps",
                   {"--long-fraction": "0.3"}),
    "2x128-mask25": ("25% of the tokens masked instead of 15%: more predictions per step (1.35x its time)",
                     {"--masked-lm-prob": "0.25"}),
    "2x128-lr4e-3": ("twice the peak learning rate", {"--learning-rate": "4e-3"}),
    # The ablation, at the full budget of the book's model (TrainingConfig's defaults): no NSP loss.
    "mlm-only": ("the book's model without next-sentence prediction",
                 {"--steps": "3600", "--checkpoint-every": "500", "--no-next-sentence": None}),
}


def command(name: str, resume: bool = False) -> list[str]:
    """The pretrain command of a recipe: the base's flags, the recipe's over them (a None value: a bare switch,
    given after the base's switches, so that it wins)."""
    flags = {**BASE, **RECIPES[name][1]}
    valued = [item for flag, value in flags.items() if value is not None for item in (flag, value)]
    switches = [flag for flag, value in flags.items() if value is None]
    return [sys.executable, "-m", "annotated_bert.pretrain", "--quiet", "--output-dir", str(RUNS / name),
            *valued, *BASE_SWITCHES, *switches, *(["--resume"] if resume else []), "--overwrite"]


def keep(name: str) -> Path:
    """Copy a run's training.json to checkpoints/search/NAME.json, with the recipe that made it."""
    record = json.loads((RUNS / name / "training.json").read_text())
    record["recipe"] = {"name": name, "tries": RECIPES[name][0], "flags": RECIPES[name][1]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"{name}.json"
    target.write_text(json.dumps(record, indent=1) + "\n")
    return target


def report(name: str) -> None:
    """Recompute the held-out report of a trained run and write it into its training.json."""
    from annotated_bert.corpus import load_shakespeare, split_by_play
    from annotated_bert.evaluation import held_out_report
    from annotated_bert.pretraining import BertForPreTraining
    from annotated_bert.tokenization import BertTokenizer
    from annotated_bert.training import TrainingConfig

    directory = RUNS / name
    record = json.loads((directory / "training.json").read_text())
    config = TrainingConfig.from_dict(record["config"])
    record["config"] = config.to_dict()          # every field stated, those added since the run at their defaults
    train, held_out = split_by_play(load_shakespeare(speaker_names=record.get("speaker_names", False)))
    model, tokenizer = BertForPreTraining.from_pretrained(directory), BertTokenizer.from_pretrained(directory)
    record["report"] = held_out_report(model, tokenizer, config, train, held_out)
    (directory / "training.json").write_text(json.dumps(record, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["list", "run", "report"])
    parser.add_argument("names", nargs="*", help="recipes (default: all)")
    parser.add_argument("--resume", action="store_true", help="run: go on from each run's resume state")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(RECIPES))
    if unknown:
        parser.error(f"unknown recipes {unknown}; known: {sorted(RECIPES)}")
    names = args.names or list(RECIPES)
    for name in names:
        if args.action == "list":
            print(f"{name:12} {RECIPES[name][0]}\n{'':12} {' '.join(command(name)[3:])}")
        elif args.action == "run":
            print(f"{name}: {' '.join(command(name, args.resume)[3:])}", flush=True)
            subprocess.run(command(name, args.resume), check=True, cwd=ROOT)
            print(f"{name}: kept {keep(name).relative_to(ROOT)}", flush=True)
        else:
            report(name)
            print(f"{name}: report written, kept {keep(name).relative_to(ROOT)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
