"""Synthetic athlete cohort with a KNOWN generative injury risk.

No public data set pairs medical images with biomechanical streams, so the engine is
trained and evaluated on a cohort whose true injury probability is known. Because the
probability ``p`` of every window is known, the best achievable AUROC (the *Bayes
AUROC*, AUROC of ``p`` against the labels drawn from it) is known too, and a model is
reported against it.

Generative story
----------------
Each athlete has fixed traits (:class:`AthleteProfile`). During a session, fatigue
builds up as ``F(t) = fatigue_rate * (1 - exp(-t / tau))`` and worsens the traits: more
dynamic valgus, more left/right asymmetry, stiffer landings (less knee flexion at
contact, higher vertical loading rate). The *effective state* at time ``t``
(:func:`effective_state`) drives both the signal and the risk:

- knee valgus peaks after foot contact with amplitude ``valgus_peak_deg``;
- vertical GRF has an impact peak ``impact_bw`` reached ``impact_time_s`` after contact
  (loading rate = ``impact_bw / impact_time_s`` BW/s) on top of the active peak;
- knee flexion at contact is ``knee_flexion_contact_deg``;
- the *affected* side (``AthleteProfile.side``) carries more valgus and load, by the
  asymmetry index; a prior injury reduces that side's swing knee flexion (guarding);
- fatigue also raises stride-to-stride variability and lowers cadence slightly;
- IMU accelerometers read the segment's specific force (body vertical force from the
  GRF, gravity, tangential/centripetal terms of the segment rotation, tibial shock at
  contact scaled by the loading rate); gyroscopes read the segment angular velocity
  (sagittal from hip/knee angles, frontal from the valgus rate) plus noise, in the
  segment frame of :mod:`schemas.channels` (x forward, y left, z up, right-hand rule):
  a segment whose distal end swings forward has a NEGATIVE ``*_gyr_y``, as real
  recordings imported by :mod:`engine.data.recordings` have.

The known probability per window is :func:`true_risk`, a logistic function of the
effective state at the window's end, prior injury and an image lesion.
:func:`window_dataset` draws labelled windows at random times of each athlete's session;
:func:`session_dataset` draws whole sessions scored every few seconds with injury events
(hazard proportional to the known risk) for alert lead-time evaluation.

Image findings: :mod:`engine.data.image_bank` renders knee radiographs (with a lesion
exactly when the athlete has ``image_lesion``) as real DICOM files with
:mod:`engine.imaging.synthetic`, embeds them with the real ResNet50 encoder and caches
the embeddings; training uses those. :func:`synthetic_image_features` (a fixed random
pattern, encoder ``synthetic-image-v1``) is only a cheap, clearly separable stand-in for
unit tests of the model plumbing; no trained artifact uses it.

All values lie inside each channel's ``[lo, hi]`` of :mod:`schemas.channels`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
from scipy.signal import lfilter
from scipy.stats import rankdata

from engine.features import N_REGIONS, POOLED_DIM, REGION_DIM, ImageFeatures
from schemas.channels import CHANNEL_INDEX, CHANNELS, N_CHANNELS

G = 9.81
SYNTHETIC_ENCODER_VERSION = "synthetic-image-v1"
_IMAGE_PATTERN_SEED = 20240611  # fixed: the "encoder" of synthetic image features
LESION_RATE_PRIOR, LESION_RATE_NO_PRIOR = 0.45, 0.12  # P(image lesion | prior injury or not)

# Coefficients of the known risk (logit scale); see :func:`true_risk`.
RISK_INTERCEPT = -2.8
RISK_COEF = {
    "valgus": 0.8,      # per 4 deg of peak dynamic valgus above 13 deg
    "asymmetry": 0.5,   # per 0.1 of L/R asymmetry index above 0.2
    "loading": 0.5,     # per 25 BW/s of vertical loading rate above 60 BW/s
    "stiff": 0.4,       # per 6 deg of knee flexion at contact below 15 deg
    "fatigue": 0.8,     # per unit of fatigue (0..1)
    "prior": 0.8,       # prior injury
    "lesion": 1.3,      # image lesion
}


@dataclass(frozen=True)
class AthleteProfile:
    """Fixed traits of one synthetic athlete (all dimensionless unless stated)."""

    valgus_bias: float = 0.3      # 0..1: tendency to dynamic knee valgus
    asymmetry: float = 0.08       # 0..0.35: left/right asymmetry index
    stiffness: float = 0.4        # 0..1: stiff landings (low knee flexion, high loading rate)
    prior_injury: bool = False
    fatigue_rate: float = 0.5     # 0..1: fatigue reached after a long session
    cadence: float = 168.0        # steps/min; < 140 walks, else runs
    image_lesion: bool = False    # a finding on the athlete's medical image
    side: Literal["l", "r"] = "r"  # the affected (weaker / previously injured) side

    @property
    def gait(self) -> Literal["run", "walk"]:
        return "walk" if self.cadence < 140.0 else "run"


def sample_profile(rng: np.random.Generator) -> AthleteProfile:
    """Draw one athlete's traits from the cohort distribution."""
    prior = bool(rng.random() < 0.2)
    walker = bool(rng.random() < 0.1)
    cadence = float(np.clip(rng.normal(112.0, 6.0), 95.0, 130.0) if walker else np.clip(rng.normal(168.0, 8.0), 150.0, 190.0))
    return AthleteProfile(
        valgus_bias=float(rng.beta(2.0, 3.0)),
        asymmetry=float(0.35 * rng.beta(2.0, 4.0)),
        stiffness=float(rng.beta(2.0, 3.0)),
        prior_injury=prior,
        fatigue_rate=float(rng.uniform(0.2, 1.0)),
        cadence=cadence,
        image_lesion=bool(rng.random() < (LESION_RATE_PRIOR if prior else LESION_RATE_NO_PRIOR)),
        side="l" if rng.random() < 0.5 else "r",
    )


