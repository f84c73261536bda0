"Tests of the evaluation chapter's metrics (geovq_tutorial.evaluate); fast, no artifacts, no downloads."
import math

import numpy as np
import pytest
import torch

from geovq_tutorial.core import CheckpointError, StageError, STAGES, format_table
from geovq_tutorial.codebook import METRICS, psnr_from_mse
from geovq_tutorial.data import ImageSplits
from geovq_tutorial.evaluate import (EvalConfig, FeatureClassifier, SampleScorer, TABLE_COLUMNS, classifier_features,
                                     frechet_distance, inception_score, load_or_train_classifier, precision_recall,
                                     reconstruction_metrics, results_table)

torch.set_num_threads(1)


def gauss(n, d, seed, shift=0.0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale + shift


def test_fd_identical_gaussians_near_zero_and_grows_with_mean_shift():
    a, b = gauss(20000, 5, 0), gauss(20000, 5, 1)
    assert frechet_distance(a, b) < 0.01
    fds = [frechet_distance(a, gauss(20000, 5, 1, shift=s)) for s in (0.5, 1.0, 2.0)]
    assert fds[0] < fds[1] < fds[2]
    assert abs(fds[2] - 5 * 4.0) < 0.3            # ||delta||^2 = 5 * 2^2


def test_fd_matches_closed_form_for_diagonal_covariances():
    sig = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    a, b = gauss(40000, 4, 2), gauss(40000, 4, 3) * sig
    assert abs(frechet_distance(a, b) - ((1 - sig) ** 2).sum().item()) < 0.15


def test_fd_is_symmetric_and_works_with_rank_deficient_covariance():
    a, b = gauss(30, 64, 0), gauss(40, 64, 1)      # n < feature width: singular covariances
    assert math.isfinite(frechet_distance(a, b))
    assert abs(frechet_distance(a, b) - frechet_distance(b, a)) < 1e-6


def test_fd_small_sample_bias():
    small = np.mean([frechet_distance(gauss(40, 8, s), gauss(40, 8, 100 + s)) for s in range(10)])
    large = np.mean([frechet_distance(gauss(4000, 8, s), gauss(4000, 8, 100 + s)) for s in range(3)])
    assert small > 10 * large


def test_fd_refuses_bad_input():
    with pytest.raises(ValueError, match='width'): frechet_distance(gauss(10, 3, 0), gauss(10, 4, 0))
    with pytest.raises(ValueError, match='at least 2'): frechet_distance(gauss(1, 3, 0), gauss(10, 3, 0))
    with pytest.raises(ValueError, match='NaN'): frechet_distance(torch.full((4, 2), float('nan')), gauss(4, 2, 0))
    with pytest.raises(ValueError, match='2-d'): frechet_distance(torch.zeros(4), gauss(4, 1, 0))


def test_precision_recall_self_same_disjoint_and_collapsed():
    a, b = gauss(1500, 2, 0), gauss(1500, 2, 1)
    assert precision_recall(a, a) == {'precision': 1.0, 'recall': 1.0}
    pr = precision_recall(a, b)
    assert pr['precision'] > 0.9 and pr['recall'] > 0.9
    assert precision_recall(a, b + 50) == {'precision': 0.0, 'recall': 0.0}
    pr = precision_recall(a, 0.1 * b)              # mode collapse: faithful but narrow
    assert pr['precision'] > 0.9 and pr['recall'] < 0.3
    pr = precision_recall(0.1 * a, b)              # too broad: covers the data but mostly off-support
    assert pr['recall'] > 0.9 and pr['precision'] < 0.3


def test_precision_recall_refuses_bad_input():
    with pytest.raises(ValueError, match='more than k'): precision_recall(gauss(3, 2, 0), gauss(50, 2, 1))
    with pytest.raises(ValueError, match='positive integer'): precision_recall(gauss(50, 2, 0), gauss(50, 2, 1), k=0)
    with pytest.raises(ValueError, match='width'): precision_recall(gauss(50, 2, 0), gauss(50, 3, 1))


def test_inception_score_bounds():
    eye = torch.eye(10, dtype=torch.float64)
    assert abs(inception_score(torch.full((20, 10), 0.1, dtype=torch.float64)) - 1) < 1e-9
    assert abs(inception_score(eye.repeat(3, 1)) - 10) < 1e-9
    assert abs(inception_score(eye[[4] * 30]) - 1) < 1e-9
    p = torch.softmax(gauss(200, 10, 0) * 3, 1)
    assert 1 < inception_score(p) < 10
    with pytest.raises(ValueError, match='softmax'): inception_score(gauss(5, 10, 0))


def test_reconstruction_metrics_and_psnr():
    x = torch.rand(6, 1, 8, 8)
    r = reconstruction_metrics((x + 0.1), x, vae_recon=x)
    assert abs(r['mse'] - 0.01) < 1e-6 and abs(r['psnr'] - 20) < 1e-3 and abs(r['mse_vs_vae'] - 0.01) < 1e-6
    assert psnr_from_mse(0.0) == math.inf
    with pytest.raises(ValueError, match='>= 0'): psnr_from_mse(-1.0)
    with pytest.raises(ValueError, match='differ in shape'): reconstruction_metrics(x[:3], x)


@pytest.mark.parametrize('shape', [(1, 8, 8), (1, 32, 32), (3, 32, 32)])
def test_classifier_shapes(shape):
    clf = FeatureClassifier(shape, n_classes=10, hidden=8, feature_dim=12)
    x = torch.rand(5, *shape)
    assert clf(x).shape == (5, 10)
    f = classifier_features(clf, x)
    assert f.shape == (5, 12) and f.dtype == torch.float64
    with pytest.raises(ValueError, match='expects images of shape'): clf.features(torch.rand(2, 2, 8, 8))


def _toy_splits(shape=(3, 32, 32), n=120, classes=3, seed=0):
    "Three classes that differ in brightness: easy to learn in a few epochs."
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = (0.15 + 0.3 * y.float()[:, None, None, None] + 0.05 * torch.rand(n, *shape, generator=g)).clamp(0, 1)
    return ImageSplits('toy', x, x[:30], x[:30], y, y[:30], y[:30], [str(c) for c in range(classes)])


def test_classifier_artifact_is_cached_and_checked(tmp_path):
    data = _toy_splits(shape=(1, 8, 8), n=300)
    cfg = EvalConfig(run_dir=str(tmp_path), classifier_epochs=10, progress=False)
    clf, rep = load_or_train_classifier(cfg, data, device=torch.device('cpu'))
    assert (tmp_path / 'classifier.safetensors').exists() and (tmp_path / 'classifier.json').exists()
    assert rep['test_accuracy'] > 0.5 and rep['best_epoch'] >= 1 and len(rep['val']) == 10
    assert abs(rep['val_accuracy_best'] - (1 - min(rep['val']))) < 1e-12        # validation = 1 - accuracy
    clf2, rep2 = load_or_train_classifier(cfg, data, device=torch.device('cpu'))
    assert torch.equal(classifier_features(clf, data.test), classifier_features(clf2, data.test))
    with pytest.raises(StageError, match='classifier_epochs.*--force classifier'):
        load_or_train_classifier(cfg.replace(classifier_epochs=11), data, device=torch.device('cpu'))
    with pytest.raises(StageError, match='feature_dim'):
        load_or_train_classifier(cfg, data, device=torch.device('cpu'), feature_dim=32)
    clf3, rep3 = load_or_train_classifier(cfg.replace(classifier_epochs=11), data, device=torch.device('cpu'), force=True)
    assert len(rep3['val']) == 11


def test_classifier_training_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    "Ctrl-C leaves classifier.partial.safetensors; the next call resumes from it and ends where an uninterrupted run ends."
    import geovq_tutorial.core as core
    data, cpu = _toy_splits(shape=(1, 8, 8), n=200), torch.device('cpu')
    cfg = EvalConfig(run_dir=str(tmp_path / 'a'), classifier_epochs=4, progress=False)
    whole, _ = load_or_train_classifier(cfg, data, device=cpu)
    cut = cfg.replace(run_dir=str(tmp_path / 'b'))
    init, real, calls = core.Trainer.__init__, core.Trainer.train_epoch, []
    monkeypatch.setattr(core.Trainer, '__init__', lambda self, *a, **k: init(self, *a, **{**k, 'checkpoint_every': 0.0}))
    def interrupted(self, d):
        calls.append(1)
        if len(calls) == 3: raise KeyboardInterrupt       # Ctrl-C during the third epoch
        return real(self, d)
    monkeypatch.setattr(core.Trainer, 'train_epoch', interrupted)
    with pytest.raises(KeyboardInterrupt): load_or_train_classifier(cut, data, device=cpu)
    monkeypatch.undo()
    partial = STAGES['classifier'].path(cut).with_suffix('.partial.safetensors')
    assert partial.exists() and not STAGES['classifier'].path(cut).exists()
    resumed, rep = load_or_train_classifier(cut, data, device=cpu)
    assert not partial.exists() and rep['epoch'] == [1, 2, 3, 4]
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()): assert torch.equal(a, b)


