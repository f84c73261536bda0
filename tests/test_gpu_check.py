"""bench/gpu_check.sh, on the CPU at the tiny run's settings: every step runs, is timed, and the times are written. Its digits
step finds the session's tiny run already complete in its work folder (a copy), so it checks the step, not the training."""
import json
import os
import shutil
import subprocess
import sys

from conftest import REPO, TINY_RUN

# the photos run at the smallest shapes too (its chapter's checks are not run here): 31 s instead of 66
PHOTOS = '--photo-patches 40 --hidden 8 --latent-dim 4 --codebook-k 8 --prior-dim 16 --n-samples 16 --geodesic-subsample 300'
ENV = {**os.environ, 'PYTHON': sys.executable, 'GEOVQ_PROGRESS': '0'}      # the script runs this interpreter's geovq


def test_gpu_check_runs_every_step_and_writes_the_times(tiny_run, tmp_path):
    shutil.copytree(tiny_run, tmp_path / 'work' / 'digits')
    options = ' '.join(o for o in TINY_RUN if o != '--no-progress')
    res = subprocess.run([str(REPO / 'bench' / 'gpu_check.sh'), '--device', 'cpu', '--run-options', options,
                          '--photos-options', f'{options} {PHOTOS}', '--sizes', '2000', '--metric-grids', '2',
                          '--work', str(tmp_path / 'work'),
                          '--out', str(tmp_path / 'times.json')], capture_output=True, text=True, cwd=REPO, env=ENV)
    assert res.returncode == 0, res.stdout + res.stderr
    for line in ('digits run (every stage)', 'photos run', 'codebook bench (2000 vectors)', 'in all'):
        assert line in res.stdout, res.stdout
    print(res.stdout)
    times = json.loads((tmp_path / 'times.json').read_text())
    assert times['device'] == 'cpu' and set(times['seconds']) == {'digits run', 'photos run', 'codebook bench'}
    assert all(s['device'] == 'cpu' for s in times['stages']['digits'] + times['stages']['photos'])


def test_gpu_check_stops_at_the_first_failing_step_with_its_log(tmp_path):
    res = subprocess.run([str(REPO / 'bench' / 'gpu_check.sh'), '--device', 'cpu', '--run-options', '--epochs 0',
                          '--work', str(tmp_path)], capture_output=True, text=True, cwd=REPO, env=ENV)
    assert res.returncode == 1 and 'gpu check: digits run (every stage) failed (exit 2)' in res.stderr, res.stderr
    assert 'epochs' in res.stderr                  # the log's end says what was wrong
