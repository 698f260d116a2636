"""Tiled prediction of images of any size, with overlapping tiles blended without seams.

The approach is the one of CSBDeep/CARE (Weigert et al., "Content-aware image restoration: pushing
the limits of fluorescence microscopy", Nat Methods 2018) and CAREamics: predict overlapping tiles,
throw away what each tile's network saw too close to a tile edge, and stitch. srlab blends instead of
cutting, so that networks with a large receptive field leave no visible seam either:

* **Tile placement.** Tiles of ``tile_size`` (LR pixels) advance by ``tile_size - overlap``; the last
  tile of a row/column is moved back to end exactly at the image border. Tiles therefore never extend
  past the image, so the image borders see the same boundary condition as a whole-image prediction
  (the network's own padding); no artificial content is invented there. An axis shorter than
  ``tile_size`` is one tile of the whole axis. Reflect padding is used only when a network needs
  sizes divisible by ``size_multiple`` and the image is smaller than one such tile.
* **Blending weights.** Along each axis a tile's weight is 0 on the outer quarter of the overlap
  (where the tile edge, not the image, limits what the network sees), then rises as a raised cosine
  (sin²) across the middle half of the overlap, and is 1 inside. Sides that lie on the image border
  are not tapered. Output = Σ weight·tile / Σ weight. Consequence: for a network whose receptive
  field reaches at most ``overlap // 4`` LR pixels, tiled and whole-image outputs are identical up to
  float rounding; beyond that the cross-fade hides the residual differences.
* **Bounded memory.** The weight of a tile is separable, ``w(y, x) = wy(y)·wx(x)``, with ``wy``
  depending only on the tile's row and ``wx`` only on its column, so the sum of weights is also
  separable: two 1D vectors instead of a second full-size buffer. Tiles are cut, converted and
  predicted ``batch_size`` at a time, in row-major order, and the output is finished band by band
  (:func:`iter_tiled_bands`): only the rows some pending tile still touches are held. Streamed to disk
  (``srlab predict``) the peak memory is bounded by the tile size and the image width, not its
  area; :func:`predict_tiled` returns the whole ``(C, s·H, s·W)`` float32 array (1 GiB for 16384²).
* **Test-time augmentation** (``tta=True``): the average of the 8 dihedral transforms (4 rotations ×
  optional flip), each prediction transformed back — the "self-ensemble" of EDSR (Lim et al., CVPRW
  2017, arXiv:1707.02921). 8× the compute.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from srlab.errors import SrlabError


def _axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _taper(length_hr: int, overlap_hr_margin: int, overlap_hr_ramp: int, left: bool, right: bool) -> np.ndarray:
    """1D weight of one tile (HR pixels): zero margin, sin² ramp, flat 1; only on tapered sides."""
    w = np.ones(length_hr, dtype=np.float32)
    if overlap_hr_ramp > 0:
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap_hr_ramp) + 0.5) / overlap_hr_ramp) ** 2
        edge = np.concatenate([np.zeros(overlap_hr_margin), ramp]).astype(np.float32)
        n = min(edge.size, length_hr)
        if left:
            w[:n] *= edge[:n]
        if right:
            w[length_hr - n:] *= edge[:n][::-1]
    return w


def _axis_weights(starts: list[int], tile: int, overlap: int, scale: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Per-tile 1D weights and their sum over the (HR) axis."""
    margin = overlap // 4
    ramp = overlap - 2 * margin
    length_hr = (starts[-1] + tile) * scale
    weights = []
    total = np.zeros(length_hr, dtype=np.float32)
    for i, start in enumerate(starts):
        w = _taper(tile * scale, margin * scale, ramp * scale, left=i > 0, right=i < len(starts) - 1)
        weights.append(w)
        total[start * scale:(start + tile) * scale] += w
    if not np.all(total > 0):
        raise AssertionError(f"tile weights leave pixels uncovered (starts {starts}, tile {tile}, overlap "
                             f"{overlap}); this is a bug in srlab")
    return weights, total


def dihedral_forward(network: nn.Module, x: Tensor) -> Tensor:
    """Mean of ``network`` over the 8 rotations/flips of ``x`` (N, C, H, W), each mapped back."""
    total = None
    for k in range(4):
        for flip in (False, True):
            t = torch.rot90(x, k, dims=(2, 3))
            if flip:
                t = torch.flip(t, dims=(3,))
            y = network(t)
            if flip:
                y = torch.flip(y, dims=(3,))
            y = torch.rot90(y, -k, dims=(2, 3)).float()
            total = y if total is None else total + y
    return total / 8.0


