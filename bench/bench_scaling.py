"""Codebooks at CIFAR-10 scale (issue 12, point 4): time and peak memory of fitting and encoding N latent vectors of D = 16
with each codebook method, at N = 100k, 400k and 800k (CIFAR-10's 50k images x 16 cells):

    PYTHONPATH=$PWD .venv/bin/python bench/bench_scaling.py [--sizes 100000 400000 800000] [--methods kmeans,kmedoids,geodesic]

Each (N, method) runs in its own process (1 torch thread), so that its peak resident memory (`ru_maxrss`) is its own. The
vectors are synthetic: 4 active channels (standard normal) and 12 nearly dead ones (std 0.05), like the encoder means of a
trained VAE; the geodesic codebook is given synthetic metric tensors M = A A^T + 1e-3 I (A [D, 4], seeded), so the fit is
timed "given the metric" (the acceptance). The cost of the metric tensors themselves (decoder Jacobians, linear in N) is
measured separately on a 32x32 RGB decoder with D = 16 over `--metric-grids` grids and reported per vector, with its
extrapolation to each N. Also measured: exact (scikit-learn) against approximate (pynndescent) kNN, whose crossover sets
`APPROX_KNN_ABOVE` in the geometry chapter. Writes bench/results/scaling.json. The machine's load average is recorded: wall
times on a shared machine are upper bounds; CPU times are what one core spent.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
D, ACTIVE, K = 16, 4, 64


def synthetic(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    "Vectors [n, D] (ACTIVE live channels) and SPD metric tensors [n, D, D], built in chunks (float32)."
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, D, generator=g) * 0.05
    v[:, :ACTIVE] = torch.randn(n, ACTIVE, generator=g)
    M = torch.empty(n, D, D)
    for s in range(0, n, 2 ** 16):
        A = torch.randn(min(2 ** 16, n - s), D, ACTIVE, generator=g) / ACTIVE ** 0.5
        M[s:s + len(A)] = A @ A.transpose(1, 2) + 1e-3 * torch.eye(D)
    return v, M


def clock():
    return time.perf_counter(), time.process_time()


def since(t) -> dict:
    w, c = clock()
    return {'wall_s': round(w - t[0], 2), 'cpu_s': round(c - t[1], 2)}


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20     # kB -> GiB (Linux)


def one(n: int, method: str, approx_above: int | None) -> dict:
    "Fit and encode n synthetic vectors with `method` in this process."
    import geovq_tutorial.geometry as geometry
    from geovq_tutorial.codebook import make_codebook
    torch.set_num_threads(1)
    if approx_above is not None: geometry.APPROX_KNN_ABOVE = approx_above
    v, M = synthetic(n)
    base = peak_gb()
    params = {'kmeans': {}, 'kmedoids': {'subsample': 4000}, 'geodesic': {'subsample': 4000, 'knn': 10}}[method]
    cb = make_codebook(method, K, seed=0, **params)
    t = clock(); cb.fit(v, M if cb.needs_metric else None); fit = since(t)
    t = clock(); tokens = cb.encode(v, M if cb.needs_metric else None); enc = since(t)
    return {'n': n, 'method': method, 'fit': fit, 'encode': enc, 'codes_used': int(tokens.unique().numel()),
            'inputs_gb': round(base, 3), 'peak_gb': round(peak_gb(), 3), 'timing': cb.info.get('timing'),
            'knn': 'approximate (pynndescent)' if n > geometry.APPROX_KNN_ABOVE else 'exact (scikit-learn)'}


def knn_probe(n: int) -> dict:
    "Exact against approximate kNN (k = 11, self included) on n synthetic vectors: time, CPU and recall."
    from geovq_tutorial.geometry import ApproxKNN, knn_index
    torch.set_num_threads(1)
    x = synthetic(n)[0].numpy().astype(np.float64)
    t = clock(); exact = knn_index(x, 10, approx_above=n).kneighbors(x, n_neighbors=11, return_distance=False); e = since(t)
    t = clock(); approx = ApproxKNN(x, 10).kneighbors(x, n_neighbors=11); a = since(t)
    check = np.random.default_rng(0).choice(n, min(n, 5000), replace=False)
    recall = float(np.mean([len(set(exact[i]) & set(approx[i])) / 11 for i in check]))
    return {'n': n, 'exact': e, 'approximate': a, 'recall': round(recall, 4)}


def metric_cost(grids: int) -> dict:
    "Seconds per vector of the in-context metric tensors of a 32x32 RGB decoder with D = 16 (untrained: the cost is the same)."
    from geovq_tutorial.geometry import metric_tensors
    from geovq_tutorial.vae import CELLS, SpatialVAE
    torch.set_num_threads(1)
    vae = SpatialVAE((3, 32, 32), latent_dim=D, hidden=32).eval()
    z = torch.randn(grids, D, 4, 4, generator=torch.Generator().manual_seed(0))
    t = clock(); M = metric_tensors(vae, z); c = since(t)
    return {'grids': grids, 'vectors': grids * CELLS, **c, 'cpu_s_per_vector': c['cpu_s'] / (grids * CELLS),
            'bytes_per_vector': M[0].numel() * 4}


def child(args, what: list[str]) -> dict:
    "Run one measurement in a fresh process and return its JSON."
    cmd = [sys.executable, __file__, '--child', *what] + (['--approx-above', str(args.approx_above)] if args.approx_above else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONPATH': str(ROOT)})
    if out.returncode != 0: return {'failed': what, 'stderr': out.stderr[-2000:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', type=int, nargs='+', default=[100_000, 400_000, 800_000])
    p.add_argument('--methods', default='kmeans,kmedoids,geodesic')
    p.add_argument('--knn-sizes', type=int, nargs='*', default=[100_000, 400_000])
    p.add_argument('--metric-grids', type=int, default=64)
    p.add_argument('--approx-above', type=int, default=None, help='override APPROX_KNN_ABOVE for the codebook runs')
    p.add_argument('--out', type=Path, default=ROOT / 'bench' / 'results' / 'scaling.json')
    p.add_argument('--note', default='shared machine: other jobs may have been running (see the load averages)',
                   help='what else ran on the machine, recorded with the results')
    p.add_argument('--child', nargs='+', default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        kind, *rest = args.child
        res = {'fit': lambda: one(int(rest[0]), rest[1], args.approx_above), 'knn': lambda: knn_probe(int(rest[0])),
               'metric': lambda: metric_cost(int(rest[0]))}[kind]()
        print(json.dumps(res)); return
    result = {'machine': {'platform': platform.platform(), 'cpus': os.cpu_count(), 'torch_threads': 1,
                          'load_average_at_start': os.getloadavg(), 'note': args.note},
              'settings': {'D': D, 'active_channels': ACTIVE, 'K': K, 'subsample': 4000, 'knn': 10}, 'runs': [], 'knn': []}
    def save():
        result['machine']['load_average_now'] = os.getloadavg()
        args.out.parent.mkdir(parents=True, exist_ok=True); args.out.write_text(json.dumps(result, indent=1))
    result['metric_cost'] = child(args, ['metric', str(args.metric_grids)]); save(); print(result['metric_cost'], flush=True)
    for n in args.sizes:
        for m in args.methods.split(','):
            r = child(args, ['fit', str(n), m]); result['runs'].append(r); save(); print(r, flush=True)
    for n in args.knn_sizes:
        r = child(args, ['knn', str(n)]); result['knn'].append(r); save(); print(r, flush=True)
    per = result['metric_cost'].get('cpu_s_per_vector')
    if per: result['metric_cost']['extrapolated_cpu_s'] = {str(n): round(per * n, 1) for n in args.sizes}
    save()


if __name__ == '__main__':
    main()
