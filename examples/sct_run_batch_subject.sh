#!/bin/bash
#
# Intramedullary lesion segmentation and diagnosis of ONE subject (or one session of a subject),
# written for SCT's sct_run_batch, which runs it once per subject folder, in parallel with -jobs:
#
#   sct_run_batch -script examples/sct_run_batch_subject.sh -path-data ~/data/my_bids \
#                 -path-output ~/results/lesions -jobs 4
#
# or by hand, for one subject or session:
#
#   PATH_DATA=~/data/my_bids PATH_RESULTS=~/results/lesions/results PATH_QC=~/results/lesions/qc \
#   ./examples/sct_run_batch_subject.sh sub-01/ses-01
#
# Usage: sct_run_batch_subject.sh <SUBJECT> [sct_classify_lesion options...]
#
#   <SUBJECT>  the folder sct_run_batch passes as $1: 'sub-01', or 'sub-01/ses-01' when the
#              dataset has sessions (sct_run_batch runs the script once per session unless
#              -ignore-ses). File names follow BIDS: sub-01_ses-01_T2w.nii.gz.
#   options    sct_run_batch's -script-args, passed on to sct_classify_lesion
#              (e.g. -script-args "-gradcam 1"). sct_run_batch splits them on spaces and passes an
#              empty argument when there are none; empty arguments are ignored.
#
# Environment, as sct_run_batch sets it (spinalcordtoolbox/scripts/sct_run_batch.py, run_single):
#   PATH_DATA            the BIDS dataset (read only)
#   PATH_DATA_PROCESSED  working copies and outputs (default: <PATH_RESULTS>/../data_processed)
#   PATH_RESULTS         the diagnosis JSON (and lesion table) of every subject, side by side
#   PATH_QC              the QC report
#   PATH_LOG             sct_run_batch's logs (not written by this script)
#   PATH_SEGMANUAL       a folder of manual segmentations (sct_run_batch -path-segmanual; its
#                        default is the folder sct_run_batch was started from)
# sct_run_batch filters subjects itself (-include, -include-list, -exclude, -exclude-list, also
# per session: 'sub-01/ses-01' or 'ses-02') and passes no include/exclude variable to the script.
#
# Manual masks, as SCT's process_data.sh scripts use them: a mask that exists is used, otherwise
# the step runs automatically. Searched in <PATH_SEGMANUAL>/<SUBJECT>/anat/, then <PATH_SEGMANUAL>/
# (a flat folder), then <PATH_DATA>/derivatives/labels/<SUBJECT>/anat/, for <FILE> = the T2w stem
# (sub-01_ses-01_T2w):
#   lesion: <FILE>_label-lesion_seg.nii.gz (SCT 7 datasets) or <FILE>_lesion-manual.nii.gz
#   cord:   <FILE>_label-SC_seg.nii.gz or <FILE>_seg-manual.nii.gz   (passed as -s)
# USE_MANUAL_LESION / USE_MANUAL_CORD: auto (default: use it when found), 1 (required: a subject
# without one fails) or 0 (ignore manual masks: always segment / localize automatically).
# CUSTOM_MODELS: model package folders, space-separated, passed as -custom-model.
#
# Outputs, in <PATH_DATA_PROCESSED>/<SUBJECT>/anat/ (sub/ses structure kept):
#   <FILE>.nii.gz                 copy of the T2w image (the dataset itself is never written)
#   <FILE>_lesion_seg.nii.gz      the lesion mask the diagnosis used (SCT 7's name): segmented, with
#                                 its .json sidecar, or a copy of the manual mask (and its sidecar)
#   <FILE>_diagnosis.json         the diagnosis (also copied to <PATH_RESULTS>/)
#   <FILE>_lesion_seg_analysis.csv  the lesion table, when sct_classify_lesion writes one (also
#                                 copied to <PATH_RESULTS>/)
# and the QC entries in PATH_QC. Exit status: 0 also for an empty lesion mask ("diagnosis": null);
# non-zero on any failure, which sct_run_batch reports for the subject (log renamed err.*.log).
#
# For a whole dataset in one command, with a cohort CSV, resume and a Dask cluster option, see
# 'sct_lesion_classify batch' (README, section Cohorts).

