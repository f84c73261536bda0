"""report.html (issue 14, point 5) from a synthetic result, without training anything: the verdict first, bar charts with
intervals, sample and reconstruction grids under a row of real images at a size one can see, the definitions behind a fold,
and nothing that needs a script or another file."""
import base64
import io
import re

import torch
from PIL import Image

from geovq_tutorial.codebook import METRICS
from geovq_tutorial.evaluate import compare_variants, results_table
from geovq_tutorial.pipeline import report_html, verdict_lines, verdict_paragraph

VARIANTS = ['vae', 'vae+ft', 'kmeans', 'kmeans+ft', 'geodesic', 'geodesic+ft', 'vqvae']


def metrics(n_seeds: int = 3) -> dict:
    "A metrics.json-shaped result: geodesic equals kmeans up to noise, the fine-tune lowers the MSE by 0.001 in every seed."
    g = torch.Generator().manual_seed(0)
    per_seed = []
    for s in range(n_seeds):
        base = 0.006 + 0.0005 * torch.randn(1, generator=g).item()
        v = {name: {'mse': base - (0.001 if name.endswith('+ft') else 0) + 1e-4 * torch.randn(1, generator=g).item(),
                    'fd': 50 + 5 * torch.randn(1, generator=g).item(), 'ae_fd': 2 + torch.rand(1, generator=g).item()}
             for name in VARIANTS}
        per_seed.append({'seed': s, 'variants': v})
    rows = results_table(per_seed)
    return {'dataset': 'digits', 'K': 8, 'seeds': list(range(n_seeds)), 'n_test': 180, 'table': rows, 'targets': [],
            'comparisons': compare_variants(rows, ['kmeans', 'geodesic']), 'space_disagreements': [], 'metric_keys': dict(METRICS)}


def images(n: int = 16) -> dict:
    return {k: torch.rand(n, 1, 8, 8) for k in ['real', *VARIANTS]}


def pngs(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(b))) for b in re.findall(r'data:image/png;base64,([A-Za-z0-9+/=]+)', page)]


def test_report_leads_with_the_verdict_and_shows_figures(tmp_path):
    m = metrics()
    samples = {k: v for k, v in images().items() if k != 'real'} | {'kmeans/unigram': torch.rand(16, 1, 8, 8)}
    page = report_html(m, tmp_path, samples, images())
    heads = ['<h2>Verdict</h2>', '<h2>The main measures</h2>', '<h2>Samples', '<h2>Reconstructions</h2>', '<h2>All numbers</h2>',
             '<details><summary>Definitions']
    at = [page.index(h) for h in heads]
    assert at == sorted(at), 'verdict, bars, samples, reconstructions, numbers, then the definitions (folded)'
    verdict = page[at[0]:at[1]]
    assert 'kmeans + decoder fine-tune is better than post-hoc kmeans (mse)' in verdict
    assert 'post-hoc geodesic vs post-hoc kmeans — MSE vs x' in verdict and 'no measurable difference at this n (n = 3 seeds)' in verdict
    assert all(f'<code>{k}</code>' in page[page.index('<summary>Definitions'):] for k in METRICS)
    assert '<details><summary>Pair by pair' in verdict, 'the pair-by-pair lines follow the verdict, folded'
    assert '<script' not in page and 'plotly' not in page.lower() and 'src="http' not in page
    bars, grid, recon = pngs(page)
    assert bars.width >= 700 and grid.width >= 700 and recon.width >= 700, (bars.size, grid.size, recon.size)
    # 7 variant rows (the unigram samples left out) under one row of real images, each image at least 40 px high
    assert grid.height >= 8 * 40 and recon.height >= 8 * 40, (grid.size, recon.size)


def test_report_without_reconstructions_says_so(tmp_path):
    page = report_html(metrics(), tmp_path, {k: v for k, v in images().items() if k != 'real'}, None)
    assert 'Not shown: the models of the run could not be loaded.' in page and len(pngs(page)) == 2


def test_verdict_with_one_seed_has_no_interval():
    lines = verdict_lines(metrics(n_seeds=1))
    assert lines[0].startswith('digits, K = 8, n = 1 seed(s)')
    assert all('no interval with n = 1 seed(s)' in l for l in lines if l.startswith('- '))
    assert any(l.endswith('0 of 2 differences decided') for l in lines), lines


def test_run_closes_with_the_verdict_first(tmp_path):
    from geovq_tutorial.cli import _report_lines
    m, report = metrics(), tmp_path / 'report.html'
    lines = _report_lines(None, m, report)
    assert lines[:2] == ['Verdict:', verdict_paragraph(m, 'this report')]
    assert not any(l in lines for l in verdict_lines(m)[1:]), 'with a report, the pair-by-pair lines are in it, not printed'
    assert set(verdict_lines(m)[1:]) <= set(_report_lines(None, m, None)), 'without a report they are printed'
