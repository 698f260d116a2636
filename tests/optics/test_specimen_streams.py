"""The fast paths of the specimen generators and of ``splat`` give, to the last bit, what the plain
per-object code gives (kept here as the reference): a seed draws the same specimen forever, so the
recorded benchmark tables stay reproducible when the code gets faster."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import Voronoi

from srlab.optics import specimens as sp
from srlab.optics.specimens import Specimen, splat


def _splat_reference(points, shape, spacing_nm):
    """Bilinear deposition, one masked bincount per corner."""
    x, y, w = points
    u, v = x / spacing_nm - 0.5, y / spacing_nm - 0.5
    i0, j0 = np.floor(v).astype(np.int64), np.floor(u).astype(np.int64)
    fv, fu = v - i0, u - j0
    h, wd = shape
    out = np.zeros(h * wd, np.float64)
    for di, dj, wt in ((0, 0, (1 - fv) * (1 - fu)), (0, 1, (1 - fv) * fu), (1, 0, fv * (1 - fu)), (1, 1, fv * fu)):
        ii, jj = i0 + di, j0 + dj
        ok = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < wd)
        out += np.bincount(ii[ok] * wd + jj[ok], weights=(w * wt)[ok], minlength=h * wd)
    return out.reshape(shape)


def _er_tubes_reference(s: Specimen):
    """The ER's tubes as drawn one edge at a time (its sheets left out: their code is unchanged)."""
    seeds = sp.voronoi_seeds(s.rng, s.w, s.h, mean_count=1.2 * s.density * s.area, margin_nm=500.0)
    vor = Voronoi(seeds)
    out = []
    for a, b in sp.finite_edges(vor):
        p, q = vor.vertices[a], vor.vertices[b]
        length = float(np.hypot(*(q - p)))
        if length < 1 or length > 5e3:
            continue
        t = np.linspace(0, 1, max(2, int(length / s.step)))
        direction = (q - p) / length
        normal = np.array([-direction[1], direction[0]])
        bow = s.rng.normal(0, 0.08) * length * np.sin(np.pi * t)
        xy = p + t[:, None] * (q - p) + bow[:, None] * normal
        th = np.arctan2(np.gradient(xy[:, 1]), np.gradient(xy[:, 0]))
        half = s.rng.uniform(25, 50) * s.width_scale
        out.append(sp.rails(xy, th, np.array([-half, half]), s.step * 1.5))
    return out


def _actin_mesh_reference(s: Specimen):
    """The branched meshes with 2-vectors for positions, as first written."""
    out, rng = [], s.rng
    for _ in range(s.count(0.06)):
        centre = s._start()
        semi = rng.uniform(500, 1500, 2)
        psi = rng.uniform(0, np.pi)
        rot = np.array([[math.cos(psi), -math.sin(psi)], [math.sin(psi), math.cos(psi)]])
        local = rng.uniform(-1, 1, (int(rng.integers(20, 61)), 2)) * semi * 0.8
        queue = [(centre + rot @ p, rng.uniform(0, 2 * np.pi), rng.uniform(200, 800), 0) for p in local]
        filaments = []
        while queue:
            start, angle, length, generation = queue.pop()
            c, si = math.cos(angle), math.sin(angle)
            filaments.append((start[0], start[1], c, si, length))
            if generation >= 2:
                continue
            direction = np.array([c, si])
            for where in rng.uniform(0, length, rng.poisson(length / 150.0)):
                side = 1.0 if rng.random() < 0.5 else -1.0
                branch = angle + side * math.radians(rng.normal(sp.BRANCH_ANGLE_DEG, 7.0))
                queue.append((start + where * direction, branch, rng.uniform(100, 400), generation + 1))
        x, y = sp._rays(np.array(filaments), s.step)
        u, v = (np.stack([x - centre[0], y - centre[1]], 1) @ rot / semi).T
        inside = u**2 + v**2 <= 1.0
        out.append((x[inside], y[inside], np.full(int(inside.sum()), s.step * 0.7)))
    return out


def _assert_same(fast, reference):
    assert len(fast) == len(reference) > 0
    for part, ref in zip(fast, reference, strict=True):
        for a, b in zip(part, ref, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed, size_nm, step_nm", [(0, 8000.0, 5.0), (1, 20000.0, 20.3125), (2, 6000.0, 2.5)])
def test_er_tubes_are_the_per_edge_ones(seed, size_nm, step_nm):
    fast = sp.er(Specimen(np.random.default_rng(seed), (size_nm, size_nm), step_nm, 1.5, 1.1))
    reference = _er_tubes_reference(Specimen(np.random.default_rng(seed), (size_nm, size_nm), step_nm, 1.5, 1.1))
    _assert_same(fast[:len(reference)], reference)


@pytest.mark.parametrize("seed, size_nm, step_nm", [(0, 8000.0, 5.0), (3, 15000.0, 20.3125)])
def test_actin_mesh_is_the_2_vector_one(seed, size_nm, step_nm):
    fast = sp.actin_mesh(Specimen(np.random.default_rng(seed), (size_nm, size_nm), step_nm, 2.0))
    _assert_same(fast, _actin_mesh_reference(Specimen(np.random.default_rng(seed), (size_nm, size_nm), step_nm, 2.0)))


@pytest.mark.parametrize("margin_nm", [15.0, -450.0])  # all points well inside; many across the edges and beyond
def test_splat_is_the_masked_per_corner_one(margin_nm):
    rng = np.random.default_rng(4)
    shape, spacing = (57, 83), 10.0
    n = 20000
    points = (rng.uniform(margin_nm, shape[1] * spacing - margin_nm, n),
              rng.uniform(margin_nm, shape[0] * spacing - margin_nm, n), rng.uniform(0.1, 3.0, n))
    fast = splat(points, shape, spacing)
    assert fast.flags.c_contiguous and fast.shape == shape
    np.testing.assert_array_equal(fast, _splat_reference(points, shape, spacing))
    if margin_nm > 0:  # every label lands on the grid: nothing is lost
        assert fast.sum() == pytest.approx(points[2].sum())


def test_a_structures_start_is_uniform_over_the_field():
    fast = Specimen(np.random.default_rng(5), (3000.0, 7000.0), 5.0, 1.0)
    reference = np.random.default_rng(5)
    for _ in range(200):
        np.testing.assert_array_equal(fast._start(), reference.uniform([0, 0], [7000.0, 3000.0]))
