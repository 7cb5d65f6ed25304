"""The two Speck networks (PyTorch). Both take [N, 1, D, H, W] float input, already HU-windowed
and scaled to [0, 1] (see HU_WINDOW), at 1.0 x 0.7 x 0.7 mm (z, y, x)."""
from __future__ import annotations

import torch
from torch import nn

HU_WINDOW = (-1000.0, 400.0)
SPACING = (1.0, 0.7, 0.7)


def cbr(cin, cout, k=3, stride=1):
    return nn.Sequential(nn.Conv3d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
                         nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class Coarse(nn.Module):
    """CenterNet-like heatmap net: full-resolution input, output stride (1, 2, 2).

    Encoder to stride (4, 8, 8) for context, decoder back to (1, 2, 2) with additive skips.
    Input spatial size must be divisible by (4, 8, 8). Output: sigmoid heatmap, 1 channel."""

    def __init__(self, w=(8, 16, 24, 32)):
        super().__init__()
        a, b, c, d = w
        # kernel (3,4,4), stride (1,2,2), padding 1: output voxel j is centred on input 2j+0.5,
        # exactly where the contract places it (o*s + (s-1)/2).
        self.stem = nn.Sequential(nn.Conv3d(1, a, (3, 4, 4), stride=(1, 2, 2), padding=1, bias=False),
                                  nn.BatchNorm3d(a), nn.ReLU(inplace=True))
        self.c2 = cbr(a, b)
        self.d1 = cbr(b, c, stride=2)
        self.d2 = cbr(c, c)
        self.d3 = cbr(c, d, stride=2)
        self.d4 = cbr(d, d)
        self.up2 = nn.ConvTranspose3d(d, c, 2, stride=2)
        self.m2 = cbr(c, c)
        self.up1 = nn.ConvTranspose3d(c, b, (1, 2, 2), stride=(1, 2, 2))
        self.m1 = cbr(b, b)
        self.head = nn.Conv3d(b, 1, 1)
        nn.init.constant_(self.head.bias, -4.0)

    def forward(self, x):
        s1 = self.c2(self.stem(x))           # (1,2,2)
        s2 = self.d2(self.d1(s1))            # (2,4,4)
        s3 = self.d4(self.d3(s2))            # (4,8,8)
        u2 = self.m2(self.up2(s3) + s2)
        u1 = self.m1(self.up1_z(u2) + s1)
        return self.head(u1)                 # logits

    def up1_z(self, u2):
        # (2,4,4) -> (1,2,2): transpose conv in-plane, nearest x2 in z
        y = self.up1(u2)
        return torch.repeat_interleave(y, 2, dim=2)


class Fine(nn.Module):
    """Patch classifier/regressor on a 32x48x48 full-resolution patch centred on a candidate.

    Outputs 5 raw values: prob logit, log diameter (mm), dz, dy, dx (voxels, nodule centre minus
    patch centre)."""

    def __init__(self, patch=(32, 48, 48)):
        super().__init__()
        self.f = nn.Sequential(cbr(1, 8), cbr(8, 16, stride=2), cbr(16, 16), cbr(16, 32, stride=2), cbr(32, 32),
                               cbr(32, 64, stride=2))
        n = 64 * (patch[0] // 8) * (patch[1] // 8) * (patch[2] // 8)
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(n, 64), nn.ReLU(inplace=True), nn.Linear(64, 5))

    def forward(self, x):
        return self.fc(self.f(x))


class CoarseExport(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.sigmoid(self.net(x))


class FineExport(nn.Module):
    """Exported fine head: [N, 5] = prob, diameter_mm, dz, dy, dx (offsets in mm, as the contract says)."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.register_buffer("mm", torch.tensor([SPACING], dtype=torch.float32))

    def forward(self, x):
        o = self.net(x)
        return torch.cat([torch.sigmoid(o[:, :1]), torch.exp(o[:, 1:2]), o[:, 2:] * self.mm], dim=1)


def count_params(m):
    return sum(p.numel() for p in m.parameters())


def conv_flops(model, shape):
    """Multiply-adds x2 of all Conv3d/ConvTranspose3d/Linear layers for one input of `shape` (N=1)."""
    flops = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv3d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.kernel_size[2]
            flops[0] += 2 * out.numel() * k * mod.in_channels // mod.groups
        elif isinstance(mod, nn.ConvTranspose3d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.kernel_size[2]
            flops[0] += 2 * inp[0].numel() * k * mod.out_channels
        elif isinstance(mod, nn.Linear):
            flops[0] += 2 * mod.in_features * mod.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros((1, 1) + tuple(shape)))
    for h in hs:
        h.remove()
    return flops[0]
