"""One subject of a random style (``randomised`` or ``shifted``, see ``style``).

The subject's own generator (seeded with ``seed``) draws exactly what the realistic style draws for
the patient: diagnosis-conditional parameters (``cohort``), anatomy and the lesion parts, in the same
order, so the class statistics are the realistic style's. A second generator, seeded with
(``seed``, style), draws the style (``style.draw_style``) and its random placements. Then: posture and
tilt (``framing.pose``, ``framing.tilt_about``), field of view (``framing.frame``), a compressed
level and the lookalikes (``lookalikes``), tissue intensities and textures (``appearance``),
painting with exact partial volume (``render.paint_layers``) and the artefacts (``artefacts``,
MONAI). Masks come from the painting, on the output grid.

:func:`plan_styled` does the drawing and the placement (cheap, numpy only); :func:`generate_styled`
renders the plan.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sct_lesion_classify.phantom import anatomy as anat
from sct_lesion_classify.phantom import appearance, cohort, framing, lesions, lookalikes, render, style
from sct_lesion_classify.phantom.artefacts import apply_artefacts, require_monai
from sct_lesion_classify.phantom.cohort import SubjectParams

#: Textures: coarse-grid spacing (right-left, anterior-posterior, superior-inferior), mm.
MUSCLE_TEXTURE_MM = (4.0, 3.0, 12.0)
CSF_PULSATION_MM = (float("inf"), 4.0, 20.0)
#: Stream of the style's own generator (see the module docstring).
STYLE_STREAM = 7


def style_rng(seed: int, style_name: str) -> np.random.Generator:
    """The generator that draws the style of subject ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, STYLE_STREAM, style.STYLES.index(style_name)]))


@dataclass(frozen=True)
class StyledPlan:
    """A random-style subject drawn and placed, before rendering.

    ``rng`` (the patient's generator) and ``style_rng`` continue where the plan left them.
    """

    cohort: SubjectParams
    draw: style.StyleParams
    anatomy: anat.Anatomy
    parts: list[lesions.LesionPart]
    lesion_levels: tuple[float, float]
    framed: framing.Framed
    rng: np.random.Generator
    style_rng: np.random.Generator


def plan_styled(seed: int, diagnosis: str, style_name: str, *, shape: tuple[int, int, int] | None = None,
                params: style.StyleParams | None = None) -> StyledPlan:
    """Draw the patient (as the realistic style does) and the style; pose and frame the subject.

    ``params`` replaces the drawn style (tests, tools); the placements still come from the style's
    generator.

    Raises
    ------
    ValueError
        Unknown diagnosis or random style.
    """
    if style_name not in style.RANGES:
        raise ValueError(f"unknown random style {style_name!r}; choose from {', '.join(style.RANGES)}")
    if params is not None and params.style != style_name:
        raise ValueError(f"style_params drawn for {params.style!r}, not {style_name!r}")
    rng = np.random.default_rng(seed)
    cohort_params = cohort.sample_subject_params(rng, diagnosis)
    base = anat.sample_anatomy(rng, cohort_params.age, cohort_params.sex)
    srng = style_rng(seed, style_name)
    draw = style.draw_style(srng, style_name) if params is None else params
    posed = framing.pose(base, draw.posture, draw.lookalikes.disc_degeneration, srng)
    top_level, bottom_level = lesions.place_lesion(rng, cohort_params, anat.Anatomy(posed))
    z_origin = float(posed.spine.z_of_level((top_level + bottom_level) / 2))
    anatomy = anat.Anatomy(framing.tilt_about(posed, draw.posture, z_origin))
    parts = lesions.build_parts(rng, cohort_params, anatomy, top_level, bottom_level)
    framed = framing.frame(draw.acquisition, anatomy, parts, shape, style.RANGES[style_name], srng)
    return StyledPlan(cohort_params, draw, framed.anatomy, parts, (top_level, bottom_level), framed,
                      rng, srng)


def generate_styled(seed: int, diagnosis: str, *, participant_id: str, shape: tuple[int, int, int] | None,
                    with_t1c: bool, style_name: str, params: style.StyleParams | None = None):
    """A :class:`~sct_lesion_classify.phantom.subject.PhantomSubject` of ``style_name``.

    Raises
    ------
    InputError
        MONAI or PyTorch missing.
    ValueError
        Unknown diagnosis or style.
    """
    from sct_lesion_classify.phantom.subject import measured_subject

    if style_name in style.RANGES:
        require_monai(style_name)
    plan = plan_styled(seed, diagnosis, style_name, shape=shape, params=params)
    painted, cord, _ = paint_plan(plan, with_t1c=with_t1c)
    draw, anatomy, geometry = plan.draw, plan.anatomy, plan.framed.geometry
    t2w = apply_artefacts(painted.t2w, draw.artefacts)
    t1c = None if painted.t1c is None else apply_artefacts(painted.t1c, draw.artefacts, seed_offset=1)
    return measured_subject(participant_id, plan.cohort, dataclasses.replace(painted, t2w=t2w, t1c=t1c),
                            cord, geometry, anatomy, style_name, draw, plan.framed.lesion_in_view)


def paint_plan(plan: StyledPlan, *, with_t1c: bool = False
               ) -> tuple[render.Rendered, anat.CordModel, lookalikes.Compression | None]:
    """The noise-free images and exact masks of a plan (numpy and scipy only), its cord and the
    compressed level."""
    rng, srng, draw, anatomy, parts = plan.rng, plan.style_rng, plan.draw, plan.anatomy, plan.parts
    geometry = plan.framed.geometry
    compression = lookalikes.place_compression(draw.lookalikes, anatomy, geometry, plan.lesion_levels, srng)
    narrowing = None if compression is None else compression.narrowing(anatomy, geometry)
    cord = lesions.expanded_cord(parts, anatomy, geometry, narrowing)
    layers = anat.anatomy_layers(anatomy, geometry, cord, rng)
    layers += lookalikes.lookalike_layers(draw.lookalikes, compression, anatomy, geometry, cord, srng)
    cord_layer = anat.cord_layer(cord, geometry)
    lesion_layers = lesions.lesion_layers(parts, cord, geometry, rng)

    muscle = appearance.texture_field(draw.lookalikes.muscle_texture, MUSCLE_TEXTURE_MM, geometry, srng)
    pulsation = appearance.texture_field(draw.lookalikes.csf_pulsation, CSF_PULSATION_MM, geometry, srng)
    textures = {"muscle": muscle, "paraspinal": muscle, "csf": pulsation}
    layers = [appearance.textured(appearance.restyle(layer, draw.contrast), textures.get(layer.name))
              for layer in layers]
    cord_layer = None if cord_layer is None else appearance.restyle(cord_layer, draw.contrast)
    painted = render.paint_layers(
        geometry, layers, cord_layer, cord.in_mask,
        [(part.in_mask, appearance.restyle(layer, draw.contrast)) for part, layer in lesion_layers],
        with_t1c=with_t1c, background=(draw.contrast.t2_of("air"), draw.contrast.t1_of("air")))
    return painted, cord, compression
