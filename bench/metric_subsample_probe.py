"""Probe for the run's largest cost, the expected metric of every training vector (issue 27's first lever), on the digits run:

    GEOVQ_TUTORIAL_RUN_DIR=runs/digits PYTHONPATH=$PWD .venv/bin/python bench/metric_subsample_probe.py [--seeds 0]

The geodesic codebooks build their graph over all training vectors, so every one of them needs its metric tensor, yet their
medoids come from a `geodesic_subsample` of them. The alternative measured here: the graph over the subsample only (the same
medoids, since k-medoids already runs on the subsample's graph), every other vector attached to it through its k nearest
nodes' metric (`attach_edges` with no metric of its own), so that only the subsample needs the metric. Reported per seed and
codebook: the token agreement with the stored codebook on the training and test vectors (the lever's bar is 98%), the medoids'
agreement, and the seconds of each route's assignment. Writes bench/results/metric_subsample.json. Measures; changes nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--seeds', default='0')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--out', default=str(ROOT / 'bench' / 'results' / 'metric_subsample.json'))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault('GEOVQ_PROGRESS', '0')
    from geovq_tutorial.vae import tutorial_config, load_or_train_vae
    from geovq_tutorial.codebook import CodebookConfig, load_or_fit_codebook, split_latents, grid_to_vectors
    from geovq_tutorial.data import load_dataset_for
    base = tutorial_config(CodebookConfig, threads=args.threads, progress=False)
    out = {'command': f'bench/metric_subsample_probe.py --seeds {args.seeds}', 'when': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
           'load_average_start': os.getloadavg(), 'rows': []}
    for seed in map(int, args.seeds.split(',')):
        cfg = base.replace(seed=seed, run_dir=str(Path(base.run_dir) / (f'seed{seed}' if seed else '')))
        data = load_dataset_for(cfg)
        vae = load_or_train_vae(cfg, data)[0].cpu().eval()
        grids, metric = split_latents(cfg, vae, data)
        for method, measure in (('geodesic', 'geodesic_distortion'), ('geodesic_unc', 'geodesic_distortion_unc')):
            cb = load_or_fit_codebook(cfg, vae, data, method)
            v, M = grid_to_vectors(grids['train']), metric['train'][measure]
            vt, Mt = grid_to_vectors(grids['test']), metric['test'][measure]
            t0 = time.perf_counter(); stored, test_stored = cb.encode(v, M), cb.encode(vt, Mt); t_full = time.perf_counter() - t0
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