set -e -o pipefail  # SCT's scripts: stop at the first failing command, also inside a pipe
set -u              # and at the first unset variable (optional ones are all read with defaults)

# Exit if the user presses CTRL+C, with the status of an interrupted command.
trap "echo 'Caught keyboard interrupt within script. Exiting now.'; exit 130" INT

NAME=$(basename "$0")
die() {
  echo "${NAME}: error: $*" >&2
  exit 1
}

# Absolute path of $1 (relative to the folder the script was started from).
absolute() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "${PWD}/$1" ;;
  esac
}

# First existing file among "<folder>/<name>" for each folder of SEARCH_DIRS and each name given.
find_manual() {
  local folder name
  for folder in "${SEARCH_DIRS[@]}"; do
    for name in "$@"; do
      if [ -f "${folder}/${name}" ]; then
        printf '%s\n' "${folder}/${name}"
        return 0
      fi
    done
  done
  return 0
}

# The JSON sidecar of a NIfTI file: x.nii.gz -> x.json.
sidecar() {
  local path=$1
  path=${path%.gz}
  printf '%s\n' "${path%.nii}.json"
}

# ----------------------------------------------------------------------------- arguments
if [ $# -lt 1 ] || [ -z "$1" ]; then
  echo "usage: ${NAME} <SUBJECT> [sct_classify_lesion options...]   (e.g. sub-01 or sub-01/ses-01)" >&2
  exit 2
fi
SUBJECT=$1
shift
while [[ "$SUBJECT" == */ ]]; do SUBJECT=${SUBJECT%/}; done  # 'sub-01/' typed by hand
case "$SUBJECT" in
  */*/* | /* | *..*) die "subject '${SUBJECT}' must be a subject folder or subject/session (e.g. sub-01/ses-01)" ;;
esac
EXTRA_ARGS=()
for arg in "$@"; do
  if [ -n "$arg" ]; then EXTRA_ARGS+=("$arg"); fi
done

: "${PATH_DATA:?PATH_DATA is not set (the BIDS dataset; sct_run_batch sets it)}"
: "${PATH_RESULTS:?PATH_RESULTS is not set (sct_run_batch sets it)}"
: "${PATH_QC:?PATH_QC is not set (sct_run_batch sets it)}"
PATH_DATA=$(absolute "$PATH_DATA")
PATH_RESULTS=$(absolute "$PATH_RESULTS")
PATH_QC=$(absolute "$PATH_QC")
PATH_DATA_PROCESSED=$(absolute "${PATH_DATA_PROCESSED:-$(dirname "$PATH_RESULTS")/data_processed}")
USE_MANUAL_LESION=${USE_MANUAL_LESION:-auto}
USE_MANUAL_CORD=${USE_MANUAL_CORD:-auto}
for setting in "USE_MANUAL_LESION=${USE_MANUAL_LESION}" "USE_MANUAL_CORD=${USE_MANUAL_CORD}"; do
  case "${setting#*=}" in
    auto | 0 | 1) ;;
    *) die "${setting}: expected auto, 0 or 1" ;;
  esac
done

# BIDS file names spell the subject folder with '_' for '/': sub-01/ses-01 -> sub-01_ses-01_T2w.
FILE="${SUBJECT//\//_}_T2w"
SOURCE="${PATH_DATA}/${SUBJECT}/anat/${FILE}.nii.gz"
echo "${NAME}: ${SUBJECT} (started $(date -u +%Y-%m-%dT%H:%M:%SZ))"
if [ ! -f "$SOURCE" ]; then
  if [[ "$SUBJECT" != */* ]] && compgen -G "${PATH_DATA}/${SUBJECT}/ses-*/" >/dev/null; then
    die "${SOURCE} not found: ${SUBJECT} has sessions; run sct_run_batch without -ignore-ses (one run per session) or pass ${SUBJECT}/ses-<label>"
  fi
  die "${SOURCE} not found"
fi

