"""Probe for the run's largest cost, the expected metric of every training vector (issue 27's first lever), on the digits run:

    GEOVQ_TUTORIAL_RUN_DIR=runs/digits PYTHONPATH=$PWD .venv/bin/python bench/metric_subsample_probe.py [--seeds 0]

The geodesic codebooks build their graph over all training vectors, so every one of them needs its metric tensor, yet their
medoids come from a `geodesic_subsample` of them. The alternative measured here: the graph over the subsample only (the same
medoids, since k-medoids already runs on the subsample's graph), every other vector attached to it through its k nearest
nodes' metric (`attach_edges` with no metric of its own), so that only the subsample needs the metric. Reported per seed and
codebook: the token agreement with the stored codebook on the training and test vectors (the lever's bar is 98%), the medoids'
agreement, and the seconds of each route's assignment. Writes bench/results/metric_subsample.json. Measures; changes nothing.

`--route impute` separates the two effects of that route: the graph stays the full one over every training vector, but only
`--metric-vectors` of them (the codebook's subsample and random others) get a metric of their own; every other node takes
the metric of its Euclidean-nearest measured vector (the uncertainty-aware codebook keeps its exact variance part, which is
cheap). Since the subsample is measured, the medoids are the stored ones; only the assignment through the graph can move.
It also reports how far each node's graph distance to its medoid moves (imputed / stored: p10, median, p90), and the test
vectors attached by their nodes' metric alone (no metric of their own) to the stored graph.
Writes bench/results/metric_impute.json.

The reference must be a run whose metric stage measured every vector (`geovq run --metric-vectors all`, or a run made
before the default became `subsample`): the probe takes its stored codebooks and metric tensors as the fully measured ones.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]


def subsample_route(cb, v: torch.Tensor, metric: torch.Tensor):
    """The codebook's k-medoids again on a graph over its subsample only; returns (medoid indices into v, assign), where
    assign(x) gives the tokens of vectors x [Q, D] attached to that graph by their nodes' metric alone."""
    from geovq_tutorial.codebook import subsample_indices, kmedoids
    from geovq_tutorial.geometry import LatentGraph, attach_edges
    sub = subsample_indices(len(v), cb.subsample, cb.seed)
    graph = LatentGraph(v[sub], metric[sub], k=cb.knn, variance=cb.variance)
    med, _, _ = kmedoids(graph.distances(), cb.K, cb.seed)
    dist, src = graph.nearest_source(med)
    slot = np.full(len(sub), -1); slot[med] = np.arange(cb.K)
    label = slot[src]
    def assign(x):
        nbr, w = attach_edges(graph.index, graph.vectors, graph.plain, x, None, cb.knn, variance=cb.variance)
        return torch.as_tensor(label[nbr[np.arange(len(x)), (w + dist[nbr]).argmin(1)]])
    return sub[med], assign


def impute_route(cb, v: torch.Tensor, plain: torch.Tensor, metric: torch.Tensor, measured: int):
    """The codebook's stored medoids on the full graph whose nodes outside a measured set (the codebook's subsample plus random
    others, `measured` in all) take the plain metric of their nearest measured vector; `metric` - `plain` (the variance
    part, zero for the plain codebook) stays exact. Returns assign(x, x_metric) giving the tokens of vectors attached to it."""
    from sklearn.neighbors import NearestNeighbors
    from geovq_tutorial.codebook import subsample_indices
    from geovq_tutorial.geometry import LatentGraph, attach_edges
    sub = subsample_indices(len(v), cb.subsample, cb.seed)
    rest = np.setdiff1d(np.arange(len(v)), sub)
    extra = np.random.default_rng(1000 + cb.seed).choice(rest, max(0, min(measured, len(v)) - len(sub)), replace=False)
    S = np.sort(np.concatenate([sub, extra]))
    near = NearestNeighbors(n_neighbors=1).fit(v[S].numpy()).kneighbors(v.numpy(), return_distance=False)[:, 0]
    guessed = plain[S][torch.as_tensor(near)] + (metric - plain)
    graph = LatentGraph(v, guessed, k=cb.knn, variance=cb.variance)
    medoids = cb.medoid_index.numpy()
    dist, src = graph.nearest_source(medoids)
    slot = np.full(len(v), -1); slot[medoids] = np.arange(cb.K)
    label = slot[src]
    def assign(x, x_metric):
        nbr, w = attach_edges(graph.index, graph.vectors, graph.plain, x, x_metric, cb.knn, variance=cb.variance)
        return torch.as_tensor(label[nbr[np.arange(len(x)), (w + dist[nbr]).argmin(1)]])
    return torch.as_tensor(label), assign, dist


