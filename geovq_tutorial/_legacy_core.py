"""The plumbing every later chapter stands on: one typed run configuration, reproducible seeding, device and thread choice, safe checkpoints and progress bars."""

# TEMPORARY during the issue-9 refactor: the old core API, for modules not yet converted. Must be deleted before landing.

# %% ../nbs/00_core.ipynb #acaf83ac
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

# %% auto #0
__all__ = ['ConfigError', 'RunConfig', 'atomic_path', 'save_json', 'load_json', 'save_config', 'load_config', 'artifact_path',
           'add_config_arguments', 'config_from_arguments', 'seed_everything', 'pick_device', 'set_threads',
           'setup_run', 'CheckpointError', 'save_checkpoint', 'load_checkpoint', 'load_weights', 'progress',
           'stage_lock']

# %% ../nbs/00_core.ipynb #a17fccd1
from .core import ConfigError, CheckpointError

def _opt(default, help: str, **kw):
    "A dataclass field with a default and a help text (shown by `--help`)."
    return field(default=default, metadata={'help': help, **kw})

# %% ../nbs/00_core.ipynb #8e92d204
@dataclass
class RunConfig:
    "Everything that determines a run. Saved as `config.json` in the run folder."
    # --- where and how
    run_dir: str = _opt('runs/digits', 'folder that receives every artifact of the run')
    dataset: str = _opt('digits', "dataset name: digits, photos, mnist, fashion_mnist or cifar10")
    data_root: str = _opt('data', 'folder for torchvision datasets (MNIST, FashionMNIST, CIFAR-10)')
    download: bool = _opt(True, 'download torchvision datasets when they are missing (needs a network)')
    seed: int = _opt(0, 'random seed for splits, initialisation and sampling')
    device: str = _opt('auto', "'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'cuda:N'")
    threads: int = _opt(0, 'CPU threads for torch; 0 keeps torch\'s default')
    progress: bool = _opt(True, 'show progress bars')
    # --- data split
    val_fraction: float = _opt(0.1, 'fraction of the training images held out for validation')
    test_fraction: float = _opt(0.1, 'fraction of the images held out for the test split (bundled sets only)')
    # --- the spatial VAE
    latent_dim: int = _opt(8, 'channels D of each latent vector on the 4x4 grid')
    hidden: int = _opt(32, 'convolution channels in encoder and decoder')
    beta: float = _opt(0.1, 'weight of the KL term in the ELBO')
    epochs: int = _opt(100, 'VAE training epochs')
    batch_size: int = _opt(64, 'minibatch size for VAE training')
    lr: float = _opt(3e-3, 'peak Adam learning rate for the VAE (one-cycle schedule)')
    # --- codebooks (post-hoc quantisation)
    codebook_k: int = _opt(64, 'number of codewords K')
    codebook_methods: str = _opt('kmeans,kmedoids,geodesic', 'comma-separated codebook methods: kmeans, kmedoids, geodesic')
    codebook_source: str = _opt('mu', "vectors the codebook is fitted to: 'mu' (encoder means) or 'z' (sampled latents)")
    knn: int = _opt(10, 'neighbours per vector in the geodesic kNN graph')
    geodesic_subsample: int = _opt(4000, 'above this many vectors geodesic k-medoids clusters a random subsample and '
                                         'assigns the rest by one multi-source Dijkstra')
    # --- the Transformer prior
    prior_layers: int = _opt(2, 'Transformer blocks in the prior')
    prior_heads: int = _opt(4, 'attention heads per block')
    prior_dim: int = _opt(32, 'width of the prior (embedding size)')
    prior_dropout: float = _opt(0.1, 'dropout in the prior')
    prior_epochs: int = _opt(60, 'maximum prior training epochs (early stopping on validation)')
    prior_lr: float = _opt(3e-3, 'AdamW learning rate for the prior')
    prior_weight_decay: float = _opt(0.1, 'AdamW weight decay (matrix weights only)')
    prior_batch_size: int = _opt(128, 'minibatch size for the prior')
    temperature: float = _opt(1.0, 'sampling temperature (> 0)')
    top_k: int = _opt(0, 'sample only from the k most likely tokens; 0 samples from all')
    n_samples: int = _opt(256, 'images sampled from the prior for evaluation')
    # --- decoder fine-tune and the end-to-end VQ-VAE baseline
    finetune_epochs: int = _opt(30, 'decoder fine-tune epochs through the frozen VQ layer')
    finetune_lr: float = _opt(1e-3, 'learning rate of the fine-tune')
    commitment: float = _opt(0.25, 'weight of the commitment term when the encoder is trained through the quantiser')
    vqvae_epochs: int = _opt(100, 'training epochs of the end-to-end VQ-VAE baseline')
    # --- evaluation
    eval_seeds: str = _opt('0,1,2', 'comma-separated seeds for the results table (mean and spread)')
    classifier_epochs: int = _opt(30, 'epochs of the small classifier whose features the sample metrics use')

    @property
    def methods(self) -> list[str]: return [m.strip() for m in self.codebook_methods.split(',') if m.strip()]

    @property
    def seeds(self) -> list[int]: return [int(s) for s in self.eval_seeds.split(',') if s.strip()]

    def validate(self) -> 'RunConfig':
        "Check every field; raise `ConfigError` naming the field, the value and the fix."
        def bad(name, why): raise ConfigError(f"config.{name}={getattr(self, name)!r} is invalid: {why}")
        for f in fields(self):  # types first: a string where a number belongs is the commonest slip
            v = getattr(self, f.name)
            if f.type in ('int', 'float') and (isinstance(v, bool) or not isinstance(v, (int, float))):
                bad(f.name, f"expected a number ({f.type})")
            if f.type == 'int' and isinstance(v, float) and not v.is_integer(): bad(f.name, 'expected a whole number')
            if f.type == 'bool' and not isinstance(v, bool): bad(f.name, 'expected true or false')
            if f.type == 'str' and not isinstance(v, str): bad(f.name, 'expected a string')
        for name in ('latent_dim', 'hidden', 'epochs', 'batch_size', 'codebook_k', 'knn', 'geodesic_subsample', 'prior_layers',
                     'prior_heads', 'prior_dim', 'prior_epochs', 'prior_batch_size', 'n_samples', 'finetune_epochs',
                     'vqvae_epochs', 'classifier_epochs'):
            if getattr(self, name) < 1: bad(name, 'must be at least 1')
        for name in ('lr', 'prior_lr', 'finetune_lr', 'temperature'):
            if not (getattr(self, name) > 0 and np.isfinite(getattr(self, name))): bad(name, 'must be a positive finite number')
        for name in ('beta', 'commitment', 'prior_weight_decay'):
            if not (getattr(self, name) >= 0 and np.isfinite(getattr(self, name))): bad(name, 'must be >= 0 and finite')
        if not 0 <= self.prior_dropout < 1: bad('prior_dropout', 'use a probability in [0, 1)')
        if self.top_k < 0: bad('top_k', 'use 0 to sample from all tokens, or k >= 1')
        if self.prior_dim % self.prior_heads: bad('prior_dim', f'must be divisible by prior_heads={self.prior_heads}')
        unknown = [m for m in self.methods if m not in ('kmeans', 'kmedoids', 'geodesic')]
        if unknown or not self.methods: bad('codebook_methods', 'use a comma-separated subset of kmeans, kmedoids, geodesic')
        if self.codebook_source not in ('mu', 'z'): bad('codebook_source', "use 'mu' or 'z'")
        try: seeds = self.seeds
        except ValueError: seeds = []
        if not seeds: bad('eval_seeds', "use comma-separated integers such as '0,1,2'")
        if self.threads < 0: bad('threads', 'use 0 for torch\'s default or a positive count')
        for name in ('val_fraction', 'test_fraction'):
            if not 0 < getattr(self, name) < 0.5: bad(name, 'use a fraction between 0 and 0.5, e.g. 0.1')
        if not (self.device in ('auto', 'cpu', 'cuda') or self.device.startswith('cuda:')):
            bad('device', "use 'auto', 'cpu', 'cuda' or 'cuda:N'")
        return self

    def __post_init__(self): self.validate()

    def to_dict(self) -> dict: return dataclasses.asdict(self)

    def replace(self, **changes) -> 'RunConfig':
        "A copy with some fields changed (validated)."
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> 'RunConfig':
        "Build from a mapping; unknown keys are refused rather than silently dropped."
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; valid keys are {sorted(known)} "
                              "(was this file written by another version of geovq_tutorial?)")
        return cls(**d)

