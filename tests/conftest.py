"Shared test settings: quiet progress bars, and the repository root for tests that look at files."
import os
from pathlib import Path

import pytest

os.environ.setdefault('GEOVQ_PROGRESS', '0')
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def repo() -> Path:
    return REPO
