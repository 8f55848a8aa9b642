"""Test configuration: x64 on (float64 reference computations), warnings are errors."""

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def rng(request):
    """A fresh NumPy Generator per test, seeded from the test id (reproducible, varied)."""
    seed = abs(hash(request.node.nodeid)) % (2**32)
    return np.random.default_rng(seed)
