"""Specimens: where the fluorophores are. Geometry from ``shared/reference/optics.md``.

Two consumers, one set of shapes:

* the image simulator draws label *densities* — :class:`Specimen` returns weighted points over a
  field (microtubules as two rails of a 25 nm tube, F-actin filaments and bundles, clathrin-coated
  pits, ER, mitochondria, puncta) that :func:`splat` deposits on a fine grid;
* the SMLM simulator draws individual *labels* along polylines — :func:`crossing_filaments`
  (microtubules) and :func:`er_network` (ER) give the polylines, :func:`polyline_labels` the labels.

Both build filaments from :func:`worm_like_chain` (tangent-angle increments ~ N(0, step/Lp), so the
tangent correlation decays as exp(-s / (2·Lp)); Kratky & Porod 1949) and the ER from the edges of a
Voronoi tessellation (:func:`voronoi_seeds`, :func:`finite_edges`), a common model of its polygonal
tubular network. Positions are (x, y) in nm; every random draw comes from the ``rng`` passed in, in a
fixed order, so a seed gives the same specimen forever.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.spatial import Voronoi

from srlab.optics.psf import FWHM_PER_SIGMA

#: Structures of the image simulator (:class:`Specimen`).
STRUCTURES = ("microtubules", "actin", "ccps", "er", "mitochondria", "puncta")
#: Structures of the SMLM simulator ("uniform": no structure, positions drawn afresh each frame).
SMLM_STRUCTURES = ("microtubules", "er", "uniform")

Points = tuple[np.ndarray, np.ndarray, np.ndarray]  # x_nm, y_nm, weight


# ------------------------------------------------------------------------------------------------
# Shared geometry
# ------------------------------------------------------------------------------------------------
def worm_like_chain(rng: np.random.Generator, start_nm: np.ndarray, heading: float, n_steps: int,
                    persistence_nm: float, step_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """A 2D worm-like chain of ``n_steps`` steps from ``start_nm`` (the start itself not included):
    tangent-angle increments ~ N(0, step/Lp). Returns the points ``(n, 2)`` and tangent angles."""
    theta = heading + np.cumsum(rng.normal(0.0, math.sqrt(step_nm / persistence_nm), n_steps))
    xy = start_nm + np.cumsum(step_nm * np.stack([np.cos(theta), np.sin(theta)], 1), 0)
    return xy, theta


def voronoi_seeds(rng: np.random.Generator, width_nm: float, height_nm: float, *, mean_count: float,
                  margin_nm: float) -> np.ndarray:
    """Poisson(``mean_count``) seeds (at least 4) uniform over the field grown by ``margin_nm``, so
    that the tessellation's cells reach past the field's edges."""
    n_seeds = max(4, int(rng.poisson(mean_count)))
    return rng.uniform([-margin_nm, -margin_nm], [width_nm + margin_nm, height_nm + margin_nm], (n_seeds, 2))


def finite_edges(vor: Voronoi) -> list[tuple[int, int]]:
    """Vertex index pairs of the tessellation's finite edges (ridges to infinity dropped)."""
    return [(a, b) for a, b in vor.ridge_vertices if a >= 0 and b >= 0]


# ------------------------------------------------------------------------------------------------
# Image simulator: label densities
# ------------------------------------------------------------------------------------------------
def rails(xy: np.ndarray, theta: np.ndarray, offsets_nm: np.ndarray, weight: float) -> Points:
    """Copies of a polyline shifted along its normal (a tube's projected walls, a bundle's filaments)."""
    nx, ny = -np.sin(theta), np.cos(theta)
    xs = xy[None, :, 0] + offsets_nm[:, None] * nx[None]
    ys = xy[None, :, 1] + offsets_nm[:, None] * ny[None]
    return xs.ravel(), ys.ravel(), np.full(xs.size, weight / len(offsets_nm))


def _count(rng: np.random.Generator, per_um2: float, area_um2: float) -> int:
    return int(rng.poisson(per_um2 * area_um2))


