"""Specimens: where the fluorophores are. Geometry from ``shared/reference/optics.md`` and the papers
cited by each generator.

Two consumers, one set of shapes:

* the image simulator draws label *densities* — :data:`STRUCTURES` maps a name to a generator that
  returns weighted points over the field of a :class:`Specimen` (one entry per object), which
  :func:`splat` deposits on a fine grid: microtubules (two rails of a 25 nm tube), F-actin filaments
  and bundles, clathrin-coated pits, ER, mitochondria (outer membrane), puncta, and the structures of
  neurons and nuclei — periodic actin–spectrin rings of axons, branched actin meshes, synaptic
  nanoclusters, mitochondria with cristae and nuclear pores;
* the SMLM simulator draws individual *labels* along polylines — :func:`crossing_filaments`
  (microtubules) and :func:`er_network` (ER) give the polylines, :func:`polyline_labels` the labels.

Both build filaments from :func:`worm_like_chain` (tangent-angle increments ~ N(0, step/Lp), so the
tangent correlation decays as exp(-s / (2·Lp)); Kratky & Porod 1949) and the ER from the edges of a
Voronoi tessellation (:func:`voronoi_seeds`, :func:`finite_edges`), a common model of its polygonal
tubular network. Positions are (x, y) in nm; every random draw comes from the ``rng`` passed in, in a
fixed order, so a seed gives the same specimen forever. A weight is a number of labels: per nm of
filament, microtubules carry 2, single actin filaments 0.7.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
from scipy.spatial import Voronoi, cKDTree

from srlab.optics.psf import FWHM_PER_SIGMA

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
    """What every generator draws with: a field of ``size_nm`` (height, width), labels every ``step_nm``
    along structures, ``density`` scaling how many structures there are per µm² and ``width_scale``
    their widths and diameters (tubes, bundles, pits, rings, clusters; not a period)."""

    def __init__(self, rng: np.random.Generator, size_nm: tuple[float, float], step_nm: float,
                 density: float, width_scale: float = 1.0):
        self.rng, self.h, self.w, self.step, self.density = rng, size_nm[0], size_nm[1], step_nm, density
        self.width_scale = width_scale
        self.area = self.h * self.w * 1e-6
        self._span = np.array([self.w, self.h], dtype=np.float64)

    def count(self, per_um2: float) -> int:
        """Poisson number of structures at ``per_um2`` (× ``density``) over the field."""
        return int(self.rng.poisson(per_um2 * self.density * self.area))

    def _start(self) -> np.ndarray:
        # = rng.uniform([0, 0], [w, h]): the same two doubles, scaled as uniform scales them (0 + span·u),
        # without its broadcasting machinery (drawn ~10^5 times for a large field).
        return self.rng.random(2) * self._span

    def _filament(self, length_nm: tuple[float, float], persistence_nm: float) -> tuple[np.ndarray, np.ndarray]:
        """A worm-like chain from a random start, heading and length (drawn in that order)."""
        start = self._start()
        heading = self.rng.uniform(0, 2 * np.pi)
        length = self.rng.uniform(*length_nm)
        return worm_like_chain(self.rng, start, heading, max(2, int(length / self.step)), persistence_nm,
                               self.step)

    def _through(self, length_nm: tuple[float, float], persistence_nm: float) -> tuple[np.ndarray, np.ndarray]:
        """A worm-like chain through a random point of the field, grown half its length each way;
        points ``step`` apart, tangent angles pointing one way along it."""
        start = self._start()
        heading = self.rng.uniform(0, 2 * np.pi)
        n = max(1, int(self.rng.uniform(*length_nm) / (2 * self.step)))
        ahead, th_ahead = worm_like_chain(self.rng, start, heading, n, persistence_nm, self.step)
        behind, th_behind = worm_like_chain(self.rng, start, heading + np.pi, n, persistence_nm, self.step)
        xy = np.concatenate([behind[::-1], start[None], ahead])
        return xy, np.concatenate([th_behind[::-1] - np.pi, [heading], th_ahead])

    def draw(self, structures: tuple[str, ...], brightness: Mapping[str, float] | None = None) -> Points:
        """Label points of ``structures`` (names of :data:`STRUCTURES`), drawn in that order; weights
        of structure ``name`` multiplied by ``brightness[name]`` where given."""
        parts: list[Points] = []
        for name in structures:
            drawn = STRUCTURES[name](self)
            gain = 1.0 if brightness is None else brightness.get(name, 1.0)
            parts.extend(drawn if gain == 1.0 else [(x, y, w * gain) for x, y, w in drawn])
        if not parts:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def keep_fraction(points: Points, fraction: float, rng: np.random.Generator) -> Points:
    """Labelling sparsity: each label site kept with probability ``fraction`` (weights unchanged)."""
    if fraction >= 1.0:
        return points
    keep = rng.random(points[0].size) < fraction
    return points[0][keep], points[1][keep], points[2][keep]


def _along(xy: np.ndarray, theta: np.ndarray, index: np.ndarray, normal_nm: np.ndarray,
           weight: np.ndarray | float) -> Points:
    """Points at chain points ``index`` shifted ``normal_nm`` along the chain's normal there."""
    x = xy[index, 0] - normal_nm * np.sin(theta[index])
    y = xy[index, 1] + normal_nm * np.cos(theta[index])
    return x.ravel(), y.ravel(), np.broadcast_to(weight, x.shape).ravel().astype(np.float64)