def test_sample_scorer_draws_floor_and_keys():
    "Every draw has its own floor set and reference; a real set scores near its floor, noise far above it, in both spaces."
    from geovq_tutorial.evaluate import FeatureAutoencoder, autoencoder_features, classifier_probs
    data = _toy_splits(shape=(1, 8, 8), n=300)
    clf, ae = FeatureClassifier((1, 8, 8), 3, hidden=8, feature_dim=8), FeatureAutoencoder((1, 8, 8), hidden=8, feature_dim=8)
    spaces = {'classifier': lambda x: classifier_features(clf, x), 'ae': lambda x: autoencoder_features(ae, x)}
    sc = SampleScorer(spaces, data.train, n=50, draws=3, max_reference=100, probs=lambda x: classifier_probs(clf, x))
    m = sc(data.train[:150])
    assert {'fd', 'precision', 'recall', 'inception_score', 'fd_floor', 'fd_floor_std', 'ae_fd', 'ae_fd_floor', 'contrast',
            'sharpness', 'contrast_real'} <= set(m) and set(m) <= set(METRICS)
    assert m['n_samples'] == 50 and m['n_draws'] == 3 and m['n_reference'] == 100 and len(m['draws']['fd']) == 3
    assert len({tuple(h.tolist()) for h, _ in sc.partitions}) == 3                       # three different floor sets
    for held, ref in sc.partitions: assert not set(held.tolist()) & set(ref.tolist())     # floor images are not in the reference
    with pytest.raises(ValueError, match='3 draws of 50'): sc(data.train[:100])
    with pytest.raises(ValueError, match='needs more than'): SampleScorer(spaces, data.train[:40], n=50)