def fatigue_at(t_s: np.ndarray | float, fatigue_rate: np.ndarray | float, tau_s: float = 180.0) -> np.ndarray:
    """Fatigue after ``t_s`` seconds of session: ``fatigue_rate * (1 - exp(-t / tau))``."""
    return np.asarray(fatigue_rate) * (1.0 - np.exp(-np.maximum(np.asarray(t_s, dtype=np.float64), 0.0) / tau_s))


# --------------------------------------------------------------------------- traits as arrays
_TRAIT_FIELDS = [f.name for f in fields(AthleteProfile)]


def _traits(profiles: list[AthleteProfile]) -> dict[str, np.ndarray]:
    """Profiles -> dict of (N,) float arrays (booleans as 0/1, side as aff_l = 1 for left)."""
    out: dict[str, np.ndarray] = {}
    for name in _TRAIT_FIELDS:
        if name == "side":
            out["aff_l"] = np.array([1.0 if p.side == "l" else 0.0 for p in profiles])
        else:
            out[name] = np.array([float(getattr(p, name)) for p in profiles])
    out["run"] = (out["cadence"] >= 140.0).astype(np.float64)
    return out


def effective_state(traits: dict[str, np.ndarray], fatigue: np.ndarray) -> dict[str, np.ndarray]:
    """The biomechanical risk factors at the given fatigue (arrays broadcast together).

    Returns ``valgus_peak_deg`` (affected side), ``asymmetry``, ``stiffness``,
    ``knee_flexion_contact_deg``, ``impact_bw`` and ``impact_time_s`` (symmetric part),
    ``loading_rate_bw_s`` (affected side) and ``fatigue``.
    """
    f = np.asarray(fatigue, dtype=np.float64)
    run = traits["run"]
    asym = traits["asymmetry"] + 0.2 * f
    stiff = np.clip(traits["stiffness"] + 0.35 * f, 0.0, 1.35)
    valgus = (3.0 + 12.0 * traits["valgus_bias"] + 6.0 * f) * (1.0 + asym)
    kc = np.where(run > 0, 24.0 - 16.0 * stiff, 8.0 - 5.0 * stiff)
    impact_time = np.where(run > 0, 0.05 - 0.025 * stiff, 0.08 - 0.02 * stiff)
    impact_bw = np.where(run > 0, 1.3 + 0.9 * stiff, 0.9 + 0.3 * stiff)
    loading = impact_bw * (1.0 + asym) / impact_time
    return {
        "valgus_peak_deg": valgus,
        "asymmetry": asym,
        "stiffness": stiff,
        "knee_flexion_contact_deg": kc,
        "impact_bw": impact_bw,
        "impact_time_s": impact_time,
        "loading_rate_bw_s": loading,
        "fatigue": f,
    }


