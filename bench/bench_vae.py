"""Benchmark of the VAE stage (issue: foundation figures).

1. The default configuration on the bundled digits, trained from scratch in a fresh run folder:
   wall time of training and the test MSE of decode(mu).  Reach: MSE <= 0.006, time <= 60 s on 2 cores.
2. The package's trainer against a bare PyTorch loop on the same model, data, batch size and epochs, measured side by side,
   alternating, best of `--repeats`.  Reach: trainer samples/s >= 0.9x the bare loop.

    python bench/bench_vae.py [--epochs-overhead 30] [--repeats 3] [--threads 2]

Prints a table and writes bench/results/vae.json.
"""
import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import torch

from geovq_tutorial.core import seed_everything, set_threads, setup_run
from geovq_tutorial.data import load_dataset
from geovq_tutorial.vae import VAEConfig, SpatialVAE, elbo_terms, load_or_train_vae, train_vae


def bare_loop(data, cfg):
    "The same optimisation as `train_vae` with nothing else: no validation, no checkpoint, no progress bar."
    seed_everything(cfg.seed)
    model = SpatialVAE(data.image_shape, cfg.latent_dim, cfg.hidden)
    x = data.train
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * math.ceil(len(x) / cfg.batch_size))
    t0 = time.perf_counter()
    for _ in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), cfg.batch_size):
            xb = x[perm[i:i + cfg.batch_size]]
            loss = elbo_terms(xb, *model(xb), beta=cfg.beta).loss
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sched.step()
    return time.perf_counter() - t0


def package_trainer(data, cfg, tmp):
    seed_everything(cfg.seed)
    model = SpatialVAE(data.image_shape, cfg.latent_dim, cfg.hidden)
    t0 = time.perf_counter()
    train_vae(model, data, cfg, torch.device('cpu'), checkpoint=Path(tmp) / 'bench.partial.safetensors')
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--epochs-overhead', type=int, default=30, help='epochs per timing of trainer vs bare loop')
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'vae.json'))
    args = ap.parse_args()
    set_threads(args.threads)
    data = load_dataset('digits')
    results = {'machine': platform.processor() or platform.machine(), 'threads': torch.get_num_threads(),
               'torch': torch.__version__}

    with tempfile.TemporaryDirectory() as tmp:
        cfg = VAEConfig(run_dir=str(Path(tmp) / 'run'), progress=False, threads=args.threads, device='cpu')
        t0 = time.perf_counter()
        _, hist = load_or_train_vae(cfg, data, device=setup_run(cfg))
        results['default'] = {'wall_seconds': time.perf_counter() - t0, 'train_seconds': hist['seconds'][-1],
                              'epochs': cfg.epochs, 'test_mse': hist['test']['mse'], 'best_epoch': hist['best_epoch']}

        ocfg = cfg.replace(epochs=args.epochs_overhead)
        bare, trainer = [], []
        for _ in range(args.repeats):   # alternate so that drift in machine load hits both alike
            bare.append(bare_loop(data, ocfg)); trainer.append(package_trainer(data, ocfg, tmp))
        n = len(data.train) * ocfg.epochs
        results['overhead'] = {'epochs': ocfg.epochs, 'samples': n, 'bare_seconds': bare, 'trainer_seconds': trainer,
                               'bare_samples_per_s': n / min(bare), 'trainer_samples_per_s': n / min(trainer),
                               'ratio': min(bare) / min(trainer)}

    d, o = results['default'], results['overhead']
    print(f"{'measure':<44}{'value':>12}  reach")
    print(f"{'digits default: VAE training seconds':<44}{d['train_seconds']:>12.1f}  <= 60")
    print(f"{'digits default: test MSE of decode(mu)':<44}{d['test_mse']:>12.5f}  <= 0.006")
    print(f"{'bare loop samples/s (best of %d)' % args.repeats:<44}{o['bare_samples_per_s']:>12.0f}")
    print(f"{'package trainer samples/s (best of %d)' % args.repeats:<44}{o['trainer_samples_per_s']:>12.0f}")
    print(f"{'trainer / bare loop':<44}{o['ratio']:>12.3f}  >= 0.9")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + '\n')
    print('wrote', args.out)


if __name__ == '__main__':
    main()
