from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.data.synthetic import (
    AthleteProfile,
    GaitStream,
    auroc,
    bayes_auroc,
    effective_state,
    fatigue_at,
    profile_image_features,
    sample_profile,
    session_dataset,
    synthetic_image_features,
    true_risk,
    window_dataset,
)
from schemas.channels import CHANNEL_INDEX, CHANNELS, N_CHANNELS

LO = np.array([c.lo for c in CHANNELS], dtype=np.float32)
HI = np.array([c.hi for c in CHANNELS], dtype=np.float32)


@pytest.fixture(scope="module")
def windows():
    return window_dataset(600, seed=3)


def test_window_dataset_shapes_and_ranges(windows) -> None:
    d = windows
    assert d.x.shape == (600, 200, N_CHANNELS) and d.x.dtype == np.float32
    assert d.y.shape == d.p.shape == d.athlete.shape == d.has_lesion.shape == d.p_sensor.shape == (600,)
    assert np.isfinite(d.x).all()
    assert (d.x >= LO).all() and (d.x <= HI).all()
    assert set(np.unique(d.y)) <= {0, 1}
    assert ((d.p > 0) & (d.p < 1)).all()
    assert d.has_lesion.dtype == bool
    assert d.athlete.max() < len(d.profiles)


def test_window_dataset_is_reproducible_per_seed() -> None:
    a, b, c = window_dataset(40, seed=5), window_dataset(40, seed=5), window_dataset(40, seed=6)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)


def test_base_rate_and_bayes_auroc_are_reasonable() -> None:
    d = window_dataset(2000, seed=11, window=20)  # short windows: labels do not depend on the window length
    assert 0.15 <= d.y.mean() <= 0.32
    assert 0.15 <= d.p.mean() <= 0.32
    assert 0.75 <= d.bayes_auroc() <= 0.95
    assert d.bayes_auroc_sensor_only() < d.bayes_auroc()


def test_gait_is_cyclic_with_stance_and_swing(windows) -> None:
    x = windows.x
    grf_l = x[:, :, CHANNEL_INDEX["grf_vertical_l"]]
    knee_l = x[:, :, CHANNEL_INDEX["knee_flexion_l"]]
    run = np.array([windows.profiles[a].gait == "run" for a in windows.athlete])
    # every 2 s window of a runner holds stance (GRF > 1.5 BW) and flight (GRF ~ 0)
    assert (grf_l[run].max(axis=1) > 1.5).all()
    assert (grf_l[run].min(axis=1) < 0.1).all()
    # swing knee flexion is much larger than at contact
    assert (knee_l[run].max(axis=1) - knee_l[run].min(axis=1) > 40).all()
    # left and right stance alternate: the correlation of the two GRFs is negative
    grf_r = x[:, :, CHANNEL_INDEX["grf_vertical_r"]]
    r = [np.corrcoef(grf_l[i], grf_r[i])[0, 1] for i in np.flatnonzero(run)[:50]]
    assert np.mean(r) < 0


def test_thigh_gyro_is_minus_the_hip_angle_rate(windows) -> None:
    """Right-hand rule about y (left): the thigh flexing (knee swinging forward) reads negative."""
    x = windows.x[:20].astype(np.float64)
    for side in "lr":
        hip = np.deg2rad(x[:, :, CHANNEL_INDEX[f"hip_flexion_{side}"]])
        rate = np.gradient(hip, 1 / 100.0, axis=1)
        gyr = x[:, :, CHANNEL_INDEX[f"thigh_{side}_gyr_y"]]
        assert np.corrcoef(rate[:, 5:-5].ravel(), gyr[:, 5:-5].ravel())[0, 1] < -0.9


def test_shank_gyro_is_negative_in_mid_swing_like_a_real_recording(windows) -> None:
    """The shank's largest angular rate is mid-swing, foot swinging forward: negative about y,
    the sign of the bundled Xsens recording (tests/data/imu) after import (docs/data.md, axis convention)."""
    x = windows.x.astype(np.float64)
    run = np.array([windows.profiles[a].gait == "run" for a in windows.athlete])
    gyr = x[run][:, :, CHANNEL_INDEX["shank_l_gyr_y"]]
    assert (np.abs(gyr.min(axis=1)) > np.abs(gyr.max(axis=1))).mean() > 0.9
    assert np.median(gyr.min(axis=1)) < -5.0


