"""The DPLR free response through the Cauchy kernel equals the dense closed-system response."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hippox
from hippox._src.dplr_state import dplr_free_response

# compiled once per case (op-by-op, every primitive was compiled on its own)
_free_response = jax.jit(dplr_free_response, static_argnums=5, static_argnames="conj_sym")


@pytest.mark.parametrize("conj_sym", [True, False])
@pytest.mark.parametrize("rank", [1, 2])
def test_free_response_equals_dense_recurrence(conj_sym, rank, rng):
    H, M, L, n = 3, 4, 11, 2
    cplx = lambda *s: rng.standard_normal(s) + 1j * rng.standard_normal(s)
    Lam = -rng.uniform(0.2, 1.0, (H, M)) + 1j * rng.standard_normal((H, M))
    P = 0.5 * cplx(rank, H, M)
    C = cplx(H, M)
    dt = rng.uniform(0.05, 0.5, H)
    x0 = cplx(n, H, M)
    y = _free_response(Lam, P, C, dt, x0, L, conj_sym=conj_sym)
    # Independent float64 reference: the closed (or plain) dense bilinear system in NumPy.
    if conj_sym:
        Lf, Pf, Cf = (np.concatenate([a, a.conj()], -1) for a in (Lam, P, C))
        xf = np.concatenate([x0, x0.conj()], -1)
    else:
        Lf, Pf, Cf, xf = Lam, P, C, x0
    ref = np.zeros((n, H, L))
    for h in range(H):
        A = np.diag(Lf[h]) - Pf[:, h].T @ Pf[:, h].conj()
        eye = np.eye(A.shape[0])
        Ab = np.linalg.solve(eye - dt[h] / 2 * A, eye + dt[h] / 2 * A)
        x = xf[:, h].T
        for l in range(L):
            x = Ab @ x
            ref[:, h, l] = (Cf[h] @ x).real
    assert y.shape == (n, H, L)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-9, atol=1e-9)


def test_matches_chunked_dense_float32(rng):
    Lam, P, B, _ = hippox.nplr("legs", 8)
    H = 2
    Lam = jnp.broadcast_to(Lam, (H, 4))
    P = jnp.broadcast_to(P[:, None], (1, H, 4))
    B = jnp.broadcast_to(B, (H, 4))
    C = jnp.asarray(rng.standard_normal((H, 4)) + 1j * rng.standard_normal((H, 4)), jnp.complex64)
    dt = jnp.asarray([0.01, 0.1], jnp.float32)
    x0 = jnp.asarray(rng.standard_normal((3, H, 4)) + 1j * rng.standard_normal((3, H, 4)))
    x0 = x0.astype(jnp.complex64)
    sp = jax.jit(hippox.dplr_step_dense_params)(Lam, P, B, C, dt)
    y_dense, _ = jax.jit(hippox.forward_chunk_dense)(sp, jnp.zeros((3, H, 16), jnp.float32), x0)
    y = _free_response(Lam, P, C, dt, x0, 16)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, y_dense, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(y))))


def test_bad_state_shape():
    Lam = -jnp.ones((2, 3)) + 0j
    with pytest.raises(ValueError, match="`x0`"):
        dplr_free_response(Lam, jnp.zeros((1, 2, 3)) + 0j, Lam, jnp.ones(2), jnp.ones((2, 4)), 5)
