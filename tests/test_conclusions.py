"""The evaluation chapter concludes from the run it reads. Executed whole (slow cells included) against two different tiny
runs, the session's (one seed: no interval, so every comparison is undecided) and a copy that `geovq run` extends to three
seeds (intervals, some decided), its numbered "What we learned" sentences are, run by run, the sentences `conclusions` makes
of the comparisons that run stored in its `metrics.json`: they change with the numbers and never contradict them."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_RUN
from geovq_tutorial.evaluate import conclusions

REPO = Path(__file__).resolve().parents[1]
CHAPTER = REPO / 'nbs' / '07_evaluate.ipynb'
MARK = 'conclusions(src_comparisons + comparisons)'      # the chapter's cell that states them


@pytest.fixture(scope='module')
def one_seed_run(tiny_run, tmp_path_factory) -> Path:
    "A copy of the tiny run (the chapter stores what it fits beyond the run, such as codebooks of z, in the folder it reads)."
    run = tmp_path_factory.mktemp('one') / 'digits'
    shutil.copytree(tiny_run, run)
    return run


@pytest.fixture(scope='module')
def three_seed_run(tiny_run, tmp_path_factory) -> Path:
    "A copy of the tiny run with seeds 1 and 2 added by `geovq run` (seed 0's stages are loaded, not made again)."
    run = tmp_path_factory.mktemp('three') / 'digits'
    shutil.copytree(tiny_run, run)
    seeds = TINY_RUN.index('--eval-seeds')
    args = [*TINY_RUN[:seeds], '--eval-seeds', '0,1,2', *TINY_RUN[seeds + 2:]]
    env = {**os.environ, 'GEOVQ_PROGRESS': '0', 'PYTHONPATH': str(REPO)}
    res = subprocess.run([str(Path(sys.executable).parent / 'geovq'), 'run', '--run-dir', str(run), *args],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return run


def chapter_conclusions(run: Path, out: Path) -> list[str]:
    "Execute chapter 07 whole against `run` into `out`; return the sentences of its numbered conclusions."
    env = {**os.environ, 'GEOVQ_TUTORIAL_RUN_DIR': str(run), 'GEOVQ_PROGRESS': '0', 'MPLBACKEND': 'Agg', 'PYTHONPATH': str(REPO)}
    res = subprocess.run([str(Path(sys.executable).parent / 'jupyter'), 'nbconvert', '--to', 'notebook', '--execute',
                          '--ExecutePreprocessor.timeout=600', '--output', str(out), str(CHAPTER)],
                         cwd=CHAPTER.parent, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-5000:]
    cell = next(c for c in json.loads(out.read_text())['cells'] if MARK in ''.join(c['source']))
    text = ''.join(''.join(o['data']['text/markdown']) for o in cell['outputs'] if 'text/markdown' in o.get('data', {}))
    return [re.sub(r'^\d+\. ', '', line) for line in text.splitlines() if line.strip()]


def test_the_conclusions_are_those_of_the_run_read(one_seed_run, three_seed_run, tmp_path):
    said = {}
    for name, run in (('one seed', one_seed_run), ('three seeds', three_seed_run)):
        stored = json.loads((run / 'metrics.json').read_text())['comparisons']
        lines = chapter_conclusions(run, tmp_path / f'{name}.ipynb')
        expected = conclusions(stored)        # every question but 'mu vs z', which the chapter measures itself
        assert [l for l in lines if not l.startswith('Euclidean codebooks fitted to mu')] == expected, (name, lines, expected)
        said[name] = expected
    assert not any(' better than ' in s or ' worse than ' in s for s in said['one seed']), said['one seed']   # no interval
    assert said['one seed'] != said['three seeds']
