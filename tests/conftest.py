"""Test configuration: x64 on (float64 reference computations), warnings are errors."""

import zlib

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def rng(request):
    """A fresh NumPy Generator per test, seeded from the test id (reproducible, varied)."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)
