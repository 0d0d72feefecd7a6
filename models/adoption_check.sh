#!/usr/bin/env bash
# Adoption check of a retrained segmentation package against the bundled one, on validation
# subjects only (never on the sets models/evaluation/ reports):
#
#   bash models/adoption_check.sh CANDIDATE_PACKAGE OUT
#
# e.g. bash models/adoption_check.sh runs/seg22/lesion_multiresunet runs/adopt-lesion-2.2.0
#
# Both the bundled models and the bundled models with CANDIDATE_PACKAGE in place of its family
# (-custom-model) run through the pipeline on
#   - the validation split of the two training sets (49 realistic and 42 domain-randomised
#     phantoms; models/train_reference.sh makes them), and
#   - lesions painted into the shared real healthy scan for validation (24 lesions, seed 1414,
#     split=val; the evaluation's real-background set uses seed 14 and the tests seed 5).
# It prints, for each, the lesion Dice (tumours, demyelinating, all), the predicted / true lesion
# volume, the share of predicted volume beyond the true cord + 2 mm, the cord Dice and the scans
# flagged by the trust check cord_fragmented. The rule (models/README.md, "Seventeenth session"
# and "Eighteenth session"): a candidate is adopted only if it is better on the phantom validation
# subjects AND not worse on the real-background validation lesions, the cord_fragmented count
# included; a model that gains on phantoms while losing on real tissue has learned the generator,
# not the anatomy. (The Dice figures are of the final masks: the cord localizer keeps the largest
# piece, which hides stray pieces beside the cord from the cord Dice. A cord localizer 2.3.0 left
# four times as much stray tissue on the real scan with the same cord Dice; cord_fragmented showed it.)
# The real-background validation lesions share their background scan with the evaluation's real
# sets (one real scan is all this project has): a site with more healthy scans should build this
# set from scans the evaluation does not use.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 CANDIDATE_PACKAGE OUT" >&2; exit 2; }
CANDIDATE=$1
OUT=$2
WORK=runs/reference
REALDATA=../shared/realdata
[ -f "$CANDIDATE/$(basename "$CANDIDATE").json" ] || { echo "$CANDIDATE: not a model package" >&2; exit 2; }
[ -f "$WORK/real-background-val/participants.tsv" ] ||
  sct_lesion_classify insert-lesions --bids "$REALDATA" -o "$WORK/real-background-val" -n 24 --seed 1414 \
    --split val --allow-partial

for which in bundled candidate; do
  extra=()
  [ "$which" = candidate ] && extra=(-custom-model "$CANDIDATE")
  for set in phantoms-train phantoms-randomised real-background-val; do
    sct_lesion_classify evaluate --bids "$WORK/$set" --split val -o "$OUT/$which/$set" --bootstrap 200 \
      -v 0 "${extra[@]}"
  done
done

python - "$OUT" <<'EOF'
import json
import sys
from pathlib import Path

from sct_lesion_classify.train.evaluation.pooling import pool_segmentation

out = Path(sys.argv[1])
for which in ("bundled", "candidate"):
    for title, sets in (("phantom validation", ("phantoms-train", "phantoms-randomised")),
                        ("real-background validation", ("real-background-val",))):
        reports = [json.loads((out / which / name / "evaluation.json").read_text()) for name in sets]
        print(f"{which:9} {title:27} {pool_segmentation(reports).describe()}")
EOF
