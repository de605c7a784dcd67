"""Synthetic 12-lead ECGs whose morphology follows their labels, and the class rules they share.

Each beat is a sum of Gaussian waves (P, Q, R, S, T, ...) whose heart vectors are
projected onto the 12 leads (Einthoven and Goldberger relations hold). Labels
change rhythm and morphology the way the real findings do:

- SB: sinus rate < 60 bpm; ST: sinus rate > 100 bpm;
- AF: irregular RR intervals, no P waves, fibrillatory waves (4-9 Hz);
- 1dAVb: PR interval > 200 ms;
- RBBB: QRS > 120 ms with a late rightward-anterior R' (rSR' in V1, wide S in DI/V6);
- LBBB: QRS > 120 ms, no septal q, broad notched R in DI/V5-V6, QS in V1, discordant T;
- any other class (except "normal"): a fixed feature of its own, an ST shift, a
  T-wave change or a U wave in one lead, with a sign (see `generic_feature`).

Random heart axis, amplitudes, lead gains, baseline wander, powerline and Gaussian
noise keep the task from being trivial. Signals are 10 s, zero-padded and centred in
`length` samples like CODE (4000 samples inside 4096 at 400 Hz).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from scaling.config import CODE15_CLASSES, LEADS_12

NORMAL = "normal"
KNOWN = frozenset(CODE15_CLASSES) | {NORMAL}
# Label pairs no real exam has: one rhythm, one bundle-branch block, no PR without P waves.
CONFLICTS = (("SB", "ST"), ("SB", "AF"), ("ST", "AF"), ("RBBB", "LBBB"), ("AF", "1dAVb"))
CONFLICT_PAIRS = frozenset(CONFLICTS) | {(b, a) for a, b in CONFLICTS}
SIGNAL_SECONDS = 10.0
MIN_RR = 0.3  # seconds; bounds the number of beats in 10 s
BLOCK = 256  # exams generated and written at a time (bounds memory)
PREVALENCE = (0.2, 0.02)  # most and least common class (long tail, geometric in between)

# Gaussian waves of a beat, in this order in every array below.
WAVES = ("P", "Q", "R", "R2", "S", "R'", "ST", "T", "U")
_W = {name: i for i, name in enumerate(WAVES)}


def class_names_for(n_classes: int) -> tuple[str, ...]:
    """The CODE-15% classes first, then generic names class07, class08, ..."""
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    extra = tuple(f"class{i:02d}" for i in range(len(CODE15_CLASSES) + 1, n_classes + 1))
    return (CODE15_CLASSES + extra)[:n_classes]


def generic_feature(index: int) -> tuple[str, int, float]:
    """(wave, lead, amplitude in mV) marking the `index`-th class beyond the known ones.

    12 leads x (ST shift, T wave, U wave) x 2 signs: 72 distinct features.
    """
    wave = ("ST", "T", "U")[(index // len(LEADS_12)) % 3]
    sign = 1.0 if (index // (3 * len(LEADS_12))) % 2 == 0 else -1.0
    return wave, index % len(LEADS_12), sign * {"ST": 0.2, "T": 0.35, "U": 0.2}[wave]


def _lead_matrix() -> np.ndarray:
    """(3, 12): lead voltages of a heart vector (x left, y inferior, z anterior)."""
    di = np.array([1.0, 0.0, 0.0])
    dii = np.array([0.5, math.sqrt(3) / 2, 0.0])
    limb = [di, dii, dii - di, -(di + dii) / 2, di - dii / 2, dii - di / 2]
    angles = np.deg2rad([120, 100, 80, 60, 35, 10])  # V1..V6 in the horizontal plane
    chest = [np.array([math.cos(a), 0.1, math.sin(a)]) for a in angles]
    return np.stack(limb + chest, axis=1)


LEAD_MATRIX = _lead_matrix()


def _unit(*v: float) -> np.ndarray:
    a = np.array(v)
    return a / np.linalg.norm(a)


def _flags(labels: np.ndarray, class_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Boolean column per known class (all False when the class is not in the list)."""
    n = len(labels)
    return {
        name: labels[:, class_names.index(name)] if name in class_names else np.zeros(n, bool)
        for name in KNOWN
    }