# ------------------------------------------------------------------------------------------------
# The structures (one generator each: Specimen -> list of Points, one entry per object)
# ------------------------------------------------------------------------------------------------
def microtubules(sp: Specimen) -> list[Points]:
    """25 nm hollow tubes seen as two rails ±12.5 nm; effective persistence in cells ~ several µm."""
    out = []
    for _ in range(_count(sp.rng, 0.35 * sp.density, sp.area)):
        xy, th = sp._filament((4e3, 15e3), 8e3)
        out.append(rails(xy, th, np.array([-12.5, 12.5]) * sp.width_scale, sp.step * 2.0))
    return out


def actin(sp: Specimen) -> list[Points]:
    """Straight single F-actin filaments (Lp 30 µm; dimmer: one 7 nm strand) and bundles of 3–12
    filaments 50–200 nm wide."""
    out = []
    for _ in range(_count(sp.rng, 0.25 * sp.density, sp.area)):
        xy, th = sp._filament((2e3, 10e3), 30e3)
        out.append(rails(xy, th, np.array([0.0]), sp.step * 0.7))
    for _ in range(_count(sp.rng, 0.08 * sp.density, sp.area)):
        xy, th = sp._filament((3e3, 12e3), 30e3)
        n = int(sp.rng.integers(3, 13))
        offsets = sp.rng.uniform(-0.5, 0.5, n) * sp.rng.uniform(50, 200) * sp.width_scale
        out.append(rails(xy, th, offsets, sp.step * 0.7 * n))
    return out


def ccps(sp: Specimen) -> list[Points]:
    """Clathrin-coated pits: spherical caps of 80–180 nm diameter; labels uniform on the cap surface."""
    n = _count(sp.rng, 1.5 * sp.density, sp.area)
    out = []
    for _ in range(n):
        r = sp.rng.uniform(40, 90) * sp.width_scale
        cap = sp.rng.uniform(0.3, 1.0)  # fraction of the sphere's height: shallow pit ... vesicle
        k = 300
        z = sp.rng.uniform(1 - 2 * cap, 1, k)  # uniform in z = uniform on the sphere's area
        phi = sp.rng.uniform(0, 2 * np.pi, k)
        rho = r * np.sqrt(1 - z**2)
        cx, cy = sp._start()
        weight = 4.0 * np.pi * r * cap * sp.rng.uniform(0.5, 1.5)
        out.append((cx + rho * np.cos(phi), cy + rho * np.sin(phi), np.full(k, weight / k)))
    return out


