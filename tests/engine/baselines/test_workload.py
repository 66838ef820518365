from __future__ import annotations

import numpy as np
import pytest

from engine.baselines.workload import FEATURES, WorkloadLogReg, history_features, player_load_rate, workload_features
from engine.data.synthetic import AthleteProfile, GaitStream, auroc, window_dataset
from schemas.channels import CHANNEL_INDEX, N_CHANNELS


def test_player_load_of_a_known_signal() -> None:
    x = np.zeros((2, 101, N_CHANNELS), np.float32)
    # one axis of one IMU rises 1 m/s^2 per frame: 100 steps of 1 -> PlayerLoad 1.0 per window (1.01 s)
    x[0, :, CHANNEL_INDEX["shank_l_acc_x"]] = np.arange(101)
    assert player_load_rate(x, 100.0)[0] == pytest.approx(1.0 * 60.0 * 100.0 / 101.0)
    assert player_load_rate(x, 100.0)[1] == 0.0
    x[1, :, CHANNEL_INDEX["thigh_r_acc_z"]] = np.nan  # an absent channel counts as no load
    assert player_load_rate(x, 100.0)[1] == 0.0


def test_running_loads_more_than_walking() -> None:
    run = GaitStream(AthleteProfile(cadence=170.0), seed=0).next(200)[None]
    walk = GaitStream(AthleteProfile(cadence=110.0), seed=0).next(200)[None]
    assert player_load_rate(run, 100.0)[0] > 1.5 * player_load_rate(walk, 100.0)[0]


def test_history_features_are_causal() -> None:
    rate = np.array([1.0, 2.0, 3.0, 10.0, 4.0])
    athlete = np.array([0, 0, 0, 1, 0])
    t = np.array([60.0, 600.0, 120.0, 60.0, 700.0])  # athlete 0 in time order: idx 0, 2, 1, 4
    f = history_features(rate, athlete, t)
    assert f.shape == (5, len(FEATURES))
    np.testing.assert_allclose(f[:, 0], rate)
    np.testing.assert_allclose(f[[0, 2, 1, 4], 2], [1.0, 2.0, 2.0, 2.5])         # chronic: mean so far
    np.testing.assert_allclose(f[[0, 2, 1, 4], 1], [1.0, 2.0, 2.0, 3.0])         # acute: last 5 minutes
    np.testing.assert_allclose(f[4, 3], 3.0 / 2.5)                               # ACWR
    np.testing.assert_allclose(f[4, 4], 2.5 * 700.0 / 60.0)                      # session load
    assert f[3, 2] == 10.0                                                       # athletes apart
    # adding a later window changes no earlier window's features
    g = history_features(np.r_[rate, 50.0], np.r_[athlete, 0], np.r_[t, 900.0])
    np.testing.assert_allclose(g[:5], f)


def test_workload_logistic_regression_learns_something() -> None:
    d = window_dataset(1200, seed=3, window=100)
    f = workload_features(d.x, d.athlete, d.t_end, d.hz)
    tr = d.athlete < 40
    clf = WorkloadLogReg().fit(f[tr], d.y[tr])
    p = clf.predict_proba(f[~tr])
    assert p.shape == ((~tr).sum(),) and ((p > 0) & (p < 1)).all()
    assert auroc(p, d.y[~tr]) > 0.5
    assert clf.n_params == 6 and WorkloadLogReg.flops_per_window(200) > 0
    with pytest.raises(RuntimeError):
        WorkloadLogReg().predict_proba(f)
