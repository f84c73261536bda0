"""Are a run's numbers the same on another x86-64 CPU? (issue 29, point 3) Makes the test suite's tiny run twice: once with the
kernel libraries' defaults, once with all three capped to AVX2 (ATen's own kernels, MKL's BLAS, oneDNN's convolutions: what a
CPU without AVX-512 runs), then prints, per variant, the significant digits to which its headline numbers agree.

    PYTHONPATH=$PWD .venv/bin/python bench/isa_check.py [--record]

`--record` also writes the default run's numbers to tests/data/tiny_run_numbers.json, which tests/test_reproducible.py
compares with the suite's own tiny run. Writes bench/results/isa_check.json."""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEYS = ('mse', 'prior_nll', 'fd', 'ae_fd', 'precision', 'recall')   # seed 0's headline numbers of every variant
AVX2 = {'ATEN_CPU_CAPABILITY': 'avx2', 'MKL_CBWR': 'AVX2', 'DNNL_MAX_CPU_ISA': 'AVX2'}
RECORD = REPO / 'tests' / 'data' / 'tiny_run_numbers.json'


def run_numbers(run_dir: Path) -> dict:
    "{variant: {key: value}} of seed 0 (the run folder itself) for the measures in KEYS, from its evaluation.json."
    variants = json.loads((Path(run_dir) / 'evaluation.json').read_text())['variants']
    return {v: {k: m[k] for k in KEYS if m.get(k) is not None} for v, m in variants.items()}


def agreeing_digits(x: float, y: float) -> float:
    "Significant digits to which y agrees with x (16 when identical)."
    return 16.0 if x == y else min(16.0, -math.log10(abs(x - y) / max(abs(x), 1e-300)))


def make_tiny_run(run_dir: Path, env: dict) -> None:
    sys.path.insert(0, str(REPO / 'tests'))
    from conftest import TINY_RUN                                 # the suite's settings, so the record is the suite's run
    geovq = Path(sys.executable).parent / 'geovq'
    res = subprocess.run([str(geovq), 'run', '--run-dir', str(run_dir), *TINY_RUN], capture_output=True, text=True,
                         env={**os.environ, 'GEOVQ_PROGRESS': '0', 'OMP_NUM_THREADS': '1', **env})
    if res.returncode != 0: raise SystemExit(f"the tiny run failed:\n{res.stderr[-3000:]}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--record', action='store_true', help=f'write the default run\'s numbers to {RECORD.relative_to(REPO)}')
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp())
    numbers = {}
    for name, env in (('defaults', {}), ('AVX2', AVX2)):
        make_tiny_run(tmp / name, env)
        numbers[name] = run_numbers(tmp / name)
    a, b = numbers['defaults'], numbers['AVX2']
    digits = {v: min(agreeing_digits(a[v][k], b[v][k]) for k in a[v]) for v in a}
    for v, d in digits.items(): print(f"{v:16s} agrees to {d:4.1f} significant digits" + ('' if d < 16 else ' (identical)'))
    out = {'capped': AVX2, 'numbers': numbers, 'digits': digits}
    (REPO / 'bench' / 'results' / 'isa_check.json').write_text(json.dumps(out, indent=1) + '\n')
    if args.record:
        RECORD.write_text(json.dumps({'made_by': 'python bench/isa_check.py --record', 'numbers': a,
                                      'digits_under_avx2': digits}, indent=1) + '\n')
    return out


if __name__ == '__main__':
    main()