# %% ../nbs/00_core.ipynb #d0f2372a
@contextmanager
def atomic_path(path: str | os.PathLike):
    "Yield a temporary path beside `path`; on success rename it onto `path`, on error delete it."
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, 'rb+') as f: os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

def save_json(obj: Any, path: str | os.PathLike) -> Path:
    "Write `obj` as indented JSON, atomically."
    with atomic_path(path) as tmp: Path(tmp).write_text(json.dumps(obj, indent=2, sort_keys=True) + '\n')
    return Path(path)

def load_json(path: str | os.PathLike) -> Any:
    "Read a JSON file, with a clear error when it is missing or corrupt."
    path = Path(path)
    if not path.exists(): raise FileNotFoundError(f"{path} does not exist")
    try: return json.loads(path.read_text())
    except json.JSONDecodeError as e: raise ValueError(f"{path} is not valid JSON ({e}); delete it and re-run the stage") from e

# %% ../nbs/00_core.ipynb #d5657e18
def save_config(cfg: RunConfig, path: str | os.PathLike) -> Path:
    "Save a run configuration as JSON."
    return save_json(cfg.to_dict(), path)

def load_config(path: str | os.PathLike) -> RunConfig:
    "Load and validate a run configuration saved by `save_config`."
    return RunConfig.from_dict(load_json(path))

