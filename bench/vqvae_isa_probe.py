"""What makes the end-to-end VQ-VAE differ between CPUs? (issue 29, point 3) Trains the tutorial's EMA VQ-VAE on the digits for a
given number of epochs (default: the run's 100) in fresh processes, with the kernel libraries' defaults and with all three capped to AVX2 (what a CPU without
AVX-512 runs), with the quantiser's dead-code expiry on (the default: codes used less than twice on average are replaced by random
encoder outputs) and off, and with its k-means initialisation on the first batch (the default) and without, and prints how far the two CPUs' models end apart: their weights, and their test MSE (relative).

    PYTHONPATH=$PWD .venv/bin/python bench/vqvae_isa_probe.py [--epochs 100]

At 4 epochs (an earlier record) only the arm with both discrete steps off kept its weights within 1e-6; at 100 epochs no arm
does: the nearest-codeword choice at every step is itself a discrete step, and one flipped choice sends training elsewhere.

Writes bench/results/vqvae_isa_probe.json."""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

AVX2 = {'ATEN_CPU_CAPABILITY': 'avx2', 'MKL_CBWR': 'AVX2', 'DNNL_MAX_CPU_ISA': 'AVX2'}

ONE = """
import json, sys, torch
from geovq_tutorial.core import seed_everything
from geovq_tutorial.data import load_dataset
from geovq_tutorial.finetune import FinetuneConfig, EMAVQVAE, train_vqvae, vqvae_mse
torch.set_num_threads(1)
data = load_dataset('digits')
cfg = FinetuneConfig(vqvae_epochs=int(sys.argv[1]), progress=False)
seed_everything(0)
model = EMAVQVAE(data.image_shape, cfg.latent_dim, cfg.hidden, cfg.codebook_k, cfg.commitment, dead_code=float(sys.argv[2]))
if sys.argv[4] == 'random':               # the quantiser without its k-means initialisation on the first batch
    from vector_quantize_pytorch import VectorQuantize
    model.vq = VectorQuantize(dim=cfg.latent_dim, codebook_size=cfg.codebook_k, decay=0.99, commitment_weight=cfg.commitment,
                              kmeans_init=False, threshold_ema_dead_code=float(sys.argv[2]))
hist = train_vqvae(model, data, cfg, torch.device('cpu'))
torch.save(model.state_dict(), sys.argv[3])
print(json.dumps({'test_mse': vqvae_mse(model, data.test), 'train_loss': hist['train_loss']}))
"""


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--epochs', type=int, default=100)
    args = ap.parse_args(argv)
    out, tmp = {}, Path(os.environ.get('TMPDIR', '/tmp'))
    for dead, init in ((2.0, 'kmeans'), (0.0, 'kmeans'), (2.0, 'random'), (0.0, 'random')):
        runs = {}
        for cpu, env in (('defaults', {}), ('AVX2', AVX2)):
            path = tmp / f'vq_{dead}_{init}_{cpu}.pt'
            res = subprocess.run([sys.executable, '-c', ONE, str(args.epochs), str(dead), str(path), init], capture_output=True, text=True,
                                 env={**os.environ, **env})
            if res.returncode != 0: raise SystemExit(res.stderr[-3000:])
            runs[cpu] = {**json.loads(res.stdout.strip().splitlines()[-1]), 'path': path}
        import torch
        a, b = (torch.load(runs[c]['path']) for c in ('defaults', 'AVX2'))
        diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a if k.startswith('vae.'))   # the network's weights
        la, lb = runs['defaults']['train_loss'], runs['AVX2']['train_loss']
        ma, mb = runs['defaults']['test_mse'], runs['AVX2']['test_mse']
        out[f'dead_code={dead}, init={init}'] = {'test_mse': [ma, mb], 'test_mse_relative_difference': abs(ma - mb) / ma,
                                                 'max_weight_difference': diff, 'train_loss_per_epoch': [la, lb]}
        print(f"dead-code threshold {dead}, {init} init: test MSE {runs['defaults']['test_mse']:.6f} vs {runs['AVX2']['test_mse']:.6f}; "
              f"({abs(ma - mb) / ma:.1%} apart); max weight difference {diff:.3g}; last train loss {la[-1]:.5f}/{lb[-1]:.5f}", flush=True)
    (Path(__file__).parent / 'results' / 'vqvae_isa_probe.json').write_text(json.dumps({'epochs': args.epochs, 'capped': AVX2, 'rows': out}, indent=1) + '\n')
    return out


if __name__ == '__main__':
    main()
