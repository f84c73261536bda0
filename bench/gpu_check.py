"""The GPU check (issue 27, point 4): every stage of `geovq run` on one GPU at the tutorial's size, then the photos default,
then the 800k-vector codebook bench, each timed, with the stage timings the runs record. Meant to take <= 8 minutes on one GPU:

    bench/gpu_check.sh                                  # on a machine with CUDA: writes bench/results/gpu_check_cuda.json
    bench/gpu_check.sh --device cpu --run-options "--epochs 3 ..." --photos-options "--photo-patches 40 ..." --sizes 2000 --metric-grids 2

The second form is how the test suite checks this script on a machine without a GPU (tests/test_gpu_check.py, at its tiny
run's settings). Each step runs in its own process; the first that fails stops the check with its log's last lines."""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def step(name: str, cmd: list[str], log: Path) -> float:
    "Run `cmd`, its output into `log`; return its wall seconds, or stop the check naming the step and showing the log's end."
    t0 = time.perf_counter()
    with open(log, 'w') as fh: rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    seconds = time.perf_counter() - t0
    if rc != 0:
        sys.exit(f"gpu check: {name} failed (exit {rc}); the end of {log}:\n" + ''.join(log.read_text().splitlines(True)[-20:]))
    print(f"{name:<40} {seconds:8.1f} s", flush=True)
    return seconds


def stage_times(run_dir: Path) -> list[dict]:
    "Each seed's recorded seconds and timings from a run's metrics.json."
    metrics = json.loads((run_dir / 'metrics.json').read_text())
    return [{k: s.get(k) for k in ('seed', 'device', 'seconds', 'timings')} for s in metrics['per_seed']]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--device', default='cuda', help="the device every stage runs on (default: cuda)")
    ap.add_argument('--run-options', default='', help='further options for the digits run (one string)')
    ap.add_argument('--photos-options', default='', help='further options for the photos run (one string)')
    ap.add_argument('--sizes', type=int, nargs='+', default=[800_000], help='vector counts for the codebook bench')
    ap.add_argument('--metric-grids', type=int, default=64, help="grids the codebook bench times the metric tensors on")
    ap.add_argument('--work', type=Path, default=None, help='folder for the runs and logs (default: a new one under /tmp)')
    ap.add_argument('--out', type=Path, default=None, help='the times as JSON (default: bench/results/gpu_check_<device>.json)')
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix='gpu-check-'))
    work.mkdir(parents=True, exist_ok=True)
    geovq = str(Path(sys.executable).parent / 'geovq')
    common = ['--device', args.device, '--no-progress']
    times = {
        'digits run': step('digits run (every stage)', [geovq, 'run', '--run-dir', str(work / 'digits'), *common,
                                                        *shlex.split(args.run_options)], work / 'digits.log'),
        'photos run': step('photos run', [geovq, 'run', '--dataset', 'photos', '--run-dir', str(work / 'photos'),
                                                    *common, *shlex.split(args.photos_options)], work / 'photos.log'),
        'codebook bench': step(f"codebook bench ({', '.join(map(str, args.sizes))} vectors)",
                               [sys.executable, str(ROOT / 'bench' / 'bench_scaling.py'), '--sizes', *map(str, args.sizes),
                                '--knn-sizes', '--metric-grids', str(args.metric_grids), '--out', str(work / 'scaling.json')],
                               work / 'scaling.log')}
    print(f"{'in all':<40} {sum(times.values()):8.1f} s")
    out = args.out or ROOT / 'bench' / 'results' / f'gpu_check_{args.device.split(":")[0]}.json'
    result = {'device': args.device, 'seconds': {k: round(v, 1) for k, v in times.items()}, 'total_s': round(sum(times.values()), 1),
              'stages': {'digits': stage_times(work / 'digits'), 'photos': stage_times(work / 'photos')},
              'options': {'run': args.run_options, 'photos': args.photos_options, 'sizes': args.sizes, 'metric_grids': args.metric_grids}}
    out.write_text(json.dumps(result, indent=1) + '\n')
    print(f"times written to {out}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
