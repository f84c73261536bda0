"""The decoder's transposed convolution written as a 3x3 convolution and a pixel shuffle (issue 27, point 3): same parameters,
same result up to rounding; is it faster here? Side by side in one process, interleaved, medians of `--repeats`, one thread:

1. the expected metric (16 contexts, `pullback_metric` of a `ContextDecoder`) of `--vectors` latent vectors (a quarter of
   them for the photos decoder, whose metric costs about 16x more per vector);
2. one training step of the decoder (forward, backward) on a batch of 64 latent grids;

for the digits decoder (8x8, one up-step) and the photos decoder (3x32x32, three up-steps) at the tutorial's widths.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_subpixel.py [--vectors 512] [--repeats 5]

Prints a table and writes bench/results/subpixel.json."""
import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch

import torch.nn.functional as F

from geovq_tutorial.vae import SpatialVAE
from geovq_tutorial.geometry import ContextDecoder, pullback_metric

TAPS = torch.tensor([[3, 1, 4], [4, 2, 0]])   # [output phase a, 3x3 offset u] -> the transposed kernel's row (4: a zero row)


def subpixel_weight(w: torch.Tensor) -> torch.Tensor:
    "A ConvTranspose2d(k=4, stride 2, padding 1) weight [in, out, 4, 4] as a 3x3 convolution weight [4 out, in, 3, 3]."
    k = F.pad(w, (0, 1, 0, 1))[:, :, TAPS[:, :, None, None], TAPS[None, None, :, :]]     # [in, out, a, u, b, v]
    return k.permute(1, 2, 4, 0, 3, 5).reshape(4 * w.shape[1], w.shape[0], 3, 3)


class SubPixelConvTranspose2d(torch.nn.ConvTranspose2d):
    "ConvTranspose2d(c_in, c_out, 4, 2, 1) as a 3x3 convolution to 4 c_out channels and a pixel shuffle (the same parameters)."
    def forward(self, x):
        return F.pixel_shuffle(F.conv2d(x, subpixel_weight(self.weight), self.bias.repeat_interleave(4), padding=1), 2)


def with_subpixel(vae: SpatialVAE) -> SpatialVAE:
    "A copy of `vae` whose up-steps are `SubPixelConvTranspose2d` with the same weights."
    sub = copy.deepcopy(vae)
    for i, m in enumerate(sub.decoder):
        if isinstance(m, torch.nn.ConvTranspose2d):
            sub.decoder[i] = SubPixelConvTranspose2d(m.in_channels, m.out_channels, 4, 2, 1)
            sub.decoder[i].load_state_dict(m.state_dict())
    return sub


def seconds(fn, repeats: int) -> float:
    fn()                                                     # warm-up: kernels chosen, caches filled
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cases(vae: SpatialVAE, n: int):
    "name -> (function of a VAE) for the two measured operations."
    g = torch.Generator().manual_seed(0)
    grids, z = torch.randn(16, vae.latent_dim, 4, 4, generator=g), torch.randn(n, vae.latent_dim, generator=g)
    batch, target = torch.randn(64, vae.latent_dim, 4, 4, generator=g), torch.rand(64, *vae.image_shape, generator=g)
    def metric(v): return pullback_metric(ContextDecoder(v, grids, torch.arange(16) % 16), z)
    def step(v):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(v.decoder(batch), target); loss.backward()
        return loss.detach()
    return {'expected metric': metric, 'decoder training step': step}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--vectors', type=int, default=512); ap.add_argument('--repeats', type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1); torch.manual_seed(0)
    rows = []
    for name, shape in (('digits', (1, 8, 8)), ('photos', (3, 32, 32))):
        plain = SpatialVAE(shape, 8, 32)
        sub = with_subpixel(plain)
        for what, fn in cases(plain, args.vectors if name == 'digits' else args.vectors // 4).items():
            diff = (fn(sub) - fn(plain)).abs().max().item() if what == 'expected metric' else abs(fn(sub) - fn(plain)).item()
            t_plain, t_sub = [], []
            for _ in range(args.repeats):                   # interleaved: both see the same machine state
                t_plain.append(seconds(lambda: fn(plain), 1)); t_sub.append(seconds(lambda: fn(sub), 1))
            rows.append({'decoder': name, 'operation': what, 'transposed_s': statistics.median(t_plain),
                         'subpixel_s': statistics.median(t_sub), 'max_abs_difference': diff})
            r = rows[-1]
            print(f"{name:7s} {what:22s} transposed {r['transposed_s']:.3f} s  sub-pixel {r['subpixel_s']:.3f} s  "
                  f"speed-up {r['transposed_s'] / r['subpixel_s']:.2f}x  max |difference| {diff:.2g}", flush=True)
    out = Path(__file__).parent / 'results' / 'subpixel.json'
    out.write_text(json.dumps({'vectors': args.vectors, 'repeats': args.repeats, 'threads': 1, 'rows': rows}, indent=1) + '\n')


if __name__ == '__main__':
    main()
