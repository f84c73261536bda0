"""The saved outputs come from one run: every notebook was executed (by `docs/execute.py`) against the canonical run recorded
in `docs/executed.json`, its code has not changed since, and the headline numbers saved in the README, the landing page and
the evaluation chapter are the recorded run's. Re-executing the chapters is too slow for CI (tens of minutes); these checks
are what fails instead when the code or the run moves on without the outputs."""
import base64
import copy
import html
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from geovq_tutorial.core import BOOK_COLOURS
from geovq_tutorial.pipeline import verdict_paragraph
from helpers import load_script

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='module')
def execute(): return load_script('docs/execute.py', 'docs_execute')


@pytest.fixture(scope='module')
def record(execute): return execute.load_record()


def saved_text(nb_path: Path) -> str:
    "Every text a notebook's saved outputs show (stream text, plain text and markdown)."
    out = []
    for c in json.loads(nb_path.read_text())['cells']:
        for o in c.get('outputs', []):
            out.append(''.join(o.get('text', '')))
            for mime in ('text/plain', 'text/markdown', 'text/html'): out.append(''.join(o.get('data', {}).get(mime, '')))
    return '\n'.join(out)


def test_every_notebook_was_executed_against_the_canonical_run_with_its_current_code(execute, record):
    problems = execute.stale(record)
    assert not problems, '\n'.join(problems)
    assert set(record['runs']) == set(execute.CANONICAL_RUNS)


def test_the_check_notices_a_changed_cell_and_another_run(execute, record, tmp_path):
    for p in execute.chapters(): (tmp_path / p.name).write_text(p.read_text())
    nb = json.loads((tmp_path / '04_codebook.ipynb').read_text())
    next(c for c in nb['cells'] if c['cell_type'] == 'code')['source'].append('\nprint(1)')
    (tmp_path / '04_codebook.ipynb').write_text(json.dumps(nb))
    other = copy.deepcopy(record); other['runs']['digits']['metrics_sha256'] = '0' * 64
    assert execute.stale(record, tmp_path) == [
        "04_codebook.ipynb's code changed since its outputs were saved: run `python docs/execute.py 04_codebook`"]
    assert any(l.startswith('07_evaluate.ipynb was executed against another digits run') for l in execute.stale(other, tmp_path))


def test_a_chapter_that_reads_no_run_is_tied_to_none(execute, record, tmp_path):
    runs = {p.name: execute.run_of(p) for p in execute.chapters()}
    assert runs['00_core.ipynb'] is None and runs['04_codebook.ipynb'] == 'digits' and runs['11_natural_images.ipynb'] == 'photos'
    for p in execute.chapters(): (tmp_path / p.name).write_text(p.read_text())
    other = copy.deepcopy(record); other['runs']['digits']['metrics_sha256'] = '0' * 64
    assert [l for l in execute.stale(other, tmp_path) if l.startswith(('00_core', '10_cli'))] == []
    assert any(l.startswith('04_codebook.ipynb was executed against another digits run') for l in execute.stale(other, tmp_path))
    other['chapters']['00_core.ipynb']['run'] = 'digits'        # a record made before the chapter stopped reading the run
    assert ("00_core.ipynb was executed against digits run, but reads none now: run `python docs/execute.py 00_core`"
            in execute.stale(other, tmp_path))


def test_a_chapter_said_to_read_no_run_may_not_write_one(execute, tmp_path):
    "The static check (`reads_run`) is backed by the execution: a chapter that reaches the run some other way is refused."
    sneaky = "import os, pathlib\npathlib.Path(os.environ['GEOVQ_' + 'TUTORIAL_RUN_DIR'], 'vae.safetensors').write_text('')"
    nb = {'cells': [{'cell_type': 'code', 'execution_count': None, 'metadata': {}, 'outputs': [], 'source': [sneaky]}],
          'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}},
          'nbformat': 4, 'nbformat_minor': 5}
    path = tmp_path / 'sneaky.ipynb'; path.write_text(json.dumps(nb))
    assert execute.run_of(path) is None
    with pytest.raises(SystemExit, match=r"reads no canonical run .* but it wrote \['vae.safetensors'\]"): execute.execute(path, None)


