"""The backend-aware memory budget of the kernels: derivation, CPU fallback, equal values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hippox
from hippox._src import kernels


class _FakeDevice:
    """A device whose ``memory_stats()`` returns fixed numbers (or raises)."""

    def __init__(self, stats=None, error=None):
        self.stats, self.error = stats, error

    def memory_stats(self):
        if self.error is not None:
            raise self.error
        return self.stats


def test_budget_from_memory_stats():
    GiB = 1 << 30
    gpu = _FakeDevice({"bytes_limit": 80 * GiB, "bytes_in_use": 16 * GiB})
    # A quarter of the 64 GiB free is 16 GiB, already a power of two.
    assert hippox.memory_budget(gpu) == 16 * GiB
    # A quarter of 10 GiB free is 2.5 GiB, rounded down to 2 GiB.
    gpu = _FakeDevice({"bytes_limit": 12 * GiB, "bytes_in_use": 2 * GiB})
    assert hippox.memory_budget(gpu) == 2 * GiB
    # Small changes in the memory in use keep the budget (no recompilation).
    gpu = _FakeDevice({"bytes_limit": 12 * GiB, "bytes_in_use": 2 * GiB + 12345})
    assert hippox.memory_budget(gpu) == 2 * GiB
    # An almost full device gets the floor; no bytes_in_use counts as none.
    full = _FakeDevice({"bytes_limit": GiB, "bytes_in_use": GiB - 10})
    assert hippox.memory_budget(full) == kernels.MIN_MEMORY_BUDGET
    assert hippox.memory_budget(_FakeDevice({"bytes_limit": 4 * GiB})) == GiB


@pytest.mark.parametrize(
    "device",
    [_FakeDevice(None), _FakeDevice({}), _FakeDevice(error=NotImplementedError("no stats"))],
)
def test_budget_fallback_without_stats(device):
    assert hippox.memory_budget(device) == kernels.MEMORY_BUDGET == 32 * 2**20


def test_budget_on_the_cpu():
    cpu = jax.devices("cpu")[0]
    assert hippox.memory_budget(cpu) == 32 * 2**20
    if jax.default_backend() == "cpu":
        assert hippox.memory_budget() == 32 * 2**20


def _ref_kernel(Lam, B, C, dt, L):
    """Float64 NumPy: K_l = 2 Re(Σ_m C_m Bb_m Ab_m^l), zoh."""
    x = dt[:, None] * Lam
    Ab = np.exp(x)
    Bb = (Ab - 1) / Lam * B
    powers = Ab[..., None] ** np.arange(L)
    return 2 * np.einsum("hm,hml->hl", C * Bb, powers).real


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_diag_equal_across_budgets(dtype, rng):
    H, M, L = 7, 6, 45
    Lam = -rng.uniform(0.1, 1.0, (H, M)) + 1j * rng.uniform(0, 5, (H, M))
    B = rng.standard_normal((H, M)) + 1j * rng.standard_normal((H, M))
    C = rng.standard_normal((H, M)) + 1j * rng.standard_normal((H, M))
    dt = rng.uniform(0.01, 0.2, H)
    cd = np.complex64 if dtype == np.float32 else np.complex128
    args = (jnp.asarray(Lam, cd), jnp.asarray(B, cd), jnp.asarray(C, cd), jnp.asarray(dt, dtype))
    tiny = hippox.kernel_diag(*args, L, memory_budget=64)  # one channel per group
    huge = hippox.kernel_diag(*args, L, memory_budget=1 << 40)  # all channels at once
    default = hippox.kernel_diag(*args, L)
    assert tiny.dtype == huge.dtype == np.dtype(dtype)
    ref = _ref_kernel(Lam, B, C, dt, L)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    scale = np.abs(ref).max()
    for K in (tiny, huge, default):
        np.testing.assert_allclose(K, ref, atol=tol * scale)
    # Grouping never changes the order of a sum: the budgets agree to rounding.
    np.testing.assert_allclose(tiny, huge, atol=(10 if dtype == np.float32 else 1) * tol * scale)


def test_group_count_follows_the_budget(rng):
    """The budget really changes the grouping: a tiny budget maps, a huge one does not."""
    H, M, L = 5, 4, 16
    args = (
        jnp.asarray(-rng.uniform(0.1, 1, (H, M)) + 0j, jnp.complex64),
        jnp.ones((H, M), jnp.complex64),
        jnp.ones((H, M), jnp.complex64),
        jnp.full((H,), 0.1, jnp.float32),
    )

    def n_maps(budget):
        jaxpr = jax.make_jaxpr(lambda *a: hippox.kernel_diag(*a, L, memory_budget=budget))(*args)
        return str(jaxpr).count("scan[")  # lax.map lowers to a scan

    assert n_maps(64) == 1
    assert n_maps(1 << 30) == 0


def test_memory_budget_argument_checked():
    one = jnp.ones((1, 2), jnp.complex64)
    dt = jnp.ones((1,), jnp.float32)
    with pytest.raises(ValueError, match="`memory_budget`"):
        hippox.kernel_diag(-one, one, one, dt, 4, memory_budget=0)
    with pytest.raises(TypeError, match="`memory_budget`"):
        hippox.kernel_diag(-one, one, one, dt, 4, memory_budget=1.5)
