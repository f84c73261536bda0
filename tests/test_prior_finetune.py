"""Tests of geovq_tutorial.prior and geovq_tutorial.finetune (fast: synthetic tokens, random images, tiny models)."""
import math

import pytest
import torch
import torch.nn as nn

from geovq_tutorial.core import Trainer, StageError, ConfigError, setup_run
from geovq_tutorial.data import ImageSplits
from geovq_tutorial.vae import SpatialVAE, encode_means
from geovq_tutorial.codebook import make_codebook, grid_to_vectors
from geovq_tutorial.codebook import check_tokens, code_usage
from geovq_tutorial.prior import (TransformerPrior, baseline_nlls, baseline_logprobs, param_groups, token_nll,
                                  train_prior, sample_tokens, check_sampling, sample_stats, sample_per_position,
                                  check_prior_codebook, tokens_to_images, sample_images, load_or_train_prior,
                                  PriorConfig, MIN_TEMPERATURE)
from geovq_tutorial.finetune import (VQLayer, vq_terms, vq_loss, quantized_mse, encode_tokens,
                                     finetune_through_vq, codes_changed, load_or_finetune, load_or_finetune_decoder, VQVAE,
                                     kmeans_init, restart_dead_codes, vqvae_mse, load_or_train_vqvae,
                                     FinetuneConfig, EMAVQVAE)

torch.set_num_threads(1)
CPU = torch.device('cpu')


def count_up(n, K=8, seed=0):
    "Sequences x_t = x_0 + s*t mod K with a per-sequence step s in {1, 3}: a bigram cannot know s, a Transformer can."
    g = torch.Generator().manual_seed(seed)
    steps = torch.where(torch.rand(n, 1, generator=g) < 0.5, 1, 3)
    return (torch.randint(0, K, (n, 1), generator=g) + steps * torch.arange(16)) % K


@pytest.fixture(scope='module')
def tiny():
    "A tiny untrained VAE, random 'images', a fitted K=6 k-means codebook, and a matching split."
    torch.manual_seed(0)
    vae = SpatialVAE((1, 8, 8), latent_dim=3, hidden=8).eval()
    x = torch.rand(90, 1, 8, 8)
    data = ImageSplits('rand', x[:60], x[60:75], x[75:], torch.zeros(60, dtype=torch.long), torch.zeros(15, dtype=torch.long),
                       torch.zeros(15, dtype=torch.long), ['0'])
    cb = make_codebook('kmeans', 6, seed=0).fit(grid_to_vectors(encode_means(vae, data.train)))
    return vae, data, cb


# ---------------------------------------------------------------- tokens and the model
def test_check_tokens_boundaries():
    assert check_tokens(torch.arange(32).reshape(2, 4, 4), 32).shape == (2, 16)
    with pytest.raises(TypeError, match='integer token ids'): check_tokens(torch.zeros(2, 16), 4)
    with pytest.raises(ValueError, match=r'\[N, 16\]'): check_tokens(torch.zeros(2, 3, dtype=torch.long), 4)
    with pytest.raises(ValueError, match=r'allows only \[0, 3\]'): check_tokens(torch.full((1, 16), 4), 4)
    with pytest.raises(ValueError, match=r'allows only \[0, 3\]'): check_tokens(torch.full((1, 16), -1), 4)


@pytest.mark.parametrize('pos', [0, 7, 14])
def test_prior_is_causal(pos):
    torch.manual_seed(pos)
    m = TransformerPrior(K=9, dim=16, layers=2, heads=2, dropout=0.).eval()
    x = torch.randint(0, 9, (4, 16))
    y = x.clone(); y[:, pos] = (y[:, pos] + 1) % 9
    with torch.no_grad(): a, b = m(x), m(y)
    torch.testing.assert_close(a[:, :pos + 1], b[:, :pos + 1])          # output i predicts token i from tokens < i
    assert (a[:, pos + 1:] - b[:, pos + 1:]).abs().max() > 1e-5


@pytest.mark.parametrize('bad', [9, -1, 10, 100])
def test_prior_forward_refuses_ids_outside_0_K(bad):
    m = TransformerPrior(K=9, dim=16, layers=1, heads=2)
    x = torch.zeros(2, 16, dtype=torch.long); x[1, 5] = bad
    with pytest.raises(ValueError, match=r'token ids must lie in \[0, 8\] for this prior \(K=9\)') as e: m(x)
    assert 'Id 9 is the start token' in str(e.value) and '\n' not in str(e.value)
    with pytest.raises(TypeError, match='integer token ids'): m(torch.zeros(2, 16))
    assert m(torch.full((1, 16), 8)).shape == (1, 16, 9)


