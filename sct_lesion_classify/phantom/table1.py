"""Class-conditional statistics of the phantoms, measured, against Zhuo et al. Table 1 (issue 15).

:func:`draw_records` draws subjects of one diagnosis with the generator (``subject.draw_patient`` for
``realistic``, ``styled.plan_styled`` for the random styles: the parameters, cheap) and, when asked,
renders their masks to measure the lesion (``measure.measure_lesions``: volume, count, extension in
segments, span). :func:`summarise` reduces them per class (:class:`ClassSummary`) and
:func:`comparison_markdown` writes the comparison with :func:`targets`, the figures the generator
aims at. ``python -m bench.phantom_table1`` prints it; ``docs/phantoms.md`` holds the result and its
discussion (section "Class-conditional statistics vs Zhuo et al. Table 1").

Where the targets come from (:data:`SOURCES`): the volume, count, extension, location and
enhancement figures are those written in ``cohort.PROFILES``, whose docstring cites Zhuo et al.,
Radiology: AI 2022;4(6):e210292, Table 1, training column. The paper's text was not reachable from
this project's sources (only its abstract: 118 astrocytomas, 130 ependymomas, 101 MS, 141 NMOSD in
training), so the figures are checked against the code's citation, not against the paper itself; the
issue text confirms enhancement in 13% of MS and 16% of NMOSD. Age and sex are, by the same
docstring, typical published values and not the paper's. Cysts and haemorrhage (the cap sign) have
no Table 1 figure in the code: their rates (``lesions.build_parts``) are reported, not compared.

Definitions of what is measured from a mask:

- extension: top of the highest to bottom of the lowest lesion, in vertebral segments (``LesionStats``);
  per lesion: the same for each counted component;
- count: 26-connected components of at least ``measure.MIN_COMPONENT_MM3``;
- location (:func:`location_of`): ``conus`` when the lesion's lower end is within
  :data:`CONUS_MARGIN_LEVELS` segment of the conus tip, else ``cervical`` when its middle lies in
  C1-C7, else ``thoracic``; the generator's ``lumbar`` region is a lesion ending just above the conus
  (``lesions.place_lesion``).

Result (realistic, 300 subjects per class, measured from the masks; after issue 15's fixes of the
astrocytomas' extension and volume factors in ``lesions``; the full table, the randomised style and
what is left are in ``docs/phantoms.md``):

=========== ================== ============== ================ ============== ==========
class       extension median   count: one     volume ml        location C/T/  enhancing
            (IQR), segments    lesion         mean +/- SD      conus          (drawn)
=========== ================== ============== ================ ============== ==========
astrocytoma Table 1: 4 (3-6)   100%           12.6 +/- 10.8    57/33/10%      72%
            3.9 (2.9-5.3)      99%            11.7 +/- 8.2     57/31/12%      72%
ependymoma  Table 1: 3 (2-4)   100%           15.1 +/- 11.7    65/21/14%      76%
            3.0 (2.2-4.2)      99%            14.6 +/- 7.8     69/18/13%      72%
MS          Table 1: 3 (2-5)   32%            1.3 +/- 1.6      70/30/0%       13%
            3.0 (1.9-4.8)      30%            1.2 +/- 1.0      67/32/1%       13%
NMOSD       Table 1: 4 (2.5-6) 62%            3.0 +/- 3.0      50/50/0%       16%
            4.0 (2.5-5.7)      63%            2.7 +/- 2.0      55/43/3%       18%
=========== ================== ============== ================ ============== ==========

Each MS plaque alone spans 1.0 (0.5-1.6) segments, each NMOSD lesion 2.1 (1.1-4.0). The volume SD
of ependymoma, MS and NMOSD is about a third below Table 1's: the largest drawn lesions do not fit
in the cord at their drawn extension (``docs/phantoms.md``).

A random style draws the patient exactly as ``realistic`` does (same seed, same parameters), so its
parameters' statistics are the realistic ones by construction; its masks are measured on the drawn
acquisition (or on coarser voxels, ``voxel_floor_mm``) and only where the whole lesion is in the field
of view (a crop may cut it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sct_lesion_classify.phantom.cohort import DIAGNOSES, PROFILES, SubjectParams
from sct_lesion_classify.phantom.dataset import subject_seed
from sct_lesion_classify.phantom.measure import LesionStats, measure_lesions
from sct_lesion_classify.phantom.style import STYLES, StyleParams

LOCATIONS = ("cervical", "thoracic", "conus")
#: Generator region -> measured location name.
REGION_LOCATION = {"cervical": "cervical", "thoracic": "thoracic", "lumbar": "conus"}
#: A lesion whose lower end lies within this many segments of the conus tip is a conus lesion.
CONUS_MARGIN_LEVELS = 1.0
#: Level coordinate of the top of T1 (C1-C7 are levels 0-7).
T1_LEVEL = 7.0
#: Realistic renders for measuring (canonical RL, AP, SI; pixels of about 1.1-1.4 mm).
REALISTIC_SHAPE = (13, 96, 224)

SOURCES = {
    "volume": "cohort.PROFILES, citing Table 1 (mean, SD)",
    "count": "cohort.PROFILES (P(count)); tests/test_phantom.py quotes Table 1: tumours 1, MS median 2 "
             "(IQR 1-3), NMOSD median 1 (IQR 1-2)",
    "extent": "cohort.PROFILES, citing Table 1 (median, IQR)",
    "location": "cohort.PROFILES, citing Table 1",
    "enhancement": "cohort.PROFILES, citing Table 1; issue 15 quotes MS 13%, NMOSD 16%",
    "age": "cohort.PROFILES: typical published values, not the paper's (cohort docstring)",
    "sex": "cohort.PROFILES: typical published values, not the paper's (cohort docstring)",
}


@dataclass(frozen=True)
class SubjectRecord:
    """One drawn subject: what the generator drew and, when rendered, what its mask measures.

    Attributes
    ----------
    params
        The class-conditional draw (``cohort.sample_subject_params``).
    lesion_levels
        Top and bottom of the placed lesion span (level coordinates, ``lesions.place_lesion``).
    conus_level
        The subject's conus tip (level coordinate).
    part_kinds
        Kinds of the lesion's parts (``solid``, ``cyst``, ``cap``, ``focus``, ``halo``).
    stats
        Measured from the rendered mask; None when not rendered or when the lesion is cut.
    """

    seed: int
    style: str
    params: SubjectParams
    lesion_levels: tuple[float, float]
    conus_level: float
    part_kinds: tuple[str, ...]
    stats: LesionStats | None


@dataclass(frozen=True)
class Spread:
    """Mean, SD, median and quartiles of some values (NaN when there are none)."""

    n: int
    mean: float
    sd: float
    median: float
    q1: float
    q3: float

    @classmethod
    def of(cls, values) -> "Spread":
        data = np.asarray(list(values), dtype=np.float64)
        if data.size == 0:
            return cls(0, *(float("nan"),) * 5)
        q1, median, q3 = np.percentile(data, [25, 50, 75])
        sd = float(data.std(ddof=1)) if data.size > 1 else 0.0
        return cls(int(data.size), float(data.mean()), sd, float(median), float(q1), float(q3))


@dataclass(frozen=True)
class ClassSummary:
    """Per-class statistics of :func:`summarise` (``*_drawn``: the parameters; ``*_measured``: the
    masks of the subjects whose whole lesion was rendered, ``measured`` of them).

    Location shares are in the order of :data:`LOCATIONS`.
    """

    diagnosis: str
    style: str                 # realistic | randomised | shifted
    subjects: int              # drawn
    measured: int              # of them, measured from masks (the whole lesion rendered)
    # the lesion: drawn, then measured
    location_drawn: tuple[float, float, float]
    location_measured: tuple[float, float, float]
    extent_drawn: Spread
    extent_measured: Spread
    lesion_extent_measured: Spread
    count_drawn: Spread
    count_measured: Spread
    single_lesion_drawn: float
    single_lesion_measured: float
    volume_drawn: Spread
    volume_measured: Spread
    # drawn only: the patient and the lesion's signs (shares of subjects)
    enhancing: float
    age: Spread
    female: float
    cysts: float
    caps: float


@dataclass(frozen=True)
class ClassTarget:
    """The figures the generator aims at for one class (:func:`targets`; sources in :data:`SOURCES`)."""

    diagnosis: str
    volume_ml: tuple[float, float]               # mean, SD
    count_median: float
    single_lesion: float                         # P(count = 1)
    extent_segments: tuple[float, float, float]  # median, Q1, Q3
    location: tuple[float, float, float]         # cervical, thoracic, conus
    enhancement: float
    age: tuple[float, float]                     # mean, SD
    female: float


def targets() -> dict[str, ClassTarget]:
    """The target figures of every class, as written in ``cohort.PROFILES``."""
    out = {}
    for diagnosis in DIAGNOSES:
        prof = PROFILES[diagnosis]
        cdf = np.cumsum(prof.count_pmf)
        out[diagnosis] = ClassTarget(diagnosis, prof.volume_ml, float(np.searchsorted(cdf, 0.5) + 1),
                                     prof.count_pmf[0], prof.extent_segments, prof.level_probs,
                                     prof.enhancement_rate, prof.age, prof.female_fraction)
    return out


def location_of(top_level: float, bottom_level: float, conus_level: float) -> str:
    """Location of a lesion spanning ``top_level`` ... ``bottom_level`` (module docstring)."""
    if bottom_level >= conus_level - CONUS_MARGIN_LEVELS:
        return "conus"
    return "cervical" if (top_level + bottom_level) / 2 < T1_LEVEL else "thoracic"


def coarser(params: StyleParams, voxel_floor_mm: float) -> StyleParams:
    """``params`` with voxels no smaller than ``voxel_floor_mm`` (in-plane, and across slices with
    the drawn gap): the same patient and field of view, rendered faster."""
    acq = params.acquisition
    pixel = max(acq.pixel_mm, voxel_floor_mm)
    thickness = max(acq.slice_thickness_mm, voxel_floor_mm)
    spacing = thickness * acq.slice_spacing_mm / acq.slice_thickness_mm
    if acq.isotropic:
        thickness = spacing = pixel
    return dataclasses.replace(params, acquisition=dataclasses.replace(
        acq, pixel_mm=pixel, slice_thickness_mm=thickness, slice_spacing_mm=spacing))


def draw_records(diagnosis: str, n: int, *, style: str = "realistic", seed: int = 0, render: bool = True,
                 shape: tuple[int, int, int] | None = REALISTIC_SHAPE,
                 voxel_floor_mm: float | None = None) -> list[SubjectRecord]:
    """Draw ``n`` subjects of ``diagnosis`` (seeds ``dataset.subject_seed(seed, 4 k + class index)``).

    Parameters
    ----------
    style
        ``realistic``, ``randomised`` or ``shifted``.
    render
        Render the masks (no noise, no artefacts) and measure them; False: the parameters only.
    shape
        Realistic style: the canonical render shape (the default keeps renders at about 0.05 s).
        Ignored by the random styles, which render their drawn acquisition.
    voxel_floor_mm
        Random styles: render with voxels no smaller than this (:func:`coarser`); None: as drawn.

    Raises
    ------
    ValueError
        Unknown diagnosis or style.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")
    if diagnosis not in DIAGNOSES:
        raise ValueError(f"unknown diagnosis {diagnosis!r}; choose from {', '.join(DIAGNOSES)}")
    records = []
    for k in range(n):
        # the classes' subjects interleave as in a dataset: independent draws across classes
        subject = subject_seed(seed, k * len(DIAGNOSES) + DIAGNOSES.index(diagnosis))
        if style == "realistic":
            records.append(_realistic_record(subject, diagnosis, render, shape))
        else:
            records.append(_styled_record(subject, diagnosis, style, render, voxel_floor_mm))
    return records


