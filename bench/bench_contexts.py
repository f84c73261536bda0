"""What the expected metric's number of contexts C buys, and what it costs (issues 12 and 13: the metric tensors are the largest
single cost of `geovq run`, and they cost C decoder Jacobians per vector).

    PYTHONPATH=$PWD .venv/bin/python bench/bench_contexts.py --run-dir runs/digits [--contexts 2 4 8 16 32] [--vectors 2000]

On the base seed's VAE of a finished run (`geovq run`), for a seeded sample of its training vectors (the encoder means):
- **accuracy**: the metric tensors with C contexts, for each C and for `--context-seeds` independent draws of the contexts, against
  a reference with `--reference` contexts (drawn with another seed). Compared: the kNN graph's edge lengths (the graph's own
  rule, `metric_edge_lengths`) and its shortest-path distances from `--sources` sources, as relative errors (median and 90th
  percentile of |d_C / d_ref - 1|), and the share of vectors whose nearest of `--medoids` random medoids changes;
- **cost**: seconds per vector of `Geometry.decoder_metric` with C contexts (median of `--repeats`), one torch thread;
- **batch size**: the same metric (C = 16) with `pullback_metric`'s batch of 1 to 64 vectors, seconds per vector and whether
  every batch size gives the same tensors.
Writes bench/results/contexts_<dataset>.json.
"""
import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from geovq_tutorial.codebook import Geometry, grid_to_vectors
from geovq_tutorial.core import setup_run
from geovq_tutorial.data import load_dataset_for
from geovq_tutorial.geometry import ContextDecoder, LatentGraph, draw_contexts, knn_edges, pullback_metric
from geovq_tutorial.pipeline import load_run
from geovq_tutorial.vae import encode_means, load_or_train_vae

ROOT = Path(__file__).resolve().parent.parent


