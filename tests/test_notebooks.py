"Every notebook, executed top to bottom by nbdev's test runner (cells flagged `slow` or `notest` are skipped)."
import os
import subprocess
import sys
from pathlib import Path


def test_all_notebooks_run(repo, tmp_path):
    env = {**os.environ, 'GEOVQ_TUTORIAL_RUN_DIR': str(tmp_path / 'digits'), 'GEOVQ_PROGRESS': '0',
           'MPLBACKEND': 'Agg', 'PYTHONPATH': str(repo)}
    runner = Path(sys.executable).parent / 'nbdev_test'
    res = subprocess.run([str(runner), '--timing', '--do_print'], cwd=repo, env=env, capture_output=True, text=True)
    print(res.stdout[-5000:]); print(res.stderr[-20000:], file=sys.stderr)
    assert res.returncode == 0, 'some notebooks failed (see stderr above)'
    assert 'Success.' in res.stdout