def own_metric_dropped(cb, x: torch.Tensor) -> torch.Tensor:
    "Tokens of vectors x attached to the stored codebook's full graph by their nodes' metric alone (no metric of their own)."
    from geovq_tutorial.geometry import attach_edges
    cb.encode(x[:1], None if not cb.needs_metric else cb.train_metric[:1])                 # builds the index and plain parts
    nbr, w = attach_edges(cb._index, cb.train_vectors, cb._plain, x, None, cb.knn, variance=cb.variance)
    return cb.node_label[torch.as_tensor(nbr[np.arange(len(x)), (w + cb.node_dist.numpy()[nbr]).argmin(1)])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--seeds', default='0')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--route', choices=('subsample', 'impute'), default='subsample')
    ap.add_argument('--metric-vectors', default='4000,8000,12000', help="--route impute: how many training vectors get a metric")
    ap.add_argument('--out', default=None)
    args = ap.parse_args()
    args.out = args.out or str(ROOT / 'bench' / 'results' / f"metric_{'subsample' if args.route == 'subsample' else 'impute'}.json")
    torch.set_num_threads(args.threads)
    os.environ.setdefault('GEOVQ_PROGRESS', '0')
    from geovq_tutorial.vae import tutorial_config, load_or_train_vae
    from geovq_tutorial.codebook import CodebookConfig, load_or_fit_codebook, split_latents, grid_to_vectors
    from geovq_tutorial.core import setup_run
    from geovq_tutorial.data import load_dataset_for
    base = tutorial_config(CodebookConfig, threads=args.threads, progress=False)
    out = {'command': f'bench/metric_subsample_probe.py --seeds {args.seeds} --route {args.route}' +
                      (f' --metric-vectors {args.metric_vectors}' if args.route == 'impute' else ''), 'when': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
           'load_average_start': os.getloadavg(), 'rows': []}
    for seed in map(int, args.seeds.split(',')):
        cfg = base.replace(seed=seed, run_dir=str(Path(base.run_dir) / (f'seed{seed}' if seed else '')))
        data = load_dataset_for(cfg)
        vae = load_or_train_vae(cfg, data, device=setup_run(cfg))[0].cpu().eval()
        grids, metric = split_latents(cfg, vae, data)
        for method, measure in (('geodesic', 'geodesic_distortion'), ('geodesic_unc', 'geodesic_distortion_unc')):
            cb = load_or_fit_codebook(cfg, vae, data, method)
            v, M = grid_to_vectors(grids['train']), metric['train'][measure]
            vt, Mt = grid_to_vectors(grids['test']), metric['test'][measure]
            t0 = time.perf_counter(); stored, test_stored = cb.encode(v, M), cb.encode(vt, Mt); t_full = time.perf_counter() - t0
            if args.route == 'impute':
                measured = load_file(str(Path(cfg.run_dir) / 'metric' / 'mu.safetensors')).get('measured')
                if measured is not None and len(measured) < len(v):
                    raise SystemExit(f"{cfg.run_dir} measured the metric of {len(measured)} of {len(v)} training vectors; the "
                                     "reference needs every one: make it with `geovq run --metric-vectors all`")
                plain, stored_dist = metric['train']['geodesic_distortion'], cb.node_dist.numpy()
                row = {'seed': seed, 'method': method, 'train_vectors': len(v), 'test_vectors': len(vt),
                       'test_without_own_metric_agreement': float((own_metric_dropped(cb, vt) == test_stored).float().mean())}
                for m in map(int, args.metric_vectors.split(',')):
                    t0 = time.perf_counter()
                    train_new, assign, dist = impute_route(cb, v, plain, M, m)
                    moved = dist[stored_dist > 0] / stored_dist[stored_dist > 0]      # each node's graph distance to its medoid
                    row[f'measured_{m}'] = {'train_token_agreement': float((train_new == stored).float().mean()),
                                            'test_token_agreement': float((assign(vt, Mt) == test_stored).float().mean()),
                                            'test_token_agreement_without_own_metric': float((assign(vt, None) == test_stored).float().mean()),
                                            'distance_to_medoid_ratio': {q: float(np.quantile(moved, p)) for q, p in
                                                                         (('p10', .1), ('median', .5), ('p90', .9))},
                                            'seconds': time.perf_counter() - t0}
                out['rows'].append(row); print(row, flush=True)
                continue
            t0 = time.perf_counter()
            medoids, assign = subsample_route(cb, v, M)
            new, test_new = assign(v), assign(vt)
            t_sub = time.perf_counter() - t0
            row = {'seed': seed, 'method': method, 'train_vectors': len(v), 'test_vectors': len(vt), 'subsample': int(cb.subsample),
                   'same_medoids': float(np.isin(medoids, cb.medoid_index.numpy()).mean()),
                   'train_token_agreement': float((new == stored).float().mean()),
                   'test_token_agreement': float((test_new == test_stored).float().mean()),
                   'encode_stored_s': t_full, 'subsample_route_s': t_sub}
            out['rows'].append(row); print(row, flush=True)
    out['load_average_end'] = os.getloadavg()
    Path(args.out).write_text(json.dumps(out, indent=2) + '\n')
    print('wrote', args.out)


if __name__ == '__main__':
    main()
