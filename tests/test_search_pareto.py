"""Pareto machinery on hand-made points: non-dominated sorting, crowding, fronts, hypervolume, ideal choice."""

import numpy as np
import pytest

from codesign.search.pareto import (
    crowding_distance,
    dominates,
    hypervolume_2d,
    ideal_point_choice,
    ideal_point_distances,
    log_normalize,
    non_dominated_sort,
    pareto_mask,
)
from codesign.search.strategies import nsga2_select

# (accuracy, speed), both maximized
POINTS = np.array([
    [0.9, 1.0],   # 0 front 0
    [0.5, 3.0],   # 1 front 0
    [0.7, 2.0],   # 2 front 0
    [0.6, 1.5],   # 3 front 1 (dominated by 2)
    [0.4, 1.0],   # 4 front 2 (dominated by 3 and 0)
    [0.7, 2.0],   # 5 duplicate of 2: front 0 too (nobody strictly better)
    [0.3, 2.5],   # 6 front 1 (dominated by 1)
])


def test_dominates():
    assert dominates(np.array([1, 1]), np.array([1, 0]))
    assert not dominates(np.array([1, 1]), np.array([1, 1]))
    assert not dominates(np.array([2, 0]), np.array([1, 1]))


def test_non_dominated_sort_by_hand():
    fronts = non_dominated_sort(POINTS)
    assert [sorted(f) for f in fronts] == [[0, 1, 2, 5], [3, 6], [4]]
    assert pareto_mask(POINTS).tolist() == [True, True, True, False, False, True, False]
    assert non_dominated_sort(np.zeros((0, 2))) == []


def test_crowding_distance_by_hand():
    pts = np.array([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]])
    d = crowding_distance(pts)
    assert np.isinf(d[0]) and np.isinf(d[3])
    # point 1: neighbours 0 and 2 -> (3-0)/4 + (4-1)/4 = 1.5; point 2: (4-1)/4 + (3-0)/4 = 1.5
    assert d[1] == pytest.approx(1.5) and d[2] == pytest.approx(1.5)
    pts = np.array([[0.0, 4.0], [0.5, 3.5], [3.0, 1.0], [4.0, 0.0]])
    d = crowding_distance(pts)
    assert d[1] == pytest.approx((3 - 0) / 4 + (4 - 1) / 4) and d[2] == pytest.approx((4 - 0.5) / 4 + (3.5 - 0) / 4)
    assert np.all(np.isinf(crowding_distance(pts[:2])))


def test_nsga2_survival_keeps_fronts_then_spread_and_ranks_infeasible_last():
    vectors = [list(p) for p in POINTS] + [None, None]
    chosen, info = nsga2_select(vectors, 4)
    assert sorted(chosen) == [0, 1, 2, 5]
    chosen, info = nsga2_select(vectors, 5)
    assert set(chosen[:4]) == {0, 1, 2, 5} and chosen[4] in (3, 6)
    assert info[0][0] == 0 and info[3][0] == 1
    chosen, info = nsga2_select(vectors, 9)
    assert set(chosen) == set(range(9)) and info[7][0] == info[8][0] == 3  # after the 3 feasible fronts


def test_hypervolume_2d_by_hand():
    # staircase of (1, 0.2), (0.6, 0.5), (0.2, 1.0) over reference (0, 0):
    # 1*0.2 + 0.6*(0.5-0.2) + 0.2*(1.0-0.5) = 0.2 + 0.18 + 0.1 = 0.48
    pts = np.array([[1.0, 0.2], [0.6, 0.5], [0.2, 1.0], [0.5, 0.4]])  # the last is dominated: adds nothing
    assert hypervolume_2d(pts, (0.0, 0.0)) == pytest.approx(0.48)
    assert hypervolume_2d(pts[:1], (0.0, 0.0)) == pytest.approx(0.2)
    assert hypervolume_2d(pts, (0.5, 0.5)) == 0.0  # nothing is better than (0.5, 0.5) in both
    assert hypervolume_2d(np.array([[0.9, 0.9]]), (0.5, 0.5)) == pytest.approx(0.16)
    assert hypervolume_2d(np.zeros((0, 2)), (0, 0)) == 0.0


def test_log_normalize():
    v = log_normalize(np.array([10.0, 100.0, 1000.0]), 10.0, 1000.0)
    assert v.tolist() == pytest.approx([0.0, 0.5, 1.0])


def test_ideal_point_choice_weights():
    pts = np.array([[0.99, 0.0], [0.90, 0.9], [0.5, 1.0]])
    assert ideal_point_choice(pts, (1.0, 1.0)) == 1
    assert ideal_point_choice(pts, (1.0, 0.0)) == 0
    assert ideal_point_choice(pts, (0.0, 1.0)) == 2


def test_ideal_point_distances_by_hand():
    # columns normalized over the rows given: accuracy 0.5..0.9, speed 1..3
    pts = np.array([[0.9, 1.0], [0.7, 2.0], [0.5, 3.0]])
    d = ideal_point_distances(pts, (1.0, 1.0))
    assert d.tolist() == pytest.approx([1.0, np.sqrt(0.5), 1.0])
    assert ideal_point_distances(pts, (4.0, 1.0))[2] == pytest.approx(2.0)
    # an inaccurate outlier stretches the accuracy scale: accuracy gaps shrink and the faster row wins
    wide = np.vstack([pts, [[0.1, 3.2]]])
    assert int(np.argmin(ideal_point_distances(wide, (1.0, 1.0)))) == 2
    assert ideal_point_distances(pts[:1], (1.0, 1.0)).tolist() == [0.0]  # one row: it is the ideal
    assert ideal_point_distances(np.zeros((0, 2)), (1.0, 1.0)).size == 0
