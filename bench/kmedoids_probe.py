"""Is seed 0's k-medoids fit fragile to the last bits of its input? (issue 29, point 3). Reads a complete run's stored encoder
means, then (1) prints a digest of the 4,000 x 4,000 distance matrix, the medoids and the fit's cost, and whether the
medoids are the stored codebook's; run it under MKL_CBWR=AVX2 or MKL_ENABLE_INSTRUCTIONS=SSE4_2 and compare the lines;
(2) refits k-means and k-medoids to means perturbed by a relative 1e-6 (a few float32 ulps) and prints the token agreement.

    PYTHONPATH=$PWD .venv/bin/python bench/kmedoids_probe.py runs/digits"""
import hashlib
import sys

import torch
from safetensors.torch import load_file

from geovq_tutorial.codebook import grid_to_vectors, make_codebook, subsample_indices


def digest(a) -> str: return hashlib.sha256(a.tobytes()).hexdigest()[:12]


def main(run_dir: str = 'runs/digits', K: int = 64) -> None:
    torch.set_num_threads(1)
    v = grid_to_vectors(load_file(f'{run_dir}/metric/mu.safetensors')['grids'])
    sub = subsample_indices(len(v), 4000, 0)
    D = torch.cdist(v[sub].double(), v[sub].double()).numpy()
    fits = {m: make_codebook(m, K, seed=0).fit(v, None) for m in ('kmeans', 'kmedoids')}
    km = fits['kmedoids']
    stored = load_file(f'{run_dir}/codebooks/kmedoids_K{K}_mu_seed0.safetensors')['medoid_index']
    print(f"distances {digest(D)}  medoids {digest(km.medoid_index.numpy())}  same as stored: {bool((km.medoid_index == stored).all())}  "
          f"swaps {km.info['swaps']}  cost {km.info['cost']!r}")
    for trial in range(3):
        vp = v * (1 + 1e-6 * torch.randn(v.shape, generator=torch.Generator().manual_seed(trial)))
        for m, base in fits.items():
            agree = (make_codebook(m, K, seed=0).fit(vp, None).encode(v, None) == base.encode(v, None)).float().mean().item()
            print(f"trial {trial} {m}: token agreement with the unperturbed fit {agree:.4f}")


if __name__ == '__main__':
    main(*sys.argv[1:])
