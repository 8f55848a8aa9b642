"""Tests of hippox/_src/chunked.py: chunks with a carried state equal one long run.

References are the independent float64 NumPy systems of tests/step_refs.py, run through
an explicit Python loop, and `hippox.scan_steps` (the step-by-step recurrence).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from step_refs import (
    BSZ,
    TOL,
    H,
    L,
    M,
    cast,
    np_diag_disc,
    np_dplr_ref,
    np_run,
    rand_diag,
    rand_dplr,
    rand_state,
    rel_err,
)

import hippox

CHUNKS = [7, 1, 7, 9]  # uneven (and few distinct lengths, to compile less), sum 24


def _make(rng, form, dtype):
    """(params, chunk function, NumPy reference run(u, x0=None) -> (y, x))."""
    if form == "diag":
        Lam, B, C, dt, D = rand_diag(rng, H, M, dtype)
        p = hippox.diag_step_params(Lam, B, C, dt, D)
        Ab, Bb = np_diag_disc(Lam, B, dt, "zoh")
        run = functools.partial(np_run, Ab, Bb, C, D, scale=2.0)
        return p, hippox.forward_chunk_diag, lambda u, x0=None: run(u, x0)
    if form in ("dplr", "dplr_full"):
        conj_sym = form == "dplr"
        Lam, P, B, C, dt, D = rand_dplr(rng, H, M, 2, dtype)
        p = hippox.dplr_step_dense_params(Lam, P, B, C, dt, D, conj_sym=conj_sym)
        return p, hippox.forward_chunk_dense, np_dplr_ref(Lam, P, B, C, D, dt, conj_sym)[0]
    Ab = rng.normal(size=(H, M, M))
    Ab = 0.95 * Ab / np.linalg.norm(Ab, 2, axis=(1, 2))[:, None, None]
    Bb, C, D = rng.normal(size=(H, M)), rng.normal(size=(H, M)), rng.normal(size=H)
    Ab, Bb, C, D = (cast(a, dtype) for a in (Ab, Bb, C, D))
    run = functools.partial(np_run, Ab, Bb, C, D)
    return hippox.dense_step_params(Ab, Bb, C, D), hippox.forward_chunk_dense, run


@pytest.mark.parametrize(
    "form, dtype",
    [(f, np.float64) for f in ("diag", "dplr", "dplr_full", "dense")]
    + [("diag", np.float32), ("dplr", np.float32)],
)
def test_chunks_with_carried_state(rng, form, dtype):
    p, chunk_fn, run = _make(rng, form, dtype)
    assert sum(CHUNKS) == L
    u = cast(rng.normal(size=(BSZ, H, L)), dtype)
    x0 = (
        rand_state(rng, (BSZ, H, M), dtype)
        if jnp.iscomplexobj(p.Bb)
        else cast(rng.normal(size=(BSZ, H, M)), dtype)
    )
    y_ref, x_ref = run(u, x0)
    # compiled once per chunk length (op-by-op, every primitive compiled on its own per
    # shape); eager equals jit in test_chunk_jit_and_vmap
    chunk_fn = jax.jit(chunk_fn)
    # one long call
    y_one, x_one = chunk_fn(p, u, x0)
    assert y_one.dtype == dtype and x_one.dtype == p.Bb.dtype
    assert rel_err(y_one, y_ref) < TOL[dtype]
    assert rel_err(x_one, x_ref) < TOL[dtype]
    # uneven chunks, carrying the state
    x, ys, start = jnp.asarray(x0), [], 0
    for n in CHUNKS:
        y_c, x = chunk_fn(p, u[..., start : start + n], x)
        ys.append(y_c)
        start += n
    assert rel_err(jnp.concatenate(ys, -1), y_ref) < TOL[dtype]
    assert rel_err(x, x_ref) < TOL[dtype]
    # the step-by-step recurrence
    y_s, x_s = jax.jit(hippox.scan_steps)(p, u, x0)
    assert rel_err(y_s, y_one) < TOL[dtype]
    assert rel_err(x_s, x_one) < TOL[dtype]


@pytest.mark.parametrize("form", ["diag", "dplr", "dense"])
def test_chunk_without_state_is_the_convolution(rng, form):
    """x0=None (zeros), a state without batch axes, and broadcasting of batch shapes."""
    p, chunk_fn, run = _make(rng, form, np.float64)
    u = rng.normal(size=(BSZ, H, L))
    y, x = chunk_fn(p, u)
    y_ref, x_ref = run(u)
    assert y.shape == (BSZ, H, L) and x.shape == (BSZ, H, M)
    assert rel_err(y, y_ref) < 1e-10 and rel_err(x, x_ref) < 1e-10
    x0 = np.asarray(hippox.init_state(p)) + rng.normal(size=(H, M))  # shared by the batch
    y, x = chunk_fn(p, u, x0)
    y_ref, x_ref = run(u, x0)
    assert rel_err(y, y_ref) < 1e-10 and rel_err(x, x_ref) < 1e-10


@pytest.mark.parametrize("Lc", [1, pytest.param(16, marks=pytest.mark.slow), 33])
@pytest.mark.parametrize("form", ["diag", "dplr"])
def test_chunk_lengths(rng, form, Lc):
    """Chunk lengths at and around powers of two (the dense Krylov doubling) and L = 1."""
    p, chunk_fn, run = _make(rng, form, np.float64)
    u = rng.normal(size=(H, Lc))
    x0 = rand_state(rng, (H, M), np.float64)
    y, x = jax.jit(chunk_fn)(p, u, x0)
    y_ref, x_ref = run(u, x0)
    assert rel_err(y, y_ref) < 1e-10 and rel_err(x, x_ref) < 1e-10


def test_chunk_jit_and_vmap(rng):
    Lam, P, B, C, dt, D = rand_dplr(rng, H, M, 1)
    u = rng.normal(size=(BSZ, H, L))
    x0 = rand_state(rng, (BSZ, H, M), np.float64)
    pdiag = hippox.diag_step_params(Lam, B, C, dt, D)
    pdense = hippox.dplr_step_dense_params(Lam, P, B, C, dt, D)
    for chunk_fn, p in [(hippox.forward_chunk_diag, pdiag), (hippox.forward_chunk_dense, pdense)]:
        y_e, x_e = chunk_fn(p, u, x0)
        y_j, x_j = jax.jit(chunk_fn)(p, u, x0)
        y_v, x_v = jax.jit(jax.vmap(chunk_fn, in_axes=(None, 0, 0)))(p, u, x0)
        for a, b in [(x_j, x_e), (y_j, y_e), (x_v, x_e), (y_v, y_e)]:
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)


def _split(z):
    return np.real(z), np.imag(z)


def assert_same_grads(loss, args, flag: str):
    """The gradients of ``loss(*args, flag=True)`` and ``flag=False`` are finite and agree."""
    grads = [
        jax.jit(jax.grad(functools.partial(loss, **{flag: v}), argnums=range(len(args))))(*args)
        for v in (True, False)
    ]
    for a, b in zip(*grads, strict=True):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_grads_diag_chunk_and_step(rng):
    Hs, Ms, Ls = 2, 2, 6
    Lam, B, C, dt, D = rand_diag(rng, Hs, Ms)
    u = rng.normal(size=(Hs, Ls))
    x0 = rand_state(rng, (Hs, Ms), np.float64)

    def loss(lr, li, br, ci, dt, x0r, chunk):
        p = hippox.diag_step_params(lr + 1j * li, br + 0j, ci + 1j, dt, D)
        if chunk:
            y, x = hippox.forward_chunk_diag(p, u, x0r + 0.5j)
        else:
            y, x = hippox.scan_steps(p, u, x0r + 0.5j)
        return jnp.sum(y**2) + jnp.sum(jnp.abs(x) ** 2)

    args = (*_split(Lam), B.real, C.real, dt, x0.real)
    f_chunk = jax.jit(functools.partial(loss, chunk=True))
    check_grads(f_chunk, args, order=1, modes=["rev"], eps=1e-6)
    # the chunked (FFT + Vandermonde) gradient equals the step-by-step one
    assert_same_grads(loss, args, "chunk")


def test_grads_dplr_linear_and_dense_chunk(rng):
    Hs, Ms, Ls = 2, 3, 5
    Lam, P, B, C, dt, D = rand_dplr(rng, Hs, Ms, 1)
    u = rng.normal(size=(Hs, Ls))

    def loss(pr, pi, dt, linear):
        if linear:
            y, _ = hippox.scan_steps(
                hippox.dplr_step_linear_params(Lam, pr + 1j * pi, B, C, dt, D), u
            )
        else:
            y, _ = hippox.forward_chunk_dense(
                hippox.dplr_step_dense_params(Lam, pr + 1j * pi, B, C, dt, D), u
            )
        return jnp.sum(jnp.sin(y))

    args = (*_split(P), dt)
    check_grads(
        jax.jit(functools.partial(loss, linear=True)), args, order=1, modes=["rev"], eps=1e-6
    )
    # the dense closed-system chunk gives the same gradient as the Woodbury step
    assert_same_grads(loss, args, "linear")


def test_chunk_errors(rng):
    Lam, P, B, C, dt, D = rand_dplr(rng, 2, 3, 1)
    p = hippox.diag_step_params(Lam, B, C, dt, D)
    with pytest.raises(TypeError, match="must be a DenseStepParams"):
        hippox.forward_chunk_dense(p, np.ones((2, 4)))
    with pytest.raises(ValueError, match="length L >= 1"):
        hippox.forward_chunk_diag(p, np.ones((2, 0)))
    with pytest.raises(ValueError, match=r"`u` must have shape \(\.\.\., H, L\)"):
        hippox.forward_chunk_diag(p, np.ones((3, 4)))