def test_code_usage():
    u = code_usage(torch.tensor([[3, 0] * 8]), 4)
    assert (u['codes_used'], u['codes_used_count']) == (0.5, 2) and u['perplexity'] == pytest.approx(2.0)
    assert code_usage(torch.arange(16).reshape(1, 4, 4), 16)['perplexity'] == pytest.approx(16.0)
    with pytest.raises(ValueError, match=r'allows only \[0, 3\]'): code_usage(torch.full((1, 16), 4), 4)


def test_weight_decay_only_on_linear_matrices():
    m = TransformerPrior(K=5, dim=8, layers=1, heads=2)
    decay, no_decay = param_groups(m, 0.1)
    ids = {id(p) for p in decay['params']}
    assert decay['weight_decay'] == 0.1 and no_decay['weight_decay'] == 0.0
    linear = {id(mod.weight) for mod in m.modules() if isinstance(mod, nn.Linear)}
    assert ids == linear
    assert len(decay['params']) + len(no_decay['params']) == len(list(m.parameters()))


def test_baselines_on_known_sequences():
    fixed = torch.arange(16).repeat(50, 1) % 8
    b = baseline_nlls(fixed, fixed, 8, alpha=1e-3)
    assert b['uniform'] == pytest.approx(math.log(8))
    assert b['per_position'] < 0.01 and b['unigram'] == pytest.approx(math.log(8), abs=1e-3)
    seqs = count_up(600)
    b = baseline_nlls(seqs[:500], seqs[500:], 8)
    assert b['bigram'] < b['per_position'] - 1.0
    lp = baseline_logprobs(seqs[:500], seqs[500:], 8)
    assert all(v.shape == (100, 16) and torch.isfinite(v).all() for v in lp.values())
    with pytest.raises(ValueError, match='alpha > 0'): baseline_nlls(fixed, fixed, 8, alpha=0.)


def test_prior_learns_what_the_bigram_cannot():
    seqs = count_up(1200, seed=1)
    cfg = PriorConfig(prior_dim=32, prior_layers=2, prior_heads=2, prior_dropout=0., prior_epochs=15, prior_lr=3e-3, progress=False)
    torch.manual_seed(0)
    m = TransformerPrior(8, 32, 2, 2, 0.)
    h = train_prior(m, seqs[:1000], seqs[1000:1100], cfg, CPU)
    assert token_nll(m, seqs[1100:]) < baseline_nlls(seqs[:1000], seqs[1100:], 8)['bigram'] - 0.3
    assert h['val'][h['best_epoch'] - 1] == min(h['val'])
    assert token_nll(m, seqs[1000:1100]) == pytest.approx(min(h['val']), abs=1e-4)   # best weights restored


# ---------------------------------------------------------------- sampling
class FixedLogits(TransformerPrior):
    "Position-dependent logits that ignore the prefix: the exact sampling distribution is known."
    def __init__(self, table):
        super().__init__(table.shape[1], dim=4, layers=0, heads=1)
        self.table = table

    def logits(self, prefix): return self.table[:prefix.shape[1] + 1].expand(len(prefix), -1, -1)


@pytest.mark.parametrize('T,k', [(1.0, None), (0.5, 0), (2.0, 2), (1.0, 4)])
def test_sampler_matches_tempered_top_k_distribution(T, k):
    table = torch.randn(16, 5, generator=torch.Generator().manual_seed(3)) * 2
    s = sample_tokens(FixedLogits(table), 3000, T, k, torch.Generator().manual_seed(0)).reshape(-1, 16)
    want = table / T
    if k: want = want.masked_fill(want < want.topk(k, 1).values[:, -1:], -math.inf)
    freq = torch.stack([torch.bincount(s[:, t], minlength=5) for t in range(16)]) / len(s)
    torch.testing.assert_close(freq, torch.softmax(want, 1), atol=0.04, rtol=0)


@pytest.mark.parametrize('T', [0, 0., -1., 1e-39, 1e-4, float('nan'), float('inf'), '1', True])
def test_bad_temperature_refused(T):
    with pytest.raises(ValueError, match='temperature'): check_sampling(T, None)


