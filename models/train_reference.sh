#!/usr/bin/env bash
# Regenerates every bundled reference model from synthetic phantoms, with fixed seeds, and
# evaluates them on a held-out phantom set made with a seed never used for training.
#
#   bash models/train_reference.sh [cpu|cuda] [all|classifiers]
#
# 'classifiers' makes the data, trains the three classifiers and their cT1w variants (models 1
# and 2: 2.0.0; model 3: 2.1.0; 'calibrate' refits their heads and bumps them to 2.0.1 / 2.1.1)
# and evaluates; 'all' (the default) also retrains the lesion model
# and the cord localizer first (each 2.0.0 from a random initialization, then the bundled
# fine-tunings: lesion model 2.1.0, cord localizer 2.2.0).
#
# Steps: phantom training sets (320 realistic subjects, seed 1001; 320 randomised, seed 6006; and
# for model 3, 480 more of each style, seeds 1101 and 6106) -> validation-only sets for the
# decision heads (200 of each style, seeds 4104 and 6206) -> held-out test set (80 subjects,
# seed 2002, split=test) -> held-out transfer sets: 80 phantoms of the 'shifted' style that
# training never draws (seed 3003) and 16 lesions inserted into the shared real healthy scan
# (seed 14, when ../shared/realdata exists) and 400 more held-out phantoms (seed 4004, reported
# in models/evaluation/heldout_400/) -> the five families (seed 0) -> evaluation report in
# models/evaluation/ (the sets side by side, the untouched real scan for false positives). Work
# files go to runs/reference/ (not committed). On this project's 2-core CPU (native bf16) the cord
# localizer 2.0.0 and the lesion model 2.0.0 took about 1 h 40 min side by side, the cord
# localizer's fine-tuning 87 min more (60 epochs, one thread, no bf16), the lesion model 2.1.0
# 42 min (two threads), the six classifiers about 35 min (2.0.0) and model 3's two 2.1.0 families
# 16-17 min side by side, 'calibrate' 26 min (491 validation patients), the evaluation 15-25 min; on a CPU without native
# bf16 expect about twice that. The
# cards record the wall time, the device and every hyperparameter.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${1:-cpu}
JOBS=$(nproc)  # phantom generation in parallel; the datasets do not depend on it
STEPS=${2:-all}
case "$STEPS" in all|classifiers) ;; *) echo "usage: $0 [cpu|cuda] [all|classifiers]" >&2; exit 2 ;; esac
WORK=runs/reference
MODELS=models

# The phantom sets are deterministic in their seed; an existing set is reused.
[ -f "$WORK/phantoms-train/participants.tsv" ] ||
  sct_lesion_classify phantom -o "$WORK/phantoms-train" -n 320 --seed 1001 --with-t1c --jobs "$JOBS"
# Domain-randomised phantoms (issue 14): contrast, resolution, posture, artefacts and look-alikes
# drawn per subject, the lesion classes' statistics unchanged; the classifiers train on both styles.
[ -f "$WORK/phantoms-randomised/participants.tsv" ] ||
  sct_lesion_classify phantom -o "$WORK/phantoms-randomised" -n 320 --seed 6006 --with-t1c --style randomised --jobs "$JOBS"
# Training-only phantoms for the classifier model 3 (2.1.0): 480 of each style, new seeds.
[ -f "$WORK/phantoms-train-extra/participants.tsv" ] ||
  sct_lesion_classify phantom -o "$WORK/phantoms-train-extra" -n 480 --seed 1101 --split train --with-t1c --jobs "$JOBS"
[ -f "$WORK/phantoms-randomised-extra/participants.tsv" ] ||
  sct_lesion_classify phantom -o "$WORK/phantoms-randomised-extra" -n 480 --seed 6106 --split train --with-t1c \
    --style randomised --jobs "$JOBS"