def er(sp: Specimen) -> list[Points]:
    """Polygonal tubular network: edges of a Voronoi tessellation (cells ~1 µm), 50–100 nm membrane
    tubes (two rails), gently bowed; ~10% of cells are flat sheets."""
    seeds = voronoi_seeds(sp.rng, sp.w, sp.h, mean_count=1.2 * sp.density * sp.area, margin_nm=500.0)
    try:
        vor = Voronoi(seeds)
    except Exception:  # noqa: BLE001  (qhull fails on degenerate seeds: no network this time)
        return []
    # The tubes' random draws (bow, then half-width, per kept edge) come first, in edge order; their
    # geometry is then laid out for all edges at once, as one edge at a time would place it (per-edge
    # arrays made this loop most of the structure's time).
    ends = np.array(finite_edges(vor), dtype=np.int64).reshape(-1, 2)
    d = vor.vertices[ends[:, 1]] - vor.vertices[ends[:, 0]]
    lengths = np.hypot(d[:, 0], d[:, 1])
    kept = (lengths >= 1) & (lengths <= 5e3)
    ends, lengths = ends[kept], lengths[kept]
    draws = [(sp.rng.normal(0, 0.08) * length, sp.rng.uniform(25, 50) * sp.width_scale)
             for length in lengths.tolist()]
    out = _tubes_along_edges(vor.vertices, ends, lengths, draws, sp.step) if draws else []
    for region_index in vor.point_region:
        region = vor.regions[region_index]
        if -1 in region or len(region) < 3 or sp.rng.random() > 0.1:
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
        k = max(10, int(total / (sp.step * 40)))
        tri = sp.rng.choice(len(poly), k, p=areas / total)
        u, v = sp.rng.random(k), sp.rng.random(k)
        flip = u + v > 1
        u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
        pts = centre + u[:, None] * (poly[tri] - centre) + v[:, None] * (nxt[tri] - centre)
        out.append((pts[:, 0], pts[:, 1], np.full(k, total * 0.01 / k)))
    return out


def _tubes_along_edges(vertices: np.ndarray, ends: np.ndarray, length: np.ndarray,
                       draws: list[tuple[float, float]], step_nm: float) -> list[Points]:
    """Two-rail tubes along straight edges ``ends`` ``(n, 2)`` (vertex indices) of ``length``, each bowed by
    ``bow·sin(πt)`` along its normal and ``half`` wide either side (``draws``: ``(bow, half)``), with
    ``max(2, length // step)`` points per edge at ``np.linspace(0, 1, n)``; one entry per edge."""
    bow_nm, half_nm = (np.array(c) for c in zip(*draws))
    p, q = vertices[ends[:, 0]], vertices[ends[:, 1]]
    n = np.maximum(2, (length / step_nm).astype(np.int64))
    edge = np.repeat(np.arange(len(n)), n)
    first = np.cumsum(n) - n
    k = np.arange(n.sum()) - first[edge]
    t = k * (1.0 / (n - 1))[edge]  # as np.linspace: k·(1/(n−1)), the last point exactly 1
    last = first + n - 1
    t[last] = 1.0
    d = q - p
    direction = d / length[:, None]
    bow = bow_nm[edge] * np.sin(np.pi * t)
    x = p[edge, 0] + t * d[edge, 0] + bow * -direction[edge, 1]
    y = p[edge, 1] + t * d[edge, 1] + bow * direction[edge, 0]

    def gradient(f: np.ndarray) -> np.ndarray:  # np.gradient of each edge's points (unit spacing)
        g = np.empty_like(f)
        g[1:-1] = (f[2:] - f[:-2]) / 2.0
        g[first] = f[first + 1] - f[first]
        g[last] = f[last] - f[last - 1]
        return g

    th = np.arctan2(gradient(y), gradient(x))
    nx, ny = -np.sin(th), np.cos(th)
    half = half_nm[edge]
    rail_x, rail_y = (x - half * nx, x + half * nx), (y - half * ny, y + half * ny)
    weight = step_nm * 1.5 / 2
    out = []
    for start, end in zip(first.tolist(), (first + n).tolist()):
        xs = np.concatenate([rail_x[0][start:end], rail_x[1][start:end]])
        ys = np.concatenate([rail_y[0][start:end], rail_y[1][start:end]])
        out.append((xs, ys, np.full(xs.size, weight)))
    return out


