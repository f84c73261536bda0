"""Benchmark of the learner's hour (issue 27): each chapter's Run All against a complete run, its seconds and its three
slowest cells.

    python bench/bench_chapters.py [--run-dir runs/digits] [--repeats 1] [NOTEBOOK ...]

Each chapter is executed from a copy (the repository's notebook and its saved outputs are left alone) with nbconvert, as
`docs/execute.py` executes it (the same environment: `GEOVQ_TUTORIAL_RUN_DIR`, no progress bars), one chapter at a time;
with `--repeats` > 1 the chapters are run in turn, repeat after repeat, and the median is kept. The photos chapter reads
the sibling folder `photos`. Targets: each chapter <= 60 s, all together <= 8 min on two quiet cores. Writes
bench/results/chapters.json. `docs/execute.py` records the same two figures (seconds, slowest cells) for the execution
behind the saved outputs, in docs/executed.json.
"""
import argparse
import importlib.util
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _execute_module():
    "docs/execute.py as a module: its chapter list, its notion of which chapters read a run, and `slowest_cells`."
    spec = importlib.util.spec_from_file_location('docs_execute', REPO / 'docs' / 'execute.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def run_chapter(path: Path, run_dir: Path, execute) -> dict:
    "Execute a copy of the chapter at `path` against `run_dir` (an empty folder for a chapter that reads no run)."
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        shutil.copy(path, copy)
        target = run_dir if execute.run_of(path) else Path(tmp) / 'no-run'
        env = {**__import__('os').environ, 'GEOVQ_TUTORIAL_RUN_DIR': str(target), 'GEOVQ_PROGRESS': '0'}
        t0 = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / 'jupyter'), 'nbconvert', '--to', 'notebook', '--execute', '--inplace',
                        '--ExecutePreprocessor.timeout=-1', '--ExecutePreprocessor.record_timing=True', str(copy)],
                       check=True, env=env, cwd=path.parent, capture_output=True)
        return {'seconds': time.perf_counter() - t0, 'slowest_cells': execute.slowest_cells(copy)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('notebooks', nargs='*', help='chapter names (default: every chapter)')
    ap.add_argument('--run-dir', type=Path, default=REPO / 'runs' / 'digits', help='a complete `geovq run` folder')
    ap.add_argument('--repeats', type=int, default=1)
    ap.add_argument('--out', type=Path, default=REPO / 'bench' / 'results' / 'chapters.json')
    args = ap.parse_args(argv)
    execute = _execute_module()
    every = {p.stem: p for p in execute.chapters()}
    todo = [every[n.removesuffix('.ipynb')] for n in args.notebooks] or list(every.values())
    if not (args.run_dir / 'metrics.json').exists():
        ap.error(f"{args.run_dir} holds no complete run (no metrics.json): make it with `geovq run --run-dir {args.run_dir}`")
    times = {p.name: [] for p in todo}
    slowest = {}
    for _ in range(args.repeats):
        for p in todo:
            r = run_chapter(p, args.run_dir.resolve(), execute)
            times[p.name].append(r['seconds']); slowest[p.name] = r['slowest_cells']
            print(f"{p.name:28s} {r['seconds']:7.1f} s   slowest: " +
                  ', '.join(f"{c['seconds']} s ({c['first_line'][:36]})" for c in r['slowest_cells']), flush=True)
    rows = {n: {'median_s': statistics.median(t), 'runs_s': t, 'slowest_cells': slowest[n]} for n, t in times.items()}
    total = sum(r['median_s'] for r in rows.values())
    print(f"all chapters: {total:.0f} s (target <= 480 s); over 60 s: {[n for n, r in rows.items() if r['median_s'] > 60]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({'machine': platform.processor() or platform.machine(), 'repeats': args.repeats,
                                    'run_dir': args.run_dir.name, 'chapters': rows, 'total_s': total}, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