def test_paired_intervals_and_the_decision_rule():
    from geovq_tutorial.evaluate import paired_difference, verdict, t_interval, compare_variants, space_disagreements
    from scipy.stats import t as student
    d = [0.3, -0.1, 0.5, 0.2, 0.1]
    ci = t_interval(d)
    half = student.ppf(0.975, 4) * np.std(d, ddof=1) / math.sqrt(5)
    assert abs(ci['lo'] - (np.mean(d) - half)) < 1e-12 and abs(ci['hi'] - (np.mean(d) + half)) < 1e-12 and ci['n'] == 5
    res = [{'seed': s, 'variants': {'geodesic': {'mse': 0.01, 'fd': 30.0, 'ae_fd': 3.0},
                                    'geodesic+ft': {'mse': 0.008 - 0.0001 * s, 'fd': 30.0 + d[s], 'ae_fd': 2.0 + 0.01 * s}}} for s in range(5)]
    rows = results_table(res)
    c = paired_difference(rows, 'geodesic', 'geodesic+ft', 'mse')
    assert c['hi'] < 0 and verdict(c).startswith('geodesic + decoder fine-tune is better than post-hoc geodesic')
    f = paired_difference(rows, 'geodesic', 'geodesic+ft', 'fd')
    assert f['lo'] < 0 < f['hi'] and verdict(f) == 'no measurable difference at this n (n = 5 seeds)'
    comps = compare_variants(rows, ('geodesic',))
    assert {(c['metric'], c['question']) for c in comps} == {('mse', 'fine-tune'), ('fd', 'fine-tune'), ('ae_fd', 'fine-tune')}
    dis = space_disagreements(comps)        # the autoencoder finds an improvement where the classifier finds none
    assert [(x['metric'], x['space']) for x in dis] == [('fd', 'ae')]


def test_results_table_mean_and_spread():
    res = [{'seed': s, 'variants': {'a': {'mse': float(s), 'psnr': math.inf}, 'b': {'fd': 1.0}}} for s in range(3)]
    rows = results_table(res)
    a = rows[0]
    assert a['mse']['mean'] == 1.0 and abs(a['mse']['std'] - 1.0) < 1e-12 and a['mse']['values'] == [0.0, 1.0, 2.0]
    assert a['psnr']['mean'] is None and a['psnr']['n'] == 0    # infinite values are not averaged
    assert '—' in format_table(rows, [('psnr', 'PSNR', '.1f')], how='markdown')
    assert '1.0 ± 1.0' in format_table(rows, TABLE_COLUMNS, how='text')     # the spread to two digits, the mean to its place
    assert rows[1]['n_seeds'] == 3 and rows[1]['fd']['std'] == 0.0
    with pytest.raises(ValueError, match='at least one'): results_table([])


def test_seed_config_and_jsonable():
    from geovq_tutorial.evaluate import seed_config, _jsonable
    cfg = EvalConfig(run_dir='runs/x', seed=0)
    assert seed_config(cfg, 0) is cfg
    c2 = seed_config(cfg, 2)
    assert c2.seed == 2 and c2.run_dir.endswith('seed2')
    assert _jsonable({'a': [math.inf, 1.0, (2, float('nan'))]}) == {'a': [None, 1.0, [2, None]]}


