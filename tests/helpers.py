"Small helpers shared by the property tests."
import torch
from hypothesis import settings, HealthCheck

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_problem(seed, n, d):
    "Random vectors [n, d] with random positive definite metric tensors [n, d, d]."
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, d, generator=g)
    a = torch.randn(n, d, d, generator=g)
    return v, a @ a.transpose(1, 2) + 0.05 * torch.eye(d)
