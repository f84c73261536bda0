"""What JupyterLab does to the saved chapters: open each one, save it, and compare the file with what git holds; with
`--run-all`, run all its cells first (as a learner does, against the canonical run in runs/), save, and sort every difference.

A learner clones the repository, runs `nbdev_install_hooks` (nbdev's pre-save hook: notebooks are cleaned as they are
saved) and opens the chapters in JupyterLab. Issue 30 asks that opening and autosaving a chapter changes nothing, and that Run
All leaves no difference beyond outputs whose values changed. This script checks both in the real application: JupyterLab on
loopback, driven by headless Debian Chromium through Playwright (the helpers of tests/test_explore_browser.py), with the
pre-save hook of `nbdev_install_hooks` written into a private Jupyter configuration folder (the user's ~/.jupyter is not
touched). It works on the repository's own `nbs/` (that is what the learner opens), so commit first; it restores each
notebook from git after comparing it.

    python bench/jupyterlab_roundtrip.py                    # open and save every chapter (~2 min)
    python bench/jupyterlab_roundtrip.py --run-all          # Run All of every chapter, then save (~6 min)
    python bench/jupyterlab_roundtrip.py --run-all 02_vae   # only the named ones

A difference is one of: `file` (anything but outputs: sources, ids, metadata), `structure` (a cell's outputs differ in number,
kind or MIME types: e.g. a progress-bar widget that the saved chapter does not hold), `value` (the same outputs with other
text or pixels: a time, a freshly trained number), or `tidy` (gone once docs/execute.py's `tidy` is applied to the saved
file: a live widget's view; a figure's PNG as matplotlib writes it, in a chapter that does not call `book_figures()`). Only
`value` and `tidy` differences are expected after Run All; none at all after a plain save. Every output is drawn (JupyterLab's
`windowingMode` none), as if the learner had scrolled through the chapter. The results go to
bench/results/jupyterlab_roundtrip[_run_all].json.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / 'tests'), str(ROOT / 'docs')]
from execute import tidy  # noqa: E402
from test_explore_browser import CHROMIUM, CHROMIUM_ARGS, JS_KERNEL, JS_RAN, _free_port, _wait_http, _write_settings  # noqa: E402

import nbdev.clean  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

NBS = ROOT / 'nbs'
RESULTS = ROOT / 'bench' / 'results'
# the notebook panel of the file at `path` (not the current tab: Lab may restore others beside it)
JS_PANEL = "(path) => Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === path)"


def git_version(path: Path) -> dict:
    "The notebook at `path` as main's last commit holds it."
    rel = path.relative_to(ROOT).as_posix()
    return json.loads(subprocess.run(['git', 'show', f'HEAD:{rel}'], cwd=ROOT, check=True, capture_output=True, text=True).stdout)


def output_shape(o: dict) -> tuple:
    "What an output is, without its values: its type, its stream name, its MIME types."
    return (o['output_type'], o.get('name'), tuple(sorted(o.get('data', {}))))


def differences(before: dict, after: dict) -> list[dict]:
    "Every difference between two versions of a notebook, each sorted into `file`, `structure`, `value` or `tidy` (module docstring)."
    raw = raw_differences(before, after)
    left = raw_differences(before, tidy(json.loads(json.dumps(after)))) if raw else []
    return [{**d, 'kind': 'tidy'} for d in raw if d['cell'] not in {t['cell'] for t in left}] + left


def raw_differences(before: dict, after: dict) -> list[dict]:
    "`differences` before `tidy`."
    strip = lambda nb: {**nb, 'cells': [{k: v for k, v in c.items() if k not in ('outputs', 'execution_count')} for c in nb['cells']]}
    if strip(before) != strip(after): return [{'kind': 'file', 'cell': None, 'what': 'sources, cell ids or metadata changed'}]
    found = []
    for b, a in zip(before['cells'], after['cells']):
        ob, oa = b.get('outputs', []), a.get('outputs', [])
        if [output_shape(o) for o in ob] != [output_shape(o) for o in oa]:
            found.append({'kind': 'structure', 'cell': b.get('id'), 'saved': [output_shape(o) for o in ob],
                          'now': [output_shape(o) for o in oa]})
        elif ob != oa or b.get('execution_count') != a.get('execution_count'):
            found.append({'kind': 'value', 'cell': b.get('id'), 'mime': sorted({m for o in oa for m in o.get('data', {'text': 1})}),
                          'first_changed_line': first_changed_line(ob, oa)})
    return found


def first_changed_line(saved: list[dict], now: list[dict]) -> list[str] | None:
    "The first line of text (a print or a text/plain output) that differs between two cells' outputs: [saved, now]."
    text = lambda outs: [l for o in outs for l in ''.join(o.get('text') or o.get('data', {}).get('text/plain', '')).splitlines()]
    return next(([a[:160], b[:160]] for a, b in zip(text(saved), text(now)) if a != b), None)


def diff_lines(path: Path) -> int:
    "How many lines `git diff` shows for the notebook at `path` (added plus removed)."
    out = subprocess.run(['git', 'diff', '--numstat', '--', str(path)], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return sum(int(x) for line in out.splitlines() for x in line.split()[:2])


def jupyter_config(folder: Path) -> dict:
    "A private Jupyter configuration with nbdev's pre-save hook (what `nbdev_install_hooks` adds to ~/.jupyter); its environment."
    (folder / 'config').mkdir(parents=True)
    (folder / 'config' / 'jupyter_server_config.py').write_text(nbdev.clean._pre_save_hook_src)
    _write_settings(folder / 'lab-settings')     # no news or update checks; windowingMode none: every output drawn, not only those in view
    return {**os.environ, 'JUPYTER_CONFIG_DIR': str(folder / 'config'), 'JUPYTER_RUNTIME_DIR': str(folder / 'runtime'),
            'JUPYTERLAB_SETTINGS_DIR': str(folder / 'lab-settings'), 'JUPYTERLAB_WORKSPACES_DIR': str(folder / 'workspaces'),
            'IPYTHONDIR': str(folder / 'ipython'), 'JUPYTER_PLATFORM_DIRS': '1'}


def check(page, base: str, token: str, path: Path, run_all: bool, limit_s: float) -> dict:
    "Open the notebook at `path` in JupyterLab, Run All if asked, save it, compare with git, restore it; what was found."
    rel = path.relative_to(ROOT).as_posix()
    page.goto(f'{base}/lab/tree/{rel}?reset&token={token}')    # reset: no tab of an earlier chapter restored
    page.wait_for_selector('.jp-Notebook .jp-Cell')
    page.wait_for_function(f"({JS_KERNEL})() === 'idle'", timeout=120_000)
    t0, ran = time.time(), None
    if run_all:
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        ran = page.wait_for_function(JS_RAN, polling=1000, timeout=limit_s * 1000).json_value()
    seconds = time.time() - t0
    written = path.stat().st_mtime_ns
    page.evaluate(f"(path) => {{ ({JS_PANEL})(path).context.save(); }}", rel)    # not awaited: the wait below has a limit
    try:
        page.wait_for_function(f"(path) => !({JS_PANEL})(path).context.model.dirty", arg=rel)
        for _ in range(100):     # the file itself written again
            if path.stat().st_mtime_ns != written: break
            time.sleep(0.1)
        else: raise TimeoutError(f'{path.name} was not written within 10 s of the save')
    except Exception:
        page.screenshot(path=str(RESULTS / f'jupyterlab_roundtrip_{path.stem}.png')); raise
    found = differences(git_version(path), json.loads(path.read_text()))
    lines = diff_lines(path)
    page.evaluate(f"(path) => {{ ({JS_PANEL})(path).sessionContext.shutdown(); }}", rel)   # the next page load closes it
    subprocess.run(['git', 'checkout', '--', rel], cwd=ROOT, check=True)
    return {'notebook': path.name, 'diff_lines': lines, 'seconds': round(seconds, 1), 'errors': ran and ran['errors'],
            'file': sum(d['kind'] == 'file' for d in found), 'structure': [d for d in found if d['kind'] == 'structure'],
            'value': [d for d in found if d['kind'] == 'value'], 'tidy': [d for d in found if d['kind'] == 'tidy']}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('names', nargs='*', help='chapters (names without .ipynb); default: every one')
    ap.add_argument('--run-all', action='store_true', help='Run All of each chapter before saving it')
    ap.add_argument('--limit', type=float, default=600, help="seconds allowed for one chapter's Run All")
    args = ap.parse_args(argv)
    if subprocess.run(['git', 'diff', '--quiet', '--', 'nbs'], cwd=ROOT).returncode:
        raise SystemExit('nbs/ has uncommitted changes: commit them first (this script restores each notebook from git)')
    paths = sorted(NBS.glob('*.ipynb'))
    if args.names: paths = [p for p in paths if p.stem in args.names]
    with tempfile.TemporaryDirectory() as tmp:
        env, port, token = jupyter_config(Path(tmp)), _free_port(), secrets.token_hex(16)
        log = Path(tmp) / 'lab.log'
        with open(log, 'w') as fh:
            proc = subprocess.Popen([sys.executable, '-m', 'jupyter', 'lab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
                                     f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={ROOT}', '--LabApp.expose_app_in_browser=True',
                                     '--LabApp.news_url=', '--ServerApp.terminals_enabled=False', '--LabApp.extension_manager=readonly',
                                     '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate']
                                    + (['--allow-root'] if os.geteuid() == 0 else []), cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        try:
            base = f'http://127.0.0.1:{port}'
            _wait_http(f'{base}/api/status?token={token}', 60, proc, log)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                page = browser.new_page(viewport={'width': 1280, 'height': 800})
                page.set_default_timeout(60_000)
                rows = []
                for p in paths:
                    rows.append(check(page, base, token, p, args.run_all, args.limit))
                    r = rows[-1]
                    print(f"{r['notebook']:28s} {r['seconds']:6.1f} s  diff lines {r['diff_lines']:4d}  file {r['file']}  "
                          f"structure {len(r['structure'])}  value {len(r['value'])}  tidy {len(r['tidy'])}  errors {r['errors'] or '-'}", flush=True)
                browser.close()
        finally:
            proc.terminate(); proc.wait(20)
    out = RESULTS / ('jupyterlab_roundtrip_run_all.json' if args.run_all else 'jupyterlab_roundtrip.json')
    out.write_text(json.dumps({'commit': subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True,
                                                        text=True).stdout.strip(), 'notebooks': rows}, indent=1) + '\n')
    return int(any(r['file'] or r['structure'] or ((r['value'] or r['tidy']) and not args.run_all) or r['errors'] for r in rows))


if __name__ == '__main__':
    raise SystemExit(main())