def test_windows_carry_their_session_time() -> None:
    d = window_dataset(200, seed=4, session_s=600.0)
    assert d.t_end.shape == (200,) and (d.t_end >= 2.0).all() and (d.t_end <= 600.0).all()
    tr = d.subset(np.arange(10))
    np.testing.assert_array_equal(tr.t_end, d.t_end[:10])
    # fatigue is the known function of that time
    rates = np.array([d.profiles[a].fatigue_rate for a in d.athlete])
    np.testing.assert_allclose(d.fatigue, fatigue_at(d.t_end, rates))


def test_sessions_are_ordered_and_end_at_the_injury() -> None:
    s = session_dataset(30, seed=2, session_s=600.0, every_s=20.0, window=50)
    w = s.windows
    assert s.n_sessions == 30 and w.x.shape[1:] == (50, N_CHANNELS)
    for k in range(s.n_sessions):
        t = w.t_end[w.athlete == k]
        assert t.size >= 1 and (np.diff(t) == 20.0).all() and t[0] == 20.0
        assert t[-1] == s.duration_s[k]
        if s.injured[k]:
            assert s.injury_end_s[k] == t[-1]  # the injury window is the session's last
        else:
            assert t[-1] == 600.0
    assert 0 < s.injured.sum() < 30
    again = session_dataset(30, seed=2, session_s=600.0, every_s=20.0, window=50)
    np.testing.assert_array_equal(again.injury_end_s, s.injury_end_s)


def test_riskier_sessions_get_injured_more_often() -> None:
    s = session_dataset(300, seed=5, session_s=1200.0, every_s=60.0, window=20)
    w = s.windows
    mean_p = np.array([w.p[w.athlete == k].mean() for k in range(s.n_sessions)])
    assert auroc(mean_p, s.injured) > 0.6


def test_session_dataset_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        session_dataset(0)
    with pytest.raises(ValueError):
        session_dataset(2, every_s=0)


def test_risk_factors_are_visible_in_the_signal(windows) -> None:
    d = windows
    valgus_bias = np.array([d.profiles[a].valgus_bias for a in d.athlete])
    peak_valgus = np.maximum(d.x[:, :, CHANNEL_INDEX["knee_valgus_l"]].max(1), d.x[:, :, CHANNEL_INDEX["knee_valgus_r"]].max(1))
    assert np.corrcoef(valgus_bias, peak_valgus)[0, 1] > 0.6
    # the window label relates to the signal: peak valgus alone ranks windows above chance
    assert auroc(peak_valgus, d.y) > 0.6


def test_true_risk_is_monotone_in_each_factor() -> None:
    base = {"valgus_peak_deg": 12.0, "asymmetry": 0.15, "loading_rate_bw_s": 60.0, "knee_flexion_contact_deg": 15.0,
            "fatigue": 0.3, "prior_injury": 0, "image_lesion": 0}
    p0 = float(true_risk(**base))
    for key, worse in [("valgus_peak_deg", 20.0), ("asymmetry", 0.3), ("loading_rate_bw_s", 100.0),
                       ("knee_flexion_contact_deg", 5.0), ("fatigue", 0.9), ("prior_injury", 1), ("image_lesion", 1)]:
        assert float(true_risk(**{**base, key: worse})) > p0, key


