"""Execute one notebook with nbdev's test runner (`nbdev.test.test_nb`, the cells of settings.ini's `tst_flags` skipped) against a run
folder:

    python tests/notebook_runner.py RUN_DIR nbs/03_geometry.ipynb [WORK_LOG.json]

A chapter opens its run through `tutorial_config`, which starts from that run's own `config.json`: against the test suite's
tiny run the chapters read the tiny run at its settings, as they read a learner's default run at the defaults.

With a third argument the runner also writes down the work the notebook did on the run (`count_work`): every model fit
(the one `Trainer`, every codebook fit) and every decoder metric computation that involves the run's folder or its VAEs,
with the cell it ran in. `tests/test_notebooks.py` reads
those logs: a chapter that reads a complete run may fit and measure only in cells that say what they add beyond it."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

BEYOND_THE_RUN_MARK = '# beyond the run:'     # the line a cell starts its account of what it fits or measures beyond the run with


def _counting(fn, record, kind: str, what):
    "fn, recording (kind, *what(*args, **kwargs)) before each call where `what` gives (name, size), not None; wrapped once."
    if getattr(fn, '_counted', False): return fn
    def counted(*args, **kwargs):
        if (w := what(*args, **kwargs)) is not None: record(kind, *w)
        return fn(*args, **kwargs)
    counted._counted, counted.__wrapped__ = True, fn
    return counted


def run_decoder_weights(run_dir) -> list:
    "The first decoder weight of every VAE the run folder holds (`vae.safetensors`, every seed): how the run's decoders are recognised."
    from safetensors.torch import load_file
    return [load_file(p)['decoder.0.weight'] for p in Path(run_dir).rglob('vae.safetensors')]


def count_work(log: list, run_dir: str):
    """Wrap the library's fits and metric computations so that each one that works on the run appends an event to `log`, and
    return `watch(ns)`, which wraps the same names where a notebook defines its own copies (the chapter that exports them runs
    its cells, not the library's). Work on the run: a Trainer fit that checkpoints into the run folder or trains one of the
    run's VAEs; a codebook fitted, or a decoder metric measured, through one of the run's VAE decoders. Toy models and toy
    folders are not the run's. Call before anything imports the library's later modules: they bind these functions at import."""
    import torch
    import geovq_tutorial.geometry as geometry
    from geovq_tutorial.core import Trainer
    from execnb.shell import CaptureShell
    weights, root = run_decoder_weights(run_dir), Path(run_dir).resolve()
    def runs(dec) -> bool:
        w = dec.state_dict().get('0.weight') if isinstance(dec, torch.nn.Module) else None
        return w is not None and any(w.shape == r.shape and torch.equal(w.detach().cpu(), r) for r in weights)
    def decoder_of(f):
        if hasattr(f, 'dec'): return f.dec
        return next((c.cell_contents.dec for c in (getattr(f, '__closure__', None) or ()) if hasattr(c.cell_contents, 'dec')), None)
    in_run = lambda path: path is not None and root in Path(path).resolve().parents
    current = {'id': None, 'source': ''}
    record = lambda kind, what, n: log.append({'cell': current['id'], 'source': current['source'], 'kind': kind, 'what': what, 'n': n})
    fit_of = lambda cls: _counting(cls.fit, record, 'fit', lambda self, *train, **k: (type(self.model).__name__, len(train[0]) if train else 0)
                                   if in_run(self.checkpoint) or runs(getattr(self.model, 'decoder', None)) else None)
    codebook_fit = lambda fn: _counting(fn, record, 'codebook fit', lambda vae, x, method, *a, **k: (method, len(x) if x is not None else 0)
                                        if runs(vae.decoder) else None)
    decoder_metric = lambda fn: _counting(fn, record, 'metric', lambda f, z, *a, **k: (type(f).__name__, len(z)) if runs(decoder_of(f)) else None)
    grid_metric = lambda fn: _counting(fn, record, 'metric', lambda vae, grids, *a, **k: ('own grid', 16 * len(grids)) if runs(vae.decoder) else None)
    geometry.pullback_metric, geometry.metric_tensors = decoder_metric(geometry.pullback_metric), grid_metric(geometry.metric_tensors)
    Trainer.fit = fit_of(Trainer)
    import geovq_tutorial.codebook as codebook
    codebook.fit_codebook = codebook_fit(codebook.fit_codebook)

    def watch(ns: dict) -> None:
        "Wrap the notebook's own definitions of the counted functions and methods (after every cell: a cell may redefine one)."
        for name, wrap in (('pullback_metric', decoder_metric), ('metric_tensors', grid_metric), ('fit_codebook', codebook_fit)):
            if callable(ns.get(name)): ns[name] = wrap(ns[name])
        if isinstance(ns.get('Trainer'), type) and hasattr(ns['Trainer'], 'fit'): ns['Trainer'].fit = fit_of(ns['Trainer'])

    run_cell = CaptureShell.cell
    def cell(self, c, *args, **kwargs):
        current.update(id=c.get('id'), source=c.source)
        try: return run_cell(self, c, *args, **kwargs)
        finally: watch(self.user_ns)
    CaptureShell.cell = cell
    return watch


def main(run_dir: str, notebook: str, work_log: str | None = None) -> int:
    os.environ['GEOVQ_TUTORIAL_RUN_DIR'] = run_dir
    log = []
    if work_log: count_work(log, run_dir)
    from nbdev.config import get_config
    from nbdev.test import test_nb
    flags = get_config().tst_flags.split()         # as nbdev_test: the cells flagged `notest` or `slow` are skipped
    ok, seconds = test_nb(Path(notebook).resolve(), skip_flags=flags, do_print=True)
    if work_log: Path(work_log).write_text(json.dumps(log))
    print(f'{Path(notebook).name}: {"passed" if ok else "FAILED"} in {seconds:.1f} s', flush=True)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main(*sys.argv[1:]))