def mitochondria(sp: Specimen) -> list[Points]:
    """Hollow tubes 250–500 nm wide, 1–6 µm long: labels on the outer membrane (cylinder surface)."""
    out = []
    for _ in range(_count(sp.rng, 0.1 * sp.density, sp.area)):
        r = sp.rng.uniform(125, 250) * sp.width_scale
        xy, th = sp._filament((1e3, 6e3), 3e3)
        k = 6
        offsets = r * np.cos(sp.rng.uniform(0, 2 * np.pi, (k, len(xy))))
        nx, ny = -np.sin(th), np.cos(th)
        xs = (xy[None, :, 0] + offsets * nx[None]).ravel()
        ys = (xy[None, :, 1] + offsets * ny[None]).ravel()
        out.append((xs, ys, np.full(xs.size, sp.step * 2.0 * math.pi * r / 50.0 / k)))
    return out


def puncta(sp: Specimen) -> list[Points]:
    """Synaptic-protein-like clusters, 50–300 nm across (Gaussian, anywhere in the field)."""
    out = []
    for _ in range(_count(sp.rng, 1.0 * sp.density, sp.area)):
        size = sp.rng.uniform(50, 300) * sp.width_scale
        k = 200
        cx, cy = sp._start()
        pts = sp.rng.normal(0, size / FWHM_PER_SIGMA, (k, 2))
        out.append((cx + pts[:, 0], cy + pts[:, 1], np.full(k, sp.rng.uniform(200, 800) / k)))
    return out


#: Period of the axonal actin–spectrin skeleton (Xu, Zhong & Zhuang 2013).
SPECTRIN_PERIOD_NM = 190.0


def spectrin_rings(sp: Specimen) -> list[Points]:
    """Periodic actin–spectrin skeleton of axons: actin rings wrapped around the axon every ~190 nm,
    linked by spectrin tetramers (Xu, Zhong & Zhuang, Science 339:452, 2013), seen from above as
    bands across the axon.

    Axons: worm-like chains through the field (Lp 20 µm, 5–20 µm long) 300–800 nm across; period per
    axon N(190, 4) nm; ring positions jittered by 10 nm, 10% of rings missing; each ring's labels lie
    on a circle around the axon (projected offset r·cos φ, so the axon's edges are brighter) with a
    15 nm spread along the axon (the ring's thickness)."""
    out = []
    for _ in range(sp.count(0.08)):
        xy, th = sp._through((5e3, 20e3), 20e3)
        radius = sp.rng.uniform(150, 400) * sp.width_scale
        period = sp.rng.normal(SPECTRIN_PERIOD_NM, 4.0)
        length = (len(xy) - 1) * sp.step
        centres = np.arange(sp.rng.uniform(0, period), length, period)
        centres = centres + sp.rng.normal(0, 10.0, centres.size)
        centres = centres[sp.rng.random(centres.size) > 0.1]
        k = max(8, int(math.pi * radius / sp.step))  # labels every ~2 steps around the circumference
        s = centres[:, None] + sp.rng.normal(0, 15.0, (centres.size, k))
        index = np.clip(np.rint(s / sp.step).astype(np.int64), 0, len(xy) - 1)
        offsets = radius * np.cos(sp.rng.uniform(0, 2 * np.pi, (centres.size, k)))
        out.append(_along(xy, th, index, offsets, 2 * math.pi * radius / k))
    return out


#: Angle between an Arp2/3 daughter filament and its mother (Mullins, Heuser & Pollard 1998).
BRANCH_ANGLE_DEG = 70.0