def test_check_targets_follow_the_intervals():
    from geovq_tutorial.evaluate import check_targets
    res = [{'seed': s, 'variants': {'vae': {'mse': 0.005 + 0.0005 * s}, 'geodesic': {'mse': 0.01 + 0.0001 * s, 'prior_gain': 0.05 + 0.01 * s},
                                    'geodesic+ft': {'mse': 0.008, 'fd_ratio': 0.6 + 0.01 * s}}} for s in range(3)]
    t = {c['target']: c for c in check_targets(results_table(res))}
    vae = t['continuous VAE MSE <= 0.006']
    assert vae['met'] is False and vae['value'] <= 0.006 < vae['hi'], vae     # the mean is below, the interval is not
    assert t['decoder fine-tune lowers geodesic MSE by >= 15%']['met'] is True
    assert t['geodesic prior beats the per-position unigram by >= 0.1 nats/token']['met'] is False
    one = check_targets(results_table(res[:1]))
    assert all(c['met'] is None for c in one)                                   # one seed: no interval, no verdict


def test_evaluate_run_end_to_end_small(tmp_path):
    "The whole evaluation on a shrunken problem: every variant, documented keys, reuse of the saved result."
    from geovq_tutorial.data import load_dataset
    from geovq_tutorial.evaluate import evaluate_run, load_evaluation_samples
    from geovq_tutorial.pipeline import SeedModels
    d = load_dataset('digits')
    small = ImageSplits('digits', d.train[:200], d.val[:40], d.test[:40], d.train_labels[:200], d.val_labels[:40],
                        d.test_labels[:40], d.classes)
    cfg = EvalConfig(run_dir=str(tmp_path), epochs=5, classifier_epochs=3, prior_epochs=2, finetune_epochs=1, vqvae_epochs=3,
                    n_samples=40, n_draws=2, feature_ae_epochs=2, codebook_k=8, codebook_methods='kmeans,geodesic',
                    geodesic_subsample=500, progress=False)
    models = lambda c=cfg: SeedModels(c, small, torch.device('cpu'))   # a seed's models, loaded (or made) when first read
    plain = evaluate_run(models(), compare_sources=False, verbose=False)   # as geovq run stores it
    assert plain['source_variants'] == {}
    res = evaluate_run(models(), verbose=False)     # adds the mu-versus-z rows, keeps the rest
    assert res['variants'] == plain['variants']
    assert res['settings'] == STAGES['evaluation'].settings(cfg, dict(res['settings']['upstream']), compare_sources=True)
    assert list(res['variants']) == ['vae', 'vae+ft', 'kmeans', 'kmeans+ft', 'geodesic', 'geodesic+ft', 'vqvae']
    assert set(res['source_variants']) == {'kmeans[mu]', 'kmeans[z]', 'geodesic[mu]', 'geodesic[z]'}
    for name, m in res['variants'].items():
        assert set(m) <= set(METRICS), set(m) - set(METRICS)
        assert 0 <= m['precision'] <= 1 and 0 <= m['recall'] <= 1 and m['fd'] >= 0 and m['ae_fd'] >= 0
    for method in ('kmeans', 'geodesic'):          # two code paths to a post-hoc reconstruction agree (codebook and prior chapters)
        assert abs(res['variants'][method]['mse'] - res['source_variants'][f'{method}[mu]']['mse']) < 1e-6
        assert abs(res['variants'][method]['perplexity'] - res['source_variants'][f'{method}[mu]']['perplexity']) < 1e-6
    g = res['variants']['geodesic']
    assert 0 < g['codes_used'] <= 1 and 1 <= g['perplexity'] <= 8
    assert abs(g['prior_gain'] - (g['per_position_nll'] - g['prior_nll'])) < 1e-9
    assert abs(g['fd_ratio'] - g['fd'] / g['unigram_fd']) < 1e-9
    assert (tmp_path / 'evaluation.json').exists() and (tmp_path / 'evaluation.safetensors').exists()
    assert evaluate_run(models()) == res          # reused, not recomputed
    assert evaluate_run(models(), compare_sources=False) == res   # the fuller result serves
    assert res['settings']['compare_sources'] is True and res['settings']['codebook_k'] == 8
    assert set(res['settings']['upstream']) == {'vae', 'codebooks', 'prior', 'finetune', 'vqvae', 'classifier', 'feature_ae'}
    assert res['variants']['kmeans']['draws']['fd'] != res['variants']['kmeans']['draws']['fd'][::-1]   # the draws differ
    assert load_evaluation_samples(tmp_path)['vqvae'].shape == (40, 1, 8, 8)
    with pytest.raises(StageError, match='temperature'): evaluate_run(models(cfg.replace(temperature=0.5)))
    (tmp_path / 'evaluation.json').write_text('{broken')                       # a damaged sidecar: made again
    assert evaluate_run(models(), verbose=False)['variants'].keys() == res['variants'].keys()
    with pytest.raises(CheckpointError, match='evaluate_run'): load_evaluation_samples(tmp_path / 'nowhere')
