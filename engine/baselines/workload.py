"""Workload baseline: logistic regression on training-load features.

What a workload-monitoring system computes from the same accelerometers, per window of an
athlete's session, using only that athlete's windows up to the window's end (causal):

* ``player_load``: PlayerLoad-style accumulated acceleration of the window, per minute:
  ``sum_t sum_imu sqrt(sum_axis (a[t+1] - a[t])^2) / 100`` over the four IMUs, scaled to 60 s;
* ``acute``: mean PlayerLoad per minute of the athlete's windows in the last 5 minutes;
* ``chronic``: mean PlayerLoad per minute over the session so far;
* ``acwr``: the acute:chronic workload ratio ``acute / chronic``;
* ``session_load``: accumulated session PlayerLoad, ``chronic x elapsed minutes``.

The classifier is scikit-learn's ``LogisticRegression`` on standardised features, with
temperature 1 (logistic regression is calibrated by its loss).
"""

from __future__ import annotations

import numpy as np

from schemas.channels import CHANNEL_INDEX

FEATURES: tuple[str, ...] = ("player_load", "acute", "chronic", "acwr", "session_load")
ACUTE_S = 300.0
_IMUS = ("thigh_l", "thigh_r", "shank_l", "shank_r")
_ACC = np.array([[CHANNEL_INDEX[f"{imu}_acc_{a}"] for a in "xyz"] for imu in _IMUS])  # (4, 3)


def player_load_rate(x: np.ndarray, hz: float) -> np.ndarray:
    """PlayerLoad per minute of each window ``x`` (n, T, C) in physical units (absent = NaN -> 0)."""
    acc = np.nan_to_num(np.asarray(x, dtype=np.float64)[:, :, _ACC])   # (n, T, 4, 3)
    d = np.diff(acc, axis=1)
    pl = np.sqrt((d**2).sum(axis=-1)).sum(axis=(1, 2)) / 100.0
    return pl * (60.0 * hz / x.shape[1])


def history_features(rate: np.ndarray, athlete: np.ndarray, t_end: np.ndarray) -> np.ndarray:
    """(n, 5) features of :data:`FEATURES` from each window's PlayerLoad rate; each window's
    history is the same athlete's windows ending no later (ties: earlier index first)."""
    r_all = np.asarray(rate, dtype=np.float64)
    ath = np.asarray(athlete)
    t = np.asarray(t_end, dtype=np.float64)
    out = np.empty((r_all.size, len(FEATURES)), dtype=np.float64)
    for a in np.unique(ath):
        idx = np.flatnonzero(ath == a)
        idx = idx[np.lexsort((idx, t[idx]))]
        r, tt = r_all[idx], t[idx]
        csum = np.cumsum(r)
        chronic = csum / np.arange(1, idx.size + 1)
        start = np.searchsorted(tt, tt - ACUTE_S, side="right")  # first window inside the acute span
        end = np.arange(1, idx.size + 1)
        acute = (csum[end - 1] - np.r_[0.0, csum][start]) / np.maximum(end - start, 1)
        out[idx] = np.stack([r, acute, chronic, acute / np.maximum(chronic, 1e-9), chronic * tt / 60.0], axis=1)
    return out


def workload_features(x: np.ndarray, athlete: np.ndarray, t_end: np.ndarray, hz: float) -> np.ndarray:
    """(n, 5) features of :data:`FEATURES` for windows ``x`` (n, T, C, physical units) of
    ``athlete`` ending ``t_end`` s into the session."""
    return history_features(player_load_rate(x, hz), athlete, t_end)


class WorkloadLogReg:
    """Standardise + logistic regression (``C`` = inverse regularisation)."""

    def __init__(self, c: float = 1.0) -> None:
        self.c = c
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.clf = None

    def fit(self, features: np.ndarray, y: np.ndarray) -> WorkloadLogReg:
        from sklearn.linear_model import LogisticRegression

        f = np.asarray(features, dtype=np.float64)
        self.mean, self.std = f.mean(0), f.std(0) + 1e-9
        self.clf = LogisticRegression(C=self.c, max_iter=1000).fit((f - self.mean) / self.std, np.asarray(y))
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        if self.clf is None:
            raise RuntimeError("fit the model first")
        f = (np.asarray(features, dtype=np.float64) - self.mean) / self.std
        return self.clf.predict_proba(f)[:, 1]

    @property
    def n_params(self) -> int:
        return len(FEATURES) + 1

    @staticmethod
    def flops_per_window(window: int) -> int:
        """Analytic FLOPs: differences, squares, sums and roots of 4 IMUs x 3 axes over the
        window, the running means (a few per window) and the 5-feature dot product."""
        diffs = (window - 1) * 4 * 3
        return 3 * diffs + 2 * (window - 1) * 4 + 20 + 2 * len(FEATURES) * 2
