"""Property and boundary tests for geovq_tutorial.codebook: k-medoids, the codebooks, tokens and usage, the two stages and the
comparison's vocabulary (fast: small untrained models only)."""
import itertools
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from geovq_tutorial.core import CheckpointError, StageError, format_table, fingerprint
from geovq_tutorial.data import ImageSplits
from geovq_tutorial.vae import SpatialVAE
from geovq_tutorial.codebook import (grid_to_vectors, vectors_to_grid, KMeansCodebook,
                                     GeodesicCodebook, Codebook, kmedoids, make_codebook, fit_codebook, check_tokens,
                                     code_usage, CODEBOOKS, CodebookConfig, METRICS, SUMMARY_COLUMNS, METRIC_STAGE,
                                     CODEBOOKS_STAGE, load_or_fit_codebook, training_metric, GeodesicReference,
                                     evaluate_codebook, summarize, psnr_from_mse)

torch.set_num_threads(1)
from helpers import FEW, random_problem


# ---------------------------------------------------------------- k-medoids
@FEW
@given(seed=st.integers(0, 10_000), n=st.integers(4, 12), K=st.integers(1, 4))
def test_kmedoids_is_a_local_optimum(seed, n, K):
    K = min(K, n)
    x = np.random.default_rng(seed).standard_normal((n, 2))
    D = np.linalg.norm(x[:, None] - x[None], axis=-1)
    med, lab, info = kmedoids(D, K, seed=seed)
    assert len(set(med.tolist())) == K
    cost = D[med].min(0).sum()
    assert cost == pytest.approx(info['cost'])
    for slot, c in itertools.product(range(K), range(n)):
        if c in med: continue
        m2 = med.copy(); m2[slot] = c
        assert D[m2].min(0).sum() >= cost - 1e-9


# ---------------------------------------------------------------- codebooks
@FEW
@given(K=st.integers(2, 6), d=st.integers(1, 5), per=st.integers(5, 30), seed=st.integers(0, 10_000))
def test_kmeans_recovers_well_separated_blobs(K, d, per, seed):
    rng = np.random.default_rng(seed)
    centers = np.eye(K, max(K, d))[:, :max(K, d)] * 50.0      # pairwise distance 50*sqrt(2)
    x = np.concatenate([c + rng.standard_normal((per, centers.shape[1])) for c in centers]).astype(np.float32)
    truth = np.repeat(np.arange(K), per)
    cb = KMeansCodebook(K, seed=seed, n_init=3).fit(torch.as_tensor(x))
    ids = cb.encode(torch.as_tensor(x)).numpy()
    # the same partition: each blob one id, different blobs different ids
    assert all(len(set(ids[truth == k])) == 1 for k in range(K))
    assert len(set(ids.tolist())) == K


@FEW
@given(seed=st.integers(0, 10_000), method=st.sampled_from(['kmeans', 'kmedoids', 'geodesic']), B=st.integers(1, 5))
def test_decode_then_encode_returns_the_ids(seed, method, B):
    v, M = random_problem(seed, 80, 3)
    cb = make_codebook(method, 7, seed=seed, knn=4) if method == 'geodesic' else make_codebook(method, 7, seed=seed)
    cb.fit(v, M)
    tok = torch.randint(0, 7, (B, 4, 4), generator=torch.Generator().manual_seed(seed))
    vec = cb.decode(tok.reshape(-1))
    metric = cb.train_metric[cb.medoid_index[tok.reshape(-1)]] if method == 'geodesic' else None
    assert torch.equal(cb.encode(vec, metric), tok.reshape(-1))
    if method != 'geodesic': assert torch.equal(cb.encode_grid(cb.decode_grid(tok)), tok)


@FEW
@given(seed=st.integers(0, 10_000), n=st.integers(20, 60), K=st.integers(1, 6), k=st.integers(2, 6),
       sub=st.sampled_from([None, 15]))
def test_geodesic_assignment_equals_brute_force(seed, n, K, k, sub):
    v, M = random_problem(seed, n, 3)
    cb = GeodesicCodebook(K, seed=seed, knn=k, subsample=sub or n).fit(v, M)
    brute = torch.as_tensor(cb.graph.distances()[cb.medoid_index.numpy()].argmin(0))
    assert torch.equal(cb.node_label, brute)
    assert torch.equal(cb.encode(v, M), brute)


def test_grid_vector_roundtrip():
    g = torch.randn(3, 6, 4, 4)
    v = grid_to_vectors(g)
    assert torch.equal(v[2 * 16 + 1 * 4 + 2], g[2, :, 1, 2])
    assert torch.equal(vectors_to_grid(v, 3), g)


