"""Python tests of the explorers' callbacks: each change of a control changes the figure's data as it should.

Fast: a small untrained VAE, two small codebooks of different methods, PCA projections. One test fits a small UMAP."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from plotly.callbacks import Points

from geovq_tutorial.codebook import fit_codebook
from geovq_tutorial.core import STAGES, StageError, setup_run
from geovq_tutorial.data import ImageSplits
from geovq_tutorial.explore import (MAX_WIDTH, CodebookAssignmentExplorer, GraphGeodesicPath, LatentManifoldExplorer, PathExplorer,
                                    Projection, SampleExplorer, SampleSource, cell_patches, explorer_interactions,
                                    fit_projection, load_or_fit_projection, load_sample_sources, montage, prepare_inputs,
                                    path_length, straight_path, time_interactions)
from geovq_tutorial.finetune import FinetuneConfig
from geovq_tutorial.geometry import LatentGraph, metric_tensors
from geovq_tutorial.vae import SpatialVAE
from helpers import load_script

ROOT = Path(__file__).resolve().parents[1]


def same_image(a, b, eps=1e-5):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert (np.isnan(a) == np.isnan(b)).all()
    assert np.allclose(np.nan_to_num(a), np.nan_to_num(b), atol=eps)


@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    vae = SpatialVAE((1, 8, 8), latent_dim=3, hidden=8).eval()
    x, y = torch.rand(10, 1, 8, 8), torch.arange(10) % 5
    books = {'kmeans': fit_codebook(vae, x, 'kmeans', K=6), 'kmedoids': fit_codebook(vae, x, 'kmedoids', K=4)}
    inputs = prepare_inputs(vae, x, y, books, [f'c{i}' for i in range(5)])
    pca = fit_projection(inputs.vectors, 'pca')
    flipped = Projection('umap', pca.vectors, -pca.coords, pca.mean, pca.components)   # a second, different map
    return vae, x, y, books, inputs, {'pca': pca, 'other': flipped}


# ---- projections
def test_pca_places_codewords_exactly(tiny):
    *_, inputs, proj = tiny
    cw = inputs.codebooks['kmeans'].codewords
    assert torch.allclose(proj['pca'].place(cw), (cw - proj['pca'].mean) @ proj['pca'].components.T, atol=1e-6)
    assert torch.allclose(proj['pca'].place(inputs.vectors), proj['pca'].coords, atol=1e-5)


def test_knn_placement_lands_medoids_on_their_points(tiny):
    *_, inputs, proj = tiny
    medoids = inputs.codebooks['kmedoids'].codewords        # medoids are fitted vectors of the *training* set;
    idx = torch.tensor([3, 17, 50])                          # here we use vectors of the projection itself
    assert torch.allclose(proj['other'].place(inputs.vectors[idx]), proj['other'].coords[idx])
    assert proj['other'].place(medoids).shape == (4, 2)


def test_umap_small_fit_and_cache(tmp_path, tiny):
    vae, *_, inputs, _ = tiny
    v, cfg = inputs.vectors[:120], FinetuneConfig(run_dir=str(tmp_path))
    p = load_or_fit_projection(cfg, vae, v, 'umap')
    assert p.coords.shape == (120, 2) and torch.isfinite(p.coords).all()
    assert torch.allclose(p.place(v[:5]), p.coords[:5])
    path = STAGES['projection'].path(cfg, method='umap')
    stamp = path.stat().st_mtime_ns
    q = load_or_fit_projection(cfg, vae, v, 'umap')      # loaded, not refitted
    assert path.stat().st_mtime_ns == stamp and torch.equal(p.coords, q.coords)


def test_projection_stage_refuses_other_vectors_seed_or_vae(tmp_path, tiny):
    vae, *_, inputs, _ = tiny
    cfg = FinetuneConfig(run_dir=str(tmp_path))
    a = load_or_fit_projection(cfg, vae, inputs.vectors, 'pca')
    with pytest.raises(StageError, match='vectors.*--force projection'): load_or_fit_projection(cfg, vae, inputs.vectors * 3, 'pca')
    with pytest.raises(StageError, match='seed'): load_or_fit_projection(cfg.replace(seed=1), vae, inputs.vectors, 'pca')
    other = SpatialVAE((1, 8, 8), latent_dim=3, hidden=8)
    with pytest.raises(StageError, match='made from another vae'): load_or_fit_projection(cfg, other, inputs.vectors, 'pca')
    b = load_or_fit_projection(cfg, vae, inputs.vectors * 3, 'pca', force=True)
    assert torch.allclose(b.coords.abs(), 3 * a.coords.abs(), atol=1e-4)
    assert torch.equal(load_or_fit_projection(cfg, vae, inputs.vectors * 3, 'pca').coords, b.coords)
    with pytest.raises(ValueError, match="'pca', 'umap'"): fit_projection(inputs.vectors, 'tsne')


# ---- explorer 1
def test_manifold_colour_codebook_projection(tiny):
    *_, inputs, proj = tiny
    m = LatentManifoldExplorer(inputs, proj, codebook='kmeans', color_by='class', projection='pca')
    assert np.array_equal(m.figure.data[0].marker.color, inputs.labels.repeat_interleave(16).numpy())
    m.color_by.value = 'codeword'
    assert np.array_equal(m.figure.data[0].marker.color, inputs.tokens['kmeans'].flatten().numpy())
    m.codebook.value = 'kmedoids'
    assert np.array_equal(m.figure.data[0].marker.color, inputs.tokens['kmedoids'].flatten().numpy())
    assert len(m.figure.data[1].x) == 4
    assert np.allclose(m.figure.data[1].x, proj['pca'].place(inputs.codebooks['kmedoids'].codewords)[:, 0].numpy(), atol=1e-5)
    x_pca = np.array(m.figure.data[0].x)
    m.projection.value = 'other'
    assert np.allclose(m.figure.data[0].x, -x_pca) and 'OTHER' in m.figure.layout.annotations[0].text
    m.color_by.value = 'cell'
    assert np.array_equal(m.figure.data[0].marker.color, np.tile(np.arange(16), 10))


def test_manifold_click_and_hover_show_the_image(tiny):
    vae, x, *_, inputs, proj = tiny
    m = LatentManifoldExplorer(inputs, proj)
    v = 16 * 6 + 4 * 2 + 3                                    # image 6, cell (2, 3)
    m.figure.data[0]._dispatch_on_click(Points(point_inds=[v], trace_index=0), None)   # what a browser click triggers
    same_image(m.figure.data[2].z, x[6, 0].numpy())
    s = m.figure.layout.shapes[0]
    assert (s.x0, s.x1, s.y0, s.y1) == (5.5, 7.5, 3.5, 5.5)
    assert 'image 6' in m.figure.layout.annotations[1].text and 'cell (2, 3)' in m.figure.layout.annotations[1].text
    m.figure.data[0]._dispatch_on_hover(Points(point_inds=[16 * 2], trace_index=0), None)
    same_image(m.figure.data[2].z, x[2, 0].numpy())
    with pytest.raises(IndexError, match='out of range'): m.select(10 * 16)


# ---- explorer 2
def test_assignments_image_slider_and_codebook(tiny):
    vae, x, *_, inputs, proj = tiny
    a = CodebookAssignmentExplorer(inputs, codebook='kmeans')
    a.image.value = 4
    same_image(a.figure.data[0].z, x[4, 0].numpy())
    for j, n in enumerate(inputs.recon):                      # continuous, kmeans, kmedoids reconstructions
        same_image(a.figure.data[1 + j].z, inputs.recon[n][4, 0].numpy())
    assert list(a.figure.data[4].text) == [str(int(t)) for t in inputs.tokens['kmeans'][4].flatten()]
    a.codebook.value = 'kmedoids'
    assert a.codeword.max == 3 and len(a.figure.data[-1].y) == 4
    assert list(a.figure.data[4].text) == [str(int(t)) for t in inputs.tokens['kmedoids'][4].flatten()]
    assert np.array_equal(a.figure.data[-1].y, torch.bincount(inputs.tokens['kmedoids'].flatten(), minlength=4).numpy())


def test_assignments_codeword_slider_and_bar_click(tiny):
    vae, x, *_, inputs, proj = tiny
    a = CodebookAssignmentExplorer(inputs, codebook='kmeans', n_patches=5, patches_per_row=5)
    patches = cell_patches(inputs.images)
    for k in range(6):
        a.codeword.value = k
        idx = a.assigned('kmeans', k)
        assert (inputs.tokens['kmeans'].flatten()[idx] == k).all()
        d = (inputs.vectors[idx] - inputs.codebooks['kmeans'].codewords[k]).norm(dim=1)
        assert (d[1:] >= d[:-1] - 1e-6).all()                 # closest first
        if len(idx): same_image(a.figure.data[5].z, montage(patches[idx[:5]], 5)[0].numpy())
        assert list(a.figure.data[-1].marker.color).index('crimson') == k
    a.figure.data[-1]._dispatch_on_click(Points(point_inds=[2], trace_index=len(a.figure.data) - 1), None)
    assert a.codeword.value == 2 and 'codeword 2' in a.figure.layout.annotations[-2].text
    with pytest.raises(ValueError, match=r'\[0, 6\)'): CodebookAssignmentExplorer(inputs, codebook='kmeans', codeword=6)


# ---- explorer 3
def _sources(vae, books):
    def sampler(K):   # deterministic in (temperature, top_k, seed): easy to predict
        def sample(n, temperature, top_k, generator):
            base = torch.randint(0, top_k or K, (n, 16), generator=generator)
            return (base + int(temperature * 10)) % (top_k or K)
        return sample
    return {n: SampleSource(cb, sampler(cb.K), {'before fine-tune': vae.decode, 'after fine-tune': lambda z: 1 - vae.decode(z)})
            for n, cb in books.items()}


def test_samples_controls(tiny):
    vae, x, y, books, inputs, _ = tiny
    s = SampleExplorer(_sources(vae, books), n=4, per_row=2, codebook='kmeans')
    def expect(): return montage(s.sources[s.codebook.value].decoders[s.decoder.value](
        s.sources[s.codebook.value].codebook.decode_grid(s.tokens())).detach(), 2)[0].numpy()
    same_image(s.figure.data[0].z, expect())
    t0 = s.tokens().clone()
    s.temperature.value = 1.5                                 # the sampler shifts ids by int(10 T)
    assert torch.equal(s.tokens(), (t0 + 5) % 6); same_image(s.figure.data[0].z, expect())
    s.top_k.value = 1
    assert (s.tokens() == 0).all(); same_image(s.figure.data[0].z, expect())
    z = np.array(s.figure.data[0].z, dtype=float)
    s.decoder.value = 'after fine-tune'
    same_image(s.figure.data[0].z, 1 - z)
    s.top_k.value = 0
    before = s.tokens().clone()
    s.resample.click()
    assert s.seed.value == 1 and not torch.equal(s.tokens(), before); same_image(s.figure.data[0].z, expect())
    s.codebook.value = 'kmedoids'
    assert s.top_k.max == 4 and int(s.tokens().max()) < 4 and 'kmedoids prior' in s.figure.layout.title.text
    same_image(s.figure.data[0].z, expect())


def test_path_explorer_straight_and_geodesic(tiny):
    vae, x, *_, inputs, _ = tiny
    graph = LatentGraph(inputs.vectors, metric_tensors(vae, inputs.mu), k=4)
    p = PathExplorer(inputs, vae.decode, {'geodesic': GraphGeodesicPath(graph)}, steps=5, a=1, b=2)
    for b in (3, 7):
        p.b.value = b
        with torch.no_grad():
            same_image(p.figure.data[0].z, montage(vae.decode(straight_path(inputs.mu[1], inputs.mu[b], 5)), 5)[0].numpy())
            geo = GraphGeodesicPath(graph)(inputs.mu[1], inputs.mu[b], 5)
            same_image(p.figure.data[1].z, montage(vae.decode(geo), 5)[0].numpy())
        assert torch.allclose(geo[0], inputs.mu[1]) and torch.allclose(geo[-1], inputs.mu[b])
        assert f'image {b}' in p.figure.layout.annotations[1].text


def test_paths_switch_metric_measure_lengths_and_pick_by_class(tiny):
    "The metric dropdown switches the per-metric row and the lengths; images are picked by class; the difference row follows."
    vae, x, y, books, inputs, _ = tiny
    maps = {'plain': lambda z: z, 'double': lambda z: 2 * z}
    p = PathExplorer(inputs, vae.decode, {'geodesic': {'plain': straight_path, 'double': lambda a, b, n: straight_path(b, a, n)}},
                     steps=4, a=0, b=1, metrics=maps)
    L = path_length(maps['plain'], straight_path(inputs.mu[0], inputs.mu[1], 4))
    assert abs(p.length('straight') - L) < 1e-4 and f'length {L:.3f}' in p.figure.layout.annotations[0].text
    assert np.nanmax(np.asarray(p.figure.data[2].z, dtype=float)) == 0          # identical paths: no difference
    p.metric.value = 'double'
    assert abs(p.length('geodesic') - 2 * L) < 1e-4 and '(double metric)' in p.figure.layout.annotations[1].text
    assert np.nanmax(np.asarray(p.figure.data[2].z, dtype=float)) == pytest.approx(1)   # reversed: the largest gap is black
    p.b.cls.value = 3                                          # class 3: its first image, 3 (labels are i % 5)
    assert p.b.value == 3 and 'image 3' in p.figure.layout.annotations[0].text
    p.b.nth.value = 1                                          # its second image, 8
    assert p.b.value == 8
    with torch.no_grad():
        same_image(p.figure.data[0].z, montage(vae.decode(straight_path(inputs.mu[0], inputs.mu[8], 4)), 4)[0].numpy())


def test_explorers_fit_their_column_and_explain_their_clicks(tiny):
    "No fixed width (the figure follows its container), controls that wrap, a hint of what is clickable, labelled axes."
    vae, x, y, books, inputs, proj = tiny
    ex = [LatentManifoldExplorer(inputs, proj), CodebookAssignmentExplorer(inputs), SampleExplorer(_sources(vae, books)),
          PathExplorer(inputs, vae.decode)]
    for e in ex:
        assert e.figure.layout.width is None and e.figure.layout.autosize, type(e).__name__
        assert e.static().layout.width is None
        assert e.widget.children[0].layout.flex_flow == 'row wrap' and e.widget.layout.max_width == f'{MAX_WIDTH}px'
    assert 'click' in ex[0].widget.children[1].value.lower() and 'click' in ex[1].widget.children[1].value.lower()
    assert 'PCA component 1' in ex[0].figure.layout.xaxis.title.text or 'OTHER 1' in ex[0].figure.layout.xaxis.title.text
    assert 'codeword' in ex[0].figure.data[0].hovertemplate and 'class' in ex[0].figure.data[0].hovertemplate
    assert ex[1].figure.data[4].mode == 'markers+text' and ex[1].figure.data[4].marker.symbol == 'square'   # tokens on white


def test_sample_sources_from_a_run_folder(tmp_path, tiny):
    "Priors and fine-tuned decoders are trained once into the run folder, then loaded; the sources sample and decode."
    vae, x, y, books, inputs, _ = tiny
    g = torch.Generator().manual_seed(1)
    data = ImageSplits('tiny', torch.rand(40, 1, 8, 8, generator=g), x[:6], x[6:], torch.arange(40) % 5, y[:6], y[6:],
                       [str(i) for i in range(5)])
    cfg = FinetuneConfig(run_dir=str(tmp_path), prior_epochs=1, finetune_epochs=1, prior_dim=16, prior_heads=2, prior_layers=1,
                    threads=1, progress=False, device='cpu')
    src = load_sample_sources(cfg, vae, books, data, device=setup_run(cfg))
    assert set(src) == {'kmeans', 'kmedoids'} and set(src['kmeans'].decoders) == {'before fine-tune', 'after fine-tune'}
    stored = sorted(p.name for folder in ('prior', 'finetune') for p in (tmp_path / folder).glob('*.safetensors'))
    assert len(stored) == 4, stored                            # two priors, two fine-tuned VAEs (beside the run's metric stage)
    t = src['kmedoids'].sample(5, 1.0, 2, torch.Generator().manual_seed(0))
    assert t.shape == (5, 4, 4) and 0 <= int(t.min()) and int(t.max()) < 4
    z = books['kmedoids'].decode_grid(t)
    assert torch.allclose(src['kmedoids'].decoders['before fine-tune'](z), vae.decode(z))
    assert not torch.allclose(src['kmedoids'].decoders['after fine-tune'](z), vae.decode(z))
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob('*.safetensors')}
    load_sample_sources(cfg, vae, books, data, device=setup_run(cfg))                 # the second time everything is loaded
    assert stamps == {p: p.stat().st_mtime_ns for p in tmp_path.rglob('*.safetensors')}


def test_every_interaction_is_fast_on_small_inputs(tiny):
    vae, x, y, books, inputs, proj = tiny
    graph = LatentGraph(inputs.vectors, metric_tensors(vae, inputs.mu), k=4)
    n = len(inputs.vectors)
    metrics = {'flat': torch.eye(3).expand(n, 3, 3), 'other': 2 * torch.eye(3).expand(n, 3, 3)}
    maps = {'flat': lambda z: z, 'other': lambda z: 2 ** 0.5 * z}
    ex = (LatentManifoldExplorer(inputs, proj, metrics=metrics), CodebookAssignmentExplorer(inputs), SampleExplorer(_sources(vae, books)),
          PathExplorer(inputs, vae.decode, {'geodesic': {'flat': GraphGeodesicPath(graph), 'other': straight_path}}, metrics=maps))
    times = time_interactions(explorer_interactions(*ex), repeats=3)
    assert len(times) == 18, sorted(times)
    slow = {k: v['median_s'] for k, v in times.items() if v['median_s'] > 0.5}
    assert not slow, f"interactions slower than 0.5 s: {slow}"


def test_bad_inputs_are_refused(tiny):
    vae, x, y, books, inputs, proj = tiny
    with pytest.raises(ValueError, match='10 images but 3 labels'): prepare_inputs(vae, x, y[:3], books)
    with pytest.raises(ValueError, match='fit it to inputs.vectors'):
        LatentManifoldExplorer(inputs, {'pca': fit_projection(inputs.vectors[:20], 'pca')})
    with pytest.raises(ValueError, match='unknown codebook'): CodebookAssignmentExplorer(inputs, codebook='geodesic')
    with pytest.raises(ValueError, match='at least one SampleSource'): SampleExplorer({})
    with pytest.raises(ValueError, match='out of range'): PathExplorer(inputs, vae.decode, a=10)
    with pytest.raises(ValueError, match=r'\[n, 3\]'): proj['pca'].place(torch.zeros(2, 5))


# ---- the committed notebook
def test_committed_notebook_has_no_heavy_widget_state():
    nb_path = ROOT / 'nbs' / '08_explore.ipynb'
    assert nb_path.stat().st_size < 300_000, f"{nb_path.name} is {nb_path.stat().st_size} bytes; strip heavy outputs"
    nb = json.loads(nb_path.read_text())
    assert 'widgets' not in nb.get('metadata', {}), "the notebook stores widget state; run nbdev_clean"
    for c in nb['cells']:
        for o in c.get('outputs', []):
            assert 'application/vnd.jupyter.widget-view+json' not in o.get('data', {}), \
                f"a live widget output is saved in cell {c['source'][:60]!r}; clear it (the static counterpart stays)"


def test_static_figures_are_drawn_by_the_site_and_not_by_jupyterlab(tiny, monkeypatch, tmp_path):
    """`show_static` writes the plotly JSON to a file beside the notebook and displays only where it is, under a MIME type of its
    own (JupyterLab's plotly extension would write a PNG snapshot into a plotly output it draws: opening the chapter would
    change it), which docs/build.py reads and draws as a plotly figure."""
    from geovq_tutorial import explore
    build = load_script('docs/build.py', 'docs_build')
    vae, x, y, books, inputs, proj = tiny
    shown = []
    monkeypatch.setattr(explore, 'display', lambda bundle, raw: shown.append(bundle))
    monkeypatch.chdir(tmp_path)
    LatentManifoldExplorer(inputs, proj).show_static('static/manifold.json')
    (bundle,) = shown
    assert bundle == {explore.STATIC_FIGURE_MIME: {'src': 'static/manifold.json'}, 'text/plain': explore.STATIC_NOTE}
    assert not list((tmp_path / 'static').glob('.*.tmp'))                        # written atomically: no temporary file left
    fig = build.plotly_figure(bundle, base=tmp_path)
    assert fig['data'][0]['x']['dtype'] == 'f4' and fig['layout']['height'] > 0      # coordinates binary, as float32
    assert 'geovq-plotly' in build.plotly_html(json.loads(json.dumps(fig)), 'plotly-test')
    (tmp_path / 'static' / 'manifold.json').unlink()
    with pytest.raises(FileNotFoundError, match='docs/execute.py'): build.plotly_figure(bundle, base=tmp_path)