def _realistic_record(seed: int, diagnosis: str, render: bool,
                      shape: tuple[int, int, int] | None) -> SubjectRecord:
    from sct_lesion_classify.phantom.subject import draw_patient, generate_subject

    patient = draw_patient(np.random.default_rng(seed), diagnosis)
    stats = generate_subject(seed, diagnosis, shape=shape).lesion_stats if render else None
    return SubjectRecord(seed, "realistic", patient.params, patient.lesion_levels,
                         patient.anatomy.params.conus_level, tuple(p.kind for p in patient.parts), stats)


def _styled_record(seed: int, diagnosis: str, style_name: str, render: bool,
                   voxel_floor_mm: float | None) -> SubjectRecord:
    from sct_lesion_classify.phantom.styled import paint_plan, plan_styled, style_rng
    from sct_lesion_classify.phantom.style import draw_style

    params = None
    if voxel_floor_mm is not None:
        params = coarser(draw_style(style_rng(seed, style_name), style_name), voxel_floor_mm)
    plan = plan_styled(seed, diagnosis, style_name, params=params)
    stats = None
    if render and plan.framed.lesion_in_view:
        painted, cord, _ = paint_plan(plan)
        stats = measure_lesions(painted.lesion_mask, cord, plan.framed.geometry, plan.anatomy,
                                plan.cohort.enhancing)
    return SubjectRecord(seed, style_name, plan.cohort, plan.lesion_levels,
                         plan.anatomy.params.conus_level, tuple(p.kind for p in plan.parts), stats)