def actin_mesh(sp: Specimen) -> list[Points]:
    """Branched ("dendritic") F-actin meshes as in lamellipodia and dendritic spines: daughter
    filaments branch off mothers at 70 ± 7° (Arp2/3; Mullins, Heuser & Pollard, PNAS 95:6181, 1998;
    Svitkina & Borisy, J. Cell Biol. 145:1009, 1999).

    Patches: ellipses with semi-axes 0.5–1.5 µm; in each, 20–60 mother filaments 200–800 nm long at
    random positions and orientations; every filament branches about once per 150 nm into daughters
    100–400 nm long, for three generations; single 7 nm filaments (one rail, as ``actin``), cut at
    the patch's edge."""
    out = []
    rng = sp.rng
    for _ in range(sp.count(0.06)):
        centre = sp._start()
        semi = rng.uniform(500, 1500, 2)
        psi = rng.uniform(0, np.pi)
        rot = np.array([[math.cos(psi), -math.sin(psi)], [math.sin(psi), math.cos(psi)]])
        n = int(rng.integers(20, 61))
        local = rng.uniform(-1, 1, (n, 2)) * semi * 0.8
        queue = [(*(centre + rot @ p).tolist(), rng.uniform(0, 2 * np.pi), rng.uniform(200, 800), 0)
                 for p in local]
        # The filaments are listed as they are drawn (the random stream decides the tree) and their points
        # laid out at once: per-filament arrays made this loop most of a simulated image's time. Plain
        # floats, not 2-vectors, in the loop: the same arithmetic at a fraction of the cost.
        filaments = []  # (x0, y0, cos, sin, length)
        random, normal, uniform, poisson = rng.random, rng.normal, rng.uniform, rng.poisson
        while queue:
            x0, y0, angle, length, generation = queue.pop()
            c, s = math.cos(angle), math.sin(angle)
            filaments.append((x0, y0, c, s, length))
            if generation >= 2:
                continue
            for where in uniform(0, length, poisson(length / 150.0)).tolist():
                side = 1.0 if random() < 0.5 else -1.0
                branch = angle + side * math.radians(normal(BRANCH_ANGLE_DEG, 7.0))
                queue.append((x0 + where * c, y0 + where * s, branch, uniform(100, 400), generation + 1))
        x, y = _rays(np.array(filaments), sp.step)
        u, v = (np.stack([x - centre[0], y - centre[1]], 1) @ rot / semi).T  # patch frame: unit disc
        inside = u**2 + v**2 <= 1.0
        out.append((x[inside], y[inside], np.full(int(inside.sum()), sp.step * 0.7)))
    return out


def _rays(filaments: np.ndarray, step_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """Points ``step_nm`` apart from each start along each direction, as ``np.arange(0, length, step)``
    would place them, for ``(n, 5)`` rows ``(x0, y0, cos, sin, length)``; concatenated in row order."""
    counts = np.ceil(filaments[:, 4] / step_nm).astype(np.int64)
    row = np.repeat(np.arange(len(filaments)), counts)
    t = (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)) * step_nm
    f = filaments[row]
    return f[:, 0] + t * f[:, 2], f[:, 1] + t * f[:, 3]


def synaptic_puncta(sp: Specimen) -> list[Points]:
    """Synapses along dendrites: postsynaptic densities (PSDs) 200–500 nm across (~300 nm) holding
    1–4 nanoclusters of ~80 nm (PSD-95 nanodomains: MacGillavry et al., Neuron 78:615, 2013; Nair et
    al., J. Neurosci. 33:13204, 2013).

    Dendrites (unlabelled) are worm-like chains through the field (Lp 10 µm, 5–20 µm long) with a
    synapse every 0.5–2 µm, on the shaft or on a spine up to 1.5 µm to either side. A PSD is an
    ellipse (aspect 0.5–1) with 30% of its labels spread uniformly and 70% in nanoclusters of 60–100 nm
    FWHM; synapses differ in brightness by up to 4×."""
    out = []
    rng = sp.rng
    for _ in range(sp.count(0.04)):
        xy, th = sp._through((5e3, 20e3), 10e3)
        spacing = rng.uniform(500, 2000)
        n = int(rng.poisson((len(xy) - 1) * sp.step / spacing))
        for index in rng.integers(0, len(xy), n):
            lateral = rng.uniform(-1500, 1500) * (rng.random() < 0.8)  # 80% on spines
            centre = xy[index] + lateral * np.array([-math.sin(th[index]), math.cos(th[index])])
            a = rng.uniform(100, 250) * sp.width_scale
            b = a * rng.uniform(0.5, 1.0)
            psi = rng.uniform(0, np.pi)
            brightness = rng.uniform(200, 800)
            k = 60  # diffuse PSD labels, uniform in the ellipse
            rho, phi = np.sqrt(rng.random(k)), rng.uniform(0, 2 * np.pi, k)
            local = [np.stack([a * rho * np.cos(phi), b * rho * np.sin(phi)], 1)]
            weights = [np.full(k, 0.3 * brightness / k)]
            m = int(min(4, 1 + rng.poisson(0.8)))
            for _ in range(m):
                c_rho, c_phi = 0.6 * math.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
                fwhm = rng.uniform(60, 100) * sp.width_scale
                local.append(np.array([a * c_rho * math.cos(c_phi), b * c_rho * math.sin(c_phi)])
                             + rng.normal(0, fwhm / FWHM_PER_SIGMA, (80, 2)))
                weights.append(np.full(80, 0.7 * brightness / (m * 80)))
            pts = np.concatenate(local)
            c, s = math.cos(psi), math.sin(psi)
            out.append((centre[0] + c * pts[:, 0] - s * pts[:, 1], centre[1] + s * pts[:, 0] + c * pts[:, 1],
                        np.concatenate(weights)))
    return out


