"""The one `Trainer` against a bare PyTorch loop (issue 9): samples per second, side by side in one run.

For the VAE and for the Transformer prior, the same model, data, optimiser, schedule and batch size are trained by
(a) a bare loop that shuffles, steps and validates once per epoch, and by (b) `core.Trainer` (best-state keeping, NaN guard,
history, a resumable checkpoint snapshot every epoch and on a timer). The two are run alternately, `--repeats` times each, and
the ratio of the medians is reported. Reach: trainer >= 0.95x the bare loop for both models.
A third arm, a bare loop without any validation, shows what per-epoch validation itself costs.

    python bench/bench_trainer.py [--epochs 20] [--repeats 5] [--threads 1]

Prints a table and writes bench/results/trainer.json.
"""
import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from geovq_tutorial.core import Trainer, batches, seed_everything, set_threads
from geovq_tutorial.data import load_digits_splits
from geovq_tutorial.vae import SpatialVAE, elbo_terms
from geovq_tutorial.prior import TransformerPrior


def vae_case(epochs):
    data = load_digits_splits()
    def make():
        m = SpatialVAE(data.image_shape, 8, 32)
        opt = torch.optim.Adam(m.parameters(), lr=3e-3)
        steps = epochs * -(-len(data.train) // 64)
        return m, opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    loss = lambda m, xb: elbo_terms(xb, *m(xb), beta=0.1).loss
    @torch.no_grad()
    def validate(m):
        m.eval(); return elbo_terms(data.val, *m(data.val), beta=0.1).loss.item()
    return make, loss, validate, (data.train,), 64


def prior_case(epochs, n=2000, K=64):
    g = torch.Generator().manual_seed(0)
    tr, va = torch.randint(0, K, (n, 16), generator=g), torch.randint(0, K, (n // 10, 16), generator=g)
    def make():
        m = TransformerPrior(K, 32, 2, 4, 0.1)
        return m, torch.optim.AdamW(m.parameters(), lr=3e-3, betas=(0.9, 0.95)), None
    loss = lambda m, t: F.cross_entropy(m(t).reshape(-1, K), t.reshape(-1))
    @torch.no_grad()
    def validate(m):
        m.eval(); return F.cross_entropy(m(va).reshape(-1, K), va.reshape(-1)).item()
    return make, loss, validate, (tr,), 128


def bare(case, epochs, with_val=True):
    make, loss_fn, validate, data, bs = case
    seed_everything(0); m, opt, sched = make()
    t0 = time.perf_counter()
    for _ in range(epochs):
        m.train()
        for batch in batches(*data, batch_size=bs):
            loss = loss_fn(m, *batch)
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
            if sched is not None: sched.step()
        if with_val: validate(m)
    return time.perf_counter() - t0


def trainer(case, epochs, tmp):
    make, loss_fn, validate, data, bs = case
    seed_everything(0); m, opt, sched = make()
    tr = Trainer(m, loss_fn, validate, opt, epochs, bs, scheduler=sched, progress=False,
                 checkpoint=Path(tmp) / 'bench.partial.safetensors')
    t0 = time.perf_counter()
    tr.fit(*data)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--epochs', type=int, default=20)
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'trainer.json'))
    args = ap.parse_args()
    set_threads(args.threads)
    out = {'machine': platform.machine(), 'threads': args.threads, 'torch': torch.__version__, 'epochs': args.epochs,
           'repeats': args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in (('vae', vae_case), ('prior', prior_case)):
            case = build(args.epochs)
            samples = args.epochs * len(case[3][0])
            times = {'bare': [], 'trainer': [], 'bare_no_val': []}
            bare(case, 2); trainer(case, 2, tmp)            # warm-up
            for _ in range(args.repeats):                   # alternate so that machine noise hits all arms alike
                times['bare'].append(bare(case, args.epochs))
                times['trainer'].append(trainer(case, args.epochs, tmp))
                times['bare_no_val'].append(bare(case, args.epochs, with_val=False))
            med = {k: statistics.median(v) for k, v in times.items()}
            out[name] = {'samples': samples, 'seconds': times, 'median_seconds': med,
                         'samples_per_s': {k: samples / v for k, v in med.items()},
                         'ratio_trainer_vs_bare': med['bare'] / med['trainer'],
                         'ratio_trainer_vs_bare_no_val': med['bare_no_val'] / med['trainer']}
            print(f"{name:6} bare {med['bare']:.3f} s  trainer {med['trainer']:.3f} s  bare w/o validation "
                  f"{med['bare_no_val']:.3f} s  ->  trainer / bare = {out[name]['ratio_trainer_vs_bare']:.3f} "
                  f"(vs no-validation loop {out[name]['ratio_trainer_vs_bare_no_val']:.3f})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + '\n')


if __name__ == '__main__':
    main()