def test_a_runs_fingerprint_ignores_its_wall_times_and_folder_but_not_its_numbers(execute, tmp_path):
    metrics = {'dataset': 'digits', 'table': [{'variant': 'vae', 'mse': {'mean': 0.0123}}],
               'per_seed': [{'seed': 0, 'run_dir': '/a', 'seconds': 41.0, 'timings': {'scoring': 3.2}, 'device': 'cpu'}]}
    def fingerprint(m, name):
        (tmp_path / name).write_text(json.dumps(m)); return execute.run_fingerprint(tmp_path / name)
    again = copy.deepcopy(metrics); again['per_seed'][0].update(run_dir='/elsewhere', seconds=57.5, timings={'scoring': 9.9})
    other = copy.deepcopy(metrics); other['table'][0]['mse']['mean'] = 0.0124
    assert fingerprint(metrics, 'a.json') == fingerprint(again, 'b.json') != fingerprint(other, 'c.json')


def test_readme_and_landing_page_show_the_runs_verdict(record):
    paragraph = verdict_paragraph(record['runs']['digits']['headline'])
    assert 'the decision rule finds: ' in paragraph and 'test MSE' in paragraph, paragraph
    readme, landing = (REPO / 'README.md').read_text(), saved_text(REPO / 'nbs' / 'index.ipynb')
    assert paragraph in readme, f'README.md does not show the run\'s verdict {paragraph!r}: run `python docs/execute.py index`'
    assert paragraph in landing, f'nbs/index.ipynb does not show {paragraph!r}: run `python docs/execute.py index`'


def test_evaluation_chapter_shows_the_runs_comparisons_and_targets(record):
    "Each headline comparison is a cell of its pair's row in the chapter's tables: the rounded interval, with ✓ where decided."
    import re
    from geovq_tutorial.evaluate import round_interval
    head, text = record['runs']['digits']['headline'], saved_text(REPO / 'nbs' / '07_evaluate.ipynb')
    assert head['comparisons'] and head['targets']
    for c in head['comparisons']:
        rows = re.findall(rf"<tr><td>{re.escape(c['b'])} − {re.escape(c['a'])}</td>(.*?)</tr>", text)
        cell = f"<td>{round_interval(c)}{' ✓' if c['lo'] is not None and not c['lo'] <= 0 <= c['hi'] else ''}</td>"
        assert any(cell in r for r in rows), f"07_evaluate's tables lack {c['b']} − {c['a']} {c['metric']}: {cell} (rows: {rows})"
    for t in head['targets']:
        if t['value'] is not None:   # a row of the targets' table, the mean to the chapter's 3 digits
            assert f"<tr><td>{html.escape(t['target'])}</td><td>{t['value']:.3g}</td>" in text, t['target']
    assert f"{len(head['seeds'])} seeds: {head['seeds']}" in text


@pytest.mark.parametrize('run, chapter', [('digits', '07_evaluate'), ('photos', '11_natural_images')])
def test_results_tables_show_the_runs_mean_mse(record, run, chapter):
    head, text = record['runs'][run]['headline'], saved_text(REPO / 'nbs' / f'{chapter}.ipynb')
    assert len(head['mse']) >= 5, head['mse']
    shown = re.findall(r'(\d+\.(\d+)) ± ', text)                 # 'mean ± spread', the mean to the spread's decimal place
    for variant, mean in head['mse'].items():
        assert any(round(mean, len(places)) == float(x) for x, places in shown), \
            f"{chapter}'s saved tables lack {variant}'s mean test MSE {mean:.6f} from the {run} run"


def test_no_saved_output_shows_a_developers_path(execute):
    import re
    home = re.compile(r'(/home/|/root/|/Users/|/work/|[A-Z]:\\\\Users\\\\)\S+')
    found = {p.name: m.group(0) for p in execute.chapters() if (m := home.search(saved_text(p)))}
    assert not found, f'saved outputs show paths of the machine that executed them: {found}'


def printed_text(nb_path: Path) -> str:
    "What a notebook's saved outputs print: stream text, and the plain text of outputs that have no richer form (no table, figure)."
    out = []
    for c in json.loads(nb_path.read_text())['cells']:
        for o in c.get('outputs', []):
            if o['output_type'] == 'stream': out.append(''.join(o['text']))
            elif set(o.get('data', {})) == {'text/plain'}: out.append(''.join(o['data']['text/plain']))
    return '\n'.join(out)


VERDICT = re.compile(r'no measurable difference|is (?:better|worse) than|\bNOT met\b|\bMET\b')


# The notebooks' weight with every output, at most 1.5 MB (issue 30). Their code and prose alone, as nbformat stores them, weigh
# about 1.05 MB; the outputs about 0.43 MB: figures at 72 dpi (nbs/matplotlibrc) with a palette of at most 64 colours
# (book_figures), and chapter 08's static plotly figures, which only the docs site draws, in files beside it (nbs/static/,
# written by show_static) instead of inside it.
BOOK_BYTES = 1_500_000