def mitochondria_cristae(sp: Specimen) -> list[Points]:
    """Mitochondria seen with an inner-membrane label: tubes 250–500 nm wide and 1–10 µm long
    (``shared/reference/optics.md``) whose wall (inner boundary membrane) encloses cristae —
    lamellae across the tube every 70–130 nm (cristae as resolved by live-cell STED: Stephan et al.,
    Sci. Rep. 9:12419, 2019), tilted by ±15°, spanning 50–90% of the inner width.

    The wall is a projected cylinder (as ``mitochondria``); a crista's membrane area (its fraction of
    the tube's cross-section) is spread along its projected segment."""
    out = []
    rng = sp.rng
    for _ in range(sp.count(0.1)):
        r = rng.uniform(125, 250) * sp.width_scale
        xy, th = sp._filament((1e3, 10e3), 3e3)
        k = 4
        wall = _along(xy, th, np.broadcast_to(np.arange(len(xy)), (k, len(xy))),
                      r * np.cos(rng.uniform(0, 2 * np.pi, (k, len(xy)))), sp.step * 2 * math.pi * r / 50 / k)
        spacing = rng.uniform(70, 130)
        length = (len(xy) - 1) * sp.step
        s = np.arange(rng.uniform(0, spacing), length, spacing)
        s = np.clip(s + rng.normal(0, 0.15 * spacing, s.size), 0, length)
        index = np.rint(s / sp.step).astype(np.int64)
        half = r * rng.uniform(0.5, 0.9, s.size)
        tilt = np.radians(rng.normal(0, 15.0, s.size))
        m = max(4, int(2 * r / sp.step))
        t = rng.uniform(-1, 1, (s.size, m)) * half[:, None]
        normal = th[index] + np.pi / 2 + tilt
        x = xy[index, 0][:, None] + t * np.cos(normal)[:, None]
        y = xy[index, 1][:, None] + t * np.sin(normal)[:, None]
        w = np.repeat(math.pi * half**2 / 50 / m, m)
        out.append(tuple(np.concatenate([a, b]) for a, b in zip(wall, (x.ravel(), y.ravel(), w))))
    return out


#: Nuclear pore complexes: the scaffold's 8 spokes on a ring of 107–120 nm (Szymborska et al. 2013).
NPC_SPOKES = 8
NPC_DIAMETER_NM = (107.0, 120.0)