class Specimen:
    """Draws structures over a field of ``size_nm`` (height, width): weighted label points with
    labels every ``step_nm`` along structures; ``density`` scales how many structures there are."""

    def __init__(self, rng: np.random.Generator, size_nm: tuple[float, float], step_nm: float,
                 density: float):
        self.rng, self.h, self.w, self.step, self.density = rng, size_nm[0], size_nm[1], step_nm, density
        self.area = self.h * self.w * 1e-6

    def _start(self) -> np.ndarray:
        return self.rng.uniform([0, 0], [self.w, self.h])

    def _filament(self, length_nm: tuple[float, float], persistence_nm: float) -> tuple[np.ndarray, np.ndarray]:
        """A worm-like chain from a random start, heading and length (drawn in that order)."""
        start = self._start()
        heading = self.rng.uniform(0, 2 * np.pi)
        length = self.rng.uniform(*length_nm)
        return worm_like_chain(self.rng, start, heading, max(2, int(length / self.step)), persistence_nm,
                               self.step)

    def microtubules(self) -> list[Points]:
        # 25 nm hollow tubes: two rails ±12.5 nm; effective persistence in cells ~ several µm.
        out = []
        for _ in range(_count(self.rng, 0.35 * self.density, self.area)):
            xy, th = self._filament((4e3, 15e3), 8e3)
            out.append(rails(xy, th, np.array([-12.5, 12.5]), self.step * 2.0))
        return out

    def actin(self) -> list[Points]:
        # Straight single filaments (Lp 30 µm; dimmer: one 7 nm strand) and bundles of 3-12 filaments
        # 50-200 nm wide.
        out = []
        for _ in range(_count(self.rng, 0.25 * self.density, self.area)):
            xy, th = self._filament((2e3, 10e3), 30e3)
            out.append(rails(xy, th, np.array([0.0]), self.step * 0.7))
        for _ in range(_count(self.rng, 0.08 * self.density, self.area)):
            xy, th = self._filament((3e3, 12e3), 30e3)
            n = int(self.rng.integers(3, 13))
            offsets = self.rng.uniform(-0.5, 0.5, n) * self.rng.uniform(50, 200)
            out.append(rails(xy, th, offsets, self.step * 0.7 * n))
        return out

    def ccps(self) -> list[Points]:
        # Clathrin-coated pits: spherical caps of 80-180 nm diameter; labels uniform on the cap surface.
        n = _count(self.rng, 1.5 * self.density, self.area)
        out = []
        for _ in range(n):
            r = self.rng.uniform(40, 90)
            cap = self.rng.uniform(0.3, 1.0)  # fraction of the sphere's height: shallow pit ... vesicle
            k = 300
            z = self.rng.uniform(1 - 2 * cap, 1, k)  # uniform in z = uniform on the sphere's area
            phi = self.rng.uniform(0, 2 * np.pi, k)
            rho = r * np.sqrt(1 - z**2)
            cx, cy = self._start()
            weight = 4.0 * np.pi * r * cap * self.rng.uniform(0.5, 1.5)
            out.append((cx + rho * np.cos(phi), cy + rho * np.sin(phi), np.full(k, weight / k)))
        return out

    def er(self) -> list[Points]:
        # Polygonal tubular network: edges of a Voronoi tessellation (cells ~1 µm), 50-100 nm membrane
        # tubes (two rails), gently bowed; ~10% of cells are flat sheets.
        seeds = voronoi_seeds(self.rng, self.w, self.h, mean_count=1.2 * self.density * self.area,
                              margin_nm=500.0)
        try:
            vor = Voronoi(seeds)
        except Exception:  # noqa: BLE001  (qhull fails on degenerate seeds: no network this time)
            return []
        out = []
        for a, b in finite_edges(vor):
            p, q = vor.vertices[a], vor.vertices[b]
            length = float(np.hypot(*(q - p)))
            if length < 1 or length > 5e3:
                continue
            t = np.linspace(0, 1, max(2, int(length / self.step)))
            direction = (q - p) / length
            normal = np.array([-direction[1], direction[0]])
            bow = self.rng.normal(0, 0.08) * length * np.sin(np.pi * t)
            xy = p + t[:, None] * (q - p) + bow[:, None] * normal
            th = np.arctan2(np.gradient(xy[:, 1]), np.gradient(xy[:, 0]))
            half = self.rng.uniform(25, 50)
            out.append(rails(xy, th, np.array([-half, half]), self.step * 1.5))
        for region_index in vor.point_region:
            region = vor.regions[region_index]
            if -1 in region or len(region) < 3 or self.rng.random() > 0.1:
                continue
            poly = vor.vertices[region]
            centre = poly.mean(0)
            if np.hypot(*(poly - centre).T).max() > 3e3:
                continue
            # Uniform points in a convex polygon: pick a fan triangle by area, then a point in it.
            nxt = np.roll(poly, -1, 0)
            areas = 0.5 * np.abs((poly[:, 0] - centre[0]) * (nxt[:, 1] - centre[1])
                                 - (nxt[:, 0] - centre[0]) * (poly[:, 1] - centre[1]))
            total = areas.sum()
            k = max(10, int(total / (self.step * 40)))
            tri = self.rng.choice(len(poly), k, p=areas / total)
            u, v = self.rng.random(k), self.rng.random(k)
            flip = u + v > 1
            u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
            pts = centre + u[:, None] * (poly[tri] - centre) + v[:, None] * (nxt[tri] - centre)
            out.append((pts[:, 0], pts[:, 1], np.full(k, total * 0.01 / k)))
        return out

    def mitochondria(self) -> list[Points]:
        # Hollow tubes 250-500 nm wide, 1-6 µm long: labels on the outer membrane (cylinder surface).
        out = []
        for _ in range(_count(self.rng, 0.1 * self.density, self.area)):
            r = self.rng.uniform(125, 250)
            xy, th = self._filament((1e3, 6e3), 3e3)
            k = 6
            offsets = r * np.cos(self.rng.uniform(0, 2 * np.pi, (k, len(xy))))
            nx, ny = -np.sin(th), np.cos(th)
            xs = (xy[None, :, 0] + offsets * nx[None]).ravel()
            ys = (xy[None, :, 1] + offsets * ny[None]).ravel()
            out.append((xs, ys, np.full(xs.size, self.step * 2.0 * math.pi * r / 50.0 / k)))
        return out

    def puncta(self) -> list[Points]:
        # Synaptic-protein-like clusters, 50-300 nm across.
        out = []
        for _ in range(_count(self.rng, 1.0 * self.density, self.area)):
            size = self.rng.uniform(50, 300)
            k = 200
            cx, cy = self._start()
            pts = self.rng.normal(0, size / FWHM_PER_SIGMA, (k, 2))
            out.append((cx + pts[:, 0], cy + pts[:, 1], np.full(k, self.rng.uniform(200, 800) / k)))
        return out

    def draw(self, structures: tuple[str, ...]) -> Points:
        parts: list[Points] = []
        for name in structures:
            parts.extend(getattr(self, name)())
        if not parts:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def splat(points: Points, shape: tuple[int, int], spacing_nm: float) -> np.ndarray:
    """Bilinear deposition of weighted points on a grid (pixel ``j`` covers ``[j·d, (j+1)·d)``)."""
    x, y, w = points
    u, v = x / spacing_nm - 0.5, y / spacing_nm - 0.5
    i0, j0 = np.floor(v).astype(np.int64), np.floor(u).astype(np.int64)
    fv, fu = v - i0, u - j0
    h, wd = shape
    out = np.zeros(h * wd, np.float64)
    corners = ((0, 0, (1 - fv) * (1 - fu)), (0, 1, (1 - fv) * fu), (1, 0, fv * (1 - fu)), (1, 1, fv * fu))
    for di, dj, wt in corners:
        ii, jj = i0 + di, j0 + dj
        ok = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < wd)
        out += np.bincount(ii[ok] * wd + jj[ok], weights=(w * wt)[ok], minlength=h * wd)
    return out.reshape(shape)


