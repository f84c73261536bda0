"""The VQ-VAE baseline against the reference quantiser: test MSE on the digits default (same encoder, decoder, grid, K,
epochs, optimiser), vector-quantize-pytorch's VectorQuantize (EMA 0.99, k-means init, dead-code expiry) next to the
chapter's own STE quantiser, per seed. Usage: python bench/bench_vqvae.py [seeds...] [--commit-scale per-image|mean]"""
import json, sys, time, tempfile
from pathlib import Path
import torch
from geovq_tutorial.core import set_threads
from geovq_tutorial.data import load_dataset_for
from geovq_tutorial import finetune as ft

def main(argv):
    scale = 'per-image'
    if '--commit-scale' in argv: i = argv.index('--commit-scale'); scale = argv[i + 1]; del argv[i:i + 2]
    quantizers = ['ema', 'ste']
    if '--only' in argv: i = argv.index('--only'); quantizers = argv[i + 1].split(','); del argv[i:i + 2]
    seeds = [int(s) for s in argv] or [0]
    set_threads(1)
    if scale == 'mean':   # VectorQuantize's own scale: beta x mean over cells and channels (no per-image sum)
        orig = ft.EMAVQVAE.forward_with_loss
        def fwd(self, x):
            l, mu, q, t, c = orig(self, x); return l, mu, q, t, c / (mu.shape[1] * mu.shape[2] * mu.shape[3])
        ft.EMAVQVAE.forward_with_loss = fwd
    out = []
    for seed in seeds:
        for quant in quantizers:
            cfg = ft.FinetuneConfig(run_dir=tempfile.mkdtemp(), seed=seed, vqvae_quantizer=quant, progress=False)
            data = load_dataset_for(cfg)
            t0 = time.perf_counter()
            model, hist = ft.load_or_train_vqvae(cfg, data, device=torch.device('cpu'))
            out.append({'seed': seed, 'quantizer': quant, 'commit_scale': scale if quant == 'ema' else None,
                        'test_mse': hist['test']['mse'], 'codes_used': hist['test']['codes_used_count'],
                        'best_epoch': hist['best_epoch'], 'seconds': time.perf_counter() - t0})
            print(json.dumps(out[-1]), flush=True)
    return out

if __name__ == '__main__':
    res = main(sys.argv[1:])
    Path('bench/results').mkdir(parents=True, exist_ok=True)