def compatible(name: str, chosen: Iterable[str], drawn_as: Mapping[str, str] = {}) -> bool:
    """Whether class `name` may join the classes `chosen` in one exam: no pair of them is in
    `CONFLICTS` once each is named by the waveform class that draws it (`drawn_as`, e.g.
    PTB-XL's "AFIB" -> "AF"; a class missing from it is drawn as itself)."""
    drawn = drawn_as.get(name, name)
    return all((drawn, drawn_as.get(o, o)) not in CONFLICT_PAIRS for o in chosen)


def _check_conflicts(labels: np.ndarray, class_names: tuple[str, ...]) -> None:
    flags = _flags(labels, class_names)
    found = [f"{a}+{b}" for a, b in CONFLICTS if (flags[a] & flags[b]).any()]
    others = np.delete(labels, class_names.index(NORMAL), 1) if NORMAL in class_names else None
    if others is not None and (flags[NORMAL] & others.any(1)).any():
        found.append("normal+another class")
    if found:
        raise ValueError(f"labels combine classes no exam can have together: {', '.join(found)}")


# ---------------------------------------------------------------------------
# Rhythm: beat onsets


def _beat_onsets(
    flags: dict[str, np.ndarray], duration: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """QRS onset times (n, beats) in seconds and the mean RR interval (n,)."""
    n = len(flags["AF"])
    hr = rng.uniform(62, 95, n)
    hr = np.where(flags["SB"], rng.uniform(38, 55, n), hr)
    hr = np.where(flags["ST"], rng.uniform(108, 150, n), hr)
    hr = np.where(flags["AF"], rng.uniform(70, 130, n), hr)
    rr_mean = 60.0 / hr
    beats = math.ceil((duration + 1.0) / MIN_RR) + 1
    k = np.arange(beats)
    breathing = rng.uniform(3.0, 5.0, (n, 1))
    sinus = 1 + 0.03 * np.sin(
        2 * np.pi * k * rr_mean[:, None] / breathing + rng.uniform(0, 2 * np.pi, (n, 1))
    )
    sinus += 0.01 * rng.standard_normal((n, beats))
    irregular = np.exp(0.22 * rng.standard_normal((n, beats)) - 0.5 * 0.22**2)
    rr = rr_mean[:, None] * np.where(flags["AF"][:, None], irregular, sinus)
    rr = np.clip(rr, MIN_RR, 2.0)
    start = -rng.uniform(0, 1, (n, 1)) * rr[:, :1]
    onsets = start + np.concatenate([np.zeros((n, 1)), np.cumsum(rr[:, :-1], axis=1)], axis=1)
    return onsets, rr_mean


# ---------------------------------------------------------------------------
# Morphology: per exam, each wave's time, width and lead amplitudes


def _morphology(
    flags: dict[str, np.ndarray],
    generic: list[tuple[np.ndarray, int]],
    rr_mean: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets from QRS onset (n, W) s, widths (n, W) s, lead amplitudes (n, W, 12) mV."""
    n = len(rr_mean)
    rbbb, lbbb, af = flags["RBBB"], flags["LBBB"], flags["AF"]
    offset = np.zeros((n, len(WAVES)))
    width = np.full((n, len(WAVES)), 0.01)
    vector = np.zeros((n, len(WAVES), 3))

    d = np.where(lbbb, rng.uniform(0.14, 0.17, n), rng.uniform(0.08, 0.10, n))
    d = np.where(rbbb, rng.uniform(0.08, 0.095, n), d)
    qrs_end = np.where(rbbb, d + 0.07, d)
    pr = np.where(flags["1dAVb"], rng.uniform(0.23, 0.32, n), rng.uniform(0.13, 0.185, n))
    t_peak = np.maximum(0.4 * np.sqrt(rr_mean) - 0.06, qrs_end + 0.12)
    qrs_gain = rng.uniform(0.6, 1.5, (n, 1))

    def wave(name, at, sigma, vec, gain=1.0, where=True):
        i = _W[name]
        offset[:, i], width[:, i] = at, sigma
        vector[:, i] = np.where(np.asarray(where)[..., None], np.asarray(gain)[..., None] * vec, 0)

    wave("P", 0.045 - pr, 0.02, 0.15 * _unit(0.45, 0.8, 0.25), rng.uniform(0.7, 1.3, n), ~af)
    septal = np.where(lbbb[:, None], 0.15 * _unit(0.8, 0.1, -0.3), 0.15 * _unit(-0.5, 0.2, 0.8))
    wave("Q", 0.15 * d, 0.08 * d, septal)
    r_normal = qrs_gain * 1.2 * _unit(0.75, 0.5, -0.45)
    r_lbbb = qrs_gain * 1.0 * _unit(0.85, 0.1, -0.55)
    wave("R", np.where(lbbb, 0.35 * d, 0.45 * d), np.where(lbbb, 0.11 * d, 0.12 * d), r_normal)
    vector[lbbb, _W["R"]] = r_lbbb[lbbb]
    wave("R2", 0.68 * d, 0.11 * d, r_lbbb, where=lbbb)
    wave("S", 0.78 * d, 0.09 * d, 0.35 * _unit(-0.4, -0.5, -0.5), where=~lbbb)
    wave("R'", d + 0.03, 0.018, 0.8 * _unit(-0.65, 0.0, 0.75), where=rbbb)
    wave("ST", qrs_end + 0.06, 0.04, np.zeros(3))
    t_vec = np.where(
        lbbb[:, None],
        -0.4 * _unit(0.85, 0.1, -0.55),
        np.where(rbbb[:, None], 0.3 * _unit(0.7, 0.5, -0.3), 0.35 * _unit(0.6, 0.6, 0.35)),
    )
    wave("T", t_peak, 0.045, t_vec, rng.uniform(0.6, 1.3, n))
    wave("U", t_peak + 0.13, 0.03, np.zeros(3))

    amps = np.einsum("nwk,nkl->nwl", vector, _random_axis(n, rng) @ LEAD_MATRIX)
    amps *= rng.uniform(0.75, 1.25, (n, 1, len(LEADS_12)))  # electrode placement, skin
    for positive, index in generic:
        name, lead, amp = generic_feature(index)
        amps[positive, _W[name], lead] += amp
    return offset, width, amps


def _random_axis(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) rotations: frontal axis +-25 degrees, horizontal +-15 degrees."""
    a = np.deg2rad(rng.uniform(-25, 25, n))
    b = np.deg2rad(rng.uniform(-15, 15, n))
    ca, sa, cb, sb = np.cos(a), np.sin(a), np.cos(b), np.sin(b)
    zero, one = np.zeros(n), np.ones(n)
    frontal = np.stack([[ca, -sa, zero], [sa, ca, zero], [zero, zero, one]]).transpose(2, 0, 1)
    horizontal = np.stack([[cb, zero, -sb], [zero, one, zero], [sb, zero, cb]]).transpose(2, 0, 1)
    # row-vector convention: v @ R
    return frontal @ horizontal


# ---------------------------------------------------------------------------
# Signals


def _wave_courses(
    onsets: np.ndarray,
    offset: np.ndarray,
    width: np.ndarray,
    amps: np.ndarray,
    rate: float,
    n_sig: int,
) -> np.ndarray:
    """(n, W, n_sig): each wave's unit Gaussian repeated at every beat."""
    n = len(onsets)
    courses = np.zeros((n, len(WAVES), n_sig), np.float32)
    duration = n_sig / rate
    for w in range(len(WAVES)):
        present = np.abs(amps[:, w]).max(axis=1) > 0
        centre = onsets + offset[:, w : w + 1]
        use = present[:, None] & (centre > -0.5) & (centre < duration + 0.5)
        exam, _ = np.nonzero(use)
        if len(exam) == 0:
            continue
        centre, sigma = centre[use], width[exam, w]
        half = math.ceil(4 * sigma.max() * rate)
        index = np.rint(centre * rate).astype(np.int64)[:, None] + np.arange(-half, half + 1)
        value = np.exp(-0.5 * ((index / rate - centre[:, None]) / sigma[:, None]) ** 2)
        inside = (index >= 0) & (index < n_sig)
        flat = (exam[:, None] * n_sig + index)[inside]
        courses[:, w] = np.bincount(flat, value[inside], minlength=n * n_sig).reshape(n, n_sig)
    return courses


def _noise_courses(
    flags: dict[str, np.ndarray], rate: float, n_sig: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sinusoids (n, K, n_sig) and lead amplitudes (n, K, 12): wander, mains, f-waves."""
    n = len(flags["AF"])
    freq = np.concatenate(
        [
            rng.uniform(0.05, 0.4, (n, 2)),  # baseline wander (breathing, movement)
            rng.choice([50.0, 60.0], (n, 1)),  # powerline
            rng.uniform(4.5, 8.5, (n, 2)),  # fibrillatory waves
        ],
        axis=1,
    )
    phase = rng.uniform(0, 2 * np.pi, freq.shape)
    t = np.arange(n_sig) / rate
    courses = np.sin(2 * np.pi * freq[..., None] * t + phase[..., None]).astype(np.float32)
    wander = rng.uniform(0.02, 0.25, (n, 1, 1)) * rng.standard_normal((n, 2, 12))
    mains = rng.uniform(0, 0.015, (n, 1, 1)) * rng.standard_normal((n, 1, 12))
    f_leads = np.where(np.isin(LEADS_12, ("V1", "DII", "DIII", "AVF")), 1.0, 0.2)
    f_leads[LEADS_12.index("V1")] = 1.5
    fib = rng.uniform(0.03, 0.08, (n, 1, 1)) * f_leads * rng.choice([-1.0, 1.0], (n, 2, 12))
    fib *= flags["AF"][:, None, None]
    return courses, np.concatenate([wander, mains, fib], axis=1)


def ecg_waveforms(
    labels: np.ndarray,
    class_names: tuple[str, ...],
    *,
    rate: float,
    length: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Synthetic 12-lead ECGs in mV, float32 (n, length, 12), one per label row.

    10 s of signal (or `length` samples if shorter), zero-padded and centred.
    Raises ValueError for label combinations no exam has (e.g. SB with ST).
    """
    labels = np.asarray(labels) > 0.5
    class_names = tuple(class_names)
    if labels.ndim != 2 or labels.shape[1] != len(class_names):
        raise ValueError(
            f"labels must be (exams, {len(class_names)}) for classes {class_names}, "
            f"got shape {labels.shape}"
        )
    if rate <= 0 or length < 1:
        raise ValueError(f"rate must be > 0 and length >= 1, got rate={rate}, length={length}")
    _check_conflicts(labels, class_names)
    n = len(labels)
    n_sig = min(length, round(SIGNAL_SECONDS * rate))
    flags = _flags(labels, class_names)
    unknown = [j for j, c in enumerate(class_names) if c not in KNOWN]
    generic = [(labels[:, j], g) for g, j in enumerate(unknown)]

    onsets, rr_mean = _beat_onsets(flags, n_sig / rate, rng)
    offset, width, amps = _morphology(flags, generic, rr_mean, rng)
    waves = _wave_courses(onsets, offset, width, amps, rate, n_sig)
    noise, noise_amps = _noise_courses(flags, rate, n_sig, rng)
    courses = np.concatenate([waves, noise], axis=1)
    weights = np.concatenate([amps, noise_amps], axis=1).astype(np.float32)
    signal = np.matmul(courses.transpose(0, 2, 1), weights)
    signal += rng.uniform(0.005, 0.03, (n, 1, 1)).astype(np.float32) * rng.standard_normal(
        signal.shape, dtype=np.float32
    )
    out = np.zeros((n, length, len(LEADS_12)), np.float32)
    before = (length - n_sig) // 2
    out[:, before : before + n_sig] = signal
    return out