# %% ../nbs/00_core.ipynb #89252d31
def artifact_path(run_dir: str | os.PathLike, folder: str, key: str, what: str = 'artifact', suffix: str = '.safetensors') -> Path:
    "Where a run keeps the artifact named `key` in `run_dir/folder`; a key is letters, digits, '_', '-' or '.' (no paths)."
    if not isinstance(key, str) or not re.fullmatch(r'[A-Za-z0-9_.\-]+', key) or set(key) == {'.'}:
        raise ValueError(f"{what} key {key!r} must be a non-empty name of letters, digits, '_', '-' or '.', e.g. 'kmeans_K64_seed0'")
    return Path(run_dir) / folder / f'{key}{suffix}'


# %% ../nbs/00_core.ipynb #31b5bc7d
def add_config_arguments(parser: argparse.ArgumentParser, cls=RunConfig, only: Iterable[str] | None = None) -> argparse.ArgumentParser:
    "Add one `--option` per field of `cls` (or the fields named in `only`), defaulting to 'not given'."
    types = {'int': int, 'float': float, 'str': str}
    for f in fields(cls):
        if only is not None and f.name not in only: continue
        flag = '--' + f.name.replace('_', '-')
        help = f"{f.metadata.get('help', '')} (default: {f.default!r})"
        if f.type == 'bool':
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help)
        else:
            parser.add_argument(flag, dest=f.name, type=types[f.type], default=None, metavar=f.name.upper(), help=help)
    return parser

def config_from_arguments(ns: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    "Override `base` (default: the defaults) with the options actually given on the command line."
    base = base or RunConfig()
    given = {f.name: getattr(ns, f.name) for f in fields(base) if getattr(ns, f.name, None) is not None}
    return base.replace(**given)

# %% ../nbs/00_core.ipynb #dd0a659a
def seed_everything(seed: int) -> torch.Generator:
    "Seed `random`, NumPy and torch (CPU and CUDA); return a torch generator seeded the same way."
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)

