"""One lesion drawn for one measured cord: class statistics, parts, and where they go.

The draws are the phantoms' own, unchanged: ``phantom.cohort.sample_subject_params`` (age, sex,
total volume, lesion count, extent in vertebral segments: Zhuo et al. Table 1) and
``phantom.lesions.build_parts`` (the parts of each class: solid tumour with its polar and
intratumoral cysts, hemorrhagic caps and oedema halo; MS plaques, NMOSD lesions with bright spotty
foci; their eccentricity, shape, texture and T2 ratio to the cord). The parts are built in the
cord's arc coordinate (``cord_frame``) instead of the phantom's z, from the measured radii, so they
follow the cord; the extent in segments becomes millimetres with ``segment_mm`` (the height of one
vertebral segment, body and disc; 17.5 mm is the phantoms' adult cervical value).

What the phantoms do that a real image cannot: widen the cord around a tumour (mass effect). Here
the parts that widen the cord in the phantoms (a tumour's solid part and polar cysts) are narrowed
instead, where needed, to leave the phantoms' rim of cord around them (:data:`CORD_RIM_MM`); they keep
their offset from the centre (eccentricity), shape and length, but a large tumour's volume falls
below its draw. The level (cervical, thoracic, lumbar) is the scan's own.

Placement: the lesion lies entirely inside the cord's span when it fits (uniformly at random along
it). A lesion longer than the cord in the image is refused (:class:`~sct_lesion_classify.errors.
InputError`, the lengths found and needed in the message) unless ``allow_partial``: then it runs
out of the field of view at one or both ends, as in a cropped scan, and is placed so that the part
inside the image holds as much lesion as the draw allows (at least :data:`MIN_VISIBLE_MM` when it
can).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sct_lesion_classify.errors import InputError
from sct_lesion_classify.insertion.cord_frame import CordFrame
from sct_lesion_classify.phantom.cohort import SubjectParams, sample_subject_params
from sct_lesion_classify.phantom.lesions import LesionPart, build_parts, lesion_span

#: Adult cervical vertebral segment (body and disc), mm: ``phantom.anatomy``'s C3-C7 height.
DEFAULT_SEGMENT_MM = 17.5
#: Shortest cord (along its centreline) that any lesion is painted into, even with allow_partial.
MIN_CORD_MM = 8.0
#: Length of lesion a partial placement tries to keep inside the image.
MIN_VISIBLE_MM = 5.0
#: Right-left and anterior-posterior rim of cord left around a tumour (``phantom.lesions.cord_expansion``
#: widens the cord to this rim; a real cord cannot be widened, so the tumour is narrowed to it).
CORD_RIM_MM = (0.9, 0.7)
#: A narrowed part keeps at least this fraction of the cord's radii.
MIN_NARROWED_FRACTION = 0.35


@dataclass(frozen=True)
class LesionPlan:
    """A lesion drawn for one cord, ready to paint.

    Attributes
    ----------
    params
        The class-conditional draw (diagnosis, age, sex, volume, count, extent in segments...).
    parts
        The lesion's parts, their ``z_center`` and ``half_length`` in the cord's arc coordinate.
    extent_mm
        Bottom and top arc coordinates of the parts that belong to the lesion mask.
    partial
        True when the lesion is longer than the cord in the image and runs out of it.
    """

    params: SubjectParams
    parts: tuple[LesionPart, ...]
    extent_mm: tuple[float, float]
    partial: bool

    @property
    def diagnosis(self) -> str:
        return self.params.diagnosis


class _CordAsAnatomy:
    """What ``phantom.lesions.build_parts`` reads of an anatomy, for a measured cord.

    Positions are arc coordinates; levels count vertebral segments of ``segment_mm`` down from
    ``top_arc_mm``; the radii are the measured axial ones (so the phantom's 1 / cos widening of
    the anterior-posterior radius is already in them: ``cosine`` is 1).
    """

    def __init__(self, frame: CordFrame, top_arc_mm: float, segment_mm: float) -> None:
        self._frame = frame
        self._top = top_arc_mm
        self._segment = segment_mm
        self.spine = self

    def z_of_level(self, level: np.ndarray | float) -> np.ndarray:
        return self._top - np.asarray(level, dtype=np.float64) * self._segment

    def cord_radii(self, arc_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._frame.radii_at_arc(arc_mm)

    def cosine(self, arc_mm: np.ndarray) -> np.ndarray:
        return np.ones_like(np.asarray(arc_mm, dtype=np.float64))


def draw_lesion_plan(rng: np.random.Generator, diagnosis: str, frame: CordFrame, *,
                     segment_mm: float = DEFAULT_SEGMENT_MM, allow_partial: bool = False,
                     where: str = "cord mask") -> LesionPlan:
    """Draw a lesion of ``diagnosis`` and place it along the cord of ``frame``.

    Parameters
    ----------
    rng
        The case's generator (the same state gives the same plan).
    where
        What to name in an error message (e.g. the cord mask's path and the case).

    Raises
    ------
    InputError
        The cord is shorter than :data:`MIN_CORD_MM`, or shorter than the lesion drawn and
        ``allow_partial`` is False.
    """
    bottom, top = frame.arc_range_mm
    cord_mm = top - bottom
    if cord_mm < MIN_CORD_MM:
        raise InputError(f"{where}: the cord is {cord_mm:.1f} mm long along its centreline; "
                         f"at least {MIN_CORD_MM:g} mm is needed to paint a lesion into it")
    params = sample_subject_params(rng, diagnosis)
    drawn_mm = params.extent_segments * segment_mm
    if drawn_mm <= cord_mm:
        lesion_top = float(rng.uniform(bottom + drawn_mm, top))
    else:
        _refuse_unless_partial(allow_partial, where, cord_mm, drawn_mm, params, segment_mm)
        lesion_top = float(rng.uniform(top, bottom + drawn_mm))
    anatomy = _CordAsAnatomy(frame, lesion_top, segment_mm)
    parts = build_parts(rng, params, anatomy, 0.0, params.extent_segments)
    low, high = lesion_span(parts)
    needed_mm = high - low
    if needed_mm <= cord_mm:  # the parts may reach past the drawn span (cysts, plaque gaps)
        shift = max(bottom - low, 0.0) + min(top - high, 0.0)
        partial = False
    else:
        _refuse_unless_partial(allow_partial, where, cord_mm, needed_mm, params, segment_mm)
        shift = _partial_shift(parts, bottom, top)
        partial = True
    parts = [_narrowed_to_cord(dataclasses.replace(p, z_center=p.z_center + shift), frame)
             for p in parts]
    return LesionPlan(params, tuple(parts), (low + shift, high + shift), partial)


def _narrowed_to_cord(part: LesionPart, frame: CordFrame) -> LesionPart:
    """A part that widens the cord in the phantoms, narrowed to leave :data:`CORD_RIM_MM` of cord."""
    if not part.expands_cord:
        return part
    cord_x, cord_y = (float(np.mean(r)) for r in frame.radii_at_arc(
        np.linspace(part.z_center - part.half_length, part.z_center + part.half_length, 9)))
    room_x = max(cord_x - abs(part.offset_x) - CORD_RIM_MM[0], MIN_NARROWED_FRACTION * cord_x)
    room_y = max(cord_y - abs(part.offset_y) - CORD_RIM_MM[1], MIN_NARROWED_FRACTION * cord_y)
    return dataclasses.replace(part, radius_x=min(part.radius_x, room_x),
                               radius_y=min(part.radius_y, room_y))


def _refuse_unless_partial(allow_partial: bool, where: str, cord_mm: float, needed_mm: float,
                           params: SubjectParams, segment_mm: float) -> None:
    if allow_partial:
        return
    raise InputError(
        f"{where}: the cord is {cord_mm:.1f} mm long along its centreline; the {params.diagnosis} "
        f"lesion drawn needs {needed_mm:.1f} mm ({needed_mm / segment_mm:.2f} vertebral segments of "
        f"{segment_mm:g} mm). Use a scan with a longer field of view, a smaller --segment-mm, or "
        f"--allow-partial to let lesions run out of the image")


def _visible_mm(parts: list[LesionPart], shift: float, bottom: float, top: float) -> float:
    """Length of cord in [bottom, top] covered by the lesion-mask parts once shifted."""
    cover = np.zeros(256, dtype=bool)
    grid = np.linspace(bottom, top, cover.size)
    for p in parts:
        if p.in_mask:
            cover |= np.abs(grid - (p.z_center + shift)) <= p.half_length
    return float(cover.mean() * (top - bottom))


def _partial_shift(parts: list[LesionPart], bottom: float, top: float) -> float:
    """Shift of a lesion longer than the cord: none when enough of it is visible, else the nearest
    shift (keeping the cord inside the lesion's span) that shows the most of it."""
    wanted = min(MIN_VISIBLE_MM, top - bottom)
    if _visible_mm(parts, 0.0, bottom, top) >= wanted:
        return 0.0
    low, high = lesion_span(parts)
    candidates = np.linspace(top - high, bottom - low, 201)
    candidates = candidates[np.argsort(np.abs(candidates))]
    visible = np.array([_visible_mm(parts, float(c), bottom, top) for c in candidates])
    enough = np.flatnonzero(visible >= wanted)
    return float(candidates[enough[0]] if enough.size else candidates[int(np.argmax(visible))])
