"""Execute one notebook with nbdev's test runner (`nbdev.test.test_nb`, the cells of settings.ini's `tst_flags` skipped) against a run
folder, the tutorial's configuration taken from that run's own `config.json`:

    python tests/notebook_runner.py RUN_DIR nbs/03_geometry.ipynb

A chapter opens its run through `tutorial_config`, which today starts from the package defaults; against a run made with other
settings (the test suite's tiny run) it would train everything again at the default size. Until `tutorial_config` reads the
run's settings itself (issue 27's run object), this runner makes it do so: the library's `tutorial_config`, and the one chapter
02 defines in its own cells, start from the run's settings (the fields of the section asked for), then apply the chapter's
own changes. Nothing else about the chapter changes."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path


def following(settings: dict, full):
    "`full` (a `tutorial_config`), starting from `settings` (a run's config.json) for the fields of the section asked for."
    def tutorial_config(cls=None, **changes):
        cls = cls or full.__defaults__[0]
        names = {f.name for f in dataclasses.fields(cls)} - {'run_dir'}
        return full(cls, **{**{k: v for k, v in settings.items() if k in names}, **changes})
    tutorial_config.follows_run = True
    return tutorial_config


def follow_run(run_dir: Path):
    "Make every `tutorial_config` of this process, the library's and any a notebook defines, start from `run_dir`'s settings."
    import geovq_tutorial.vae as vae
    from execnb.shell import CaptureShell
    settings = json.loads((run_dir / 'config.json').read_text())
    vae.tutorial_config = following(settings, vae.tutorial_config)
    run_all = CaptureShell.run_all
    def run_all_following(self, nb, *args, **kwargs):
        def after(cell):                       # a notebook that defines tutorial_config (chapter 02) gets it wrapped too
            f = self.user_ns.get('tutorial_config')
            if callable(f) and not getattr(f, 'follows_run', False): self.user_ns['tutorial_config'] = following(settings, f)
        return run_all(self, nb, *args, postproc=after, **kwargs)
    CaptureShell.run_all = run_all_following


def main(run_dir: str, notebook: str) -> int:
    from nbdev.config import get_config
    from nbdev.test import test_nb
    os.environ['GEOVQ_TUTORIAL_RUN_DIR'] = run_dir
    follow_run(Path(run_dir))
    flags = get_config().tst_flags.split()         # as nbdev_test: the cells flagged `notest` or `slow` are skipped
    ok, seconds = test_nb(Path(notebook).resolve(), skip_flags=flags, do_print=True)
    print(f'{Path(notebook).name}: {"passed" if ok else "FAILED"} in {seconds:.1f} s', flush=True)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main(*sys.argv[1:]))