def test_fatigue_worsens_the_state() -> None:
    prof = AthleteProfile(fatigue_rate=0.8)
    from engine.data.synthetic import _traits

    tr = _traits([prof])
    fresh, tired = effective_state(tr, np.array([0.0])), effective_state(tr, np.array([0.8]))
    assert tired["valgus_peak_deg"][0] > fresh["valgus_peak_deg"][0]
    assert tired["asymmetry"][0] > fresh["asymmetry"][0]
    assert tired["loading_rate_bw_s"][0] > fresh["loading_rate_bw_s"][0]
    assert tired["knee_flexion_contact_deg"][0] < fresh["knee_flexion_contact_deg"][0]
    assert fatigue_at(0.0, 0.8) == 0.0
    assert fatigue_at(1e6, 0.8) == pytest.approx(0.8)


def test_sample_profile_is_seeded_and_in_range() -> None:
    a = [sample_profile(np.random.default_rng(1)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(2)
    for p in (sample_profile(rng) for _ in range(200)):
        assert 0 <= p.valgus_bias <= 1 and 0 <= p.asymmetry <= 0.35 and 0 <= p.stiffness <= 1
        assert 0.2 <= p.fatigue_rate <= 1.0 and 90 <= p.cadence <= 190 and p.side in ("l", "r")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a[0].valgus_bias = 1.0  # type: ignore[misc]


def test_stream_is_phase_continuous_whatever_the_chunking() -> None:
    prof = sample_profile(np.random.default_rng(4))
    one = GaitStream(prof, seed=9).next(300)
    s = GaitStream(prof, seed=9)
    chunks = np.concatenate([s.next(n) for n in (10, 1, 89, 150, 50)])
    assert one.shape == (300, N_CHANNELS) and one.dtype == np.float32
    np.testing.assert_allclose(chunks, one, atol=1e-4)
    assert s.elapsed_s == pytest.approx(3.0)
    assert s.next(0).shape == (0, N_CHANNELS)


def test_stream_has_no_jump_between_calls() -> None:
    s = GaitStream(AthleteProfile(), seed=1)
    frames = np.concatenate([s.next(10) for _ in range(100)])
    knee = frames[:, CHANNEL_INDEX["knee_flexion_l"]]
    steps = np.abs(np.diff(knee))
    # the largest step at a chunk boundary is no larger than the largest step inside chunks
    boundary = steps[9::10]
    assert boundary.max() <= steps.max() + 1e-6
    assert (frames >= LO).all() and (frames <= HI).all()


def test_stream_risk_drifts_up_with_fatigue() -> None:
    s = GaitStream(AthleteProfile(fatigue_rate=1.0), seed=2, fatigue_tau_s=2.0)
    r0, f0 = s.true_risk(), s.fatigue
    s.next(1000)  # 10 s = 5 tau
    assert s.fatigue > 0.99 > f0 == 0.0
    assert s.true_risk() > r0
    assert 0.0 < r0 < 1.0
    assert set(s.state()) >= {"valgus_peak_deg", "asymmetry", "loading_rate_bw_s", "fatigue"}


def test_walking_profile_walks() -> None:
    walker = AthleteProfile(cadence=110.0)
    assert walker.gait == "walk"
    frames = GaitStream(walker, seed=0).next(400)
    grf = frames[:, CHANNEL_INDEX["grf_vertical_l"]] + frames[:, CHANNEL_INDEX["grf_vertical_r"]]
    assert grf.min() > 0.3  # double support: no flight phase
    assert grf.max() < 3.0


def test_auroc_helper() -> None:
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert auroc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    assert np.isnan(auroc(np.array([0.5]), np.array([1])))
    assert bayes_auroc(np.array([0.9, 0.1]), np.array([0, 1])) == 0.0


def test_synthetic_image_features_mark_lesions() -> None:
    les = np.array([True] * 50 + [False] * 50)
    pooled, regions = synthetic_image_features(les, seed=0)
    assert pooled.shape == (100, 2048) and regions.shape == (100, 49, 64)
    assert pooled.dtype == regions.dtype == np.float32 and (pooled >= 0).all()
    # a linear direction separates lesion from no lesion
    direction = pooled[les].mean(0) - pooled[~les].mean(0)
    assert auroc(pooled @ direction, les) > 0.95
    f = profile_image_features(AthleteProfile(image_lesion=True))
    assert f.pooled.shape == (2048,) and f.encoder_version