def true_risk(
    *,
    valgus_peak_deg: np.ndarray | float,
    asymmetry: np.ndarray | float,
    loading_rate_bw_s: np.ndarray | float,
    knee_flexion_contact_deg: np.ndarray | float,
    fatigue: np.ndarray | float,
    prior_injury: np.ndarray | float | bool,
    image_lesion: np.ndarray | float | bool,
) -> np.ndarray:
    """The known injury probability of a window (vectorised).

    ``p = sigmoid(b0 + 0.8 (valgus - 13)/4 + 0.5 (asym - 0.2)/0.1 + 0.5 (LR - 60)/25
    + 0.4 (15 - knee_flexion_at_contact)/6 + 0.8 fatigue + 0.8 prior + 1.3 lesion)``
    with ``b0 = RISK_INTERCEPT`` (-2.8), valgus in degrees (affected side peak), the
    asymmetry index (0..~0.55), the vertical loading rate in BW/s (affected side), knee
    flexion at contact in degrees, fatigue in 0..1 and prior injury / lesion as 0/1.
    The cohort of :func:`sample_profile` has ~23% positives and a Bayes AUROC ~0.85.
    """
    c = RISK_COEF
    z = (
        RISK_INTERCEPT
        + c["valgus"] * (np.asarray(valgus_peak_deg) - 13.0) / 4.0
        + c["asymmetry"] * (np.asarray(asymmetry) - 0.2) / 0.1
        + c["loading"] * (np.asarray(loading_rate_bw_s) - 60.0) / 25.0
        + c["stiff"] * (15.0 - np.asarray(knee_flexion_contact_deg)) / 6.0
        + c["fatigue"] * np.asarray(fatigue)
        + c["prior"] * np.asarray(prior_injury, dtype=np.float64)
        + c["lesion"] * np.asarray(image_lesion, dtype=np.float64)
    )
    return 1.0 / (1.0 + np.exp(-z))


def _risk_from(traits: dict[str, np.ndarray], fatigue: np.ndarray) -> np.ndarray:
    st = effective_state(traits, fatigue)
    return true_risk(
        valgus_peak_deg=st["valgus_peak_deg"],
        asymmetry=st["asymmetry"],
        loading_rate_bw_s=st["loading_rate_bw_s"],
        knee_flexion_contact_deg=st["knee_flexion_contact_deg"],
        fatigue=fatigue,
        prior_injury=traits["prior_injury"],
        image_lesion=traits["image_lesion"],
    )


def _risk_without_image(traits: dict[str, np.ndarray], fatigue: np.ndarray) -> np.ndarray:
    """The true risk marginalised over the (unseen) image lesion given prior injury: the
    best a sensor-only model can know."""
    q = np.where(traits["prior_injury"] > 0, LESION_RATE_PRIOR, LESION_RATE_NO_PRIOR)
    p1 = _risk_from({**traits, "image_lesion": np.ones_like(q)}, fatigue)
    p0 = _risk_from({**traits, "image_lesion": np.zeros_like(q)}, fatigue)
    return q * p1 + (1.0 - q) * p0


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUROC (Mann-Whitney, ties averaged). NaN when only one class is present."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def bayes_auroc(p: np.ndarray, y: np.ndarray) -> float:
    """The best achievable AUROC on these labels: AUROC of the true probability ``p``."""
    return auroc(p, y)


# --------------------------------------------------------------------------- rendering
# Noise processes per sample, columns of one (n, K) draw (sample-major, so a stream that
# draws n1 then n2 samples gets the same numbers as one that draws n1 + n2).
_AR_NAMES = ("freq", "val_l", "val_r", "imp_l", "imp_r", "kc_l", "kc_r", "sw_l", "sw_r")
_K_AR = len(_AR_NAMES)
_AR_TAU_S = 0.4
_WHITE_SIGMA = np.array(
    [0.35, 0.35, 0.35, 0.06, 0.06, 0.06] * 4 + [0.8, 0.8, 0.5, 0.5, 0.8, 0.8, 0.02, 0.02], dtype=np.float64
)
_K_DRAW = _K_AR + N_CHANNELS
_LO = np.array([c.lo for c in CHANNELS], dtype=np.float32)
_HI = np.array([c.hi for c in CHANNELS], dtype=np.float32)
_THIGH_R_M, _SHANK_R_M = 0.20, 0.25