@pytest.mark.parametrize('k', [-1, -5, 1.5, True])
def test_bad_top_k_refused(k):
    with pytest.raises(ValueError, match='top_k'): check_sampling(1.0, k)


def test_top_k_zero_means_all_as_in_config():
    assert PriorConfig().top_k == 0 and check_sampling(1.0, PriorConfig().top_k) is None and check_sampling(1.0, None) is None
    assert check_sampling(1.0, 3) == 3 and check_sampling(MIN_TEMPERATURE, 5, K=5) == 5


def test_top_k_above_K_refused_in_library_and_config():
    with pytest.raises(ValueError, match='only K=5 tokens'): check_sampling(1.0, 6, K=5)
    table = torch.zeros(16, 5)
    with pytest.raises(ValueError, match=r'top_k=1000 is invalid: the prior has only K=5 tokens'):
        sample_tokens(FixedLogits(table), 2, top_k=1000)
    with pytest.raises(ConfigError, match='top_k=1000 is invalid: must be at most codebook_k=64'): PriorConfig(top_k=1000)
    with pytest.raises(ConfigError, match='codebook_k=8'): PriorConfig(codebook_k=8, top_k=9)
    assert PriorConfig(codebook_k=8, top_k=8).top_k == 8


@pytest.mark.parametrize('T', [1e-39, 1e-4, 0.0, -1.0, float('inf')])
def test_tiny_temperature_refused_in_config_and_library(T):
    with pytest.raises(ConfigError, match=r'temperature >= 0\.001'): PriorConfig(temperature=T)
    with pytest.raises(ValueError, match=r'temperature >= 0\.001'): sample_tokens(FixedLogits(torch.zeros(16, 4)), 1, temperature=T)


def test_smallest_temperature_samples_without_overflow():
    table = torch.randn(16, 6, generator=torch.Generator().manual_seed(0)) * 30
    s = sample_tokens(FixedLogits(table), 20, temperature=MIN_TEMPERATURE, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s.reshape(20, 16), table.argmax(1).repeat(20, 1))      # as good as greedy


def test_sample_stats_counts_distinct_and_copies():
    s = torch.tensor([[1] * 16, [1] * 16, [2] * 16, [4] * 16])
    assert sample_stats(s, torch.tensor([[2] * 16, [1] * 16])) == {'n': 4, 'distinct': 3, 'copies': 3}
    pp = sample_per_position(torch.arange(16).repeat(10, 1), 200, 16, alpha=1e-4, generator=torch.Generator().manual_seed(0))
    assert pp.shape == (200, 4, 4) and (pp.reshape(200, 16) == torch.arange(16)).float().mean() > 0.99