def _shares(names: list[str]) -> tuple[float, float, float]:
    """Share of each of :data:`LOCATIONS` in ``names`` (NaN when there are none)."""
    if not names:
        return (float("nan"),) * 3  # type: ignore[return-value]
    return tuple(names.count(name) / len(names) for name in LOCATIONS)  # type: ignore[return-value]


def summarise(records: list[SubjectRecord]) -> ClassSummary:
    """:class:`ClassSummary` of the records of one class and style.

    Raises
    ------
    ValueError
        No records, or records of several classes or styles.
    """
    if not records:
        raise ValueError("no records to summarise")
    if len({(r.params.diagnosis, r.style) for r in records}) != 1:
        raise ValueError("records of several classes or styles")
    params = [r.params for r in records]
    measured = [r for r in records if r.stats is not None and r.stats.total_volume_ml > 0]
    stats = [r.stats for r in measured]
    return ClassSummary(
        diagnosis=records[0].params.diagnosis, style=records[0].style, subjects=len(records),
        measured=len(measured),
        location_drawn=_shares([REGION_LOCATION[p.region] for p in params]),
        location_measured=_shares([location_of(*r.stats.span_levels, r.conus_level) for r in measured]),
        extent_drawn=Spread.of(p.extent_segments for p in params),
        extent_measured=Spread.of(s.extent_segments for s in stats),
        lesion_extent_measured=Spread.of(e for s in stats for e in s.lesion_extents_segments),
        count_drawn=Spread.of(p.count for p in params),
        count_measured=Spread.of(s.count for s in stats),
        single_lesion_drawn=float(np.mean([p.count == 1 for p in params])),
        single_lesion_measured=float(np.mean([s.count == 1 for s in stats])) if stats else float("nan"),
        volume_drawn=Spread.of(p.volume_ml for p in params),
        volume_measured=Spread.of(s.total_volume_ml for s in stats),
        enhancing=float(np.mean([p.enhancing for p in params])),
        age=Spread.of(p.age for p in params),
        female=float(np.mean([p.sex == "F" for p in params])),
        cysts=float(np.mean(["cyst" in r.part_kinds for r in records])),
        caps=float(np.mean(["cap" in r.part_kinds for r in records])))


