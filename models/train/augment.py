"""Random geometric + intensity augmentation of stored patches (torch, batched).

Geometry: flips of every axis, y/x transposition, rotation about z (+-15 deg), spacing jitter
(scale 0.9-1.1 per axis), random shifts. Labels (nodule centres, diameters) are mapped with the
same matrix. Intensity: HU gain/offset, added Gaussian noise."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from nets import HU_WINDOW


def random_matrix(rng, geom=True):
    m = np.eye(3)
    if not geom:
        return m
    s = rng.uniform(0.9, 1.1)
    S = np.diag([rng.uniform(0.9, 1.1), s * rng.uniform(0.97, 1.03), s * rng.uniform(0.97, 1.03)])
    a = math.radians(rng.uniform(-15, 15)) if rng.random() < 0.5 else 0.0
    R = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    Fl = np.diag([rng.choice([-1, 1]) for _ in range(3)]).astype(float)
    P = np.eye(3)
    if rng.random() < 0.5:
        P = P[[0, 2, 1]]
    return Fl @ P @ R @ S


def out_centre(out_size, half):
    """Output voxel that the centre maps to: size//2 (coarse crops) or (size-1)/2 (fine patches,
    the contract's patch centre)."""
    return np.array([(s - 1) / 2 if half else s // 2 for s in out_size], float)


def sample_batch(stored: np.ndarray, centres_in, mats, out_size, rng, intensity=True, half=False):
    """stored: [B, D0, H0, W0] int16; centres_in: [B,3] float stored-voxel coords mapped to the output
    centre voxel (out_size//2); mats: [B,3,3]. Returns float tensor [B,1,D,H,W] in [0,1]."""
    B = stored.shape[0]
    D, H, W = out_size
    c_out = out_centre(out_size, half)
    oz, oy, ox = np.meshgrid(np.arange(D), np.arange(H), np.arange(W), indexing="ij")
    o = (np.stack([oz, oy, ox], -1).reshape(-1, 3) - c_out).astype(np.float32)  # [V,3]
    o_t = torch.from_numpy(o)
    mats_t = torch.from_numpy(np.asarray(mats, np.float32))
    ci = torch.from_numpy(np.asarray(centres_in, np.float32))
    idx = torch.einsum("bij,vj->bvi", mats_t, o_t) + ci[:, None, :]  # [B,V,3] zyx in stored coords
    shp = torch.tensor(stored.shape[1:], dtype=torch.float32)
    norm = 2 * idx / (shp - 1) - 1
    grid = norm[..., [2, 1, 0]].reshape(B, D, H, W, 3)
    x = torch.from_numpy(stored.astype(np.float32))[:, None]
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    if intensity:
        gain = torch.from_numpy(rng.uniform(0.94, 1.06, size=(B, 1, 1, 1, 1)).astype(np.float32))
        off = torch.from_numpy(rng.uniform(-25, 25, size=(B, 1, 1, 1, 1)).astype(np.float32))
        sig = torch.from_numpy(rng.uniform(0, 20, size=(B, 1, 1, 1, 1)).astype(np.float32))
        y = (y + 1000) * gain - 1000 + off + sig * torch.randn_like(y)
    lo, hi = HU_WINDOW
    return ((y - lo) / (hi - lo)).clamp_(0, 1)


def map_points(p_in, centre_in, mat, out_size, half=False):
    """Stored-patch voxel coords (z,y,x) -> output-crop voxel coords, for the same transform."""
    c_out = out_centre(out_size, half)
    return c_out + np.linalg.solve(mat, np.asarray(p_in, float) - np.asarray(centre_in, float))


def window(hu: np.ndarray) -> np.ndarray:
    lo, hi = HU_WINDOW
    return np.clip((hu.astype(np.float32) - lo) / (hi - lo), 0, 1)