def test_the_book_is_light_and_concludes_instead_of_printing(execute):
    "The saved outputs' bounds: notebooks ≤ BOOK_BYTES together and 300 KB each, ≤ 30 KB printed, ≤ 60 verdict lines."
    sizes = {p.name: p.stat().st_size for p in execute.chapters()}
    printed = {p.name: len(printed_text(p).encode()) for p in execute.chapters()}
    verdicts = sum(len(VERDICT.findall(saved_text(p))) for p in execute.chapters())
    assert sum(sizes.values()) <= BOOK_BYTES, f'the notebooks weigh {sum(sizes.values()) / 1e3:.0f} KB: {sizes}'
    assert max(sizes.values()) <= 300_000, sizes
    assert sum(printed.values()) <= 30_000, f'saved outputs print {sum(printed.values()) / 1e3:.1f} KB: {printed}'
    assert verdicts <= 60, verdicts


def test_saved_outputs_are_what_jupyterlab_writes_back(execute):
    """No widget's text repr (it shows nothing without a kernel), no whole-number float in a JSON output (JupyterLab writes 0), no
    two consecutive prints of one stream kept apart (JupyterLab joins them), every figure a PNG as `book_figures` displays it (a
    palette of at most 64 colours, made by the kernel). Checked in JupyterLab itself: bench/jupyterlab_roundtrip.py."""
    def floats(x): return ([x] if isinstance(x, float) and x.is_integer() else
                           [f for v in (x.values() if isinstance(x, dict) else x) for f in floats(v)] if isinstance(x, (dict, list)) else [])
    for p in execute.chapters():
        cells = json.loads(p.read_text())['cells']
        outputs = [o for c in cells for o in c.get('outputs', [])]
        reprs = [t[:40] for o in outputs if (t := ''.join(o.get('data', {}).get('text/plain', ''))).startswith(('VBox(', 'HBox(', 'FigureWidget('))]
        assert not reprs, f'{p.name} saves widget reprs {reprs}: run `python docs/execute.py {p.stem}`'
        whole = [f for o in outputs for mime, v in o.get('data', {}).items() if mime.endswith('json') for f in floats(v)]
        assert not whole, f'{p.name} saves {len(whole)} whole-number floats in JSON outputs: run `python docs/execute.py {p.stem}`'
        split = [c.get('id') for c in cells for a, b in zip(c.get('outputs', []), c.get('outputs', [])[1:])
                 if a['output_type'] == b['output_type'] == 'stream' and a['name'] == b['name']]
        assert not split, f'{p.name} keeps consecutive prints apart in cells {split}: run `python docs/execute.py {p.stem}`'
        pngs = [Image.open(io.BytesIO(base64.b64decode(''.join(o['data']['image/png'])))) for o in outputs if 'image/png' in o.get('data', {})]
        full = [(im.mode, len(im.getpalette() or []) // 3) for im in pngs if im.mode != 'P' or len(im.getpalette()) // 3 > BOOK_COLOURS]
        assert not full, f'{p.name} saves PNGs without a palette of <= {BOOK_COLOURS} colours {full}: run `python docs/execute.py {p.stem}`'
        calls = any('book_figures()' in ''.join(c['source']) for c in cells if c['cell_type'] == 'code')
        assert calls or not pngs, (f'{p.name} shows figures without calling book_figures(): a Run All in JupyterLab would save them '
                                   'as matplotlib writes them (3 times the bytes), not as the book stores them')


def test_static_figures_lie_beside_their_notebooks():
    """A static figure's output holds only where `show_static` wrote its plotly JSON (nbs/static/): every such file is there and
    holds a figure, and every file there is shown by some notebook (none left behind by a renamed cell)."""
    from geovq_tutorial.explore import STATIC_FIGURE_MIME
    nbs, shown = REPO / 'nbs', set()
    for nb_path in sorted(nbs.glob('*.ipynb')):
        for c in json.loads(nb_path.read_text())['cells']:
            for o in c.get('outputs', []):
                if STATIC_FIGURE_MIME in o.get('data', {}): shown.add(o['data'][STATIC_FIGURE_MIME]['src'])
    assert shown, 'no notebook shows a static figure: chapter 08 shows four'
    for src in shown: assert json.loads((nbs / src).read_text())['data'], f'{src} holds no figure'
    assert {p.relative_to(nbs).as_posix() for p in (nbs / 'static').glob('*.json')} == shown