def pick_device(preference: str = 'auto') -> torch.device:
    "CUDA when available and `preference` is 'auto'; otherwise exactly what was asked, checked."
    if preference == 'auto': return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    dev = torch.device(preference)
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise ConfigError(f"device={preference!r} was requested but CUDA is not available here; "
                              "use --device cpu (or auto), or install a CUDA build of torch (see README)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device={preference!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return dev

def set_threads(n: int) -> int:
    "Set torch's CPU thread count (0 keeps the default); return the count in effect."
    if n > 0: torch.set_num_threads(n)
    return torch.get_num_threads()

def setup_run(cfg: RunConfig) -> torch.device:
    "Seed, set threads and pick the device for `cfg`; the one call every stage starts with."
    seed_everything(cfg.seed)
    set_threads(cfg.threads)
    return pick_device(cfg.device)

# %% ../nbs/00_core.ipynb #f45117b7


def save_checkpoint(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    "Write `tensors` (moved to CPU, made contiguous) and JSON-serialisable `meta` atomically to `path`."
    from safetensors.torch import save_file
    data = {k: v.detach().to('cpu').contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp: save_file(data, str(tmp), metadata={'geovq': json.dumps(dict(meta), sort_keys=True)})
    return Path(path)

def load_checkpoint(path: str | os.PathLike, expect: Mapping[str, Any] | None = None,
                    hint: str = 'run the stage that creates it') -> tuple[dict[str, torch.Tensor], dict]:
    "Load tensors and metadata from `path`; refuse a missing or corrupt file, or one whose metadata differs from `expect`."
    from safetensors import safe_open
    path = Path(path)
    if not path.exists(): raise CheckpointError(f"checkpoint {path} does not exist; {hint}")
    try:
        with safe_open(str(path), framework='pt') as f:
            raw = (f.metadata() or {}).get('geovq')
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is truncated or not a safetensors file ({e}); delete it and {hint}") from e
    if raw is None: raise CheckpointError(f"checkpoint {path} has no geovq metadata; it was not written by save_checkpoint")
    meta = json.loads(raw)
    if expect is not None:
        diff = [f"{k}: checkpoint has {meta.get(k, '<missing>')!r}, expected {v!r}" for k, v in expect.items() if meta.get(k) != v]
        if diff: raise CheckpointError(f"checkpoint {path} does not match: " + '; '.join(diff) +
                                       f". Use a checkpoint made with these settings, or delete it and {hint}")
    return tensors, meta

def load_weights(model: torch.nn.Module, path: str | os.PathLike, expect: Mapping[str, Any] | None = None,
                 hint: str = 'run the stage that creates it') -> dict:
    "Load a checkpoint into `model` after checking metadata, tensor names and shapes; return the metadata."
    tensors, meta = load_checkpoint(path, expect, hint)
    own = model.state_dict()
    problems = [f"missing {k}" for k in own if k not in tensors] + [f"unexpected {k}" for k in tensors if k not in own]
    problems += [f"{k}: shape {tuple(tensors[k].shape)} in checkpoint, {tuple(v.shape)} in model"
                 for k, v in own.items() if k in tensors and tensors[k].shape != v.shape]
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit {type(model).__name__}: " + '; '.join(problems[:5]) +
                              (f" (and {len(problems) - 5} more)" if len(problems) > 5 else '') + f". {hint}")
    model.load_state_dict({k: tensors[k] for k in own})
    return meta

# %% ../nbs/00_core.ipynb #c452612b
def progress(iterable: Iterable | None = None, enabled: bool = True, **kwargs):
    "A `tqdm.auto` progress bar, disabled when `enabled` is False or `GEOVQ_PROGRESS=0`."
    from tqdm.auto import tqdm
    off = not enabled or os.environ.get('GEOVQ_PROGRESS', '1') == '0'
    return tqdm(iterable, disable=off, dynamic_ncols=True, **kwargs)

@contextmanager
def stage_lock(run_dir: str | os.PathLike, stage: str):
    "Hold an exclusive lock on `run_dir/.stage.lock` for the duration of the block (POSIX; a no-op elsewhere)."
    try: import fcntl
    except ImportError: fcntl = None
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / f'.{stage}.lock', 'w') as fh:
        if fcntl: fcntl.flock(fh, fcntl.LOCK_EX)
        try: yield
        finally:
            if fcntl: fcntl.flock(fh, fcntl.LOCK_UN)
