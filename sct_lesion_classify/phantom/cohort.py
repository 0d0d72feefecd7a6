"""Class-conditional distributions of the four diagnoses, and the ``difficult`` rule.

Lesion morphometry follows Zhuo et al., Radiology: AI 2022;4(6):e210292, Table 1 (training
column): total lesion volume (mean +/- SD, drawn from a log-normal with that mean and SD),
lesion count (median, IQR), superior-inferior extension in vertebral segments (median, IQR; for
several lesions, from the top of the highest to the bottom of the lowest), level distribution and
contrast-enhancement rate on cT1w. Volume and extension are correlated (Gaussian copula, rho 0.55)
as they are in patients.

Age and sex are typical published values, not copied from the paper: spinal cord astrocytoma
is the tumour of the young (mean ~32 years, slight male predominance); intramedullary ependymoma
peaks in the mid-40s (slight male predominance); MS myelitis in the mid-30s, female:male ~2.3:1;
NMOSD in the mid-40s, strongly female (~8:1).

Position in the cord cross-section (``eccentricity``: distance from the cord centre to the lesion
centre, as a fraction of the cord radius): ependymomas and NMOSD lesions are central, astrocytomas
eccentric, MS plaques peripheral (dorsal and lateral columns). The distributions overlap.

``difficult`` (documented rule): a subject is difficult when its *measured* morphometric features
(log total volume, log extension, lesion count, eccentricity) are at least half as likely under
another class than under its own, the likelihood being the product of the class-conditional
marginals above (:func:`feature_log_likelihood`). Typically 20-40% of subjects are difficult, most
of them against their sibling class (astrocytoma vs ependymoma, MS vs NMOSD).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIAGNOSES = ("astrocytoma", "ependymoma", "MS", "NMOSD")
TUMORS = ("astrocytoma", "ependymoma")
SIBLING = {"astrocytoma": "ependymoma", "ependymoma": "astrocytoma", "MS": "NMOSD", "NMOSD": "MS"}


@dataclass(frozen=True)
class ClassProfile:
    """Published characteristics of one diagnosis (see the module docstring)."""

    volume_ml: tuple[float, float]            # mean, SD (log-normal)
    count_pmf: tuple[float, ...]              # P(count = 1, 2, ...)
    extent_segments: tuple[float, float, float]  # median, Q1, Q3 (log-normal)
    level_probs: tuple[float, float, float]   # cervical, thoracic, lumbar (conus)
    age: tuple[float, float]                  # mean, SD (years)
    female_fraction: float
    enhancement_rate: float
    eccentricity: tuple[float, float]         # mean, SD of the measured eccentricity (see measure)

    def log_volume(self) -> tuple[float, float]:
        """(mu, sigma) of log(volume in ml)."""
        mean, sd = self.volume_ml
        sigma2 = np.log1p((sd / mean) ** 2)
        return float(np.log(mean) - sigma2 / 2), float(np.sqrt(sigma2))

    def log_extent(self) -> tuple[float, float]:
        """(mu, sigma) of log(extension in segments), sigma from the IQR."""
        median, q1, q3 = self.extent_segments
        return float(np.log(median)), float((np.log(q3) - np.log(q1)) / 1.349)


PROFILES: dict[str, ClassProfile] = {
    "astrocytoma": ClassProfile((12.6, 10.8), (1.0,), (4.0, 3.0, 6.0), (0.57, 0.33, 0.10),
                                (32.0, 16.0), 0.43, 0.72, (0.27, 0.12)),
    "ependymoma": ClassProfile((15.1, 11.7), (1.0,), (3.0, 2.0, 4.0), (0.65, 0.21, 0.14),
                               (45.0, 13.0), 0.45, 0.76, (0.05, 0.04)),
    "MS": ClassProfile((1.3, 1.6), (0.32, 0.30, 0.20, 0.10, 0.08), (3.0, 2.0, 5.0),
                       (0.70, 0.30, 0.0), (36.0, 10.0), 0.70, 0.13, (0.32, 0.15)),
    "NMOSD": ClassProfile((3.0, 3.0), (0.62, 0.28, 0.10), (4.0, 2.5, 6.0), (0.50, 0.50, 0.0),
                          (45.0, 13.0), 0.89, 0.16, (0.10, 0.06)),
}


@dataclass(frozen=True)
class SubjectParams:
    """What the cohort model draws for one subject, before anatomy and lesions are built."""

    diagnosis: str
    age: float
    sex: str
    volume_ml: float
    count: int
    extent_segments: float
    region: str        # cervical | thoracic | lumbar
    enhancing: bool


def sample_subject_params(rng: np.random.Generator, diagnosis: str) -> SubjectParams:
    """Draw age, sex, lesion volume, count, extension, region and enhancement for a diagnosis."""
    if diagnosis not in PROFILES:
        raise ValueError(f"unknown diagnosis {diagnosis!r}; choose from {', '.join(DIAGNOSES)}")
    prof = PROFILES[diagnosis]
    age = float(np.clip(rng.normal(*prof.age), 6.0, 85.0))
    sex = "F" if rng.random() < prof.female_fraction else "M"
    rho = 0.55
    z1, z2 = rng.standard_normal(2)
    z2 = rho * z1 + np.sqrt(1 - rho ** 2) * z2
    mu_v, s_v = prof.log_volume()
    mu_e, s_e = prof.log_extent()
    count = int(rng.choice(np.arange(1, len(prof.count_pmf) + 1), p=np.asarray(prof.count_pmf)))
    if diagnosis == "MS":
        # one plaque spans fewer segments than several: shift so the marginal keeps its median
        mu_e += -0.45 if count == 1 else 0.17
    volume = float(np.exp(mu_v + s_v * z1))
    extent = float(np.clip(np.exp(mu_e + s_e * z2), 0.6, 11.0))
    region = ("cervical", "thoracic", "lumbar")[int(rng.choice(3, p=np.asarray(prof.level_probs)))]
    enhancing = bool(rng.random() < prof.enhancement_rate)
    return SubjectParams(diagnosis, round(age, 1), sex, volume, count, extent, region, enhancing)


def feature_log_likelihood(diagnosis: str, volume_ml: float, extent_segments: float, count: int,
                           eccentricity: float) -> float:
    """Log-likelihood of measured morphometric features under a class's marginals."""
    prof = PROFILES[diagnosis]
    mu_v, s_v = prof.log_volume()
    mu_e, s_e = prof.log_extent()
    pmf = np.asarray(prof.count_pmf)
    p_count = pmf[count - 1] if 1 <= count <= pmf.size else 0.0
    p_count = 0.9 * p_count + 0.1 * 0.2 ** count  # never exactly zero
    mu_c, s_c = prof.eccentricity
    return float(_log_normal_pdf(np.log(max(volume_ml, 1e-3)), mu_v, s_v)
                 + _log_normal_pdf(np.log(max(extent_segments, 0.1)), mu_e, s_e)
                 + np.log(p_count) + _log_normal_pdf(eccentricity, mu_c, s_c))


def is_difficult(diagnosis: str, volume_ml: float, extent_segments: float, count: int,
                 eccentricity: float, ratio: float = 0.5) -> bool:
    """The ``difficult`` rule of the module docstring."""
    own = feature_log_likelihood(diagnosis, volume_ml, extent_segments, count, eccentricity)
    others = max(feature_log_likelihood(other, volume_ml, extent_segments, count, eccentricity)
                 for other in DIAGNOSES if other != diagnosis)
    return bool(others >= own + np.log(ratio))


def is_difficult_measured(diagnosis: str, volume_ml: float, extent_segments: float, count: int,
                          eccentricity: float) -> bool:
    """:func:`is_difficult` of features measured from a lesion mask, which may be tiny or empty.

    The volume is raised to at least 1e-3 ml, the extension to 0.1 segment and the count to one
    lesion (a speck below the component size counts none) before the rule is applied.
    """
    return is_difficult(diagnosis, max(volume_ml, 1e-3), max(extent_segments, 0.1), max(count, 1),
                        eccentricity)


def _log_normal_pdf(x: float, mu: float, sigma: float) -> float:
    return float(-0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi)))