# ---------------------------------------------------------------- prior and codebook together
def test_prior_with_other_K_refused(tiny):
    vae, data, cb = tiny
    with pytest.raises(ValueError, match='K=7 token ids'): check_prior_codebook(TransformerPrior(7), cb)
    with pytest.raises(ValueError, match='K=7 token ids'): sample_images(TransformerPrior(7), cb, vae, 2)
    imgs, toks = sample_images(TransformerPrior(6), cb, vae, 3, generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (3, 1, 8, 8) and toks.shape == (3, 4, 4) and 0 <= imgs.min() and imgs.max() <= 1


@pytest.mark.parametrize('bad', [6, -1, 100])
def test_out_of_range_ids_refused_when_decoding(tiny, bad):
    vae, data, cb = tiny
    t = torch.zeros(2, 4, 4, dtype=torch.long); t[1, 2, 3] = bad
    with pytest.raises(ValueError, match=r'\[0, 5\]'): tokens_to_images(vae, cb, t)


def test_prior_stage_reuses_and_refuses(tmp_path):
    seqs = count_up(300)
    cfg = PriorConfig(run_dir=str(tmp_path), prior_dim=16, prior_heads=2, prior_epochs=2, progress=False)
    p1, h1 = load_or_train_prior(cfg, 'cu', seqs[:200], seqs[200:], 8, device=CPU)
    p2, h2 = load_or_train_prior(cfg, 'cu', seqs[:200], seqs[200:], 8, device=CPU)
    assert h1 == h2 and all(torch.equal(a, b) for a, b in zip(p1.state_dict().values(), p2.state_dict().values()))
    assert (tmp_path / 'prior' / 'cu_K8_mu_seed0.safetensors').exists()
    with pytest.raises(StageError, match='tokens') as e: load_or_train_prior(cfg, 'cu', seqs[:199], seqs[200:], 8, device=CPU)
    assert '--force prior' in str(e.value)
    with pytest.raises(StageError, match='prior_dim'):
        load_or_train_prior(cfg.replace(prior_dim=32), 'cu', seqs[:200], seqs[200:], 8, device=setup_run(cfg))
    with pytest.raises(ValueError, match='prior key'): load_or_train_prior(cfg, '../x', seqs[:200], seqs[200:], 8, device=setup_run(cfg))
    p3, h3 = load_or_train_prior(cfg, 'cu', seqs[:150], seqs[200:], 8, device=CPU, force=True)      # forced: retrained
    load_or_train_prior(cfg, 'cu', seqs[:150], seqs[200:], 8, device=CPU)                            # and now reused
    load_or_train_prior(cfg.replace(codebook_source='z'), 'cu', seqs[:200], seqs[200:], 8, device=CPU)   # z: its own file
    assert (tmp_path / 'prior' / 'cu_K8_z_seed0.safetensors').exists()


def interrupt_once(monkeypatch, at_call: int):
    "Make Trainer.record raise KeyboardInterrupt once, at its `at_call`-th call (as a Ctrl-C during that epoch would)."
    calls, record = [0], Trainer.record
    def flaky(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == at_call: raise KeyboardInterrupt
        return record(self, *args, **kwargs)
    monkeypatch.setattr(Trainer, 'record', flaky)


def same_state(a, b): return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def without_seconds(h): return {k: v for k, v in h.items() if k != 'seconds'}


def test_interrupted_prior_training_resumes_exactly(tmp_path, monkeypatch):
    seqs = count_up(300)
    cfg = PriorConfig(prior_dim=16, prior_heads=2, prior_epochs=5, prior_batch_size=32, progress=False, threads=1)
    whole, hw = load_or_train_prior(cfg.replace(run_dir=str(tmp_path / 'a')), 'cu', seqs[:200], seqs[200:], 8, device=CPU)
    cfg_b = cfg.replace(run_dir=str(tmp_path / 'b'))
    with monkeypatch.context() as mp:
        interrupt_once(mp, 3)
        with pytest.raises(KeyboardInterrupt): load_or_train_prior(cfg_b, 'cu', seqs[:200], seqs[200:], 8, device=CPU)
    partial = tmp_path / 'b' / 'prior' / 'cu_K8_mu_seed0.partial.safetensors'
    assert partial.exists()
    resumed, hr = load_or_train_prior(cfg_b, 'cu', seqs[:200], seqs[200:], 8, device=CPU)
    assert not partial.exists() and hr['epoch'] == [1, 2, 3, 4, 5]
    assert same_state(whole.state_dict(), resumed.state_dict()) and without_seconds(hw) == without_seconds(hr)


# ---------------------------------------------------------------- the VQ layer and its losses
def test_straight_through_is_identity_backwards(tiny):
    vae, data, cb = tiny
    mu = encode_means(vae, data.val).requires_grad_(True)
    z = VQLayer(cb)(mu)
    torch.testing.assert_close(z.st, z.q)
    torch.testing.assert_close(z.q, cb.decode_grid(cb.encode_grid(mu.detach())))
    w = torch.randn_like(mu)
    (z.st * w).sum().backward()
    torch.testing.assert_close(mu.grad, w)
    with pytest.raises(TypeError, match='not a codebook'): VQLayer(object())


@pytest.mark.parametrize('beta', [0.0, 0.25, 1.0, 3.0])
def test_beta_weighs_commitment_and_reaches_only_the_encoder(beta):
    torch.manual_seed(0)
    enc, codes = nn.Linear(3, 2), nn.Parameter(torch.randn(5, 2))
    x = torch.randn(7, 3)

    def grads(b):
        enc.zero_grad(); codes.grad = None
        mu = enc(x).reshape(7, 2, 1, 1)
        q = codes[torch.cdist(mu.reshape(7, 2), codes).argmin(1)].reshape(7, 2, 1, 1)
        vq_loss(mu, q, b).backward()
        return enc.weight.grad.clone(), codes.grad.clone()

    enc_1, codes_1 = grads(1.0)
    enc_b, codes_b = grads(beta)
    torch.testing.assert_close(enc_b, beta * enc_1)          # encoder gradient: beta times the commitment gradient
    torch.testing.assert_close(codes_b, codes_1)             # codebook gradient: independent of beta
    # the commitment term alone never reaches the codebook, the codebook term never reaches the encoder
    mu = enc(x).reshape(7, 2, 1, 1); q = codes[:1].expand(7, 2).reshape(7, 2, 1, 1)
    cb_term, commit = vq_terms(mu, q)
    assert torch.autograd.grad(commit, codes, retain_graph=True, allow_unused=True)[0] is None
    assert torch.autograd.grad(cb_term, enc.weight, allow_unused=True)[0] is None


def test_vq_terms_values():
    mu = torch.tensor([[[[1.]], [[2.]]], [[[0.]], [[0.]]]])
    q = torch.zeros_like(mu)
    cb, commit = vq_terms(mu, q)
    assert cb.item() == pytest.approx(2.5) and commit.item() == pytest.approx(2.5)   # (1 + 4 + 0) / 2 images
    assert vq_loss(mu, q, 0.5).item() == pytest.approx(2.5 + 1.25)


# ---------------------------------------------------------------- fine-tunes
def test_decoder_finetune_freezes_encoder_and_keeps_best(tiny):
    vae, data, cb = tiny
    cfg = FinetuneConfig(finetune_epochs=3, batch_size=16, progress=False)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    ft, h = finetune_through_vq(vae, cb, data, cfg, device=CPU)
    assert all(torch.equal(v, before[k]) for k, v in vae.state_dict().items())            # the input VAE is untouched
    assert all(torch.equal(v, vae.encoder.state_dict()[k]) for k, v in ft.encoder.state_dict().items())
    assert h['val'][h['best_epoch']] == min(h['val']) <= h['val'][0]
    assert quantized_mse(ft, cb, data.val) == pytest.approx(min(h['val']), abs=1e-7)
    assert torch.equal(encode_tokens(ft, cb, data.test), encode_tokens(vae, cb, data.test))
    ft2, h2 = finetune_through_vq(vae, cb, data, cfg, train_encoder=True, device=CPU)
    assert h2['best_epoch'] > 0 and not torch.equal(ft2.encoder[0].weight, vae.encoder[0].weight)


@pytest.mark.parametrize('train_encoder', [False, True])
def test_interrupted_finetune_resumes_exactly(tiny, tmp_path, monkeypatch, train_encoder):
    vae, data, cb = tiny
    cfg = FinetuneConfig(finetune_epochs=4, batch_size=16, progress=False, threads=1)
    whole, hw = load_or_finetune(cfg.replace(run_dir=str(tmp_path / 'a')), vae, cb, data, train_encoder, device=CPU)
    cfg_b = cfg.replace(run_dir=str(tmp_path / 'b'))
    with monkeypatch.context() as mp:
        interrupt_once(mp, 4)            # record calls: epoch 0 (the untouched VAE), 1, 2, then Ctrl-C during epoch 3
        with pytest.raises(KeyboardInterrupt): load_or_finetune(cfg_b, vae, cb, data, train_encoder, device=CPU)
    assert list((tmp_path / 'b' / 'finetune').glob('*.partial.safetensors'))
    resumed, hr = load_or_finetune(cfg_b, vae, cb, data, train_encoder, device=CPU)
    assert same_state(whole.state_dict(), resumed.state_dict()) and without_seconds(hw) == without_seconds(hr)


def test_codes_changed():
    a = torch.zeros(3, 4, 4, dtype=torch.long)
    b = a.clone(); b[0, 0, 0] = 1; b[2, 3, 3] = 2; b[2, 1, 1] = 5
    c = codes_changed(a, b)
    assert (c['cells'], c['images']) == (3, 2) and c['cell_fraction'] == pytest.approx(3 / 48)
    with pytest.raises(ValueError, match='same shape'): codes_changed(a, b[:2])


def test_finetune_stage_reuses_and_refuses(tiny, tmp_path):
    vae, data, cb = tiny
    cfg = FinetuneConfig(run_dir=str(tmp_path), finetune_epochs=2, batch_size=16, progress=False)
    a, ha = load_or_finetune_decoder(cfg, vae, cb, data, device=CPU)
    b, hb = load_or_finetune_decoder(cfg, vae, cb, data, device=CPU)
    assert ha == hb and all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    path = tmp_path / 'finetune' / 'kmeans_K6_mu_decoder.safetensors'
    assert path.exists() and path.with_suffix('.json').exists()
    other = make_codebook('kmeans', 6, seed=1).fit(grid_to_vectors(encode_means(vae, data.train)))
    with pytest.raises(StageError, match='codebooks'): load_or_finetune_decoder(cfg, vae, other, data, device=CPU)
    with pytest.raises(StageError, match='finetune_epochs'):
        load_or_finetune_decoder(cfg.replace(finetune_epochs=5), vae, cb, data, device=setup_run(cfg))
    j, hj = load_or_finetune(cfg, vae, cb, data, train_encoder=True, device=CPU)
    assert (tmp_path / 'finetune' / 'kmeans_K6_mu_encoder_decoder.safetensors').exists() and hj['train_encoder']
    with pytest.raises(StageError, match='commitment'):
        load_or_finetune(cfg.replace(commitment=1.), vae, cb, data, train_encoder=True, device=setup_run(cfg))
    load_or_finetune_decoder(cfg.replace(commitment=1.), vae, cb, data, device=CPU)     # the decoder-only fine-tune ignores beta
    with pytest.raises(TypeError, match='not a codebook'): load_or_finetune_decoder(cfg, vae, 'kmeans', data, device=setup_run(cfg))


# ---------------------------------------------------------------- the VQ-VAE
def test_vqvae_is_a_codebook_and_refuses_bad_ids():
    m = VQVAE((1, 8, 8), latent_dim=3, hidden=8, K=5)
    x = torch.rand(2, 1, 8, 8)
    logits, mu, q, tokens = m(x)
    assert logits.shape == x.shape and tokens.shape == (2, 4, 4)
    torch.testing.assert_close(q, m.decode_grid(tokens))
    assert torch.equal(m.encode_grid(mu), tokens)
    with pytest.raises(ValueError, match=r'\[0, 4\]'): m.decode_grid(torch.full((1, 16), 5))
    with pytest.raises(ValueError, match=r'\[0, 4\]'): tokens_to_images(m.vae, m, torch.full((1, 4, 4), -1))
    with pytest.raises(ValueError, match='K=6 token ids'): check_prior_codebook(TransformerPrior(6), m)


def test_kmeans_init_and_restarts():
    m = VQVAE((1, 8, 8), latent_dim=2, hidden=8, K=2)
    pts = torch.cat([torch.randn(40, 2) * 0.01, torch.randn(40, 2) * 0.01 + 4])
    kmeans_init(m, pts)
    assert sorted(m.codewords.detach().round().sum(1).tolist()) == [0.0, 8.0]
    with torch.no_grad(): m.codewords[0] = 50.
    opt = torch.optim.Adam(m.parameters())
    m.codewords.grad = torch.ones_like(m.codewords); opt.step()
    assert restart_dead_codes(m, torch.tensor([0, 9]), pts, opt) == 1
    assert (m.codewords[0] - pts).norm(dim=1).min() < 1e-6
    assert opt.state[m.codewords]['exp_avg'][0].abs().max() == 0 and opt.state[m.codewords]['exp_avg'][1].abs().max() > 0


def test_vqvae_stage(tiny, tmp_path):
    _, data, _ = tiny
    cfg = FinetuneConfig(run_dir=str(tmp_path), latent_dim=3, hidden=8, codebook_k=6, vqvae_epochs=10, batch_size=16, progress=False,
                         vqvae_quantizer='ste')
    m1, h1 = load_or_train_vqvae(cfg, data, device=CPU)
    m2, h2 = load_or_train_vqvae(cfg, data, device=CPU)
    assert h1['test'] == h2['test'] and h1['phase'][0] == 'warm-up' and h1['phase'][-1] == 'vq'
    assert 1 <= h1['test']['codes_used_count'] <= 6 and len(h1['restarts']) == 10
    assert vqvae_mse(m2, data.test) == pytest.approx(h1['test']['mse'], abs=1e-7)
    assert (tmp_path / 'vqvae' / 'vqvae_ste.safetensors').exists() and (tmp_path / 'vqvae' / 'vqvae_ste.json').exists()
    e1, he = load_or_train_vqvae(cfg.replace(vqvae_quantizer='ema'), data, device=CPU)     # the standard quantiser, its own file
    assert isinstance(e1, EMAVQVAE) and (tmp_path / 'vqvae' / 'vqvae_ema.safetensors').exists() and he['warmup_epochs'] == 0
    assert vqvae_mse(load_or_train_vqvae(cfg.replace(vqvae_quantizer='ema'), data, device=CPU)[0], data.test) == pytest.approx(he['test']['mse'], abs=1e-7)
    with pytest.raises(StageError, match='commitment'): load_or_train_vqvae(cfg.replace(commitment=1.0), data, device=CPU)
    with pytest.raises(ConfigError, match='vqvae_epochs'): cfg.replace(vqvae_epochs=1)


def test_interrupted_vqvae_training_resumes_exactly(tiny, tmp_path, monkeypatch):
    "Interrupted after the warm-up and k-means init, with dead-code restarts drawing random vectors: resumed == uninterrupted."
    _, data, _ = tiny
    cfg = FinetuneConfig(latent_dim=3, hidden=8, codebook_k=12, vqvae_epochs=6, batch_size=16, progress=False, threads=1,
                         vqvae_quantizer='ste')
    whole, hw = load_or_train_vqvae(cfg.replace(run_dir=str(tmp_path / 'a')), data, device=CPU)
    assert sum(hw['restarts']) > 0          # the restarts (and their randomness) are exercised
    cfg_b = cfg.replace(run_dir=str(tmp_path / 'b'))
    with monkeypatch.context() as mp:
        interrupt_once(mp, 4)
        with pytest.raises(KeyboardInterrupt): load_or_train_vqvae(cfg_b, data, device=CPU)
    assert (tmp_path / 'b' / 'vqvae' / 'vqvae_ste.partial.safetensors').exists()
    resumed, hr = load_or_train_vqvae(cfg_b, data, device=CPU)
    assert same_state(whole.state_dict(), resumed.state_dict()) and without_seconds(hw) == without_seconds(hr)


def test_interrupted_ema_vqvae_training_resumes_exactly(tiny, tmp_path, monkeypatch):
    "VectorQuantize's EMA buffers and its random k-means init / code expiry survive an interrupt: resumed == uninterrupted."
    _, data, _ = tiny
    cfg = FinetuneConfig(latent_dim=3, hidden=8, codebook_k=12, vqvae_epochs=5, batch_size=16, progress=False, threads=1)
    whole, hw = load_or_train_vqvae(cfg.replace(run_dir=str(tmp_path / 'a')), data, device=CPU)
    cfg_b = cfg.replace(run_dir=str(tmp_path / 'b'))
    with monkeypatch.context() as mp:
        interrupt_once(mp, 3)
        with pytest.raises(KeyboardInterrupt): load_or_train_vqvae(cfg_b, data, device=CPU)
    resumed, hr = load_or_train_vqvae(cfg_b, data, device=CPU)
    assert same_state(whole.state_dict(), resumed.state_dict()) and without_seconds(hw) == without_seconds(hr)


def test_the_mu_control_fine_tunes_the_decoder_without_a_quantiser(tiny, tmp_path):
    vae, data, _ = tiny
    cfg = FinetuneConfig(run_dir=str(tmp_path), finetune_epochs=2, progress=False)
    ctl, h = load_or_finetune_decoder(cfg, vae, None, data, device=CPU)
    assert (tmp_path / 'finetune' / 'mu_control_decoder.safetensors').exists()
    assert quantized_mse(ctl, None, data.val) == pytest.approx(min(h['val']), abs=1e-7) and min(h['val']) <= h['val'][0]
    assert h['val'][0] == pytest.approx(quantized_mse(vae, None, data.val), abs=1e-7)     # epoch 0 is the untouched VAE
    assert all(torch.equal(a, b) for a, b in zip(ctl.encoder.state_dict().values(), vae.encoder.state_dict().values()))
    with pytest.raises(ValueError, match='decoder only'): load_or_finetune(cfg, vae, None, data, train_encoder=True, device=setup_run(cfg))


def test_vqvae_plugs_into_the_post_hoc_helpers():
    "The evaluation treats a VQ-VAE like any codebook: (vqvae.vae, vqvae) in place of (vae, codebook)."
    torch.manual_seed(0)
    m = VQVAE((1, 8, 8), latent_dim=3, hidden=8, K=5).eval()
    x = torch.rand(7, 1, 8, 8)
    with torch.no_grad(): tokens = m(x)[3]
    assert torch.equal(encode_tokens(m.vae, m, x), tokens)
    assert quantized_mse(m.vae, m, x) == pytest.approx(vqvae_mse(m, x), rel=1e-5)
    assert tokens_to_images(m.vae, m, tokens).shape == x.shape
