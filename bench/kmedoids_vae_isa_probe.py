"""Why does k-medoids differ between two x86-64 CPUs at the same seed while k-means does not? (issue 29, point 3)

`bench/kmedoids_probe.py` showed that the k-medoids fit itself is stable: the same medoids under MKL's instruction-set
settings, and under a relative 1e-6 change of its input vectors. This probe tests the remaining path, the VAE it is fitted to:

1. trains seed 0's VAE at the default settings twice, with the kernel libraries' defaults and with all three capped to AVX2
   (ATen, MKL, oneDNN: what a CPU without AVX-512 runs; `geovq train-vae`, each in a fresh folder), and prints how far apart
   the two VAEs' test means are;
2. fits k-means and Euclidean k-medoids (K = 64, seed 0, in this process) to each VAE's training means and prints each
   codebook's test MSE, to see which of the two follows a change of the VAE of that size;
3. fits both again to the first VAE's means changed by a relative 1e-5, 1e-4 and 1e-3 (3 draws each) and prints how many
   test tokens stay the same and how far the test MSE moves.

    PYTHONPATH=$PWD .venv/bin/python bench/kmedoids_vae_isa_probe.py [--epochs N]

Writes bench/results/kmedoids_vae_isa_probe.json.

Found with it (first with the cumulative-sum seeding): the VAEs are 1.2e-6 apart and both codebooks agree to 7 digits, but a
relative 1e-5 change of the means moved k-medoids from test MSE 0.005877 to 0.005981, the two values the issue saw on two
machines. The fit's seeding drew each next medoid by a cumulative sum of the weights (`Generator.choice(p=...)`); at draw 25
the uniform number lay 6e-8 from a boundary that the change moved by 1e-7. `kmedoids_init` now races exponential clocks (each
point's chance depends on its own weight only); with it the seeding is the same under every change tried here (1e-6 to 1e-4)
and the swaps the same up to 1e-5."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'bench'))
from isa_check import AVX2, agreeing_digits                      # noqa: E402  the AVX2 cap, the digits measure

from geovq_tutorial.codebook import grid_to_vectors, make_codebook, vectors_to_grid   # noqa: E402
from geovq_tutorial.data import load_dataset_for                  # noqa: E402
from geovq_tutorial.vae import VAEConfig, encode_means, load_vae   # noqa: E402


def train_vae(run_dir: Path, env: dict, epochs: int | None) -> None:
    geovq = Path(sys.executable).parent / 'geovq'
    extra = ['--epochs', str(epochs)] if epochs else []
    res = subprocess.run([str(geovq), 'train-vae', '--run-dir', str(run_dir), *extra], capture_output=True, text=True,
                         env={**os.environ, 'GEOVQ_PROGRESS': '0', **env})
    if res.returncode != 0: raise SystemExit(f"train-vae failed:\n{res.stderr[-3000:]}")


def codebook_mse(vae, data, train_v: torch.Tensor, test_mu: torch.Tensor, method: str) -> tuple[float, torch.Tensor]:
    "Test MSE of a K=64 codebook of `method` fitted to `train_v`, and its test tokens."
    cb = make_codebook(method, 64, seed=0).fit(train_v, None)
    ids = cb.encode(grid_to_vectors(test_mu), None)
    with torch.no_grad(): rec = vae.decode(vectors_to_grid(cb.codewords[ids], len(test_mu)))
    return float(((rec - data.test) ** 2).mean()), ids


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--epochs', type=int, default=None, help='VAE epochs (default: the run default)')
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp())
    vaes, means = {}, {}
    for name, env in (('defaults', {}), ('AVX2', AVX2)):
        train_vae(tmp / name, env, args.epochs)
        cfg = VAEConfig(run_dir=str(tmp / name), **({'epochs': args.epochs} if args.epochs else {}))
        data = load_dataset_for(cfg)
        vaes[name] = load_vae(cfg, data.image_shape, torch.device('cpu'))
        means[name] = {s: encode_means(vaes[name], getattr(data, s)) for s in ('train', 'test')}
    a, b = means['defaults']['test'], means['AVX2']['test']
    out = {'vae_test_means_max_rel_diff': float(((a - b).abs().max() / a.abs().max())),
           'vae_test_means_median_abs_diff': float((a - b).abs().median())}
    print(f"VAEs trained with the defaults and under AVX2: test means apart by at most {out['vae_test_means_max_rel_diff']:.2e} "
          f"of their largest value (median |difference| {out['vae_test_means_median_abs_diff']:.2e})")
    for method in ('kmeans', 'kmedoids'):
        r = {n: codebook_mse(vaes[n], data, grid_to_vectors(means[n]['train']), means[n]['test'], method)[0] for n in vaes}
        out[f'{method}_mse'] = {**r, 'digits': agreeing_digits(r['defaults'], r['AVX2'])}
        print(f"{method:8s} test MSE: defaults {r['defaults']:.6g}, AVX2 {r['AVX2']:.6g} ({out[f'{method}_mse']['digits']:.1f} digits)")
    v, vae = grid_to_vectors(means['defaults']['train']), vaes['defaults']
    base = {m: codebook_mse(vae, data, v, means['defaults']['test'], m) for m in ('kmeans', 'kmedoids')}
    out['perturbed'] = []
    for rel in (1e-5, 1e-4, 1e-3):
        for trial in range(3):
            vp = v * (1 + rel * torch.randn(v.shape, generator=torch.Generator().manual_seed(trial)))
            for m, (mse0, ids0) in base.items():
                mse, ids = codebook_mse(vae, data, vp, means['defaults']['test'], m)
                row = {'relative': rel, 'trial': trial, 'method': m, 'same_tokens': float((ids == ids0).float().mean()),
                       'mse': mse, 'mse_digits': agreeing_digits(mse0, mse)}
                out['perturbed'].append(row)
                print(f"means x (1 + {rel:g} noise), draw {trial}, {m:8s}: same test tokens {row['same_tokens']:.4f}, "
                      f"test MSE {mse:.6g} ({row['mse_digits']:.1f} digits)")
    (REPO / 'bench' / 'results' / 'kmedoids_vae_isa_probe.json').write_text(json.dumps(out, indent=1) + '\n')
    return out


if __name__ == '__main__':
    main()