# ---------------------------------------------------------------- bad input
def test_bad_inputs_are_refused():
    v, M = random_problem(0, 20, 3)
    with pytest.raises(ValueError, match='at least K training vectors'):
        KMeansCodebook(21).fit(v)
    with pytest.raises(ValueError, match='at least K training vectors'):
        GeodesicCodebook(21, subsample=30).fit(v, M)
    vn = v.clone(); vn[3, 1] = float('nan')
    for method in ('kmeans', 'kmedoids', 'geodesic'):
        with pytest.raises(ValueError, match='NaN'):
            make_codebook(method, 3).fit(vn, M)
    cb = KMeansCodebook(3).fit(v)
    with pytest.raises(ValueError, match='dimension D=2'):
        cb.encode(torch.randn(5, 2))
    with pytest.raises(ValueError, match=r'\[B, 3, 4, 4\]'):
        cb.encode_grid(torch.randn(2, 2, 4, 4))
    with pytest.raises(ValueError, match='NaN'):
        cb.encode(vn)
    with pytest.raises(ValueError, match=r'\[0, 2\]'):
        cb.decode_grid(torch.full((1, 16), 3))
    geo = GeodesicCodebook(3, knn=3).fit(v, M)
    with pytest.raises(ValueError, match='dimension D=4'):
        geo.encode(torch.randn(5, 4), torch.eye(4).expand(5, 4, 4))
    with pytest.raises(ValueError, match='needs the pull-back metric'):
        geo.encode(v)
    with pytest.raises(RuntimeError, match='attach'):
        geo.encode_grid(torch.randn(1, 3, 4, 4))


def test_codebook_file_of_another_vae_is_refused(tmp_path):
    torch.manual_seed(0)
    vae_a, vae_b = SpatialVAE((1, 8, 8), 3, 8), SpatialVAE((1, 8, 8), 3, 8)
    x = torch.rand(10, 1, 8, 8)
    cb = fit_codebook(vae_a, x, 'geodesic', 5, knn=4)
    cb.save(tmp_path / 'geo.safetensors')
    back = Codebook.load(tmp_path / 'geo.safetensors', vae=vae_a)
    mu = vae_a.encode(x)[0].detach()
    assert torch.equal(back.encode_grid(mu), cb.encode_grid(mu))
    assert torch.equal(back.codewords, cb.codewords)
    with pytest.raises(CheckpointError, match='fit a new codebook for this VAE'):
        Codebook.load(tmp_path / 'geo.safetensors', vae=vae_b)


# ---------------------------------------------------------------- tokens and usage
def test_check_tokens_one_gate_one_wording():
    assert check_tokens(torch.arange(32).reshape(2, 4, 4), 32).shape == (2, 16)
    assert check_tokens(torch.tensor([[1, 2], [3, 0]], dtype=torch.int16), 4, sequences=False).dtype == torch.long
    for bad in (torch.zeros(2, 16), torch.zeros(2, 16, dtype=torch.bool), torch.zeros(2, 16, dtype=torch.float16)):
        with pytest.raises(TypeError, match='integer token ids'): check_tokens(bad, 4)
    with pytest.raises(ValueError, match=r'\[N, 16\]'): check_tokens(torch.zeros(2, 3, dtype=torch.long), 4)
    with pytest.raises(ValueError, match=r'contain id 4, but K=4 allows only \[0, 3\]'): check_tokens(torch.full((1, 16), 4), 4)
    with pytest.raises(ValueError, match=r'train_tokens contain id -1, but K=4 allows only \[0, 3\]'):
        check_tokens(torch.full((1, 16), -1), 4, 'train_tokens')
    cb = KMeansCodebook(3).fit(torch.randn(20, 2))
    for f in (cb.decode, cb.usage, cb.decode_grid):            # the codebook uses the same gate and wording
        with pytest.raises(ValueError, match=r'allows only \[0, 2\]'): f(torch.full((1, 16), 3))


@FEW
@given(K=st.integers(1, 20), n=st.integers(1, 200), seed=st.integers(0, 10_000))
def test_code_usage(K, n, seed):
    t = torch.randint(0, K, (n,), generator=torch.Generator().manual_seed(seed))
    u = code_usage(t, K)
    assert set(u) == {'codes_used', 'codes_used_count', 'perplexity'} and set(u) <= set(METRICS)
    assert u['codes_used_count'] == len(set(t.tolist())) and u['codes_used'] == pytest.approx(u['codes_used_count'] / K)
    assert 1 - 1e-9 <= u['perplexity'] <= u['codes_used_count'] + 1e-9


