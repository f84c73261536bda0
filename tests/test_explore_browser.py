"""The explore chapter in a real browser: JupyterLab on loopback, headless Debian Chromium driven by Playwright.

Needs `/usr/bin/chromium` (Debian package `chromium`; override with GEOVQ_CHROMIUM) and the Python package `playwright`
(never `playwright install`: we drive the system Chromium). Screenshots go to test-artifacts/explore-browser/.
The notebook runs from a copy under test-artifacts/ (so the repository's notebook is never saved over) against the session's
tiny run (`chapters_run` in conftest.py, shared with the notebook tests), at that run's settings (its config.json): the warm-up only
fits what the chapter shows beyond the run, and Run All only loads.

Every wait is on a condition in the page (an element, a count, a value), never a fixed pause, and every limit is a time
measured on a quiet machine times LOAD_FACTOR (15; see the limits below). On a busy machine set GEOVQ_BROWSER_SLOWDOWN to a
larger factor (e.g. 30) to give every wait more time at once.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / 'nbs' / '08_explore.ipynb'
ART = ROOT / 'test-artifacts' / 'explore-browser'
CHROMIUM = os.environ.get('GEOVQ_CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']

# Time limits (seconds): each is a time measured on a quiet machine times LOAD_FACTOR. Under load 7-11 (2 cores) the Run All
# took 1,308 s against ~120 s quiet, 11 times longer: the default factor, 15, covers that with room to spare.
LOAD_FACTOR = float(os.environ.get('GEOVQ_BROWSER_SLOWDOWN', 15))
LAB_S = 10 * LOAD_FACTOR        # JupyterLab answering, then its page loaded with the notebook's cells: ~10 s quiet
KERNEL_S = 5 * LOAD_FACTOR      # the kernel idle after its start: ~5 s quiet
RUN_ALL_S = 120 * LOAD_FACTOR   # Run All of the warm notebook (it only loads), the explorers drawn: ~120 s quiet, 1,308 s loaded
DRAW_S = 1.5 * LOAD_FACTOR      # an explorer's figure or control drawn once its cell ran: ~1.5 s quiet (the pause this replaces)
UPDATE_S = 1 * LOAD_FACTOR      # a figure updated in the page after a control change: 0.7-1.2 s measured (0.5 s Python-side budget)
BIG_UPDATE_S = 2 * UPDATE_S     # the sample and path explorers redraw many images over several messages: twice an update
ACTION_S = LAB_S                # any other action (scroll, click, screenshot): no longer than loading the page
POLL_MS = 100                   # how often a wait asks the page (the Run All, over every cell's outputs: every second)

VIEWPORT = {'width': 1280, 'height': 800}
EXPLORERS = ['geovq-manifold', 'geovq-assignments', 'geovq-samples', 'geovq-paths']
MANIFOLD_POINTS = 16 * 180      # the manifold draws one marker per grid cell of every test image

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def _write_settings(settings: Path):
    "JupyterLab user settings: no news or update checks (no network), every cell attached to the DOM."
    for rel, value in {'@jupyterlab/apputils-extension/notification': {'fetchNews': 'false', 'checkForUpdates': False},
                       '@jupyterlab/notebook-extension/tracker': {'windowingMode': 'none'}}.items():
        f = settings / f'{rel}.jupyterlab-settings'
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))

def _copy_notebook(dest: Path) -> Path:
    "The chapter without its nbdev_export cell (it would rewrite the package), with a kernelspec so Lab asks nothing."
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells = [c for c in nb.cells if 'nbdev_export' not in c.source]
    nb.metadata['kernelspec'] = {'display_name': 'Python 3 (ipykernel)', 'language': 'python', 'name': 'python3'}
    dest.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest / NOTEBOOK.name)
    return dest / NOTEBOOK.name

def _wait_http(url: str, timeout: float, proc: subprocess.Popen, log: Path):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None: raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200: return
        except OSError: time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {url} within {timeout} s:\n{log.read_text()[-3000:]}")

# JavaScript run in the page (JupyterLab started with expose_app_in_browser)
JS_KERNEL = """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return k ? k.status : null; }"""
JS_PROGRESS = """() => { const w = window.jupyterapp.shell.currentWidget; const cells = w.content.widgets;
  let code = 0, done = 0, running = 0, errors = [];
  for (const c of cells) {
    if (c.model.type !== 'code') continue;
    code += 1;
    if (c.model.executionCount !== null) done += 1;
    if ((c.promptNode && c.promptNode.textContent || '').includes('*')) running += 1;
    for (const o of c.model.outputs.toJSON()) if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
  }
  return {code, done, running, errors}; }"""
JS_FIG = """([cls, i]) => { const gd = document.querySelectorAll('.' + cls + ' .js-plotly-plot')[0];
  return gd && gd.data && gd.layout ? JSON.stringify({data: gd.data.map(t => [t.z, t.x, t.y, t.text, t.marker && t.marker.color]),
                             shapes: gd.layout.shapes, annotations: (gd.layout.annotations || []).map(a => a.text),
                             title: gd.layout.title && gd.layout.title.text}) : null; }"""
# the progress once Run All is over (every code cell ran, none running, the kernel idle) or a cell raised; else null
JS_RAN = ("() => { try { const p = (" + JS_PROGRESS + ")();\n"
          "  return p.errors.length || (p.done === p.code && p.running === 0 && (" + JS_KERNEL + ")() === 'idle') ? p : null; }\n"
          "  catch (e) { return null; } }")
# every explorer's figure drawn (an svg of non-zero size), the manifold with all its points
JS_DRAWN = """([classes, points]) => classes.every(cls => { const s = document.querySelector('.' + cls + ' .main-svg');
    const r = s && s.getBoundingClientRect(); return !!r && r.width > 0 && r.height > 0; })
  && document.querySelectorAll('.geovq-manifold .scatterlayer .point').length >= points"""
# the figure's state (JSON) once it differs from the state `seen`; else null
JS_FIG_CHANGED = "([cls, seen]) => { const now = (" + JS_FIG + ")([cls, 0]); return now !== null && now !== seen ? now : null; }"

def _until(page, js: str, arg=None, timeout_s: float = UPDATE_S, poll_ms: int = POLL_MS):
    "Wait until `js(arg)` is truthy in the page (asked every `poll_ms`); return its value, or None once `timeout_s` has passed."
    try: handle = page.wait_for_function(js, arg=arg, polling=poll_ms, timeout=max(timeout_s * 1000, 1))
    except PlaywrightTimeout: return None
    value = handle.json_value()
    handle.dispose()
    return value

def _wait_count(page, selector: str, n: int, timeout_s: float = DRAW_S) -> int:
    "How many elements match `selector` once at least `n` do, or once `timeout_s` has passed (the caller asserts)."
    _until(page, '([sel, n]) => document.querySelectorAll(sel).length >= n', [selector, n], timeout_s)
    return page.locator(selector).count()

def _box(loc) -> dict:
    "The bounding box of `loc` once it is attached and visible (within DRAW_S)."
    loc.wait_for(state='visible', timeout=DRAW_S * 1000)
    return loc.bounding_box(timeout=DRAW_S * 1000)

# The chapter reads the session's tiny run at that run's own settings: `tutorial_config` starts from the run's config.json.
WARM = """
import torch; torch.set_num_threads(1)
from geovq_tutorial.vae import tutorial_config
from geovq_tutorial.finetune import FinetuneConfig
from geovq_tutorial import explore as E
from geovq_tutorial.core import setup_run
from geovq_tutorial.data import load_dataset_for
cfg = tutorial_config(FinetuneConfig, threads=1, progress=False)
device, data = setup_run(cfg), load_dataset_for(cfg)
vae, inputs = E.load_explore_inputs(cfg, data, device=device)
E.load_projections(cfg, vae, inputs)
E.load_sample_sources(cfg, vae, inputs.codebooks, data, device)
"""

def _warm_run_folder(env: dict, log: Path):
    "Fit, once, what the chapter loads beyond the run (its projections, its sample sources): Run All then only loads."
    t0 = time.time()
    r = subprocess.run([sys.executable, '-c', WARM], cwd=ROOT, env=env, capture_output=True, text=True)
    log.write_text(f"warm-up took {time.time() - t0:.1f} s, exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    assert r.returncode == 0, f"preparing the run folder failed:\n{r.stderr[-3000:]}"

@pytest.fixture(scope='module')
def lab(tmp_path_factory, chapters_run):
    "A JupyterLab page with the explore chapter open and all its cells run; yields the Playwright page."
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) or set GEOVQ_CHROMIUM"
    if ART.exists(): shutil.rmtree(ART)
    ART.mkdir(parents=True)
    tmp = tmp_path_factory.mktemp('jupyter')
    nb = _copy_notebook(ART / 'notebook')
    _write_settings(tmp / 'lab-settings')
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, 'PYTHONPATH': str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''), 'GEOVQ_PROGRESS': '0',
           'GEOVQ_TUTORIAL_RUN_DIR': str(chapters_run),
           'JUPYTER_CONFIG_DIR': str(tmp / 'config'), 'JUPYTER_RUNTIME_DIR': str(tmp / 'runtime'),
           'JUPYTERLAB_SETTINGS_DIR': str(tmp / 'lab-settings'), 'JUPYTERLAB_WORKSPACES_DIR': str(tmp / 'workspaces'),
           'IPYTHONDIR': str(tmp / 'ipython'), 'JUPYTER_PLATFORM_DIRS': '1'}
    _warm_run_folder(env, ART / 'warm-up.log')
    log = ART / 'jupyterlab.log'
    cmd = [sys.executable, '-m', 'jupyter', 'lab', '--no-browser', '--ip=127.0.0.1', f'--port={port}', '--port-retries=0',
           f'--IdentityProvider.token={token}', '--ServerApp.terminals_enabled=False', f'--ServerApp.root_dir={nb.parent}',
           '--LabApp.expose_app_in_browser=True', '--LabApp.news_url=', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
           '--LabApp.extension_manager=readonly'] + (['--allow-root'] if hasattr(os, 'geteuid') and os.geteuid() == 0 else [])
    with open(log, 'w') as fh:
        proc = subprocess.Popen(cmd, cwd=nb.parent, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        base = f'http://127.0.0.1:{port}'
        _wait_http(f'{base}/api/status?token={token}', LAB_S, proc, log)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport=VIEWPORT)     # a laptop-sized JupyterLab, file browser open (below)
            page.set_default_timeout(ACTION_S * 1000)
            console = []
            page.on('console', lambda m: console.append(f'{m.type}: {m.text}'))
            page.goto(f'{base}/lab/tree/{nb.name}?token={token}', timeout=LAB_S * 1000)
            page.wait_for_selector('.jp-Notebook .jp-Cell', timeout=LAB_S * 1000)
            # the kernel must be Idle before Run All (the status bar says so too)
            assert _until(page, f"({JS_KERNEL})() === 'idle'", timeout_s=KERNEL_S), f"the kernel was not idle within {KERNEL_S:.0f} s"
            page.locator('.jp-StatusBar-Widget', has_text='Idle').first.wait_for(timeout=KERNEL_S * 1000)
            if page.evaluate("() => window.jupyterapp.shell.leftCollapsed"):
                page.evaluate("() => window.jupyterapp.commands.execute('filebrowser:activate')")
            page.locator('.jp-FileBrowser').first.wait_for(state='visible', timeout=LAB_S * 1000)
            page.screenshot(path=str(ART / '01-opened.png'))
            t0 = time.time()
            # not awaited (evaluate would wait for the whole run with no limit): the wait below holds the limit
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            # past the limit, the progress so far: test_notebook_runs_without_errors says how many cells ran
            p = _until(page, JS_RAN, timeout_s=RUN_ALL_S, poll_ms=1000) or page.evaluate(JS_PROGRESS)
            if not p['errors']:   # the widget views draw after their cells ran: within what is left of the limit
                _until(page, JS_DRAWN, [EXPLORERS, MANIFOLD_POINTS], max(RUN_ALL_S - (time.time() - t0), DRAW_S))
            page.screenshot(path=str(ART / '02-ran-all.png'), full_page=True)
            page.ran = {**p, 'seconds': time.time() - t0, 'console': console}
            yield page
            (ART / 'console.log').write_text('\n'.join(console))
            (ART / 'browser-latency.json').write_text(json.dumps({'run_all_s': round(page.ran['seconds'], 1), 'updates_s': LATENCY,
                                                                  'fit_px': FITS},
                                                                 indent=1))
            browser.close()
    finally:
        proc.terminate()
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill()

def _fig(page, cls: str) -> str:
    "The state of the plotly figure inside `.cls` (JSON), once it is drawn (within DRAW_S)."
    state = _until(page, JS_FIG, [cls, 0], DRAW_S)
    assert state, f"no plotly figure in .{cls} within {DRAW_S:.0f} s"
    return state

LATENCY: dict[str, list[float]] = {}   # seconds from the action (done) to the figure updated in the page, per explorer

def _wait_change(page, cls: str, before: str, timeout: float = UPDATE_S, until=None) -> str:
    """Wait until the plotly figure inside `.cls` differs from `before` (the kernel round trip) and, when given, `until(state)`
    holds for the parsed state (updates arrive one message per trace: each wait is for the next change); return it (JSON)."""
    t0, seen = time.time(), before
    while (left := timeout - (time.time() - t0)) > 0:
        seen = _until(page, JS_FIG_CHANGED, [cls, seen], left)
        if seen is None: break
        if until is None or until(json.loads(seen)):
            LATENCY.setdefault(cls, []).append(round(time.time() - t0, 3))
            return seen
    raise AssertionError(f"the figure in .{cls} did not change as expected within {timeout} s")

def _explorer(page, cls: str):
    loc = page.locator(f'.{cls}')
    loc.scroll_into_view_if_needed()
    return loc

def test_notebook_runs_without_errors(lab):
    r = lab.ran
    assert not r['errors'], f"cells raised: {r['errors']}"
    assert r['done'] == r['code'] and r['running'] == 0, f"only {r['done']} of {r['code']} code cells ran in {r['seconds']:.0f} s"

@pytest.mark.parametrize('cls', EXPLORERS)
def test_each_explorer_renders(lab, cls):
    loc = _explorer(lab, cls)
    assert loc.count() == 1, f"expected one .{cls} widget in the page, found {loc.count()}"
    plot = loc.locator('.js-plotly-plot')
    plot.first.wait_for(timeout=DRAW_S * 1000)
    assert _wait_count(lab, f'.{cls} .main-svg', 1) >= 1
    if cls == 'geovq-manifold':   # one marker per grid cell of every test image (drawn after the svg: wait for them all)
        points = _wait_count(lab, f'.{cls} .scatterlayer .point', MANIFOLD_POINTS)
    loc.screenshot(path=str(ART / f'10-{cls}.png'))
    if cls == 'geovq-manifold':
        assert points >= MANIFOLD_POINTS, f"the manifold drew {points} of its {MANIFOLD_POINTS} points"

JS_FIT = """(cls) => { const w = document.querySelector('.' + cls), out = w && w.closest('.jp-OutputArea-output');
  if (!out) return null;
  const r = e => e.getBoundingClientRect(), parts = [w, ...w.querySelectorAll('.main-svg, .widget-inline-hbox, .widget-toggle-buttons')];
  return {column: [r(out).left, r(out).right], right: Math.max(...parts.map(e => r(e).right)),
          figure: Math.max(...[...w.querySelectorAll('.main-svg')].map(e => r(e).width)),
          overflow: out.scrollWidth - out.clientWidth, browser: r(document.querySelector('.jp-FileBrowser')).width}; }"""
# the figure laid out in its column (plotly autosizes after the first draw): the test's conditions, in the page
JS_FITS = ("(cls) => { const f = (" + JS_FIT + ")(cls);\n"
           "  return !!f && f.right <= f.column[1] + 1 && f.overflow <= 1 && f.figure > 0.5 * (f.column[1] - f.column[0]); }")

@pytest.mark.parametrize('cls', EXPLORERS)
def test_explorer_fits_its_column(lab, cls):
    "At 1280x800 with the file browser open, no explorer (controls or figure) reaches past the output area it is shown in."
    assert lab.viewport_size == VIEWPORT and lab.locator('.jp-FileBrowser').first.is_visible(), "the file browser is not open"
    _explorer(lab, cls).locator('.main-svg').first.wait_for(timeout=DRAW_S * 1000)
    _until(lab, JS_FITS, cls, DRAW_S)    # past the limit, the assertions below say what does not fit
    fit = lab.evaluate(JS_FIT, cls)
    assert fit, f"no output area holds .{cls}"
    FITS[cls] = fit
    assert fit['right'] <= fit['column'][1] + 1, f".{cls} is wider than its column: {fit}"
    assert fit['overflow'] <= 1 and fit['figure'] > 0.5 * (fit['column'][1] - fit['column'][0]), fit   # it fills, not shrinks

FITS: dict[str, dict] = {}

def test_slider_changes_plot(lab):
    loc = _explorer(lab, 'geovq-assignments')
    before = _fig(lab, 'geovq-assignments')
    handle = loc.locator('.widget-slider', has_text='image').locator('.noUi-handle').first
    box = _box(handle)
    lab.mouse.move(box['x'] + box['width'] / 2, box['y'] + box['height'] / 2)
    lab.mouse.down(); lab.mouse.move(box['x'] + 80, box['y'] + box['height'] / 2, steps=8); lab.mouse.up()
    old = json.loads(before)
    after = json.loads(_wait_change(lab, 'geovq-assignments', before, until=lambda st: st['data'][0][0] != old['data'][0][0]))
    assert after['annotations'][0] != old['annotations'][0], "the title did not follow the image"
    loc.screenshot(path=str(ART / '20-slider-moved.png'))

def test_dropdown_changes_plot(lab):
    loc = _explorer(lab, 'geovq-manifold')
    before = _fig(lab, 'geovq-manifold')
    loc.locator('.widget-dropdown', has_text='colour by').locator('select').select_option('codeword')
    old = json.loads(before)
    after = json.loads(_wait_change(lab, 'geovq-manifold', before, until=lambda st: st['data'][0][4] != old['data'][0][4]))
    assert after['data'][0][1] == old['data'][0][1], "only the colours should change, not the positions"
    loc.screenshot(path=str(ART / '30-dropdown-changed.png'))

def test_click_point_changes_plot(lab):
    loc = _explorer(lab, 'geovq-manifold')
    raw = _fig(lab, 'geovq-manifold')
    before = json.loads(raw)
    points = loc.locator('.scatterlayer .point')
    n = _wait_count(lab, '.geovq-manifold .scatterlayer .point', MANIFOLD_POINTS)
    after = before
    for i in (n // 2, n // 3, 2 * n // 3, n - 1):     # a point of another image than the one shown
        box = _box(points.nth(i))
        lab.mouse.click(box['x'] + box['width'] / 2, box['y'] + box['height'] / 2)
        try: after = json.loads(_wait_change(lab, 'geovq-manifold', raw, UPDATE_S, until=lambda st: st['annotations'][1] != before['annotations'][1]))
        except AssertionError: continue
        if after['annotations'][1] != before['annotations'][1]: break
    assert after['annotations'][1] != before['annotations'][1], "clicking points did not change the image shown"
    assert after['shapes'] != before['shapes'] or after['data'][2][0] != before['data'][2][0]
    loc.screenshot(path=str(ART / '40-point-clicked.png'))

def test_click_bar_picks_codeword(lab):
    "A click (no hover wiring) on a usage bar selects that codeword: patches and highlighted bar change."
    loc = _explorer(lab, 'geovq-assignments')
    raw = _fig(lab, 'geovq-assignments')
    before = json.loads(raw)
    bars = loc.locator('.barlayer .point')
    bars.first.wait_for(state='attached', timeout=DRAW_S * 1000)
    box = _box(bars.nth(bars.count() // 2))
    lab.mouse.click(box['x'] + box['width'] / 2, box['y'] + box['height'] - 2)
    # updates arrive one message per trace, the title after the bars: wait for both
    changed = lambda st: st['data'][-1][4] != before['data'][-1][4] and st['annotations'][-2] != before['annotations'][-2]
    after = json.loads(_wait_change(lab, 'geovq-assignments', raw, until=changed))
    assert after['annotations'][-2] != before['annotations'][-2], "the patches' title did not follow the codeword"
    loc.screenshot(path=str(ART / '50-bar-clicked.png'))

def test_resample_button_changes_samples(lab):
    loc = _explorer(lab, 'geovq-samples')
    before = _fig(lab, 'geovq-samples')
    loc.locator('button', has_text='resample').click()
    old = json.loads(before)
    seed = int(re.search(r'seed (\d+)', old['title']).group(1))
    after = json.loads(_wait_change(lab, 'geovq-samples', before, timeout=BIG_UPDATE_S,
                                    until=lambda st: f'seed {seed + 1},' in st['title'] and st['data'][0][0] != old['data'][0][0]))
    assert f'seed {seed + 1},' in after['title']
    loc.screenshot(path=str(ART / '60-resampled.png'))

def test_path_slider_changes_paths(lab):
    loc = _explorer(lab, 'geovq-paths')
    before = _fig(lab, 'geovq-paths')
    handle = loc.locator('.widget-slider', has_text='image B').locator('.noUi-handle').first
    handle.focus()
    for _ in range(3): lab.keyboard.press('ArrowRight')      # the keyboard moves a slider too
    old = json.loads(before)
    # the rows arrive one message per trace, the titles (with the new lengths, computed after the rows) last: wait for all
    after = json.loads(_wait_change(lab, 'geovq-paths', before, timeout=BIG_UPDATE_S,
                                    until=lambda st: st['data'][1][0] != old['data'][1][0] and st['data'][0][0] != old['data'][0][0]
                                    and st['annotations'] != old['annotations']))
    assert after['annotations'] != old['annotations'], "the titles did not follow the new image B"
    loc.screenshot(path=str(ART / '70-path-slider.png'))