def class_summaries(n: int, *, styles: tuple[str, ...] = ("realistic", "randomised"), seed: int = 0,
                    render: bool = True, voxel_floor_mm: float | None = None
                    ) -> dict[tuple[str, str], ClassSummary]:
    """:func:`summarise` of ``n`` subjects of every class in every style, keyed (style, diagnosis)."""
    return {(style, diagnosis): summarise(draw_records(diagnosis, n, style=style, seed=seed, render=render,
                                                       voxel_floor_mm=voxel_floor_mm))
            for style in styles for diagnosis in DIAGNOSES}


def _pct(value: float) -> str:
    return "-" if np.isnan(value) else f"{100 * value:.0f}%"


def _median_iqr(spread: Spread, digits: int = 1) -> str:
    if spread.n == 0:
        return "-"
    return f"{spread.median:.{digits}f} ({spread.q1:.{digits}f}-{spread.q3:.{digits}f})"


def _mean_sd(spread: Spread, digits: int = 1) -> str:
    return "-" if spread.n == 0 else f"{spread.mean:.{digits}f} +/- {spread.sd:.{digits}f}"


def comparison_markdown(summaries: dict[tuple[str, str], ClassSummary]) -> str:
    """One markdown table per class: target (:func:`targets`), then each style's drawn and measured
    figures (``drawn / measured``)."""
    goal = targets()
    styles = sorted({style for style, _ in summaries}, key=STYLES.index)
    lines = []
    for diagnosis in DIAGNOSES:
        if not any((style, diagnosis) in summaries for style in styles):
            continue
        t = goal[diagnosis]
        rows = [
            ("location C / T / conus", " / ".join(_pct(v) for v in t.location),
             lambda s: " / ".join(_pct(v) for v in s.location_drawn) + " ; "
             + (" / ".join(_pct(v) for v in s.location_measured) if s.measured else "-")),
            ("extent, segments: median (IQR)", f"{t.extent_segments[0]:g} ({t.extent_segments[1]:g}-"
             f"{t.extent_segments[2]:g})",
             lambda s: f"{_median_iqr(s.extent_drawn)} ; {_median_iqr(s.extent_measured)}"),
            ("extent, segments: mean +/- SD", "-",
             lambda s: f"{_mean_sd(s.extent_drawn)} ; {_mean_sd(s.extent_measured)}"),
            ("extent of each lesion: median (IQR)", "-",
             lambda s: f"- ; {_median_iqr(s.lesion_extent_measured)}"),
            ("count: median, share with one lesion", f"{t.count_median:g}, {_pct(t.single_lesion)}",
             lambda s: f"{s.count_drawn.median:g}, {_pct(s.single_lesion_drawn)} ; "
             + (f"{s.count_measured.median:g}, {_pct(s.single_lesion_measured)}" if s.measured else "-")),
            ("volume, ml: mean +/- SD", f"{t.volume_ml[0]:g} +/- {t.volume_ml[1]:g}",
             lambda s: f"{_mean_sd(s.volume_drawn)} ; {_mean_sd(s.volume_measured)}"),
            ("volume, ml: median (IQR)", "-",
             lambda s: f"{_median_iqr(s.volume_drawn, 2)} ; {_median_iqr(s.volume_measured, 2)}"),
            ("enhancement on cT1w", _pct(t.enhancement), lambda s: _pct(s.enhancing)),
            ("age, years: mean +/- SD", f"{t.age[0]:g} +/- {t.age[1]:g}", lambda s: _mean_sd(s.age)),
            ("female", _pct(t.female), lambda s: _pct(s.female)),
            ("cysts; haemorrhagic cap", "-", lambda s: f"{_pct(s.cysts)}; {_pct(s.caps)}"),
        ]
        header = f"| {diagnosis} | target |" + "".join(f" {style} (drawn ; measured) |" for style in styles)
        lines += [header, "| --- | --- |" + " --- |" * len(styles)]
        for name, target, cell in rows:
            values = "".join(f" {cell(summaries[(style, diagnosis)])} |" if (style, diagnosis) in summaries
                             else " - |" for style in styles)
            lines.append(f"| {name} | {target} |{values}")
        measured = ", ".join(f"{style}: {summaries[(style, diagnosis)].measured} of "
                             f"{summaries[(style, diagnosis)].subjects}" for style in styles
                             if (style, diagnosis) in summaries)
        lines += ["", f"Measured from masks ({diagnosis}): {measured}.", ""]
    return "\n".join(lines)
