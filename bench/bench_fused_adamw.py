"""Does the prior train faster with PyTorch's fused AdamW than with the default (for-each) one? (issue 27: the priors are
about a fifth of `geovq run`'s work). Trains the tutorial's prior (default settings: K=64, dim 32, 2 layers, batch 128) on
1,437 random training and 180 validation sequences, `--epochs` epochs, one thread, alternately with each implementation,
`--repeats` times, and prints the seconds (median), the ratio, and the final validation NLL of each (the two differ only in
rounding, so they should agree to a few digits).

    PYTHONPATH=$PWD .venv/bin/python bench/bench_fused_adamw.py [--epochs 20] [--repeats 3]

Writes bench/results/fused_adamw.json."""
import argparse
import functools
import json
import os
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def train_once(fused: bool, epochs: int) -> tuple[float, float]:
    from geovq_tutorial.prior import PriorConfig, prior_for, train_prior
    cfg = PriorConfig(prior_epochs=epochs, progress=False)
    g = torch.Generator().manual_seed(0)
    tr, va = torch.randint(cfg.codebook_k, (1437, 16), generator=g), torch.randint(cfg.codebook_k, (180, 16), generator=g)
    torch.manual_seed(0)
    prior = prior_for(cfg, cfg.codebook_k)
    plain = torch.optim.AdamW
    torch.optim.AdamW = functools.partial(plain, fused=fused)
    try:
        t0 = time.perf_counter()
        hist = train_prior(prior, tr, va, cfg, torch.device('cpu'), patience=epochs)
        return time.perf_counter() - t0, hist['val'][-1]
    finally:
        torch.optim.AdamW = plain


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--epochs', type=int, default=20)
    ap.add_argument('--repeats', type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault('GEOVQ_PROGRESS', '0')
    rows = {'foreach': [], 'fused': []}
    for _ in range(args.repeats):
        for name in rows: rows[name].append(train_once(name == 'fused', args.epochs))
    med = {k: statistics.median(s for s, _ in v) for k, v in rows.items()}
    out = {'epochs': args.epochs, 'repeats': args.repeats, 'threads': 1, 'torch': torch.__version__,
           'seconds': {k: [s for s, _ in v] for k, v in rows.items()}, 'median_seconds': med,
           'speedup_fused': med['foreach'] / med['fused'], 'final_val_nll': {k: v[0][1] for k, v in rows.items()},
           'load_average_end': os.getloadavg()}
    for k, v in rows.items(): print(f"{k:8s} seconds {[round(s, 2) for s, _ in v]}  median {med[k]:.2f}  final val NLL {v[0][1]:.6f}")
    print(f"fused / foreach speed: {out['speedup_fused']:.3f}x")
    (ROOT / 'bench' / 'results' / 'fused_adamw.json').write_text(json.dumps(out, indent=2) + '\n')


if __name__ == '__main__':
    main()
