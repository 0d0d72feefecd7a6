"""One synthetic subject: cohort parameters -> anatomy -> lesions -> field of view -> rendering.

The realistic style is generated here; the random styles by ``styled`` (same patient draws).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sct_lesion_classify.phantom import anatomy as anat
from sct_lesion_classify.phantom import cohort, geometry as geom, lesions, render
from sct_lesion_classify.phantom.measure import LesionStats, measure_lesions
from sct_lesion_classify.phantom.style import STYLES, StyleParams


@dataclass(frozen=True)
class PhantomSubject:
    """A generated subject; every array in the canonical orientation of ``io.image`` (RAS+).

    Attributes
    ----------
    t2w, t1c
        float32 integer-valued images (T2w; contrast-enhanced T1w or None).
    cord_mask
        bool, the cord (widened where a tumour expands it), below the medulla.
    lesion_mask
        bool, the whole lesion including cysts; a subset of ``cord_mask``.
    affine
        Canonical voxel-to-world affine (mm).
    storage_axcodes
        Orientation (nibabel codes) the subject is stored in by :func:`write_dataset`.
    lesion_stats
        Morphometry measured from ``lesion_mask``.
    style
        ``realistic``, ``randomised`` or ``shifted`` (``phantom.style``).
    style_params
        What the random style drew (None for ``realistic``).
    lesion_in_view
        Whether the field of view holds the whole lesion (False only for a crop that cuts it).
    """

    participant_id: str
    diagnosis: str
    age: float
    sex: str
    difficult: bool
    t2w: np.ndarray
    t1c: np.ndarray | None
    cord_mask: np.ndarray
    lesion_mask: np.ndarray
    affine: np.ndarray
    storage_axcodes: tuple[str, str, str]
    lesion_stats: LesionStats
    style: str = "realistic"
    style_params: StyleParams | None = None
    lesion_in_view: bool = True


@dataclass(frozen=True)
class Patient:
    """What the realistic style draws for one patient before the acquisition (:func:`draw_patient`).

    ``lesion_levels``: top and bottom of the lesion span as level coordinates (``lesions.place_lesion``).
    """

    params: cohort.SubjectParams
    anatomy: anat.Anatomy
    lesion_levels: tuple[float, float]
    parts: list[lesions.LesionPart]


def draw_patient(rng: np.random.Generator, diagnosis: str) -> Patient:
    """The class-conditional parameters, anatomy and lesion of one realistic subject, drawn from
    ``rng`` in the order :func:`generate_subject` draws them (cheap: nothing is rendered)."""
    params = cohort.sample_subject_params(rng, diagnosis)
    anatomy = anat.Anatomy(anat.sample_anatomy(rng, params.age, params.sex))
    top_level, bottom_level = lesions.place_lesion(rng, params, anatomy)
    parts = lesions.build_parts(rng, params, anatomy, top_level, bottom_level)
    return Patient(params, anatomy, (top_level, bottom_level), parts)


def generate_subject(seed: int, diagnosis: str, *, participant_id: str = "sub-001",
                     shape: tuple[int, int, int] | None = None,
                     with_t1c: bool = False, style: str = "realistic",
                     style_params: StyleParams | None = None) -> PhantomSubject:
    """Generate one subject, deterministically from ``seed``.

    Parameters
    ----------
    seed
        Seed of the subject's random generator; the same seed gives identical arrays.
    diagnosis
        One of ``cohort.DIAGNOSES``.
    shape
        Canonical array shape ``(RL slices, AP, SI)``; None samples a clinical geometry
        (see ``phantom.geometry``).
    with_t1c
        Also render a contrast-enhanced T1w in the same space.
    style
        ``realistic`` (the clinical protocol; needs numpy and scipy only), ``randomised`` or
        ``shifted`` (``phantom.style``; these need MONAI and PyTorch). The same seed gives the same
        patient (diagnosis-conditional parameters, anatomy, lesion) in every style.
    style_params
        For a random style: use these parameters instead of drawing them.

    Raises
    ------
    ValueError
        Unknown diagnosis or style, a bad shape, or ``style_params`` with ``realistic``.
    InputError
        A random style without MONAI or PyTorch.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")
    if style != "realistic":
        from sct_lesion_classify.phantom.styled import generate_styled

        return generate_styled(seed, diagnosis, participant_id=participant_id, shape=shape,
                               with_t1c=with_t1c, style_name=style, params=style_params)
    if style_params is not None:
        raise ValueError("style_params need a random style, not 'realistic'")
    rng = np.random.default_rng(seed)
    patient = draw_patient(rng, diagnosis)
    params, anatomy, parts = patient.params, patient.anatomy, patient.parts
    plan = geom.sample_plan(rng, shape)
    z_top = _fov_top(rng, params.region, parts, anatomy, plan.shape[2] * plan.pixel_mm)

    fov_z = np.linspace(z_top - plan.shape[2] * plan.pixel_mm, z_top, 64)
    anatomy = anatomy.with_shift(float(np.mean(anatomy.center_y(fov_z))), float(rng.normal(0.0, 1.5)))
    geometry = geom.place(plan, rng, z_top_mm=z_top, x_center_mm=0.0)

    cord = lesions.expanded_cord(parts, anatomy, geometry)
    layers = anat.anatomy_layers(anatomy, geometry, cord, rng)
    cord_layer = anat.cord_layer(cord, geometry)
    lesion_layers = lesions.lesion_layers(parts, cord, geometry, rng)
    rendered = render.render(geometry, layers, cord_layer, cord.in_mask,
                             [(part.in_mask, layer) for part, layer in lesion_layers], rng,
                             with_t1c=with_t1c)
    return measured_subject(participant_id, params, rendered, cord, geometry, anatomy)