def test_code_usage_refuses_bad_tokens():
    with pytest.raises(ValueError, match=r'allows only \[0, 7\]'): code_usage(torch.tensor([0, 8]), 8)
    with pytest.raises(ValueError, match='no tokens'): code_usage(torch.zeros(0, dtype=torch.long), 8)
    assert code_usage(torch.arange(8), 8)['perplexity'] == pytest.approx(8)


def test_methods_are_listed_once():
    assert list(CODEBOOKS) == ['kmeans', 'kmedoids', 'geodesic', 'geodesic_unc']
    assert CodebookConfig().methods == list(CODEBOOKS)
    with pytest.raises(ValueError, match='subset of kmeans, kmedoids, geodesic'): CodebookConfig(codebook_methods='kmeans,pq')


# ---------------------------------------------------------------- stages
@pytest.fixture()
def tiny_run(tmp_path):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(12, 1, 8, 8, generator=g)
    y = torch.arange(12) % 3
    data = ImageSplits('digits', x, x[:4], x[4:8], y, y[:4], y[4:8], ['0', '1', '2'])
    cfg = CodebookConfig(run_dir=str(tmp_path / 'run'), latent_dim=3, hidden=8, knn=4, geodesic_subsample=100, threads=1)
    return cfg, SpatialVAE((1, 8, 8), 3, 8).eval(), data


def test_codebook_stage_reuses_refuses_and_forces(tiny_run):
    cfg, vae, data = tiny_run
    cb = load_or_fit_codebook(cfg, vae, data, 'geodesic', K=5)
    path = CODEBOOKS_STAGE.path(cfg, method='geodesic', K=5, seed=0)
    assert path.name == 'geodesic_K5_mu_seed0.safetensors' and path.with_suffix('.json').exists()
    assert METRIC_STAGE.path(cfg, vectors='mu').exists()           # the metric was made once, as its own stage
    json.loads(path.with_suffix('.json').read_text())               # the sidecar is plain JSON
    stamp = path.stat().st_mtime_ns
    again = load_or_fit_codebook(cfg, vae, data, 'geodesic', K=5)
    assert path.stat().st_mtime_ns == stamp and torch.equal(again.codewords, cb.codewords) and again.vae is vae
    mu = vae.encode(data.test)[0].detach()
    assert torch.equal(again.encode_grid(mu), cb.encode_grid(mu))
    with pytest.raises(StageError, match=r'knn: stored 4, now 5.*--force codebooks'):
        load_or_fit_codebook(cfg.replace(knn=5), vae, data, 'geodesic', K=5)
    with pytest.raises(StageError, match='made from another vae artifact'):
        load_or_fit_codebook(cfg, SpatialVAE((1, 8, 8), 3, 8), data, 'geodesic', K=5)
    assert path.stat().st_mtime_ns == stamp                         # refusals change nothing
    load_or_fit_codebook(cfg.replace(knn=5), vae, data, 'geodesic', K=5, force=True)
    assert path.stat().st_mtime_ns != stamp


def test_codebook_source_and_seed_are_in_the_key(tiny_run):
    cfg, vae, data = tiny_run
    a = load_or_fit_codebook(cfg, vae, data, 'kmeans', K=4)
    b = load_or_fit_codebook(cfg.replace(codebook_source='z'), vae, data, 'kmeans', K=4)
    c = load_or_fit_codebook(cfg, vae, data, 'kmeans', K=4, seed=1)
    assert (a.source, b.source, c.seed) == ('mu', 'z', 1)
    names = sorted(p.name for p in CODEBOOKS_STAGE.stage_files(cfg.run_dir) if p.suffix == '.safetensors')
    assert names == ['kmeans_K4_mu_seed0.safetensors', 'kmeans_K4_mu_seed1.safetensors', 'kmeans_K4_z_seed0.safetensors']
    assert not torch.equal(a.codewords, b.codewords)
    load_or_fit_codebook(cfg.replace(codebook_source='z'), vae, data, 'geodesic', K=4)   # geodesic on z: its metric is keyed by seed
    assert METRIC_STAGE.path(cfg, vectors='z_seed0').exists()


