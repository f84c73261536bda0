"""The expected metric with and without `keep_freed_memory` (chapter 00), side by side: glibc's allocator returns every freed
block above its mmap threshold to the system, so each batch of the metric (16 contexts x 8 tangents of decoded images)
gets fresh pages that the kernel zeroes first; kept, the next batch reuses them.

    .venv/bin/python bench/bench_freed_memory.py --run-dir runs/photos --run-dir runs/digits [--vectors 64] [--repeats 3]

Each repeat measures both arms, alternately, each in a fresh process with one torch thread (as in a `geovq run` worker):
the wall and system seconds per vector of `pullback_metric` over the run's stored VAE and contexts, after one warm-up
batch, and the largest difference between the arms' metric tensors (0: the setting changes where memory comes from, not a
number). Writes bench/results/freed_memory.json.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = """import json, resource, sys, time, torch
torch.set_num_threads(1)
from geovq_tutorial.core import keep_freed_memory
from geovq_tutorial.pipeline import load_run
from geovq_tutorial.data import load_dataset_for
from geovq_tutorial.vae import load_vae
from geovq_tutorial.codebook import run_geometry
from geovq_tutorial.geometry import ContextDecoder, pullback_metric
kept = keep_freed_memory() if sys.argv[2] == 'kept' else False
cfg = load_run(sys.argv[1]).replace(run_dir=sys.argv[1], threads=1)
data = load_dataset_for(cfg); vae = load_vae(cfg, data.image_shape); g = run_geometry(cfg, vae, data)
G, z = ContextDecoder(vae, g.ctx, g.cells), torch.randn(int(sys.argv[3]), cfg.latent_dim, generator=torch.Generator().manual_seed(0))
pullback_metric(G, z[:16])                                      # warm-up: the first batch grows the heap either way
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
M = pullback_metric(G, z)
t, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
torch.save(M, sys.argv[4])
print(json.dumps({'kept': kept, 'ms_per_vector': 1e3 * t / len(z), 'sys_ms_per_vector': 1e3 * (r1.ru_stime - r0.ru_stime) / len(z),
                  'max_rss_mb': r1.ru_maxrss / 1024}))
"""


def measure(run_dir: Path, arm: str, vectors: int, out: Path) -> dict:
    "One arm in a fresh process: its JSON line."
    env = {**os.environ, 'GEOVQ_PROGRESS': '0', 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    proc = subprocess.run([sys.executable, '-c', CHILD, str(run_dir), arm, str(vectors), str(out)], capture_output=True,
                          text=True, env=env, cwd=ROOT)
    if proc.returncode != 0: print(proc.stdout[-3000:], proc.stderr[-3000:]); raise SystemExit(f'the {arm} arm failed')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    import torch
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--run-dir', type=Path, action='append', required=True, help='a run folder with a VAE (repeatable)')
    ap.add_argument('--vectors', type=int, default=64)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--out', type=Path, default=ROOT / 'bench' / 'results' / 'freed_memory.json')
    args = ap.parse_args()
    rows = []
    for run_dir in args.run_dir:
        got = {'returned': [], 'kept': []}
        for r in range(args.repeats):
            for arm in got: got[arm].append(measure(run_dir, arm, args.vectors, Path(f'/tmp/freed_memory_{arm}.pt')))
        diff = float((torch.load('/tmp/freed_memory_kept.pt') - torch.load('/tmp/freed_memory_returned.pt')).abs().max())
        med = {arm: statistics.median(x['ms_per_vector'] for x in v) for arm, v in got.items()}
        rows.append({'run_dir': run_dir.name, 'vectors': args.vectors, 'runs': got, 'median_ms_per_vector': med,
                     'speedup': med['returned'] / med['kept'], 'max_abs_difference': diff})
        print(f"{run_dir.name}: {med['returned']:.1f} -> {med['kept']:.1f} ms per vector ({rows[-1]['speedup']:.2f}x), "
              f"system time {statistics.median(x['sys_ms_per_vector'] for x in got['returned']):.1f} -> "
              f"{statistics.median(x['sys_ms_per_vector'] for x in got['kept']):.1f} ms, largest difference {diff:.1e}")
    result = {'what': 'the expected metric per vector, one torch thread, freed memory returned to the system vs kept',
              'rows': rows, 'machine': {'platform': platform.platform(), 'cpus': os.cpu_count(), 'load_average_at_end': os.getloadavg()},
              'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}
    args.out.write_text(json.dumps(result, indent=1) + '\n')


if __name__ == '__main__':
    main()