def _bump(ph: np.ndarray, mu: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray:
    """Periodic Gaussian bump on the stride phase circle [0, 1)."""
    d = (ph - mu + 0.5) % 1.0 - 0.5
    return np.exp(-0.5 * (d / sigma) ** 2)


def _angles(ph, duty, run, kc, k_swing, v_pk):
    """Knee flexion, knee valgus and hip flexion (deg) of one leg at stride phase ``ph``."""
    k_stance_pk = np.where(run > 0, 44.0, 18.0)
    knee = (
        kc
        + (k_stance_pk - kc) * _bump(ph, 0.45 * duty, 0.18 * duty)
        + k_swing * _bump(ph, duty + 0.45 * (1.0 - duty), 0.14 * (1.0 - duty))
    )
    valgus = 0.5 + v_pk * _bump(ph, 0.3 * duty, 0.14 * duty) - 1.5 * _bump(ph, duty + 0.5 * (1.0 - duty), 0.15)
    hip_mean = np.where(run > 0, 15.0, 10.0)
    hip_amp = np.where(run > 0, 26.0, 20.0)
    hip = hip_mean + hip_amp * np.cos(2.0 * np.pi * (ph - 0.93))
    return knee, valgus, hip


def _grf(ph, duty, run, f_stride, impact_bw, impact_time, active_bw):
    """Vertical GRF (BW) of one leg: active peak + impact transient, zero in swing."""
    stance = ph < duty
    s = np.clip(ph / duty, 0.0, 1.0)
    tau = ph / f_stride  # s since contact
    t_st = duty / f_stride
    active_run = active_bw * np.sin(np.pi * s) ** 1.5
    active_walk = active_bw * (0.55 * np.sin(np.pi * s) + 0.5 * (_bump(s, 0.22, 0.1) + _bump(s, 0.78, 0.1)))
    active = np.where(run > 0, active_run, active_walk)
    at_imp = np.where(
        run > 0,
        active_bw * np.sin(np.pi * np.clip(impact_time / t_st, 0, 1)) ** 1.5,
        active_bw * 0.55 * np.sin(np.pi * np.clip(impact_time / t_st, 0, 1)),
    )
    extra = np.maximum(impact_bw - at_imp, 0.15)
    r = tau / impact_time
    pulse = extra * r**2 * np.exp(2.0 * (1.0 - r))
    return np.where(stance, active + pulse, 0.0), stance, tau


def _render(phi: np.ndarray, fat: np.ndarray, tr: dict[str, np.ndarray], f_stride: np.ndarray,
            ar: np.ndarray, white: np.ndarray) -> np.ndarray:
    """Frames (N, T, 32) float32 from stride phase ``phi`` (N, T) (left contact at integer
    phase), fatigue (N, T), traits (N, 1) arrays, stride frequency (N, T) in Hz, AR noise
    (N, T, K_AR) (unit variance) and white noise (N, T, 32) (unit variance)."""
    st = effective_state(tr, fat)
    run = tr["run"]
    duty = np.where(run > 0, 0.38, 0.62)
    asym = st["asymmetry"]
    var = 0.05 + 0.10 * fat  # stride-to-stride variability grows with fatigue
    aff_l = tr["aff_l"]
    out = np.empty(phi.shape + (N_CHANNELS,), dtype=np.float64)
    grfs, stances, taus, loads = [], [], [], []
    legs = []
    for side, offset, col in (("l", 0.0, 0), ("r", 0.5, 1)):
        aff = aff_l if side == "l" else 1.0 - aff_l
        mult = aff * (1.0 + asym) + (1.0 - aff) * (1.0 - 0.5 * asym)
        ph = (phi + offset) % 1.0
        v_pk = (3.0 + 12.0 * tr["valgus_bias"] + 6.0 * fat) * mult * (1.0 + var * ar[..., 1 + col])
        kc = st["knee_flexion_contact_deg"] * (1.0 + var * ar[..., 5 + col])
        k_swing = np.where(run > 0, 92.0, 58.0) - 18.0 * tr["prior_injury"] * aff
        k_swing = k_swing * (1.0 + 0.5 * var * ar[..., 7 + col])
        impact_bw = st["impact_bw"] * mult * (1.0 + var * ar[..., 3 + col])
        active_bw = np.where(run > 0, 2.4, 1.05) * (aff * (1.0 + 0.5 * asym) + (1.0 - aff) * (1.0 - 0.25 * asym))
        grf, stance, tau = _grf(ph, duty, run, f_stride, impact_bw, st["impact_time_s"], active_bw)
        d = 2e-3
        k0, v0, h0 = _angles(ph, duty, run, kc, k_swing, v_pk)
        kp, vp, hp = _angles((ph + d) % 1.0, duty, run, kc, k_swing, v_pk)
        km, vm, hm = _angles((ph - d) % 1.0, duty, run, kc, k_swing, v_pk)
        deg = np.pi / 180.0
        w = f_stride * deg / (2 * d)
        w2 = f_stride**2 * deg / d**2
        legs.append({
            "knee": k0, "valgus": v0, "hip": h0, "ph": ph,
            "w_thigh": (hp - hm) * w, "a_thigh": (hp - 2 * h0 + hm) * w2,
            "w_shank": ((hp - kp) - (hm - km)) * w, "a_shank": ((hp - kp) - 2 * (h0 - k0) + (hm - km)) * w2,
            "w_valgus": (vp - vm) * w,
            "th_thigh": h0 * deg, "th_shank": (h0 - k0) * deg,
        })
        grfs.append(grf)
        stances.append(stance)
        taus.append(tau)
        loads.append(impact_bw / st["impact_time_s"])
    grf_tot = grfs[0] + grfs[1]
    s_l = np.clip(legs[0]["ph"] / duty, 0, 1)
    s_r = np.clip(legs[1]["ph"] / duty, 0, 1)
    f_z = G * grf_tot  # vertical specific force of the body
    f_x = -0.25 * G * (grfs[0] * np.cos(np.pi * s_l) + grfs[1] * np.cos(np.pi * s_r))  # braking, then propulsion
    f_y = 0.08 * G * (grfs[0] - grfs[1])
    for i, (side, leg) in enumerate(zip(("l", "r"), legs)):
        sign = 1.0 if side == "l" else -1.0
        for seg, r, frontal in (("thigh", _THIGH_R_M, 0.35), ("shank", _SHANK_R_M, 1.0)):
            th = leg[f"th_{seg}"]
            om = leg[f"w_{seg}"]
            al = leg[f"a_{seg}"]
            ax = f_z * np.sin(th) + f_x * np.cos(th) + r * al
            az = f_z * np.cos(th) - f_x * np.sin(th) - r * om**2
            ay = f_y + sign * 0.02 * r * leg["w_valgus"] ** 2
            if seg == "shank":
                tau = taus[i]
                shock = np.where(stances[i], 1.5 * G * (loads[i] / 60.0) * np.exp(-tau / 0.015) * np.sin(2 * np.pi * 22.0 * tau), 0.0)
                az = az + shock
                ax = ax + 0.4 * shock
            gx = sign * frontal * leg["w_valgus"]
            # Right-hand rule about the segment's y axis (pointing left): a positive rate tips
            # the segment's top forward, so the distal end swinging forward (hip flexing, the
            # knee extending in swing) reads NEGATIVE, as a real gyroscope and the recording
            # import (engine/data/recordings.py) say. (Before gyro-sign v2 this was +om.)
            gy = -om
            gz = 0.6 * np.sin(2 * np.pi * leg["ph"] + 0.3) * (f_stride / 1.4)
            base = CHANNEL_INDEX[f"{seg}_{side}_acc_x"]
            for j, v in enumerate((ax, ay, az, gx, gy, gz)):
                out[..., base + j] = v
        out[..., CHANNEL_INDEX[f"knee_flexion_{side}"]] = leg["knee"]
        out[..., CHANNEL_INDEX[f"knee_valgus_{side}"]] = leg["valgus"]
        out[..., CHANNEL_INDEX[f"hip_flexion_{side}"]] = leg["hip"]
        out[..., CHANNEL_INDEX[f"grf_vertical_{side}"]] = grfs[i]
    out += white * _WHITE_SIGMA
    return np.clip(out.astype(np.float32), _LO, _HI)


def _ar1(e: np.ndarray, rho: float, y_prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-variance AR(1) along axis -2 of ``e`` (…, T, K) from previous value ``y_prev`` (…, K)."""
    b = [math.sqrt(1.0 - rho * rho)]
    a = [1.0, -rho]
    y, zf = lfilter(b, a, e, axis=-2, zi=np.expand_dims(rho * y_prev, -2))
    return y, y[..., -1, :]


# --------------------------------------------------------------------------- streaming
class GaitStream:
    """Stateful, phase-continuous frame generator for one athlete (live simulator).

    ``next(n)`` returns the next ``n`` frames (n, 32) float32 at ``hz``; consecutive calls
    continue the gait where the previous one stopped, and the same seed gives the same
    frames whatever the chunking. Fatigue grows with the elapsed stream time.
    """

    def __init__(self, profile: AthleteProfile, *, hz: float = 100.0, seed: int = 0, fatigue_tau_s: float = 180.0) -> None:
        if hz <= 0 or fatigue_tau_s <= 0:
            raise ValueError("hz and fatigue_tau_s must be positive")
        self.profile = profile
        self.hz = float(hz)
        self.fatigue_tau_s = float(fatigue_tau_s)
        self._rng = np.random.default_rng(seed)
        self._traits = {k: v.reshape(1, 1) for k, v in _traits([profile]).items()}
        self._phi = float(self._rng.random())
        self._ar = self._rng.standard_normal(_K_AR).reshape(1, _K_AR)
        self._rho = math.exp(-1.0 / (self.hz * _AR_TAU_S))
        self._n = 0  # frames produced

    @property
    def elapsed_s(self) -> float:
        return self._n / self.hz

    @property
    def fatigue(self) -> float:
        return float(fatigue_at(self.elapsed_s, self.profile.fatigue_rate, self.fatigue_tau_s))

    def state(self) -> dict[str, float]:
        """The current effective risk factors (see :func:`effective_state`)."""
        st = effective_state(self._traits, np.array([[self.fatigue]]))
        return {k: float(np.asarray(v).ravel()[0]) for k, v in st.items()}

    def true_risk(self) -> float:
        """The known injury probability of a window ending now."""
        return float(_risk_from(self._traits, np.array([[self.fatigue]])).ravel()[0])

    def next(self, n: int) -> np.ndarray:
        if n < 0:
            raise ValueError("n must be >= 0")
        if n == 0:
            return np.empty((0, N_CHANNELS), dtype=np.float32)
        draw = self._rng.standard_normal((n, _K_DRAW))
        ar, self._ar = _ar1(draw[None, :, :_K_AR], self._rho, self._ar)
        white = draw[None, :, _K_AR:]
        t = (self._n + np.arange(1, n + 1)) / self.hz
        fat = fatigue_at(t, self.profile.fatigue_rate, self.fatigue_tau_s)[None, :]
        f_stride = self.profile.cadence / 120.0 * (1.0 - 0.05 * fat) * (1.0 + 0.02 * ar[..., 0])
        phi = self._phi + np.cumsum(f_stride / self.hz, axis=-1)
        self._phi = float(phi[0, -1] % 1.0)
        phi = phi % 1.0
        self._n += n
        return _render(phi, fat, self._traits, f_stride, ar, white)[0]


# --------------------------------------------------------------------------- windows
@dataclass(frozen=True)
class SyntheticWindows:
    """A labelled set of windows. ``x`` (n, window, 32) float32 in physical units.

    Every athlete has one session; ``t_end`` is the window's end in seconds since the
    start of that session (what a live system knows too), so causal workload features
    (acute:chronic load) can be computed from an athlete's earlier windows.
    """

    x: np.ndarray
    y: np.ndarray            # (n,) int64 labels drawn from p
    p: np.ndarray            # (n,) true probability
    athlete: np.ndarray      # (n,) int64 athlete index into ``profiles``
    has_lesion: np.ndarray   # (n,) bool
    fatigue: np.ndarray      # (n,) fatigue at the window's end
    p_sensor: np.ndarray     # (n,) true probability marginalised over the image lesion
    profiles: tuple[AthleteProfile, ...]
    hz: float
    t_end: np.ndarray        # (n,) seconds since the athlete's session start

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def bayes_auroc(self) -> float:
        """AUROC of the true probability: the ceiling of a model that sees sensors and image."""
        return bayes_auroc(self.p, self.y)

    def bayes_auroc_sensor_only(self) -> float:
        """The ceiling of a model without the image (lesion marginalised out)."""
        return bayes_auroc(self.p_sensor, self.y)

    def subset(self, idx: np.ndarray) -> SyntheticWindows:
        return SyntheticWindows(self.x[idx], self.y[idx], self.p[idx], self.athlete[idx], self.has_lesion[idx],
                                self.fatigue[idx], self.p_sensor[idx], self.profiles, self.hz, self.t_end[idx])


def _render_windows(
    rng: np.random.Generator,
    tr_all: dict[str, np.ndarray],
    athlete: np.ndarray,
    t_end: np.ndarray,
    *,
    window: int,
    hz: float,
    fatigue_tau_s: float,
    chunk: int,
) -> np.ndarray:
    """Frames (n, window, 32) of athlete ``athlete[i]`` ending ``t_end[i]`` s into the session
    (random stride phase, fresh noise per window)."""
    n_windows = athlete.size
    phi0 = rng.random(n_windows)
    rho = math.exp(-1.0 / (hz * _AR_TAU_S))
    x = np.empty((n_windows, window, N_CHANNELS), dtype=np.float32)
    for s in range(0, n_windows, chunk):
        sl = slice(s, min(n_windows, s + chunk))
        n = sl.stop - sl.start
        a = athlete[sl]
        tr = {k: v[a][:, None] for k, v in tr_all.items()}
        t = t_end[sl][:, None] - (window - 1 - np.arange(window))[None, :] / hz
        fat = fatigue_at(t, tr["fatigue_rate"], fatigue_tau_s)
        draw = rng.standard_normal((n, window, _K_DRAW))
        ar, _ = _ar1(draw[..., :_K_AR], rho, rng.standard_normal((n, _K_AR)))
        f_stride = tr["cadence"] / 120.0 * (1.0 - 0.05 * fat) * (1.0 + 0.02 * ar[..., 0])
        phi = (phi0[sl][:, None] + np.cumsum(f_stride / hz, axis=1)) % 1.0
        x[sl] = _render(phi, fat, tr, f_stride, ar, draw[..., _K_AR:])
    return x


def _labelled(rng: np.random.Generator, x: np.ndarray, profiles: tuple[AthleteProfile, ...], tr_all: dict[str, np.ndarray],
              athlete: np.ndarray, t_end: np.ndarray, *, hz: float, fatigue_tau_s: float) -> SyntheticWindows:
    fat_end = fatigue_at(t_end, tr_all["fatigue_rate"][athlete], fatigue_tau_s)
    tr_win = {k: v[athlete] for k, v in tr_all.items()}
    p = _risk_from(tr_win, fat_end)
    y = (rng.random(athlete.size) < p).astype(np.int64)
    return SyntheticWindows(
        x=x, y=y, p=p, athlete=athlete.astype(np.int64), has_lesion=tr_all["image_lesion"][athlete] > 0,
        fatigue=fat_end, p_sensor=_risk_without_image(tr_win, fat_end), profiles=profiles, hz=float(hz),
        t_end=np.asarray(t_end, dtype=np.float64),
    )


def window_dataset(
    n_windows: int,
    *,
    seed: int = 0,
    window: int = 200,
    hz: float = 100.0,
    n_athletes: int | None = None,
    session_s: float = 1200.0,
    fatigue_tau_s: float = 180.0,
    chunk: int = 1024,
) -> SyntheticWindows:
    """``n_windows`` windows from ``n_athletes`` athletes (default ``n_windows // 20``),
    each at a uniform time of a ``session_s`` session; label ``y ~ Bernoulli(p)`` with ``p``
    the true risk at the window's end. Reproducible for a seed."""
    if n_windows < 1 or window < 2:
        raise ValueError("n_windows must be >= 1 and window >= 2")
    rng = np.random.default_rng(seed)
    n_ath = n_athletes or max(2, n_windows // 20)
    profiles = tuple(sample_profile(rng) for _ in range(n_ath))
    tr_all = _traits(list(profiles))
    athlete = rng.integers(0, n_ath, size=n_windows)
    t_end = rng.uniform(window / hz, session_s, size=n_windows)
    x = _render_windows(rng, tr_all, athlete, t_end, window=window, hz=hz, fatigue_tau_s=fatigue_tau_s, chunk=chunk)
    return _labelled(rng, x, profiles, tr_all, athlete, t_end, hz=hz, fatigue_tau_s=fatigue_tau_s)


# --------------------------------------------------------------------------- sessions
INJURY_TAU_S = 600.0  # injury hazard = p(t) / INJURY_TAU_S per second of session


@dataclass(frozen=True)
class SyntheticSessions:
    """Whole sessions, one per athlete, scored every ``every_s`` seconds, with injuries.

    The injury *event* of a session is drawn from the same known probability as the window
    labels: at each scored window an injury happens with probability
    ``1 - exp(-p(t) * every_s / injury_tau_s)``; the first one ends the session (later
    windows are not generated). ``injury_end_s`` is the end time of that labelled injury
    window (NaN for a session without injury). ``windows.athlete`` is the session index.
    """

    windows: SyntheticWindows
    injury_end_s: np.ndarray   # (n_sessions,) float, NaN when no injury
    duration_s: np.ndarray     # (n_sessions,) last window end
    every_s: float

    @property
    def n_sessions(self) -> int:
        return int(self.injury_end_s.size)

    @property
    def injured(self) -> np.ndarray:
        return np.isfinite(self.injury_end_s)


def session_dataset(
    n_sessions: int,
    *,
    seed: int = 0,
    session_s: float = 1200.0,
    every_s: float = 10.0,
    window: int = 200,
    hz: float = 100.0,
    fatigue_tau_s: float = 180.0,
    injury_tau_s: float = INJURY_TAU_S,
    chunk: int = 1024,
) -> SyntheticSessions:
    """``n_sessions`` athletes, each one session of ``session_s`` s scored every ``every_s`` s
    (windows end at ``every_s, 2 every_s, ...``), with window labels and injury events drawn
    from the known risk. Reproducible for a seed."""
    if n_sessions < 1 or every_s <= 0 or session_s < window / hz:
        raise ValueError("n_sessions must be >= 1, every_s > 0 and session_s at least one window")
    rng = np.random.default_rng(seed)
    profiles = tuple(sample_profile(rng) for _ in range(n_sessions))
    tr_all = _traits(list(profiles))
    first = math.ceil((window / hz) / every_s)
    times = every_s * np.arange(first, int(session_s // every_s) + 1, dtype=np.float64)
    fat = fatigue_at(times[None, :], tr_all["fatigue_rate"][:, None], fatigue_tau_s)
    p = _risk_from({k: v[:, None] for k, v in tr_all.items()}, fat)                     # (S, K)
    hit = rng.random(p.shape) < 1.0 - np.exp(-p * every_s / injury_tau_s)
    any_hit = hit.any(axis=1)
    first_hit = np.where(any_hit, hit.argmax(axis=1), times.size - 1)
    injury_end = np.where(any_hit, times[first_hit], np.nan)
    athlete = np.concatenate([np.full(k + 1, s, dtype=np.int64) for s, k in enumerate(first_hit)])
    t_end = np.concatenate([times[:k + 1] for k in first_hit])
    x = _render_windows(rng, tr_all, athlete, t_end, window=window, hz=hz, fatigue_tau_s=fatigue_tau_s, chunk=chunk)
    win = _labelled(rng, x, profiles, tr_all, athlete, t_end, hz=hz, fatigue_tau_s=fatigue_tau_s)
    return SyntheticSessions(windows=win, injury_end_s=injury_end, duration_s=times[first_hit], every_s=float(every_s))


# --------------------------------------------------------------------------- image features
def _image_patterns() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    g = np.random.default_rng(_IMAGE_PATTERN_SEED)
    base = np.abs(g.standard_normal(POOLED_DIM)) * 0.5
    lesion = np.where(g.random(POOLED_DIM) < 0.1, np.abs(g.standard_normal(POOLED_DIM)), 0.0)
    region_base = g.standard_normal((N_REGIONS, REGION_DIM)) * 0.3
    region_lesion = g.standard_normal(REGION_DIM)
    region_lesion /= np.linalg.norm(region_lesion) / math.sqrt(REGION_DIM)
    return base, lesion, region_base, region_lesion


def synthetic_image_features(has_lesion: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stand-in image embeddings: pooled (n, 2048) and regions (n, 49, 64), float32.

    A fixed random pattern (seeded by the module, i.e. a fixed "encoder") plus per-study
    noise; a lesion adds a fixed pooled direction and a fixed region pattern at one of the
    central 5x5 regions. Replaced by real ResNet50 embeddings when images are rendered.
    """
    les = np.asarray(has_lesion, dtype=bool).ravel()
    n = les.size
    rng = np.random.default_rng(seed)
    base, lesion, region_base, region_lesion = _image_patterns()
    pooled = np.maximum(base + 0.3 * rng.standard_normal((n, POOLED_DIM)) + les[:, None] * 0.8 * lesion, 0.0)
    regions = region_base[None] + 0.3 * rng.standard_normal((n, N_REGIONS, REGION_DIM))
    central = np.array([r * 7 + c for r in range(1, 6) for c in range(1, 6)])
    where = central[rng.integers(0, central.size, size=n)]
    regions[np.arange(n), where] += les[:, None] * 1.2 * region_lesion
    return pooled.astype(np.float32), regions.astype(np.float32)


def profile_image_features(profile: AthleteProfile, *, seed: int = 0) -> ImageFeatures:
    """One athlete's synthetic image features (encoder ``SYNTHETIC_ENCODER_VERSION``)."""
    pooled, regions = synthetic_image_features(np.array([profile.image_lesion]), seed=seed)
    return ImageFeatures(pooled=pooled[0], regions=regions[0], encoder_version=SYNTHETIC_ENCODER_VERSION)