# Validation-only phantoms for 'calibrate' (fifteenth session): 200 of each style, new seeds, every
# subject split=val. Heads fitted on the two training sets' validation splits alone (42-91
# patients) were not steady enough (models/README.md, "Fifteenth session").
[ -f "$WORK/phantoms-val-realistic/participants.tsv" ] ||
  sct_lesion_classify phantom -o "$WORK/phantoms-val-realistic" -n 200 --seed 4104 --split val --with-t1c --jobs "$JOBS"
[ -f "$WORK/phantoms-val-randomised/participants.tsv" ] ||
  sct_lesion_classify phantom -o "$WORK/phantoms-val-randomised" -n 200 --seed 6206 --split val --with-t1c \
    --style randomised --jobs "$JOBS"
[ -f "$WORK/phantoms-test/participants.tsv" ] ||
  sct_lesion_classify phantom -o "$WORK/phantoms-test" -n 80 --seed 2002 --with-t1c --split test --jobs "$JOBS"
# 400 more held-out phantoms (100 per class), so that accuracy and calibration can be read with
# narrow intervals: on 40 patients even calibrated probabilities show an ECE of 0.07-0.15.
[ -f "$WORK/phantoms-heldout-400/participants.tsv" ] ||
  sct_lesion_classify phantom -o "$WORK/phantoms-heldout-400" -n 400 --seed 4004 --with-t1c --split test --jobs "$JOBS"
# Transfer sets, for evaluation only (never passed to 'train'): a phantom style held out from
# 'randomised', and synthetic lesions of the four classes inside the cord of the real healthy scan
# (16 mm of cord: --allow-partial lets long lesions run out of the field of view, as in a crop).
[ -f "$WORK/phantoms-shifted/participants.tsv" ] ||
  sct_lesion_classify phantom -o "$WORK/phantoms-shifted" -n 80 --seed 3003 --with-t1c --split test --style shifted --jobs "$JOBS"
REALDATA=../shared/realdata
transfer=(--shifted "$WORK/phantoms-shifted")
if [ -d "$REALDATA" ]; then
  [ -f "$WORK/real-background/participants.tsv" ] ||
    sct_lesion_classify insert-lesions --bids "$REALDATA" -o "$WORK/real-background" -n 16 --seed 14 --split test \
      --allow-partial
  transfer+=(--real-background "$WORK/real-background" --real-healthy "$REALDATA")
else
  echo "$REALDATA not found: the real-background and real-healthy sets are left out of the evaluation" >&2
fi

# The cord localizer and the lesion model (2.0.0, issue 14) train on both phantom styles, so that
# contrast, resolution, posture, artefacts and look-alikes outside the cord are not learnable
# shortcuts. --resume: an interrupted run continues from its last epoch (a finished family is
# only re-exported). One thread each, side by side (the 2-core CPU; step times measured there:
# cord U-Net 16 x 128^2 about 0.5 s, lesion MultiResUNet 8 x 96 x 192 at 16 base filters about
# 0.7 s in bf16 autocast). The lesion model's grid and width are the recipe's defaults, chosen by
# the measurement in models/README.md ("Choosing the lesion model's grid and width").
segmentation=(--bids "$WORK/phantoms-train" "$WORK/phantoms-randomised" --seed 0
              --device "$DEVICE" --resume --threads 1)
if [ "$STEPS" = all ]; then
  # The lesion model 2.0.0 (6 epochs of 300 steps, warm-up + cosine) and the cord localizer
  # 2.0.0 (50 epochs of 60 steps), both from a random initialization, side by side. Both go to
  # $WORK/segmentation-2.0: their best weights start the bundled 2.1.0 below.
  sct_lesion_classify train cord "${segmentation[@]}" -o "$WORK/segmentation-2.0" --version 2.0.0 \
    --epochs 50 --steps-per-epoch 60 --batch-size 16 &
  cord_pid=$!
  sct_lesion_classify train lesion "${segmentation[@]}" -o "$WORK/segmentation-2.0" --version 2.0.0 \
    --epochs 6 --steps-per-epoch 300 --batch-size 8
  wait "$cord_pid"
  # The cord localizer 2.2.0 (bundled): fine-tuned from 2.0.0's best weights with cross-entropy
  # alone, at a lower learning rate. The soft Dice term of 2.0.0 widened the cord by its uncertain
  # rim (predicted volume 1.09x the truth on the realistic validation phantoms; models/README.md,
  # "Cord localizer 2.1.0"). Run as 15 epochs, then --resume --epochs 30 (2.1.0, whose validation
  # Dice was still rising), then --resume --epochs 60 (2.2.0; "Cord localizer 2.2.0"): the plateau
  # schedule does not depend on the planned epochs.
  sct_lesion_classify train cord "${segmentation[@]}" -o "$MODELS" --version 2.2.0 \
    --init-from "$WORK/segmentation-2.0/.train_runs/cord_localizer/best.pt" --loss bce --lr 3e-4 \
    --epochs 60 --steps-per-epoch 60 --batch-size 16
  # The lesion model 2.1.0 (bundled): fine-tuned the same way from 2.0.0's best weights, 3 epochs
  # of 300 steps (models/README.md, "Lesion model 2.1.0"; trained there with --threads 2).
  sct_lesion_classify train lesion "${segmentation[@]}" -o "$MODELS" --version 2.1.0 \
    --init-from "$WORK/segmentation-2.0/.train_runs/lesion_multiresunet/best.pt" --loss bce --lr 3e-4 \
    --epochs 3 --steps-per-epoch 300 --batch-size 8
  # A retrained segmentation package replaces the bundled one only if models/adoption_check.sh
  # finds it better on the phantom validation subjects and not worse on lesions painted into the
  # real healthy scan for validation (seed 1414). A 2.2.0 lesion model (2.1.0 fine-tuned for 4 x 900
  # steps, adding the 960 training-only phantoms made above) gained on phantoms and lost on real tissue: not
  # adopted (models/README.md, "Seventeenth session"). A cord localizer 2.3.0 (2.2.0 fine-tuned on
  # the 1,408 subjects) passed on Dice and was withdrawn after bundling: on the real scan it left
  # four times as much stray tissue beside the cord (319 voxels in 16 small pieces, against 76 in
  # 10; models/README.md, "Eighteenth session"). A 2.5D cord localizer 2.4.0 (--neighbour-slices 1,
  # --init-from the bundled 2.2.0, 20 epochs of 60 steps) gained on the phantom validation subjects
  # and lost 0.035 of cord Dice on the real-background ones: not adopted (models/README.md,
  # "Twenty-first session"). A cord localizer 2.5.0 (--intensity-curve 0.5, --init-from the bundled
  # 2.2.0, 20 epochs of 60 steps) fragmented fewer cords and lost cord Dice on both validation sets:
  # not adopted; a lesion model 2.3.0 (--intensity-curve 0.5, --init-from the bundled 2.1.0, 3 epochs
  # of 300 steps) lost lesion Dice on the real-background validation lesions (0.728 -> 0.667): not
  # adopted (models/README.md, "Twenty-second session"). A cord localizer 2.6.0 (the same with
  # --paint-lesions 0.5) raised the real-background validation cord Dice (0.883 -> 0.886, no scan
  # fragmented) and lost it on the phantom validation subjects (0.859 -> 0.851): not adopted; one
  # with --paint-lesions 0.5 alone (2.7.0) did the opposite (phantoms 0.859 -> 0.866, real
  # background 0.883 -> 0.866): not adopted (models/README.md, "Twenty-third session").
