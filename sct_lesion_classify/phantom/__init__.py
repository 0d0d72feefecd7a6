"""Synthetic sagittal T2w spine MRI with intramedullary lesions, and a BIDS writer.

``generate_subject`` makes one subject (arrays in the canonical orientation of ``io.image``);
``write_dataset`` writes a BIDS dataset (SPEC section 6).

Styles (``generate_subject(style=...)``, ``write_dataset(style=...)``, ``phantom --style``):

- ``realistic`` (default): one clinical sagittal T2w protocol (``geometry``, ``render``); numpy and
  scipy only. Its output for a given seed is the one it has always been.
- ``randomised``: domain randomisation as SynthSeg, for training. Per subject, ``style`` draws from
  ``style.RANDOMISED``: the T2w intensity of every tissue (independent, T2-like, fat-suppressed or
  low CSF/cord contrast), bias field, noise type and level, blur, Gibbs ringing, k-space spikes and
  gamma; in-plane pixels of 0.3-1.2 mm, slices of 0.8-4 mm or isotropic 3D voxels of 0.8-1.2 mm,
  fields of view of 100-400 mm or crops down to 16 mm; the spine tilted by +-35 degrees in the
  sagittal plane and up to 25 in the coronal one, reversed or exaggerated lordosis and kyphosis,
  scoliosis; any level from the posterior fossa to S1 with the cord leaving the field at either end;
  lesion look-alikes outside the cord (bright fat, haemangioma, vessels, CSF flow voids and
  pulsation, textured muscle, degenerated discs, a compressed level).
- ``shifted``: for evaluation only, a family ``randomised`` never draws (``style.HELD_OUT``): slice
  thickness and spacing of 1.7-2.3 mm, a coronal tilt of 8-12 degrees, CSF at 0.25-0.5 of the cord's
  intensity (darker than the cord). Everything else is shared with ``randomised``.

The same seed gives the same patient in every style (diagnosis-conditional draws of ``cohort``,
anatomy, lesion parts): the random styles change appearance and geometry, not the class statistics
(Zhuo et al. Table 1). The whole lesion is in the field of view except in a crop. Masks are painted
on the output grid with exact partial volume across slices, as in the realistic style. The random
styles need MONAI (its MRI artefact transforms, see ``artefacts``) and so PyTorch; without them they
fail with a one-line ``InputError``. ``augment.randomise_record`` applies the randomised style on the
fly to an existing (image, cord mask, lesion mask) record for training.

Modules, one job each: ``geometry`` (acquisition), ``anatomy`` (spine, cord, surroundings),
``lesions`` (the four classes and their signs), ``cohort`` (class-conditional distributions,
``difficult``), ``raster`` (exact partial volume across thick slices), ``render`` (painting;
the realistic intensities, bias, noise), ``measure`` (lesion statistics and cord tilt from the
masks), ``dataset`` (BIDS); for the random styles ``style`` (stated ranges and draws), ``framing``
(posture, field of view), ``lookalikes``, ``appearance`` (tissue intensities, textures),
``artefacts`` (MONAI), ``styled`` (one subject), ``augment`` (records on the fly).

Not modelled: the sacrum below S1, pelvis and ribs, the brain above the posterior fossa; motion and
ghosting (TorchIO's, not installed); a tilt is a shear of the anatomy (lengths along the spine are
kept, thicknesses across it shrink by cos(tilt)), not a rigid rotation; in-plane partial volume
(voxels are point-sampled in-plane, in every style).
"""

from sct_lesion_classify.phantom.cohort import DIAGNOSES
from sct_lesion_classify.phantom.measure import LesionStats
from sct_lesion_classify.phantom.subject import PhantomSubject, generate_subject

__all__ = ["DIAGNOSES", "LesionStats", "PhantomSubject", "generate_subject", "write_dataset"]


def __getattr__(name: str):
    if name == "write_dataset":
        from sct_lesion_classify.phantom.dataset import write_dataset
        return write_dataset
    raise AttributeError(name)
