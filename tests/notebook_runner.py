"""Execute one notebook with nbdev's test runner (`nbdev.test.test_nb`, the cells of settings.ini's `tst_flags` skipped) against a run
folder:

    python tests/notebook_runner.py RUN_DIR nbs/03_geometry.ipynb

A chapter opens its run through `tutorial_config`, which starts from that run's own `config.json`: against the test suite's
tiny run the chapters read the tiny run at its settings, as they read a learner's default run at the defaults."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def main(run_dir: str, notebook: str) -> int:
    from nbdev.config import get_config
    from nbdev.test import test_nb
    os.environ['GEOVQ_TUTORIAL_RUN_DIR'] = run_dir
    flags = get_config().tst_flags.split()         # as nbdev_test: the cells flagged `notest` or `slow` are skipped
    ok, seconds = test_nb(Path(notebook).resolve(), skip_flags=flags, do_print=True)
    print(f'{Path(notebook).name}: {"passed" if ok else "FAILED"} in {seconds:.1f} s', flush=True)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main(*sys.argv[1:]))