def _check_arguments(image: np.ndarray, scale: int, tile_size: int, overlap: int, batch_size: int,
                     size_multiple: int) -> None:
    if image.ndim not in (2, 3):
        raise SrlabError(f"tiled prediction needs an image of shape (H, W) or (C, H, W), got {image.shape}")
    if min(image.shape[-2:]) < 1:
        raise SrlabError(f"tiled prediction got an empty image of shape {image.shape}")
    if scale < 1:
        raise SrlabError(f"scale must be an integer >= 1, got {scale}")
    if tile_size < 1 or batch_size < 1 or size_multiple < 1:
        raise SrlabError(f"tile_size, batch_size and size_multiple must be >= 1, got {tile_size}, "
                         f"{batch_size}, {size_multiple}")
    if tile_size % size_multiple:
        raise SrlabError(f"tile_size {tile_size} must be a multiple of the network's size multiple "
                         f"{size_multiple}")
    if not 0 <= 2 * overlap < tile_size:
        raise SrlabError(f"overlap must satisfy 0 <= 2*overlap < tile_size, got overlap={overlap}, "
                         f"tile_size={tile_size}")


def iter_tiled_bands(network: nn.Module, image: np.ndarray, *, scale: int, tile_size: int = 256,
                     overlap: int = 32, batch_size: int = 4, device: str | torch.device = "cpu", tta: bool = False,
                     amp_dtype: torch.dtype | None = None, progress: bool = False, size_multiple: int = 1,
                     channel_scales: list[tuple[float, float]] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Super-resolve ``image`` tile by tile and yield the output in finished row bands, top to bottom:
    ``(y0, band)`` with ``band`` float32 ``(C_out, rows, s·W)`` holding output rows ``y0 …``: a view
    into the working buffer, valid (and free to modify in place) until the next band is requested.

    A band is yielded as soon as no later tile touches its rows, so only a band of about one tile row
    of output (plus the tiles in flight) is ever held: a caller that writes bands to disk predicts an
    image of any size in memory bounded by ``tile_size`` and the image width. ``image`` may be a
    memory-mapped array of any dtype; tiles are cut from it and converted one batch at a time.
    ``channel_scales`` (``[(low, span), ...]`` per input channel) normalizes each tile as
    ``(tile - low) / span`` on the way in, so a raw image needs no normalized full-size copy.
    Other arguments as in :func:`predict_tiled`.
    """
    image = np.asarray(image) if not isinstance(image, np.ndarray) else image
    _check_arguments(image, scale, tile_size, overlap, batch_size, size_multiple)
    x = image[None] if image.ndim == 2 else image
    channels, height, width = x.shape
    if channel_scales is not None and len(channel_scales) != channels:
        raise SrlabError(f"channel_scales has {len(channel_scales)} entries for an image of {channels} channels")

    tile_h = min(tile_size, math.ceil(height / size_multiple) * size_multiple)
    tile_w = min(tile_size, math.ceil(width / size_multiple) * size_multiple)
    pad_h, pad_w = max(0, tile_h - height), max(0, tile_w - width)
    if pad_h or pad_w:
        # Only reached for images smaller than one tile (a copy of at most one tile's size).
        x = np.pad(np.asarray(x, dtype=np.float32), ((0, 0), (0, pad_h), (0, pad_w)), mode="reflect")
    padded_h, padded_w = x.shape[1:]

    rows = _axis_starts(padded_h, tile_h, overlap)
    cols = _axis_starts(padded_w, tile_w, overlap)
    row_weights, row_total = _axis_weights(rows, tile_h, overlap, scale)
    col_weights, col_total = _axis_weights(cols, tile_w, overlap, scale)
    tiles = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
    out_h, out_w = height * scale, width * scale
    if channel_scales is not None:
        lows = np.array([c[0] for c in channel_scales], dtype=np.float32)[:, None, None]
        spans = np.array([c[1] for c in channel_scales], dtype=np.float32)[:, None, None]

    device = torch.device(device)
    network = network.to(device)
    was_training = network.training
    network.eval()
    autocast = (torch.autocast(device_type=device.type, dtype=amp_dtype) if amp_dtype is not None
                else torch.autocast(device_type=device.type, enabled=False))
    # One accumulator for the output rows [band_top, band_top + capacity), allocated once at the height
    # the widest span of rows any batch leaves open needs (about one tile row, two when a batch of
    # tiles straddles a row boundary); finished rows are handed out and the rest shifted up.
    capacity, top = 0, 0
    for first in range(0, len(tiles), batch_size):
        done = min(first + batch_size, len(tiles))
        capacity = max(capacity, (rows[tiles[done - 1][0]] + tile_h) * scale - top)
        top = rows[tiles[done][0]] * scale if done < len(tiles) else top
    band: np.ndarray | None = None
    band_top = 0
    try:
        with torch.inference_mode(), autocast, tqdm(total=len(tiles), disable=not progress, unit="tile",
                                                     desc="predict") as bar:
            for first in range(0, len(tiles), batch_size):
                batch_ids = tiles[first:first + batch_size]
                batch = np.stack([x[:, rows[i]:rows[i] + tile_h, cols[j]:cols[j] + tile_w] for i, j in batch_ids])
                batch = batch.astype(np.float32, copy=False)
                if channel_scales is not None:
                    batch -= lows
                    batch /= spans
                lr = torch.from_numpy(batch).to(device)
                sr = dihedral_forward(network, lr) if tta else network(lr)
                expected = (len(batch_ids), tile_h * scale, tile_w * scale)
                if sr.ndim != 4 or (sr.shape[0], sr.shape[2], sr.shape[3]) != expected:
                    raise SrlabError(f"the network maps a {tile_h}x{tile_w} tile to shape {tuple(sr.shape)}, "
                                     f"not {tile_h * scale}x{tile_w * scale}: is scale={scale} right for it?")
                sr = sr.float().cpu().numpy()
                if band is None:
                    band = np.zeros((sr.shape[1], capacity, padded_w * scale), dtype=np.float32)
                for (i, j), tile in zip(batch_ids, sr):
                    y0, x0 = rows[i] * scale - band_top, cols[j] * scale
                    tile *= row_weights[i][:, None]
                    tile *= col_weights[j][None, :]
                    band[:, y0:y0 + tile.shape[1], x0:x0 + tile.shape[2]] += tile
                bar.update(len(batch_ids))
                # Rows above the next unprocessed tile's top are final.
                done = first + len(batch_ids)
                finished = rows[tiles[done][0]] * scale if done < len(tiles) else padded_h * scale
                if finished > band_top:
                    n = finished - band_top
                    ready = band[:, :n]
                    ready /= row_total[band_top:finished][None, :, None]
                    ready /= col_total[None, None, :]
                    if band_top < out_h:
                        yield band_top, ready[:, :min(finished, out_h) - band_top, :out_w]
                    # The caller is done with the band: shift the open rows up (numpy copes with the
                    # overlap) and clear the rest for the next tiles.
                    band[:, :capacity - n] = band[:, n:]
                    band[:, capacity - n:] = 0.0
                    band_top = finished
    finally:
        network.train(was_training)


def predict_tiled(network: nn.Module, image: np.ndarray, *, scale: int, tile_size: int = 256, overlap: int = 32,
                  batch_size: int = 4, device: str | torch.device = "cpu", tta: bool = False,
                  amp_dtype: torch.dtype | None = None, progress: bool = False,
                  size_multiple: int = 1) -> np.ndarray:
    """Super-resolve ``image`` tile by tile; returns float32 ``(s·H, s·W)`` for a 2D input with one output
    channel, else ``(C_out, s·H, s·W)``.

    ``image``: normalized float array ``(H, W)`` or ``(C, H, W)`` of any size. ``tile_size`` and
    ``overlap`` are in input (LR) pixels. The network is moved to ``device`` and run in eval mode
    under ``torch.inference_mode`` (its train/eval state is restored afterwards); ``amp_dtype``
    (e.g. ``torch.bfloat16``) enables autocast. ``progress`` shows a tqdm bar over tiles.
    See the module docstring for placement, blending and memory; :func:`iter_tiled_bands` streams the
    same output band by band instead of returning it whole.
    """
    image = np.asarray(image)
    h, w = image.shape[-2:]
    output: np.ndarray | None = None
    for y0, band in iter_tiled_bands(network, image, scale=scale, tile_size=tile_size, overlap=overlap,
                                     batch_size=batch_size, device=device, tta=tta, amp_dtype=amp_dtype,
                                     progress=progress, size_multiple=size_multiple):
        if output is None:
            output = np.empty((band.shape[0], h * scale, w * scale), dtype=np.float32)
        output[:, y0:y0 + band.shape[1]] = band
    assert output is not None
    if image.ndim == 2 and output.shape[0] == 1:
        return output[0]
    return output


__all__ = ["dihedral_forward", "iter_tiled_bands", "predict_tiled"]
