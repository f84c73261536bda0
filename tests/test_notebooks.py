"""Every notebook, executed top to bottom by nbdev's test runner (cells flagged `slow` or `notest` skipped), against the
session's tiny run (`tiny_run` in conftest.py), one test per notebook, in its own process (tests/notebook_runner.py).
The chapters share one copy of the run, in reading order, as a learner's would. The full-size execution of every chapter
against the canonical run, slow cells included, is `python docs/execute.py` (its record is checked in test_saved_outputs.py)."""
import json
import os
import subprocess
from fnmatch import fnmatch
import sys
from pathlib import Path

import pytest

from helpers import load_script

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (REPO / 'nbs').glob('*.ipynb'))


@pytest.fixture(scope='session')
def work_logs(tmp_path_factory) -> Path:
    "The folder of the notebooks' work logs (tests/notebook_runner.py: every fit and metric computation, with its cell)."
    return tmp_path_factory.mktemp('work')


@pytest.mark.parametrize('notebook', NOTEBOOKS)
def test_notebook_runs(notebook, chapters_run, work_logs):
    env = {**os.environ, 'GEOVQ_PROGRESS': '0', 'MPLBACKEND': 'Agg', 'PYTHONPATH': str(REPO)}
    res = subprocess.run([sys.executable, str(REPO / 'tests' / 'notebook_runner.py'), str(chapters_run), str(REPO / 'nbs' / notebook),
                          str(work_logs / f'{notebook}.json')], cwd=REPO, env=env, capture_output=True, text=True)
    print(res.stdout[-2000:]); print(res.stderr[-20000:], file=sys.stderr)
    assert res.returncode == 0 and f'{notebook}: passed' in res.stdout, f'{notebook} failed (see stderr above)'


BEYOND_THE_RUN = ('finetune/*_encoder_decoder.*', 'prior/*_encoder_ft_*',   # chapter 06: the encoder fine-tune, one codebook
                  'projection/*')                                          # chapter 08: the explorers' PCA and UMAP of the means


def _digests(folder: Path) -> dict[str, str]:
    import hashlib
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*')) if p.is_file()}


def test_chapters_rewrite_nothing_the_run_holds(tiny_run, chapters_run):
    """After every chapter has read the run (the tests above, in reading order), each artifact the run made is byte-identical:
    the chapters loaded the run's stages and made none of them again. What they store beyond the run is only BEYOND_THE_RUN."""
    before, after = _digests(tiny_run), _digests(chapters_run)
    changed = sorted(k for k, v in before.items() if after.get(k) != v and not k.endswith('.lock'))
    assert not changed, f"the chapters rewrote or removed these artifacts of the run they read: {changed[:10]}"
    added = sorted(k for k in after if k not in before and not k.endswith('.lock'))
    other = [k for k in added if not any(fnmatch(k, pattern) for pattern in BEYOND_THE_RUN)]
    assert not other, f"the chapters' tested cells stored these in the run they read, which `geovq run` does not make: {other[:10]}"


def _run_readers() -> set[str]:
    "The notebooks whose code reads a run (`reads_run` of docs/execute.py)."
    execute = load_script('docs/execute.py', 'docs_execute')
    return {nb for nb in NOTEBOOKS if execute.reads_run(json.loads((REPO / 'nbs' / nb).read_text()))}


def test_chapters_fit_and_measure_nothing_the_run_holds(chapters_run, work_logs):
    """Against a complete run, a chapter that reads it fits nothing and measures no metric on the run (`count_work` in
    tests/notebook_runner.py: a Trainer fit that checkpoints into the run folder or trains one of its VAEs, a codebook fitted
    or a decoder metric measured through one of its VAEs), except in a cell that starts its account with `# beyond the run:`
    (what it adds, at what size). Toy models in toy folders are not the run's. The logs are written while the notebook tests
    above run; the counters are checked to have fired."""
    from notebook_runner import BEYOND_THE_RUN_MARK
    readers = _run_readers()
    events = {nb: json.loads((work_logs / f'{nb}.json').read_text()) for nb in NOTEBOOKS if (work_logs / f'{nb}.json').exists()}
    assert set(events) == set(NOTEBOOKS), f"no work log for {sorted(set(NOTEBOOKS) - set(events))}: did their notebook tests run?"
    unmarked = [f"{nb} cell {e['cell']} ({e['source'].strip().splitlines()[0][:60]!r}): {e['kind']} of {e['what']}, n = {e['n']}"
                for nb, log in events.items() if nb in readers for e in log if BEYOND_THE_RUN_MARK not in e['source']]
    assert not unmarked, "work a complete run already holds, or undeclared work beyond it:\n" + '\n'.join(unmarked[:20])
    kinds = {e['kind'] for nb, log in events.items() if nb in readers for e in log}
    assert {'fit', 'codebook fit', 'metric'} <= kinds, f"the counters recorded only {kinds} in the marked cells: do they still wrap the library?"
