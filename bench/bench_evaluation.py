"""The evaluation stage of one seed, timed side by side with an earlier version of the code (issue 13, point 5; issue 12's
photos run): the stage that scores every variant, which recomputed each codebook's metric tensors and the test vectors'
graph edges for every row it printed.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_evaluation.py --run-dir runs/digits --baseline REF [--repeats 2]

The run folder's base seed (its models: VAE, codebooks, priors, fine-tunes, VQ-VAE, feature networks; not the other seeds'
folders) is copied once per arm. Each repeat then forces the evaluation stage of the baseline's copy (the package as of git
REF, checked out into a temporary worktree) and of the current code's copy (this working tree), alternately, each in a fresh
process with one torch thread (as in a `geovq run` worker), so that machine noise hits both alike. Reported: every wall time,
the medians and their ratio, and whether both arms computed the same numbers (every metric of every variant, compared
exactly). Writes bench/results/evaluation_<dataset>.json.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = """import sys, torch
torch.set_num_threads(1)
from geovq_tutorial.pipeline import load_run
from geovq_tutorial.core import setup_run
from geovq_tutorial.data import load_dataset_for
from geovq_tutorial.evaluate import evaluate_run
cfg = load_run(sys.argv[1]).replace(run_dir=sys.argv[1], eval_seeds=str(load_run(sys.argv[1]).seed), threads=1)
try: from geovq_tutorial.pipeline import SeedModels          # a seed's models, handed to evaluate_run (since 2026-12-07)
except ImportError: evaluate_run(cfg, load_dataset_for(cfg), device=setup_run(cfg), force=True, compare_sources=False, verbose=False)
else: evaluate_run(SeedModels(cfg, load_dataset_for(cfg), setup_run(cfg)), force=True, compare_sources=False, verbose=False)
"""


def copy_base_seed(run_dir: Path, dest: Path) -> Path:
    "The run folder without its other seeds' sub-folders (`seed<s>/`), copied to `dest`."
    shutil.copytree(run_dir, dest, ignore=lambda d, names: [n for n in names if Path(d) == run_dir and n.startswith('seed')])
    return dest


def timed_evaluation(src: Path, run_dir: Path) -> float:
    "Wall seconds of the forced evaluation stage of `run_dir`, with the package imported from `src`."
    env = {**os.environ, 'GEOVQ_PROGRESS': '0', 'PYTHONPATH': str(src), 'OMP_NUM_THREADS': '1'}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, '-c', CHILD, str(run_dir)], capture_output=True, text=True, env=env, cwd=src)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:]); raise SystemExit(f'the evaluation from {src} failed ({proc.returncode})')
    return time.perf_counter() - t0


def variants(run_dir: Path) -> dict:
    "Every metric of every variant of the evaluation stored in `run_dir`."
    return json.loads((run_dir / 'evaluation.json').read_text())['variants']


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--run-dir', type=Path, required=True, help='a completed run folder (made by `geovq run`)')
    ap.add_argument('--baseline', required=True, help='git ref of the code to compare with')
    ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--out', type=Path, default=None, help='default: bench/results/evaluation_<dataset>.json')
    args = ap.parse_args()
    run_dir = args.run_dir.resolve()
    if not (run_dir / 'evaluation.json').exists(): raise SystemExit(f'{run_dir} has no evaluation.json: complete it with `geovq run` first')
    dataset = json.loads((run_dir / 'config.json').read_text())['dataset']
    tmp = Path(tempfile.mkdtemp())
    srcs = {'baseline': tmp / 'baseline-src', 'current': ROOT}
    subprocess.run(['git', 'worktree', 'add', '--detach', str(srcs['baseline']), args.baseline], cwd=ROOT, check=True, capture_output=True)
    runs = {arm: copy_base_seed(run_dir, tmp / f'{arm}-run') for arm in srcs}
    times = {arm: [] for arm in srcs}
    try:
        for r in range(args.repeats):
            for arm, src in srcs.items():
                times[arm].append(round(timed_evaluation(src, runs[arm]), 1))
                print(f'repeat {r + 1}: {arm} {times[arm][-1]} s', flush=True)
        same = variants(runs['baseline']) == variants(runs['current'])
    finally:
        subprocess.run(['git', 'worktree', 'remove', '--force', str(srcs['baseline'])], cwd=ROOT, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    med = {arm: statistics.median(t) for arm, t in times.items()}
    head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    result = {'what': 'the evaluation stage of the base seed, forced, one torch thread', 'dataset': dataset, 'run_dir': str(run_dir),
              'baseline': args.baseline, 'current': f'working tree on {head}', 'seconds': times, 'median_seconds': med,
              'speedup': round(med['baseline'] / med['current'], 2), 'same_numbers': same,
              'machine': {'platform': platform.platform(), 'cpus': os.cpu_count(), 'load_average_at_end': os.getloadavg()},
              'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}
    out = args.out or ROOT / 'bench' / 'results' / f'evaluation_{dataset}.json'
    out.write_text(json.dumps(result, indent=1) + '\n')
    print(f"{dataset}: baseline {med['baseline']:.1f} s, current {med['current']:.1f} s, {result['speedup']}x; same numbers: {same}")
    print('written', out)


if __name__ == '__main__':
    main()
