"""Every notebook, executed top to bottom by nbdev's test runner (cells flagged `slow` or `notest` skipped), against the
session's tiny run (`tiny_run` in conftest.py), one test per notebook, in its own process (tests/notebook_runner.py).
The chapters share one copy of the run, in reading order, as a learner's would. The full-size execution of every chapter
against the canonical run, slow cells included, is `python docs/execute.py` (its record is checked in test_saved_outputs.py)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (REPO / 'nbs').glob('*.ipynb'))


@pytest.mark.parametrize('notebook', NOTEBOOKS)
def test_notebook_runs(notebook, chapters_run):
    env = {**os.environ, 'GEOVQ_PROGRESS': '0', 'MPLBACKEND': 'Agg', 'PYTHONPATH': str(REPO)}
    res = subprocess.run([sys.executable, str(REPO / 'tests' / 'notebook_runner.py'), str(chapters_run), str(REPO / 'nbs' / notebook)],
                         cwd=REPO, env=env, capture_output=True, text=True)
    print(res.stdout[-2000:]); print(res.stderr[-20000:], file=sys.stderr)
    assert res.returncode == 0 and f'{notebook}: passed' in res.stdout, f'{notebook} failed (see stderr above)'