def test_training_metric_is_stored_per_source(tiny_run):
    cfg, vae, data = tiny_run
    grids, metric = training_metric(cfg, vae, data)
    assert grids.shape == (12, 3, 4, 4) and metric.shape == (12 * 16, 3, 3)
    g2, m2 = training_metric(cfg, vae, None)          # loaded: no data needed
    assert torch.equal(g2, grids) and torch.equal(m2, metric)
    gz, _ = training_metric(cfg, vae, data, source='z', seed=3)
    assert METRIC_STAGE.path(cfg, vectors='z_seed3').exists() and not torch.equal(gz, grids)
    with pytest.raises(StageError, match='made from another vae artifact'):
        training_metric(cfg, SpatialVAE((1, 8, 8), 3, 8), data)
    with pytest.raises(ValueError, match="'mu' or 'z'"): training_metric(cfg, vae, data, source='x')


def test_state_roundtrip_for_every_method():
    v, M = random_problem(3, 60, 3)
    for method in CODEBOOKS:
        cb = make_codebook(method, 5, seed=2).fit(v, M)
        back = Codebook.from_state(*cb.state())
        assert type(back) is type(cb) and torch.equal(back.codewords, cb.codewords)
        assert torch.equal(back.encode(v, M if cb.needs_metric else None), cb.encode(v, M if cb.needs_metric else None))
        json.dumps(cb.state()[1])
    with pytest.raises(CheckpointError, match='unknown codebook method'):
        Codebook.from_state({}, {'kind': 'codebook', 'method': 'pq'})


# ---------------------------------------------------------------- the comparison's vocabulary
def test_evaluate_codebook_uses_the_metric_names(tiny_run):
    cfg, vae, data = tiny_run
    grids, metric = training_metric(cfg, vae, data)
    ref = GeodesicReference(vae, grids, cfg.knn, metric)
    cb = fit_codebook(vae, data.train, 'kmeans', 4)
    row = evaluate_codebook(cb, vae, data.test, ref)
    measures = set(row) - {'method', 'assign', 'K', 'seed'}
    assert row['assign'] == 'euclidean'                              # k-means' own rule
    assert measures <= set(METRICS)     # every number is named in the one vocabulary (later chapters add names of their own)
    assert {'mse', 'psnr', 'mse_vs_vae', 'latent_distortion', 'geodesic_distortion', 'codes_used', 'perplexity'} <= measures
    assert row['psnr'] == pytest.approx(psnr_from_mse(row['mse']))
    assert all(math.isfinite(row[m]) and row[m] >= 0 for m in measures)
    summ = summarize([row, {**row, 'seed': 1, 'mse': row['mse'] + 0.1}])
    assert summ[0]['mse']['n'] == 2 and summ[0]['mse']['std'] == pytest.approx(0.05)
    table = format_table(summ, SUMMARY_COLUMNS)
    assert table.splitlines()[0].split()[:4] == ['K', 'method', 'assign', 'mse'] and '±' in table


def test_fingerprint_identifies_the_vae():
    torch.manual_seed(0)
    a, b = SpatialVAE((1, 8, 8), 3, 8), SpatialVAE((1, 8, 8), 3, 8)
    cb = fit_codebook(a, torch.rand(6, 1, 8, 8), 'kmeans', 3)
    assert cb.vae_id == fingerprint(a) != fingerprint(b)


def test_compare_codebooks_rows_and_summary(tiny_run):
    from geovq_tutorial.codebook import compare_codebooks
    cfg, vae, data = tiny_run
    rows = compare_codebooks(cfg, vae, data, Ks=(3,), seeds=(0, 1), verbose=False)
    rules = lambda m: ['euclidean', 'geodesic'] + (['geodesic_unc'] if m == 'geodesic_unc' else [])
    assert [(r['K'], r['seed'], r['method'], r['assign']) for r in rows] == [(3, s, m, a) for s in (0, 1) for m in CODEBOOKS for a in rules(m)]
    summ = summarize(rows)
    assert [(r['method'], r['assign']) for r in summ] == [(m, a) for m in CODEBOOKS for a in rules(m)]
    assert all(r['n_seeds'] == 2 for r in summ)
    assert all({'mse', 'latent_distortion', 'geodesic_distortion', 'geodesic_distortion_unc', 'codes_used'} <= set(r) for r in summ)
    own = {(r['method'], r['seed']): r for r in rows if r['assign'] == 'geodesic'}
    eu = {(r['method'], r['seed']): r for r in rows if r['assign'] == 'euclidean'}
    for k in own:     # each rule wins on its own yardstick (up to ties)
        assert own[k]['geodesic_distortion'] <= eu[k]['geodesic_distortion'] + 1e-6
        assert eu[k]['latent_distortion'] <= own[k]['latent_distortion'] + 1e-6
