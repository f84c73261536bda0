#!/usr/bin/env python
"""Re-execute every chapter against one canonical run, slow cells included, and save the outputs, in one command.

    python docs/execute.py                         # make the canonical runs if missing, then execute every notebook
    python docs/execute.py 07_evaluate index       # only these notebooks (against the same runs)
    python docs/execute.py --run-dir /tmp/canon/digits   # the digits run lives there (photos: its sibling `photos`)
    python docs/execute.py --check                 # exit 1 if a notebook's code changed since its outputs were saved

The canonical runs are made by `geovq run` itself, with every default (`CANONICAL_RUNS` below): the digits, the run a learner
makes first, and the photo patches, for the natural-images chapter. So the saved outputs show the run a learner has. A notebook finds them through `GEOVQ_TUTORIAL_RUN_DIR`
(`tutorial_config` in the VAE chapter). After each notebook: its widget state and widget views are dropped (a live widget's
saved state is megabytes, its text repr shows nothing, and neither works without a kernel), its JSON outputs are stored as
JupyterLab writes them back (`jupyterlab_json`), consecutive prints joined into one output as JupyterLab keeps them
(`merge_streams`), its PNG figures are stored with a palette of at most 64 colours (`palette_images`, the library's
`palette_png`: a third of the bytes; a chapter that calls `book_figures()` displays them so already), `nbdev_clean` tidies
it, and `docs/executed.json` records the hash of its code
cells and the fingerprint of the run it was executed against (`run_fingerprint`: the sha256 of the run's `metrics.json`
without its wall times and folder, so that the same run made again elsewhere matches), with the run's headline numbers (the verdict lines'
comparisons and the targets). A notebook whose code reads no run (`reads_run`: the core, data and CLI chapters) is executed
against an empty folder that must stay empty, and recorded against no run, so that a new canonical run leaves it current. `tests/test_saved_outputs.py` checks that record: a chapter whose code changed since its
outputs were saved, a chapter executed against another run, or a saved headline number (README, landing page, evaluation
chapter) that differs from the run's fails the tests. Finally the README is written again from the landing page.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
NBS = REPO / 'nbs'
RECORD = DOCS / 'executed.json'


def _load_build():
    "docs/build.py as a module (the site builder: its notebook list and widget MIME type are the ones used here)."
    spec = importlib.util.spec_from_file_location('docs_build', DOCS / 'build.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

build = _load_build()
WIDGET_MIME = build.WIDGET_MIME
CANONICAL_RUNS = {   # run name -> the `geovq run` options that make it (besides --run-dir)
    'digits': [],                         # plain `geovq run`: the learner's run
    'photos': ['--dataset', 'photos'],
}
PHOTOS_CHAPTERS = ('11_natural_images.ipynb',)   # executed against the photos run; every other that reads a run, the digits
RUN_READERS = ('chapter_setup(', 'tutorial_config(', 'GEOVQ_TUTORIAL_RUN_DIR')   # how a notebook's code reaches the canonical run


def chapters(nbs: Path = NBS) -> list[Path]:
    "The site's notebooks (`build.notebooks`) in reading order, the landing page last (it shows the results of the chapters before it)."
    index, *rest = build.notebooks(nbs)
    return [*rest, index]


def reads_run(nb: dict) -> bool:
    "Whether a notebook's code reaches the canonical run (calls one of `RUN_READERS`); the core, data and CLI chapters do not."
    return any(r in ''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code' for r in RUN_READERS)


def run_of(path: Path) -> str | None:
    """The canonical run a notebook is executed against: 'photos' for the natural-images chapter, 'digits' for every other
    that reads a run, None for one that reads none (its outputs cannot depend on the run, so a new run leaves them current)."""
    if path.name in PHOTOS_CHAPTERS: return 'photos'
    return 'digits' if reads_run(json.loads(path.read_text())) else None


def code_hash(nb: dict) -> str:
    "sha256 of a notebook's code cells, in order: what its saved outputs were computed by."
    src = '\n\x00\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code')
    return hashlib.sha256(src.encode()).hexdigest()


VOLATILE = ('run_dir', 'seconds', 'timings')   # what differs between two runs of the same code and settings: wall times, folder


def without_volatile(x):
    "`x` (a run's metrics.json, parsed) without the keys in `VOLATILE`, at any depth."
    if isinstance(x, dict): return {k: without_volatile(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list): return [without_volatile(v) for v in x]
    return x


def run_fingerprint(metrics_path: Path) -> str:
    """sha256 of a run's metrics.json without its wall times and folder: two runs that computed the same numbers share it,
    so a run made again on another machine (the same code and settings, deterministic on the CPU) is recognised as the same."""
    metrics = without_volatile(json.loads(metrics_path.read_text()))
    return hashlib.sha256(json.dumps(metrics, sort_keys=True).encode()).hexdigest()


def headline(metrics: dict) -> dict:
    "The numbers a reader sees first: what `verdict_lines` needs (the verdict's comparisons), the targets, each variant's mean test MSE."
    from geovq_tutorial.pipeline import VERDICT_METRICS, in_verdict
    comps = [c for c in metrics.get('comparisons', []) if c['metric'] in VERDICT_METRICS and in_verdict(c)]
    return {'dataset': metrics['dataset'], 'K': metrics['K'], 'seeds': metrics['seeds'], 'n_test': metrics.get('n_test'),
            'comparisons': comps, 'targets': metrics.get('targets', []),
            'mse': {r['variant']: r['mse']['mean'] for r in metrics.get('table', []) if 'mse' in r},
            'per_seed': per_seed_values(metrics)}


PER_SEED_KEYS = ('mse', 'prior_nll', 'fd', 'ae_fd')   # the headline measures kept seed by seed, for another machine to check


def per_seed_values(metrics: dict) -> dict:
    "Each variant's headline measures seed by seed ({variant: {'seeds': [...], key: [...]}}), not only their means."
    return {r['variant']: {'seeds': r['seeds'], **{k: r[k]['values'] for k in PER_SEED_KEYS if k in r}}
            for r in metrics.get('table', [])}


def run_dirs(digits_dir: Path) -> dict[str, Path]:
    "The canonical run folders: the digits run, and the photos run beside it (where the natural-images chapter looks)."
    return {'digits': digits_dir, 'photos': digits_dir.parent / 'photos'}


def make_run(name: str, run_dir: Path) -> None:
    "`geovq run` into `run_dir` with the canonical options: stages already stored there with the same settings are loaded."
    geovq = Path(sys.executable).parent / 'geovq'
    cmd = [str(geovq), 'run', '--run-dir', str(run_dir), *CANONICAL_RUNS[name]]
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, 'GEOVQ_PROGRESS': '0'})


def strip_widget_state(nb: dict) -> int:
    """Drop saved widget state and widget-view outputs from the notebook `nb` (in place), whole: a widget view's only other form is
    its Python repr (`VBox(children=(HBox(...`), which shows nothing (the chapters display a static figure beside each live
    widget). Return how many were dropped."""
    dropped = int(nb.get('metadata', {}).pop('widgets', None) is not None)
    for c in nb['cells']:
        if 'outputs' not in c: continue
        kept = [o for o in c['outputs'] if WIDGET_MIME not in o.get('data', {})]
        dropped += len(c['outputs']) - len(kept); c['outputs'] = kept
    return dropped


def palette_images(nb: dict) -> tuple[int, int]:
    """Store each PNG output of the notebook `nb` (in place) as `palette_png` makes it (a palette of at most 64 colours where that
    is smaller; a PNG that has a palette, such as what `book_figures` displays, as it is); return the PNG bytes before and after."""
    import base64
    from geovq_tutorial.core import palette_png
    before, after = 0, 0
    for c in nb['cells']:
        for o in c.get('outputs', []):
            if not isinstance(data := o.get('data', {}).get('image/png'), (str, list)): continue
            raw = base64.b64decode(''.join(data))
            small = palette_png(raw)
            o['data']['image/png'] = base64.b64encode(small).decode()
            before, after = before + len(raw), after + len(small)
    return before, after


def integral_floats_as_ints(x):
    """`x` (parsed JSON) with every float that is a whole number written as an int: the form in which JupyterLab writes a
    notebook back (its JavaScript numbers have no `0.0`, only `0`), so that opening and autosaving a chapter changes nothing."""
    if isinstance(x, float) and x.is_integer(): return int(x)
    if isinstance(x, list): return [integral_floats_as_ints(v) for v in x]
    if isinstance(x, dict): return {k: integral_floats_as_ints(v) for k, v in x.items()}
    return x


def jupyterlab_json(nb: dict) -> int:
    "Store the JSON outputs (plotly figures) of the notebook `nb` (in place) as JupyterLab writes them back; return how many."
    n = 0
    for c in nb['cells']:
        for o in c.get('outputs', []):
            for mime, v in o.get('data', {}).items():
                if mime.endswith('json'): o['data'][mime] = integral_floats_as_ints(v); n += 1
    return n


def merge_streams(nb: dict) -> int:
    """Join each run of consecutive stream outputs with the same name (stdout, stderr) in the notebook `nb` (in place) into one, as
    JupyterLab keeps them (nbconvert stores one output per flush); return how many outputs were merged away."""
    n = 0
    for c in nb['cells']:
        merged = []
        for o in c.get('outputs', []):
            if merged and o['output_type'] == 'stream' == merged[-1]['output_type'] and o['name'] == merged[-1]['name']:
                text = ''.join(merged[-1]['text']) + ''.join(o['text'])
                merged[-1] = {**merged[-1], 'text': text.splitlines(keepends=True)}; n += 1     # lines, as nbformat stores them
            else: merged.append(o)
        if 'outputs' in c: c['outputs'] = merged
    return n


def tidy(nb: dict) -> dict:
    "The notebook `nb` (in place) as the site stores it: widget views dropped, PNGs paletted, streams and JSON as JupyterLab's."
    strip_widget_state(nb); palette_images(nb); merge_streams(nb); jupyterlab_json(nb)
    return nb


def tidy_outputs(path: Path) -> None:
    "The just-executed notebook at `path`, read and written once, tidied (`tidy`)."
    nb = tidy(json.loads(path.read_text()))
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')


def slowest_cells(path: Path, n: int = 3) -> list[dict]:
    """The `n` slowest code cells of the just-executed notebook at `path` (nbclient's timing metadata, before `nbdev_clean`
    drops it): their seconds and first line."""
    from datetime import datetime
    cells = []
    for c in json.loads(path.read_text())['cells']:
        t = c.get('metadata', {}).get('execution', {})
        if c['cell_type'] == 'code' and 'iopub.execute_input' in t and 'shell.execute_reply' in t:
            start, end = (datetime.fromisoformat(t[k].replace('Z', '+00:00')) for k in ('iopub.execute_input', 'shell.execute_reply'))
            first = next((l for l in ''.join(c['source']).splitlines() if l.strip() and not l.startswith('#|')), '')
            cells.append({'seconds': round((end - start).total_seconds(), 1), 'cell': c.get('id'), 'first_line': first[:80]})
    return sorted(cells, key=lambda c: -c['seconds'])[:n]


def execute(path: Path, run_dir: Path | None) -> tuple[float, list[dict]]:
    """Execute the notebook at `path` in place, top to bottom (slow cells included), against `run_dir`; return the seconds and
    its slowest cells. With `run_dir` None (a notebook that reads no run) it is pointed at an empty folder, which must stay empty."""
    if run_dir is None:
        with tempfile.TemporaryDirectory() as empty:
            seconds, slowest = execute(path, Path(empty))
            if made := sorted(p.name for p in Path(empty).iterdir()):
                raise SystemExit(f"{path.name} reads no canonical run (none of {RUN_READERS} in its code), but it wrote {made} "
                                 "into the run folder it was given: add what it calls to RUN_READERS in docs/execute.py")
        return seconds, slowest
    env = {**os.environ, 'GEOVQ_TUTORIAL_RUN_DIR': str(run_dir), 'GEOVQ_PROGRESS': '0'}
    t0 = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / 'jupyter'), 'nbconvert', '--to', 'notebook', '--execute', '--inplace',
                    '--ExecutePreprocessor.timeout=-1', '--ExecutePreprocessor.record_timing=True', str(path)],
                   check=True, env=env, cwd=path.parent)
    seconds, slowest = time.perf_counter() - t0, slowest_cells(path)
    tidy_outputs(path)
    subprocess.run([str(Path(sys.executable).parent / 'nbdev_clean'), '--fname', str(path)], check=True, cwd=REPO)
    return seconds, slowest


def load_record(path: Path = RECORD) -> dict:
    return json.loads(path.read_text()) if path.exists() else {'runs': {}, 'chapters': {}}


def save_record(record: dict, path: Path = RECORD) -> None:
    "Write `record` atomically (a partial file never replaces a good one), after each notebook, so an interruption loses nothing."
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(json.dumps(record, indent=1) + '\n'); os.replace(tmp, path)


def record_run(record: dict, name: str, run_dir: Path) -> None:
    "Note the run `name`'s metrics.json (its hash and headline numbers) in `record`."
    metrics_path = run_dir / 'metrics.json'
    if not metrics_path.exists():
        raise SystemExit(f"{metrics_path} does not exist: `geovq run` did not finish there; run `python docs/execute.py` "
                         "without --no-run to make the run first")
    record['runs'][name] = {'command': ' '.join(['geovq run', *CANONICAL_RUNS[name]]), 'metrics_sha256': run_fingerprint(metrics_path),
                            'headline': headline(json.loads(metrics_path.read_text()))}


def stale(record: dict, nbs: Path = NBS) -> list[str]:
    "What is out of date between the notebooks and `record`: one line per notebook, saying what to run."
    out = []
    for path in chapters(nbs):
        entry, fix = record['chapters'].get(path.name), f"run `python docs/execute.py {path.stem}`"
        run = run_of(path)
        if entry is None: out.append(f"{path.name} has no record of being executed against the canonical run: {fix}")
        elif entry['code_sha256'] != code_hash(json.loads(path.read_text())):
            out.append(f"{path.name}'s code changed since its outputs were saved: {fix}")
        elif entry['run'] != run:
            out.append(f"{path.name} was executed against {entry['run'] or 'no'} run, but reads {run or 'none'} now: {fix}")
        elif run is not None and (run not in record['runs'] or entry['metrics_sha256'] != record['runs'][run]['metrics_sha256']):
            out.append(f"{path.name} was executed against another {run} run than the canonical one: {fix}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('notebooks', nargs='*', help='notebook names (with or without .ipynb) to execute; default: all of them')
    ap.add_argument('--run-dir', type=Path, default=REPO / 'runs' / 'digits',
                    help="the canonical digits run (default: runs/digits); the photos run is its sibling folder 'photos'")
    ap.add_argument('--no-run', action='store_true', help="use the runs as they are: don't call `geovq run` first")
    ap.add_argument('--check', action='store_true', help='only report stale notebooks (exit 1 if any)')
    args = ap.parse_args(argv)
    record = load_record()
    if args.check:
        for line in (problems := stale(record)): print(line)
        print('every notebook is up to date with its run' if not problems else f'{len(problems)} notebook(s) stale')
        return 1 if problems else 0
    every = {p.stem: p for p in chapters()}
    unknown = [n for n in args.notebooks if n.removesuffix('.ipynb') not in every]
    if unknown: ap.error(f"no such notebook in nbs/: {', '.join(unknown)} (they are: {', '.join(every)})")
    todo = [every[n.removesuffix('.ipynb')] for n in args.notebooks] or list(every.values())
    dirs = run_dirs(args.run_dir.resolve())
    needed = {run_of(p) for p in todo} - {None}
    for name in sorted(needed):
        if not args.no_run: make_run(name, dirs[name])
        record_run(record, name, dirs[name])
    for path in todo:
        run = run_of(path)
        print(f"executing {path.name} against {dirs[run] if run else 'no run (it reads none)'} ...", flush=True)
        seconds, slowest = execute(path, dirs['digits'] if run else None)   # the photos chapter finds its run beside the digits one
        if run and run_fingerprint(dirs[run] / 'metrics.json') != record['runs'][run]['metrics_sha256']:
            raise SystemExit(f"{path.name} changed {dirs[run] / 'metrics.json'} while it ran (a stage was made again): the chapters "
                             "executed before it show the old run; run `python docs/execute.py` again to execute them all against the new one")
        record['chapters'][path.name] = {'code_sha256': code_hash(json.loads(path.read_text())), 'run': run,
                                         'metrics_sha256': record['runs'][run]['metrics_sha256'] if run else None,
                                         'seconds': round(seconds), 'slowest_cells': slowest}
        save_record(record)
        print(f'  {path.name}: {seconds:.0f} s; slowest cells: ' + ', '.join(f"{c['seconds']} s ({c['first_line'][:40]})" for c in slowest), flush=True)
    subprocess.run([sys.executable, str(DOCS / 'build.py'), '--readme'], check=True, cwd=REPO)
    for line in stale(record): print('still stale:', line)
    return 0


if __name__ == '__main__':
    sys.exit(main())