def nuclear_pores(sp: Specimen) -> list[Points]:
    """Nuclear pore complexes of a nuclear envelope seen from above: rings of 8 spokes (8-fold
    symmetry) 107–120 nm in diameter (Nup scaffold, Szymborska et al., Science 341:655, 2013), each
    spoke with 4 label sites 4 nm apart (as Nup96, 32 copies per pore).

    One nucleus per field: an ellipse with semi-axes 3–8 µm centred anywhere in the field; pores at
    6–12 per µm² (× density), centres at least 150 nm apart (the later of a close pair removed)."""
    rng = sp.rng
    centre = sp._start()
    semi = rng.uniform(3e3, 8e3, 2)
    psi = rng.uniform(0, np.pi)
    rot = np.array([[math.cos(psi), -math.sin(psi)], [math.sin(psi), math.cos(psi)]])
    n = int(rng.poisson(rng.uniform(6, 12) * sp.density * math.pi * semi[0] * semi[1] * 1e-6))
    rho, phi = np.sqrt(rng.random(n)), rng.uniform(0, 2 * np.pi, n)
    pores = centre + np.stack([semi[0] * rho * np.cos(phi), semi[1] * rho * np.sin(phi)], 1) @ rot.T
    inside = (pores[:, 0] > -500) & (pores[:, 0] < sp.w + 500) & (pores[:, 1] > -500) & (pores[:, 1] < sp.h + 500)
    pores = pores[inside]
    keep = np.ones(len(pores), bool)
    for i, j in sorted(cKDTree(pores).query_pairs(150.0)):
        if keep[i]:
            keep[j] = False
    out = []
    for cx, cy in pores[keep]:
        radius = rng.uniform(*NPC_DIAMETER_NM) / 2 * sp.width_scale
        angles = rng.uniform(0, 2 * np.pi / NPC_SPOKES) + np.arange(NPC_SPOKES) * 2 * np.pi / NPC_SPOKES
        angles = np.repeat(angles + rng.normal(0, 0.03, NPC_SPOKES), 4)
        jitter = rng.normal(0, 4.0, (angles.size, 2))
        out.append((cx + radius * np.cos(angles) + jitter[:, 0], cy + radius * np.sin(angles) + jitter[:, 1],
                    np.full(angles.size, 15.0)))
    return out


Generator = Callable[[Specimen], list[Points]]

#: The image simulator's structures: name -> generator. Adding a structure = a generator + a line here.
STRUCTURES: dict[str, Generator] = {
    "microtubules": microtubules,
    "actin": actin,
    "ccps": ccps,
    "er": er,
    "mitochondria": mitochondria,
    "puncta": puncta,
    "spectrin_rings": spectrin_rings,
    "actin_mesh": actin_mesh,
    "synaptic_puncta": synaptic_puncta,
    "mitochondria_cristae": mitochondria_cristae,
    "nuclear_pores": nuclear_pores,
}


def splat(points: Points, shape: tuple[int, int], spacing_nm: float) -> np.ndarray:
    """Bilinear deposition of weighted points on a grid (pixel ``j`` covers ``[j·d, (j+1)·d)``)."""
    x, y, w = points
    h, wd = shape
    # Deposited on the grid grown by one pixel each side, every point that reaches the grid has all four
    # of its pixels in range: one flat index serves the four corners, with no per-corner masks and
    # copies (those made this most of the deposition's time); points that do not reach it are moved
    # onto the border with no weight, and the border is cut off after. Each pixel still sums its terms
    # corner by corner in point order (adding +0.0 changes no sum), so the result is the same to the
    # last bit as four masked deposits. In-place arithmetic: these arrays hold millions of labels.
    u = x / spacing_nm
    u -= 0.5
    v = y / spacing_nm
    v -= 0.5
    fu, fv = np.floor(u), np.floor(v)
    reach = (fv >= -1) & (fv < h) & (fu >= -1) & (fu < wd)
    np.clip(fu, -1, wd - 1, out=fu)
    np.clip(fv, -1, h - 1, out=fv)
    stride = wd + 2
    flat = (fv.astype(np.int64) + 1) * stride + (fu.astype(np.int64) + 1)
    np.subtract(u, fu, out=fu)  # now the fractional parts
    np.subtract(v, fv, out=fv)
    if not reach.all():
        w = np.where(reach, w, 0.0)
    gu, gv = 1 - fu, 1 - fv
    out = np.zeros((h + 2) * stride, np.float64)
    for offset, a, b in ((0, gv, gu), (1, gv, fu), (stride, fv, gu), (stride + 1, fv, fu)):
        out += np.bincount(flat + offset if offset else flat, weights=w * (a * b), minlength=out.size)
    return np.ascontiguousarray(out.reshape(h + 2, stride)[1:-1, 1:-1])


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
