"""Benchmark of README command 1: the whole pipeline (`geovq run`, default configuration, bundled digits) from an empty
run folder, timed end to end, with the time of each stage of each seed from the run's metrics.json.
Reach: <= 3 minutes on the project's 2-core machine.

    python bench/bench_pipeline.py [--run-dir DIR] [-- extra geovq run options]

The run folder is deleted first if it exists (default: a temporary folder). Writes bench/results/pipeline.json.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--run-dir', default=None, help='run folder to (re)create; default a temporary folder')
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'pipeline.json'))
    ap.add_argument('extra', nargs='*', help='further options for geovq run')
    args = ap.parse_args()
    run_dir = Path(args.run_dir or tempfile.mkdtemp()) / ('' if args.run_dir else 'run')
    if run_dir.exists(): shutil.rmtree(run_dir)
    geovq = str(Path(sys.executable).parent / 'geovq')
    cmd = [geovq, 'run', '--run-dir', str(run_dir), '--no-progress', *args.extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'GEOVQ_PROGRESS': '0'})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:]); raise SystemExit(f'geovq run failed ({proc.returncode})')
    metrics = json.loads((run_dir / 'metrics.json').read_text())
    res = {'command': ' '.join(cmd), 'wall_seconds': wall, 'cpu': platform.processor() or platform.machine(),
           'cores': os.cpu_count(), 'per_seed': [{k: s[k] for k in ('seed', 'seconds', 'timings', 'device')} for s in metrics['per_seed']],
           'targets': metrics['targets']}
    print(f"geovq run (whole pipeline, {len(metrics['per_seed'])} seeds): {wall:.1f} s wall (reach: <= 180 s)")
    for s in res['per_seed']:
        print(f"  seed {s['seed']}: {s['seconds']:.1f} s  " + ', '.join(f"{k} {v:.1f}" for k, v in s['timings'].items()))
    for t in metrics['targets']:
        print(f"  {'met    ' if t['met'] else 'NOT met'} {t['target']}: {t['value']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + '\n')


if __name__ == '__main__':
    main()
