"Small helpers shared by the tests."
import importlib.util
from pathlib import Path

import torch
from hypothesis import settings, HealthCheck

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_problem(seed, n, d):
    "Random vectors [n, d] with random positive definite metric tensors [n, d, d]."
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, d, generator=g)
    a = torch.randn(n, d, d, generator=g)
    return v, a @ a.transpose(1, 2) + 0.05 * torch.eye(d)


def load_script(relative_path: str, name: str):
    "A script of the repository that is not in the package (docs/build.py, bench/isa_check.py, ...) loaded as module `name`."
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / relative_path)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod
