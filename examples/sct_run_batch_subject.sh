#!/bin/bash
#
# Intramedullary lesion segmentation and diagnosis of ONE subject, written for SCT's sct_run_batch
# (which runs it once per subject, in parallel with -jobs):
#
#   sct_run_batch -script examples/sct_run_batch_subject.sh -path-data ~/data/my_bids \
#                 -path-output ~/results/lesions -subject-prefix sub- -jobs 4
#
# or by hand, for one subject:
#
#   PATH_DATA=~/data/my_bids PATH_RESULTS=~/results/lesions/results PATH_QC=~/results/lesions/qc \
#   PATH_LOG=~/results/lesions/log ./examples/sct_run_batch_subject.sh sub-01
#
# Usage: sct_run_batch_subject.sh <SUBJECT>   (the subject folder name, e.g. sub-01)
#
# Environment (set by sct_run_batch): PATH_DATA (the BIDS dataset, read only), PATH_RESULTS,
# PATH_QC, PATH_LOG, and PATH_DATA_PROCESSED (default: <PATH_RESULTS>/../data_processed).
# Optional: CUSTOM_MODELS (model package folders, space-separated, passed as -custom-model) and
# USE_MANUAL_LESION=1 (classify derivatives/labels/<SUBJECT>/anat/<SUBJECT>_T2w_lesion-manual.nii.gz
# instead of segmenting).
#
# Outputs: <PATH_DATA_PROCESSED>/<SUBJECT>/anat/ holds a copy of the T2w image, its lesion mask
# (<SUBJECT>_T2w_lesion_seg.nii.gz, the name SCT 7's lesion tasks use, and its .json sidecar) and
# the diagnosis JSON; the JSON is also copied to <PATH_RESULTS>/<SUBJECT>_T2w_diagnosis.json and
# the QC report goes to PATH_QC.
#
# For a whole dataset in one command, with a cohort CSV, resume and a Dask cluster option, see
# 'sct_lesion_classify batch' (README, section Cohorts).

set -euo pipefail

SUBJECT=${1:?usage: $0 <SUBJECT> (e.g. sub-01)}
: "${PATH_DATA:?PATH_DATA is not set (the BIDS dataset; sct_run_batch sets it)}"
: "${PATH_RESULTS:?PATH_RESULTS is not set (sct_run_batch sets it)}"
: "${PATH_QC:?PATH_QC is not set (sct_run_batch sets it)}"
PATH_DATA_PROCESSED=${PATH_DATA_PROCESSED:-$(dirname "$PATH_RESULTS")/data_processed}

echo "sct_run_batch_subject.sh: ${SUBJECT} (started $(date -u +%Y-%m-%dT%H:%M:%SZ))"
T2W_NAME="${SUBJECT}_T2w.nii.gz"
SOURCE="${PATH_DATA}/${SUBJECT}/anat/${T2W_NAME}"
if [ ! -f "$SOURCE" ]; then
  echo "sct_run_batch_subject.sh: error: ${SOURCE} not found" >&2
  exit 1
fi

# Work on a copy in the processed-data folder (SCT's convention): outputs land beside it and the
# source dataset is never written.
WORK="${PATH_DATA_PROCESSED}/${SUBJECT}/anat"
mkdir -p "$WORK" "$PATH_RESULTS" "$PATH_QC"
cp "$SOURCE" "${WORK}/${T2W_NAME}"
cd "$WORK"

ARGS=(-i "$T2W_NAME" -qc "$PATH_QC" -qc-subject "$SUBJECT")
for folder in ${CUSTOM_MODELS:-}; do
  ARGS+=(-custom-model "$folder")
done
if [ "${USE_MANUAL_LESION:-0}" = 1 ]; then
  MANUAL="${PATH_DATA}/derivatives/labels/${SUBJECT}/anat/${SUBJECT}_T2w_lesion-manual.nii.gz"
  if [ ! -f "$MANUAL" ]; then
    echo "sct_run_batch_subject.sh: error: USE_MANUAL_LESION=1 but ${MANUAL} not found" >&2
    exit 1
  fi
  cp "$MANUAL" .
  ARGS+=(-lesion "$(basename "$MANUAL")")
fi

# Segmentation (unless -lesion) and diagnosis; exit code 0 also for an empty lesion mask
# ("diagnosis": null in the JSON), 1 or 2 on failure, which sct_run_batch reports for the subject.
sct_classify_lesion "${ARGS[@]}"

cp "${SUBJECT}_T2w_diagnosis.json" "${PATH_RESULTS}/${SUBJECT}_T2w_diagnosis.json"
echo "sct_run_batch_subject.sh: ${SUBJECT} done (${WORK})"