fi
# The classifiers and their cT1w-aware variants (<name>_t1c, first channel the cT1w; issue 15):
# the lesion region (64 x 192 px of 1.25 mm centred on the lesion, 1.39 GFLOP per slice instead of
# 7.4 for the paper's 256 x 256 whole slice), both phantom styles, warm-up + cosine learning rate,
# selection on the validation patient AUC; the calibration (temperature) and the fusion with
# morphometry are fitted on the validation split after training. Models 1 and 2 (2.0.0) train on
# the two datasets above for 8 and 12 epochs. Model 3 (2.1.0) also trains on the 960 training-only
# phantoms of the extra sets, for up to 16 epochs: its 2.0.0, on 448 training subjects, overfitted
# (training accuracy 0.94 against a validation AUC of 0.89). Model 2 was retrained the same way
# and not adopted (models/README.md, "Classifiers: model 3 2.1.0"). The inputs of each kind (T2w
# only, with cT1w) are built once into $MODELS/.train_runs/inputs (--prepare-inputs), then the
# families train side by side with 1 thread each (one DenseNet121 step of 16 at 64 x 192: about
# 0.8 s on one thread of the 2-core CPU, bf16 autocast).
classifiers=(-o "$MODELS" --seed 0 --device "$DEVICE" --resume --input-contract lesion_roi
             --steps-per-epoch 60 --batch-size 16 --patience 6 --threads 1)
two_sets=(--bids "$WORK/phantoms-train" "$WORK/phantoms-randomised" --version 2.0.0)
four_sets=(--bids "$WORK/phantoms-train" "$WORK/phantoms-randomised" "$WORK/phantoms-train-extra"
           "$WORK/phantoms-randomised-extra" --version 2.1.0)
for t1c in "" --with-t1c; do
  sct_lesion_classify train tumor_vs_demyelinating "${classifiers[@]}" "${two_sets[@]}" $t1c --prepare-inputs
  sct_lesion_classify train ms_vs_nmosd "${classifiers[@]}" "${four_sets[@]}" $t1c --prepare-inputs
done
pids=()
for t1c in "" --with-t1c; do
  sct_lesion_classify train tumor_vs_demyelinating "${classifiers[@]}" "${two_sets[@]}" $t1c --epochs 8 &
  pids+=($!)
  sct_lesion_classify train astrocytoma_vs_ependymoma "${classifiers[@]}" "${two_sets[@]}" $t1c --epochs 12 &
  pids+=($!)
  sct_lesion_classify train ms_vs_nmosd "${classifiers[@]}" "${four_sets[@]}" $t1c --epochs 16 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
# The calibration and the fusion refitted on the masks the pipeline segments (the bundled cord
# localizer and lesion model) of the validation patients, which is what the classifiers see when
# a user does not give -lesion ('train' fitted them on the manual masks): the training sets'
# validation splits and the two validation-only sets, 491 patients. The heads change the
# probabilities, so each card's version goes up by a patch (2.0.0 -> 2.0.1, 2.1.0 -> 2.1.1).
sct_lesion_classify calibrate --bids "$WORK/phantoms-train" "$WORK/phantoms-randomised" \
  "$WORK/phantoms-val-realistic" "$WORK/phantoms-val-randomised" --models "$MODELS" --bump-version patch

sct_lesion_classify evaluate --bids "$WORK/phantoms-test" --split test --models "$MODELS" "${transfer[@]}" \
  --baseline-bids "$WORK/phantoms-train" -o "$WORK/evaluation" --seed 0
# The report (JSON, Markdown, PNG) is committed; the per-subject predictions stay in $WORK
# (the transfer sets' figures are in <set>/ beside them).
mkdir -p "$MODELS/evaluation"
cp "$WORK"/evaluation/evaluation.json "$WORK"/evaluation/evaluation.md "$WORK"/evaluation/*.png "$MODELS/evaluation/"
for set in shifted real_background; do
  if [ -d "$WORK/evaluation/$set" ]; then
    mkdir -p "$MODELS/evaluation/$set"
    cp "$WORK/evaluation/$set"/*.png "$MODELS/evaluation/$set/"
  fi
done
sct_lesion_classify evaluate --bids "$WORK/phantoms-heldout-400" --split test --models "$MODELS" \
  --baseline-bids "$WORK/phantoms-train" -o "$WORK/evaluation-heldout-400" --seed 0
mkdir -p "$MODELS/evaluation/heldout_400"
cp "$WORK/evaluation-heldout-400/evaluation.md" "$MODELS/evaluation/heldout_400/"
sct_lesion_classify models verify