# ------------------------------------------------------------------------------------------------
# SMLM simulator: polylines and the labels along them
# ------------------------------------------------------------------------------------------------
def crossing_filaments(rng: np.random.Generator, field_nm: tuple[float, float], count: int,
                       persistence_nm: float, step_nm: float = 20.0) -> list[np.ndarray]:
    """``count`` microtubule-like worm-like chains that cross the whole ``field_nm`` (height, width):
    each starts anywhere in the field and grows both ways over twice the field's diagonal."""
    h_nm, w_nm = field_nm
    n = int(2.0 * math.hypot(h_nm, w_nm) / step_nm)
    chains = []
    for _ in range(count):
        start = rng.uniform([0, 0], [w_nm, h_nm])
        angle0 = rng.uniform(0, 2 * math.pi)
        halves = [worm_like_chain(rng, start, angle0 + direction, n, persistence_nm, step_nm)[0]
                  for direction in (0.0, math.pi)]
        chains.append(np.concatenate([halves[1][::-1], start[None], halves[0]]))
    return chains


def er_network(rng: np.random.Generator, field_nm: tuple[float, float], cell_size_nm: float) -> list[np.ndarray]:
    """ER-like polygonal tubule network over ``field_nm`` (height, width): the finite edges of a
    Voronoi tessellation with cells of ``cell_size_nm`` on average, as ``(2, 2)`` segments."""
    h_nm, w_nm = field_nm
    margin = 2.0 * cell_size_nm
    area = (h_nm + 2 * margin) * (w_nm + 2 * margin)
    seeds = voronoi_seeds(rng, w_nm, h_nm, mean_count=area / cell_size_nm**2, margin_nm=margin)
    vor = Voronoi(seeds)
    return [vor.vertices[[a, b]] for a, b in finite_edges(vor)]


def polyline_labels(segments: list[np.ndarray], labels_per_nm: float, spread_nm: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Labels ``(n, 2)`` at uniformly random arc lengths along polylines (Poisson number per
    polyline), offset by a Gaussian linkage error of ``spread_nm``."""
    out = []
    for pts in segments:
        if len(pts) < 2:
            continue
        seg = np.diff(pts, axis=0)
        seg_len = np.hypot(seg[:, 0], seg[:, 1])
        cum = np.concatenate([[0.0], np.cumsum(seg_len)])
        n = rng.poisson(cum[-1] * labels_per_nm)
        if n == 0:
            continue
        s = rng.uniform(0.0, cum[-1], n)
        k = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
        t = (s - cum[k]) / np.maximum(seg_len[k], 1e-12)
        out.append(pts[k] + seg[k] * t[:, None])
    if not out:
        return np.zeros((0, 2))
    labels = np.concatenate(out)
    return labels + rng.normal(0.0, spread_nm, labels.shape) if spread_nm > 0 else labels