def seconds(fn, repeats: int) -> tuple[float, object]:
    "Median wall seconds of `fn()` over `repeats` calls, and its last result."
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def rel_error(x: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Median and 90th percentile of |x / ref - 1| over finite, positive references; and the same after dividing x by the
    median ratio x / ref (one scale for every pair: a common scale changes no nearest codeword, only the shape of the errors does)."""
    ok = np.isfinite(ref) & (ref > 0) & np.isfinite(x)
    r = x[ok] / ref[ok]
    e, s = np.abs(r - 1), np.abs(r / np.median(r) - 1)
    return {'median': float(np.median(e)), 'p90': float(np.quantile(e, 0.9)), 'scale': float(np.median(r)),
            'rescaled_median': float(np.median(s)), 'rescaled_p90': float(np.quantile(s, 0.9)), 'n': int(ok.sum())}


def compare(v: torch.Tensor, metric: torch.Tensor, ref: dict, k: int, sources: np.ndarray, medoids: np.ndarray) -> dict:
    "Edge lengths, graph distances and nearest-medoid labels of the graph with `metric`, against the reference graph's."
    g = LatentGraph(v, metric, k=k)
    edges = g.edge_lengths(ref['i'], ref['j']).astype(np.float64)
    D = g.distances(sources)
    lab = g.distances(medoids).argmin(0)
    return {'edge_rel_error': rel_error(edges, ref['edges']), 'distance_rel_error': rel_error(D.ravel(), ref['D'].ravel()),
            'nearest_medoid_changed': float((lab != ref['labels']).mean())}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--run-dir', required=True, type=Path, help='a finished `geovq run` folder (its base seed\'s VAE is used)')
    ap.add_argument('--contexts', type=int, nargs='+', default=[2, 4, 8, 16, 32])
    ap.add_argument('--reference', type=int, default=128, help='contexts of the reference metric (default 128)')
    ap.add_argument('--context-seeds', type=int, default=2, help='independent draws of the contexts per C')
    ap.add_argument('--vectors', type=int, default=2000, help='training vectors sampled (seed 0)')
    ap.add_argument('--sources', type=int, default=20)
    ap.add_argument('--medoids', type=int, default=64)
    ap.add_argument('--knn', type=int, default=10)
    ap.add_argument('--timing-vectors', type=int, default=256)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--out', type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_run(args.run_dir)
    data = load_dataset_for(cfg)
    vae = load_or_train_vae(cfg, data, device=setup_run(cfg))[0].eval()
    grids = encode_means(vae, data.train)
    rng = np.random.default_rng(0)
    vall = grid_to_vectors(grids)
    v = vall[torch.as_tensor(rng.choice(len(vall), min(args.vectors, len(vall)), replace=False))]
    sources, medoids = rng.choice(len(v), args.sources, replace=False), rng.choice(len(v), args.medoids, replace=False)
    geo = lambda C, s: Geometry(*draw_contexts(grids, C, seed=s))

    t0 = time.perf_counter()
    Mref = geo(args.reference, 1000).decoder_metric(vae, v)
    g = LatentGraph(v, Mref, k=args.knn)
    i, j = knn_edges(v.numpy().astype(np.float64), args.knn)
    ref = {'i': i, 'j': j, 'edges': g.edge_lengths(i, j).astype(np.float64), 'D': g.distances(sources),
           'labels': g.distances(medoids).argmin(0)}
    print(f'reference: {args.reference} contexts, {len(v)} vectors, {len(i)} edges ({time.perf_counter() - t0:.0f} s)', flush=True)

    tv = v[:args.timing_vectors]
    rows = []
    for C in args.contexts:
        sec, _ = seconds(lambda: geo(C, 0).decoder_metric(vae, tv), args.repeats)
        acc = [compare(v, geo(C, s).decoder_metric(vae, v), ref, args.knn, sources, medoids) for s in range(args.context_seeds)]
        rows.append({'contexts': C, 'ms_per_vector': 1000 * sec / len(tv), 'per_context_seed': acc})
        a = acc[0]
        print(f"C={C:3d}: {1000 * sec / len(tv):6.2f} ms/vector; edges |rel err| median {a['edge_rel_error']['median']:.4f} "
              f"p90 {a['edge_rel_error']['p90']:.4f}; distances median {a['distance_rel_error']['median']:.4f} "
              f"p90 {a['distance_rel_error']['p90']:.4f} (rescaled by {a['distance_rel_error']['scale']:.3f}: median "
              f"{a['distance_rel_error']['rescaled_median']:.4f}); nearest medoid changed {a['nearest_medoid_changed']:.3f} "
              f"(context seed 0 of {args.context_seeds})", flush=True)

    G = ContextDecoder(vae, *draw_contexts(grids, 16, seed=0))
    base, sweep = None, []
    for bs in (1, 2, 4, 8, 16, 32, 64):
        sec, M = seconds(lambda: pullback_metric(G, tv, batch_size=bs), args.repeats)
        base = M if base is None else base
        sweep.append({'batch_size': bs, 'ms_per_vector': 1000 * sec / len(tv), 'identical': bool(torch.equal(M, base)),
                      'max_rel_diff': float((M - base).abs().max() / base.abs().max())})
        print(f"batch {bs:2d}: {1000 * sec / len(tv):6.2f} ms/vector, max rel diff {sweep[-1]['max_rel_diff']:.2e}", flush=True)

    res = {'run_dir': str(args.run_dir), 'dataset': cfg.dataset, 'image_shape': list(vae.image_shape), 'latent_dim': vae.latent_dim,
           'vectors': len(v), 'edges': int(len(i)), 'reference_contexts': args.reference, 'knn': args.knn,
           'timing_vectors': len(tv), 'repeats': args.repeats, 'torch_threads': 1, 'cpu': platform.processor() or platform.machine(),
           'cores': os.cpu_count(), 'load_average_end': os.getloadavg(), 'contexts': rows, 'batch_sweep_C16': sweep}
    out = args.out or ROOT / 'bench' / 'results' / f'contexts_{cfg.dataset}.json'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + '\n')
    print('wrote', out)


if __name__ == '__main__':
    main()
