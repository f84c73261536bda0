"""How long each explorer interaction takes on the digits (the tutorial's run folder; UMAP fitted once and cached).

    PYTHONPATH=. python bench/bench_explore.py [--repeats 10] [--threads 1] [--out bench/results/explore.json]

Times the Python side of each interaction (callback + figure update), as `explore.time_interactions` measures it: a control
is set to a new value and the call returns when the FigureWidget has been updated. Target: <= 0.5 s each.
Prints a table and writes JSON. The first run trains/fits whatever the run folder lacks (VAE, codebooks, priors, fine-tunes,
UMAP); those one-off times are reported separately and are not interaction times.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('GEOVQ_PROGRESS', '0')

import torch

from geovq_tutorial.core import setup_run, save_json
from geovq_tutorial.data import load_dataset_for
from geovq_tutorial.vae import tutorial_config
from geovq_tutorial.evaluate import EvalConfig
from geovq_tutorial import explore as E

BUDGET_S = 0.5


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repeats', type=int, default=10)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--out', default=str(ROOT / 'bench' / 'results' / 'explore.json'))
    args = ap.parse_args(argv)
    cfg = tutorial_config(EvalConfig, threads=args.threads, progress=False)
    device = setup_run(cfg)
    setup = {}
    t = time.perf_counter(); data = load_dataset_for(cfg)
    vae, inputs = E.load_explore_inputs(cfg, data, device=device); setup['load VAE, codebooks, prepare inputs'] = time.perf_counter() - t
    t = time.perf_counter(); projections = E.load_projections(cfg, vae, inputs); setup['projections (PCA + UMAP, cached)'] = time.perf_counter() - t
    t = time.perf_counter(); geodesic = E.geodesic_path_for(cfg, vae, data, inputs); setup['geodesic graph'] = time.perf_counter() - t
    sources = None
    if hasattr(E, 'load_sample_sources'):
        t = time.perf_counter(); sources = E.load_sample_sources(cfg, vae, inputs.codebooks, data, device)
        setup['priors + fine-tuned decoders'] = time.perf_counter() - t
    build = {}
    t = time.perf_counter(); manifold = E.LatentManifoldExplorer(inputs, projections); build['manifold'] = time.perf_counter() - t
    t = time.perf_counter(); assignments = E.CodebookAssignmentExplorer(inputs); build['assignments'] = time.perf_counter() - t
    samples = None
    if sources is not None:
        t = time.perf_counter(); samples = E.SampleExplorer(sources); build['samples'] = time.perf_counter() - t
    t = time.perf_counter(); paths = E.PathExplorer(inputs, vae.decode, {'geodesic (graph)': geodesic}); build['paths'] = time.perf_counter() - t
    times = E.time_interactions(E.explorer_interactions(manifold, assignments, samples, paths), repeats=args.repeats)
    width = max(map(len, times))
    print(f"explorer interactions on {inputs.n_images} {cfg.dataset} test images ({len(inputs.vectors)} vectors), "
          f"{args.repeats} repeats, torch threads {torch.get_num_threads()}, device {device}")
    print(f"{'interaction':<{width}}  median ms    max ms  within {BUDGET_S} s")
    for k, v in times.items():
        print(f"{k:<{width}}  {1e3 * v['median_s']:9.1f} {1e3 * v['max_s']:9.1f}  {'yes' if v['max_s'] <= BUDGET_S else 'NO'}")
    print('one-off setup (s): ' + ', '.join(f'{k} {v:.1f}' for k, v in setup.items()))
    print('explorer construction (s): ' + ', '.join(f'{k} {v:.2f}' for k, v in build.items()))
    result = {'dataset': cfg.dataset, 'n_images': inputs.n_images, 'n_vectors': len(inputs.vectors), 'repeats': args.repeats,
              'threads': torch.get_num_threads(), 'device': str(device), 'budget_s': BUDGET_S,
              'codebooks': list(inputs.codebooks), 'samples_included': samples is not None,
              'interactions': times, 'all_within_budget': all(v['max_s'] <= BUDGET_S for v in times.values()),
              'setup_s': setup, 'construction_s': build,
              'machine': {'python': platform.python_version(), 'torch': torch.__version__, 'platform': platform.platform(),
                          'cpus': os.cpu_count()},
              'when': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}
    save_json(result, args.out)
    print(f"wrote {args.out}")
    return result


if __name__ == '__main__':
    main()
