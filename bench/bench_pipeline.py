"""Benchmark of README command 1: the whole pipeline (`geovq run`, default configuration, bundled digits) from an empty
run folder, timed end to end, side by side with an earlier version of the code (issue 13: >= 1.6x faster than the code of
ba39352, which took 237 s on a quiet 2-core machine).

    python bench/bench_pipeline.py [--baseline REF] [--current REF] [--repeats N] [--current-extra "OPTS"] [-- extra geovq run options]

`--current-extra` gives options to the current code only: for example the baseline's set of variants
(`--current-extra "--codebook-methods kmeans,kmedoids,geodesic --vqvae-quantizer ste --feature-spaces classifier --n-draws 1"`),
so that "today's set of variants" is timed on both sides.

Each repeat runs the baseline (the package as of git REF, checked out into a temporary worktree and imported from there by
this same Python) and the current code (this working tree, or the git REF given as --current), alternately, each into a fresh run folder, so that machine noise hits both alike.
Reported: every wall time, each run's job seconds (the line `geovq run` prints), the medians and their ratio, and whether
both arms made the same numbers (`metrics.json`'s table, comparisons and per-seed values, compared exactly). Writes bench/results/pipeline.json.
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
CLI = 'import sys; from geovq_tutorial.cli import main; sys.exit(main())'


def timed_run(src: Path, run_dir: Path, extra) -> tuple[float, str]:
    "Wall seconds of `geovq run` with the package imported from `src`, into the fresh folder `run_dir`, and its 'job seconds' line."
    if run_dir.exists(): shutil.rmtree(run_dir)
    env = {**os.environ, 'GEOVQ_PROGRESS': '0', 'PYTHONPATH': str(src)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, '-c', CLI, 'run', '--run-dir', str(run_dir), *extra], capture_output=True, text=True,
                          env=env, cwd=src)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:]); raise SystemExit(f'geovq run from {src} failed ({proc.returncode})')
    return wall, next((l.strip() for l in proc.stdout.splitlines() if 'job seconds:' in l), '')


def run_numbers(run_dir: Path) -> dict:
    "What a run computed (`metrics.json`'s table and comparisons, and per seed what is not a time or a path)."
    m = json.loads((run_dir / 'metrics.json').read_text())
    per_seed = [{k: v for k, v in r.items() if k not in ('seconds', 'timings', 'run_dir')} for r in m['per_seed']]
    return {'table': m['table'], 'comparisons': m['comparisons'], 'per_seed': per_seed}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--baseline', default='ba39352', help='git ref of the code to compare with (default: ba39352)')
    ap.add_argument('--current', default=None, help='git ref of the code to measure (default: this working tree)')
    ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--current-extra', default='', help='options for the current code only (one string, split on spaces)')
    ap.add_argument('--out', default=str(ROOT / 'bench' / 'results' / 'pipeline.json'))
    ap.add_argument('extra', nargs='*', help='further options for geovq run (given to both versions)')
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    srcs = {'baseline': tmp / 'baseline', 'current': tmp / 'current' if args.current else ROOT}
    for arm, ref in (('baseline', args.baseline), ('current', args.current)):
        if ref: subprocess.run(['git', 'worktree', 'add', '--detach', str(srcs[arm]), ref], cwd=ROOT, check=True, capture_output=True)
    times, jobs, numbers = {'baseline': [], 'current': []}, {'baseline': [], 'current': []}, {}
    try:
        for r in range(args.repeats):
            for arm, src in srcs.items():
                extra = [*args.extra, *(args.current_extra.split() if arm == 'current' else [])]
                wall, job_line = timed_run(src, tmp / f'{arm}{r}', extra)
                times[arm].append(wall); jobs[arm].append(job_line)
                numbers.setdefault(arm, run_numbers(tmp / f'{arm}{r}'))
                print(f"repeat {r}: {arm:8} {times[arm][-1]:.1f} s", flush=True)
    finally:
        for src in srcs.values():
            if src != ROOT: subprocess.run(['git', 'worktree', 'remove', '--force', str(src)], cwd=ROOT, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {'baseline_ref': args.baseline, 'current_ref': args.current or 'working tree', 'extra': args.extra, 'current_extra': args.current_extra,
           'load_average_end': os.getloadavg(), 'cpu': platform.processor() or platform.machine(),
           'cores': os.cpu_count(), 'seconds': times, 'job_seconds': jobs, 'median_seconds': med, 'speedup': med['baseline'] / med['current'],
           'same_numbers': numbers['baseline'] == numbers['current']}
    print(f"geovq run: baseline {med['baseline']:.1f} s, current {med['current']:.1f} s (medians of {args.repeats}) -> "
          f"{res['speedup']:.2f}x; the same numbers: {res['same_numbers']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + '\n')


if __name__ == '__main__':
    main()
