#!/usr/bin/env bash
# Regenerates every bundled reference model from synthetic phantoms, with fixed seeds, and
# evaluates them on a held-out phantom set made with a seed never used for training.
#
#   bash models/train_reference.sh [cpu|cuda]
#
# Steps: phantom training set (320 subjects, seed 1001) -> held-out test set (80 subjects,
# seed 2002, split=test) -> the five families (seed 0) -> evaluation report in
# models/evaluation/. Work files go to runs/reference/ (not committed). On this project's 2-core
# AVX2 CPU expect about 2 hours (float32; bf16 is emulated there and slower); the cards record
# the wall time, the device and every hyperparameter.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${1:-cpu}
WORK=runs/reference
MODELS=models

sct_lesion_classify phantom -o "$WORK/phantoms-train" -n 320 --seed 1001 --with-t1c
sct_lesion_classify phantom -o "$WORK/phantoms-test" -n 80 --seed 2002 --with-t1c --split test

common=(--bids "$WORK/phantoms-train" -o "$MODELS" --seed 0 --device "$DEVICE" --version 1.0.0)
sct_lesion_classify train cord "${common[@]}" --epochs 8 --steps-per-epoch 40 --batch-size 16
sct_lesion_classify train lesion "${common[@]}" --epochs 12 --steps-per-epoch 40 --batch-size 8
for family in tumor_vs_demyelinating astrocytoma_vs_ependymoma ms_vs_nmosd; do
  sct_lesion_classify train "$family" "${common[@]}" --epochs 10 --steps-per-epoch 30 --batch-size 16
done

sct_lesion_classify evaluate --bids "$WORK/phantoms-test" --split test --models "$MODELS" \
  --baseline-bids "$WORK/phantoms-train" -o "$MODELS/evaluation" --seed 0
sct_lesion_classify models verify
