#!/usr/bin/env python
"""Does k-means follow a change in the last digits of its vectors? scikit-learn's k-means++ against `race_seeds` (issue 29).

    PYTHONPATH=$PWD .venv/bin/python bench/kmeans_seeding_probe.py [--runs runs/digits runs/photos] [--seed 2]

The canonical runs made on an Intel and an AMD CPU kept seed 2's VAE to four or five digits but its k-means codebook to one
or none (bench/results/cross_machine.json). This probe loads seed `--seed`'s VAE of each run, encodes the training means, fits
K-means with the run's K to them and to the same means changed by a relative 1e-6 and 1e-5 (3 draws each), and reports the
share of training labels that stay the same: with scikit-learn's own k-means++ seeding (a cumulative sum of the weights) and
with `KMeansCodebook` (`race_seeds`: exponential clocks), each followed by scikit-learn's Lloyd iterations (one init).
Writes bench/results/kmeans_seeding_probe.json."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from geovq_tutorial.codebook import KMeansCodebook, grid_to_vectors
from geovq_tutorial.core import setup_run
from geovq_tutorial.data import load_dataset_for
from geovq_tutorial.evaluate import seed_config
from geovq_tutorial.pipeline import load_run
from geovq_tutorial.vae import encode_means, load_or_train_vae

REPO = Path(__file__).resolve().parents[1]


def fit_labels(x: np.ndarray, K: int, seed: int, seeding: str) -> np.ndarray:
    """Training labels of k-means on `x`: scikit-learn's `KMeans` with its own k-means++ seeding ('sklearn'), or the
    package's `KMeansCodebook` ('race': seeded by `race_seeds`, then the same Lloyd iterations)."""
    from sklearn.cluster import KMeans
    if seeding == 'sklearn': return KMeans(K, n_init=1, random_state=seed).fit(x).labels_
    v = torch.from_numpy(x)
    return KMeansCodebook(K, seed=seed).fit(v).encode(v).numpy()


def probe(run: str, seed: int, draws: int = 3) -> dict:
    cfg = seed_config(load_run(run), seed)
    data = load_dataset_for(cfg)
    vae, _ = load_or_train_vae(cfg, data, device=setup_run(cfg))          # stored by the run: loaded
    x = grid_to_vectors(encode_means(vae, data.train)).double().numpy()
    rng, out = np.random.default_rng(0), {'run': run, 'seed': seed, 'K': cfg.codebook_k, 'vectors': len(x)}
    for seeding in ('sklearn', 'race'):
        base = fit_labels(x, cfg.codebook_k, cfg.seed, seeding)
        out[seeding] = {str(eps): [round(float((fit_labels(x * (1 + eps * rng.standard_normal(x.shape)), cfg.codebook_k, cfg.seed,
                                                           seeding) == base).mean()), 4) for _ in range(draws)]
                        for eps in (1e-6, 1e-5)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--runs', nargs='+', default=['runs/digits', 'runs/photos'])
    ap.add_argument('--seed', type=int, default=2)
    ap.add_argument('--out', type=Path, default=REPO / 'bench' / 'results' / 'kmeans_seeding_probe.json')
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = [probe(r, args.seed) for r in args.runs]
    args.out.write_text(json.dumps({'rows': rows}, indent=1) + '\n')
    for r in rows: print(f"{r['run']} seed {r['seed']} (K = {r['K']}, {r['vectors']} vectors): same training labels after a "
                         f"relative change, scikit-learn's k-means++ {r['sklearn']}, race_seeds {r['race']}")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
