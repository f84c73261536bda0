#!/usr/bin/env python
"""Does k-means follow a change in the last digits of its vectors? scikit-learn's k-means++ against `race_seeds` (issue 29).

    PYTHONPATH=$PWD .venv/bin/python bench/kmeans_seeding_probe.py [--runs runs/digits runs/photos] [--seed 2] [--rbf]

The canonical runs made on an Intel and an AMD CPU kept seed 2's VAE to four or five digits but its k-means codebook to one
or none (bench/results/cross_machine.json). This probe loads seed `--seed`'s VAE of each run, encodes the training means, fits
K-means with the run's K to them and to the same means changed by a relative 1e-6 and 1e-5 (3 draws each), and reports the
share of training labels that stay the same: with scikit-learn's own k-means++ seeding (a cumulative sum of the weights) and
with `kmeans_fit` (`race_seeds`: exponential clocks), each followed by scikit-learn's Lloyd iterations (one init).
Writes bench/results/kmeans_seeding_probe.json. With `--rbf`, the k-means is the one behind the uncertainty-aware metric: the
precision network's `rbf_centres` (the run's `rbf_centres` centres of the same means, seed 0, as `load_or_fit_precision` fits
them), written to bench/results/kmeans_seeding_probe_rbf.json."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from geovq_tutorial.codebook import grid_to_vectors
from geovq_tutorial.core import setup_run
from geovq_tutorial.data import load_dataset_for
from geovq_tutorial.evaluate import seed_config
from geovq_tutorial.geometry import kmeans_fit
from geovq_tutorial.pipeline import load_run
from geovq_tutorial.vae import encode_means, load_or_train_vae

REPO = Path(__file__).resolve().parents[1]


def fit_labels(x: np.ndarray, K: int, seed: int, seeding: str) -> np.ndarray:
    """Training labels of k-means on `x`: scikit-learn's `KMeans` with its own k-means++ seeding ('sklearn'), or the
    package's `kmeans_fit` ('race': seeded by `race_seeds`, then the same Lloyd iterations)."""
    from sklearn.cluster import KMeans
    if seeding == 'sklearn': return KMeans(K, n_init=1, random_state=seed).fit(x).labels_
    return kmeans_fit(x, K, seed).labels_


def probe(run: str, seed: int, rbf: bool = False, draws: int = 3) -> dict:
    cfg = seed_config(load_run(run), seed)
    data = load_dataset_for(cfg)
    vae, _ = load_or_train_vae(cfg, data, device=setup_run(cfg))          # stored by the run: loaded
    x = grid_to_vectors(encode_means(vae, data.train)).double().numpy()
    K, fit_seed = (cfg.rbf_centres, 0) if rbf else (cfg.codebook_k, cfg.seed)
    rng, out = np.random.default_rng(0), {'run': run, 'seed': seed, 'K': K, 'vectors': len(x)}
    for seeding in ('sklearn', 'race'):
        base = fit_labels(x, K, fit_seed, seeding)
        out[seeding] = {str(eps): [round(float((fit_labels(x * (1 + eps * rng.standard_normal(x.shape)), K, fit_seed,
                                                           seeding) == base).mean()), 4) for _ in range(draws)]
                        for eps in (1e-6, 1e-5)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--runs', nargs='+', default=['runs/digits', 'runs/photos'])
    ap.add_argument('--seed', type=int, default=2)
    ap.add_argument('--rbf', action='store_true', help="the precision network's RBF centres instead of the k-means codebook")
    ap.add_argument('--out', type=Path, default=None)
    args = ap.parse_args(argv)
    args.out = args.out or REPO / 'bench' / 'results' / f"kmeans_seeding_probe{'_rbf' if args.rbf else ''}.json"
    torch.set_num_threads(1)
    rows = [probe(r, args.seed, args.rbf) for r in args.runs]
    args.out.write_text(json.dumps({'rows': rows}, indent=1) + '\n')
    for r in rows: print(f"{r['run']} seed {r['seed']} (K = {r['K']}, {r['vectors']} vectors): same training labels after a "
                         f"relative change, scikit-learn's k-means++ {r['sklearn']}, race_seeds {r['race']}")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
