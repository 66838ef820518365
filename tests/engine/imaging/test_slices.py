from __future__ import annotations

import numpy as np
import pytest

from engine.imaging.slices import center_out, central_indices, mean_features, policy_name, slice_order, slice_position


@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [(1, 3, [0]), (2, 3, [0, 1]), (3, 3, [0, 1, 2]), (10, 3, [3, 4, 5]), (11, 3, [4, 5, 6]), (120, 1, [59]), (7, 5, [1, 2, 3, 4, 5])],
)
def test_central_indices(n, k, expected):
    assert central_indices(n, k) == expected


def test_center_out_is_a_permutation_starting_at_the_centre():
    order = center_out(9)
    assert order[0] == 4 and sorted(order) == list(range(9))
    assert order[:3] == [4, 3, 5]
    assert center_out(0) == []


def test_slice_order_by_position_then_instance_number_then_name():
    names = ["c", "a", "b"]
    assert slice_order([3.0, 1.0, 2.0], [1, 2, 3], names) == [1, 2, 0]
    assert slice_order([3.0, None, 2.0], [3, 1, 2], names) == [1, 2, 0]
    assert slice_order([None] * 3, [None, 5, 1], names) == [1, 2, 0]


def test_slice_position_projects_on_the_normal():
    axial = [1, 0, 0, 0, 1, 0]
    assert slice_position([10.0, 20.0, -35.5], axial) == pytest.approx(-35.5)
    sagittal = [0, 1, 0, 0, 0, -1]
    assert slice_position([12.0, 0.0, 0.0], sagittal) == pytest.approx(-12.0)
    assert slice_position(None, axial) is None
    assert slice_position([1.0, 2.0, 3.0], [0, 0, 0, 0, 0, 0]) is None


def test_mean_features():
    p, r = mean_features([np.zeros(2048), np.full(2048, 2.0)], [np.zeros((49, 64)), np.ones((49, 64))])
    assert p.dtype == np.float32 and p.shape == (2048,) and float(p[0]) == 1.0
    assert r.shape == (49, 64) and float(r[3, 3]) == 0.5
    with pytest.raises(ValueError):
        mean_features([], [])
    assert policy_name(3) == "central3-mean"