def measured_subject(participant_id: str, params: cohort.SubjectParams, images: render.Rendered,
                     cord: anat.CordModel, geometry: geom.AcquisitionGeometry, anatomy: anat.Anatomy,
                     style_name: str = "realistic", style_params: StyleParams | None = None,
                     lesion_in_view: bool = True) -> PhantomSubject:
    """The :class:`PhantomSubject` of final images and masks: its lesion measured
    (``measure.measure_lesions``) and the ``difficult`` rule applied to the measures."""
    stats = measure_lesions(images.lesion_mask, cord, geometry, anatomy, params.enhancing)
    difficult = cohort.is_difficult_measured(params.diagnosis, stats.total_volume_ml,
                                             stats.extent_segments, stats.count, stats.eccentricity)
    return PhantomSubject(participant_id, params.diagnosis, params.age, params.sex, difficult,
                          images.t2w, images.t1c, images.cord_mask, images.lesion_mask,
                          geometry.affine(), geometry.storage_axcodes, stats, style_name, style_params,
                          lesion_in_view)


def _fov_top(rng: np.random.Generator, region: str, parts: list[lesions.LesionPart],
             anatomy: anat.Anatomy, fov: float) -> float:
    """Top (z, mm) of a field of view that holds the lesion, placed as for its region."""
    lesion_top = max(p.z_center + p.half_length for p in parts)
    lesion_bottom = min(p.z_center - p.half_length for p in parts)
    spine = anatomy.spine
    if region == "cervical":
        top = rng.uniform(20.0, 60.0)
    elif region == "thoracic":
        top = (lesion_top + lesion_bottom) / 2 + fov / 2 + rng.uniform(-0.2, 0.2) * fov
    else:
        top = float(spine.z_of_level(rng.uniform(22.5, 24.5))) + fov
    margin = min(12.0, max((fov - (lesion_top - lesion_bottom)) / 2, 0.0))
    top = max(top, lesion_top + margin)
    top = min(top, lesion_bottom - margin + fov)
    return float(top)