SEARCH_DIRS=()
if [ -n "${PATH_SEGMANUAL:-}" ]; then
  PATH_SEGMANUAL=$(absolute "$PATH_SEGMANUAL")
  SEARCH_DIRS+=("${PATH_SEGMANUAL}/${SUBJECT}/anat" "$PATH_SEGMANUAL")
fi
SEARCH_DIRS+=("${PATH_DATA}/derivatives/labels/${SUBJECT}/anat")

MANUAL_LESION=""
if [ "$USE_MANUAL_LESION" != 0 ]; then
  MANUAL_LESION=$(find_manual "${FILE}_label-lesion_seg.nii.gz" "${FILE}_lesion-manual.nii.gz")
  if [ -z "$MANUAL_LESION" ] && [ "$USE_MANUAL_LESION" = 1 ]; then
    die "USE_MANUAL_LESION=1 but no manual lesion mask of ${FILE} (${FILE}_label-lesion_seg.nii.gz or ${FILE}_lesion-manual.nii.gz in: ${SEARCH_DIRS[*]})"
  fi
fi
MANUAL_CORD=""
if [ "$USE_MANUAL_CORD" != 0 ]; then
  MANUAL_CORD=$(find_manual "${FILE}_label-SC_seg.nii.gz" "${FILE}_seg-manual.nii.gz")
  if [ -z "$MANUAL_CORD" ] && [ "$USE_MANUAL_CORD" = 1 ]; then
    die "USE_MANUAL_CORD=1 but no manual cord mask of ${FILE} (${FILE}_label-SC_seg.nii.gz or ${FILE}_seg-manual.nii.gz in: ${SEARCH_DIRS[*]})"
  fi
fi

# ----------------------------------------------------------------------------- processing
# Work on a copy in the processed-data folder (SCT's convention): outputs land beside it, with the
# subject/session structure of the dataset, and the dataset is never written.
WORK="${PATH_DATA_PROCESSED}/${SUBJECT}/anat"
mkdir -p "$WORK" "$PATH_RESULTS" "$PATH_QC"
cd "$WORK"
cp "$SOURCE" "${FILE}.nii.gz"
if [ -f "$(sidecar "$SOURCE")" ]; then cp "$(sidecar "$SOURCE")" "${FILE}.json"; fi
LESION="${FILE}_lesion_seg.nii.gz"
rm -f "$LESION" "$(sidecar "$LESION")"  # a rerun never mixes this run's mask with an earlier one's

ARGS=(-i "${FILE}.nii.gz" -qc "$PATH_QC" -qc-dataset "$(basename "$PATH_DATA")" -qc-subject "$SUBJECT")
for folder in ${CUSTOM_MODELS:-}; do
  ARGS+=(-custom-model "$folder")
done
if [ -n "$MANUAL_LESION" ]; then
  # As SCT's segment_if_does_not_exist: the manual mask becomes the mask of this run.
  echo "Found manual lesion mask: ${MANUAL_LESION}"
  cp "$MANUAL_LESION" "$LESION"
  if [ -f "$(sidecar "$MANUAL_LESION")" ]; then cp "$(sidecar "$MANUAL_LESION")" "$(sidecar "$LESION")"; fi
  ARGS+=(-lesion "$LESION")
else
  echo "No manual lesion mask used: segmenting ${FILE}."
fi
if [ -n "$MANUAL_CORD" ]; then
  echo "Found manual cord mask: ${MANUAL_CORD}"
  cp "$MANUAL_CORD" .
  ARGS+=(-s "$(basename "$MANUAL_CORD")")
fi

# Segmentation (unless -lesion) and diagnosis; exit status 0 also for an empty lesion mask.
sct_classify_lesion "${ARGS[@]}" ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"}

cp "${FILE}_diagnosis.json" "${PATH_RESULTS}/${FILE}_diagnosis.json"
if [ -f "${FILE}_lesion_seg_analysis.csv" ]; then
  cp "${FILE}_lesion_seg_analysis.csv" "${PATH_RESULTS}/${FILE}_lesion_seg_analysis.csv"
fi
echo "${NAME}: ${SUBJECT} done (${WORK}, finished $(date -u +%Y-%m-%dT%H:%M:%SZ))"
