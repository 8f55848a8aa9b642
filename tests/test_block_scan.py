"""The FFT-free block form of a diagonal SSM equals the step recurrence and the FFT path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hippox


def _system(rng, H=3, M=5, dtype=np.float64):
    Lam = -rng.uniform(0.05, 1.0, (H, M)) + 1j * rng.standard_normal((H, M))
    B = rng.standard_normal((H, M)) + 1j * rng.standard_normal((H, M))
    C = rng.standard_normal((H, M)) + 1j * rng.standard_normal((H, M))
    cd = np.complex128 if dtype == np.float64 else np.complex64
    p = hippox.diag_step_params(
        jnp.asarray(Lam, cd),
        jnp.asarray(B, cd),
        jnp.asarray(C, cd),
        jnp.asarray(rng.uniform(0.01, 0.3, H), dtype),
        jnp.asarray(rng.standard_normal(H), dtype),
    )
    return p


def _reference(p, u, x0):
    """Float64 NumPy loop over x_l = Ab x_{l-1} + Bb u_l, y_l = Re(C x_l) + D u_l."""
    Ab, Bb, C, D = (np.asarray(a) for a in p)
    x = np.broadcast_to(np.asarray(x0), u.shape[:-1] + Ab.shape[-1:]).astype(complex)
    ys = []
    for l in range(u.shape[-1]):
        x = Ab * x + Bb * u[..., l, None]
        ys.append((C * x).sum(-1).real + D * u[..., l])
    return np.stack(ys, -1), x


@pytest.mark.parametrize("L,T", [(37, 8), (64, 16), (5, 8), (40, 40), (41, 1)])
def test_equals_recurrence_float64(L, T, rng):
    p = _system(rng)
    u = rng.standard_normal((2, 3, L))
    x0 = rng.standard_normal((2, 3, 5)) + 1j * rng.standard_normal((2, 3, 5))
    y_ref, x_ref = _reference(p, u, x0)
    y, x = hippox.block_scan_diag(p, u, x0, block=T)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(x, x_ref, rtol=1e-10, atol=1e-10)
    y0, x0_out = hippox.block_scan_diag(p, u, block=T)
    y0_ref, x0_ref = _reference(p, u, np.zeros((3, 5)))
    np.testing.assert_allclose(y0, y0_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(x0_out, x0_ref, rtol=1e-10, atol=1e-10)


def test_float32_equals_fft_path(rng):
    p = _system(rng, H=4, M=8, dtype=np.float32)
    u = jnp.asarray(rng.standard_normal((3, 4, 300)), jnp.float32)
    y, x = hippox.block_scan_diag(p, u)
    y_fft, x_fft = hippox.forward_chunk_diag(p, u, implementation="fft")
    assert y.dtype == jnp.float32 and x.dtype == jnp.complex64
    scale = float(jnp.max(jnp.abs(y_fft)))
    np.testing.assert_allclose(y, y_fft, atol=2e-5 * scale)
    np.testing.assert_allclose(x, x_fft, atol=2e-5 * float(jnp.max(jnp.abs(x_fft))))


def test_chunks_compose_and_transforms(rng):
    p = _system(rng, H=2, M=3)
    u = jnp.asarray(rng.standard_normal((2, 2, 30)))
    y, x = hippox.block_scan_diag(p, u, block=8)
    y1, x1 = hippox.block_scan_diag(p, u[..., :13], block=8)
    y2, x2 = hippox.block_scan_diag(p, u[..., 13:], x1, block=8)
    np.testing.assert_allclose(jnp.concatenate([y1, y2], -1), y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(x2, x, rtol=1e-10, atol=1e-10)
    f = jax.jit(lambda u: hippox.block_scan_diag(p, u, block=8)[0])
    np.testing.assert_allclose(f(u), y, rtol=1e-12, atol=1e-12)
    yv = jax.vmap(lambda v: hippox.block_scan_diag(p, v, block=8)[0])(u)
    np.testing.assert_allclose(yv, y, rtol=1e-12, atol=1e-12)
    g = jax.grad(lambda u: jnp.sum(hippox.block_scan_diag(p, u, block=8)[0] ** 2))(u)
    g_ref = jax.grad(
        lambda u: jnp.sum(hippox.forward_chunk_diag(p, u, implementation="fft")[0] ** 2)
    )(u)
    np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-9)


def test_bad_input(rng):
    p = _system(rng, H=2, M=3)
    with pytest.raises(TypeError, match="`params`"):
        hippox.block_scan_diag(tuple(p), jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="`u`"):
        hippox.block_scan_diag(p, jnp.ones((3, 5)))
    with pytest.raises(ValueError, match="`block`"):
        hippox.block_scan_diag(p, jnp.ones((2, 5)), block=0)
    with pytest.raises(TypeError, match="`u`"):
        hippox.block_scan_diag(p, jnp.ones((2, 5)) + 1j)


def test_core_lengths_channels_and_non_finite(rng):
    """The layers' core: output rows, the state after each sequence's length, NaN policy."""
    from hippox._src.block_scan import diag_block_forward

    p = _system(rng, H=2, M=3)
    Ab, Bb, C, D = p
    C2 = jnp.stack([C, 0.5j * C])  # two output rows
    D2 = jnp.stack([D, -D])
    u = rng.standard_normal((4, 2, 21))
    x0 = rng.standard_normal((4, 2, 3)) + 1j * rng.standard_normal((4, 2, 3))
    lengths = np.array([21, 0, 8, 13])  # all, none, a block boundary, mid-block
    y, x = diag_block_forward(
        Ab, Bb, C2, D2, jnp.asarray(u), jnp.asarray(x0), jnp.asarray(lengths), T=8, need_state=True
    )
    for c in range(2):
        pc = hippox.DiagStepParams(Ab, Bb, C2[c], D2[c])
        y_ref, _ = _reference(pc, u, x0)
        np.testing.assert_allclose(y[:, c], y_ref, rtol=1e-10, atol=1e-10)
    for b, n in enumerate(lengths):
        x_ref = _reference(p, u[b, :, :n], x0[b])[1] if n else x0[b]
        np.testing.assert_allclose(x[b], x_ref, rtol=1e-10, atol=1e-10)
    u[2, 1, 5] = np.nan  # within sequence 2's 8 valid steps, channel 1
    u[3, 0, 15] = np.inf  # after sequence 3's 13 valid steps: its state stays finite
    y, x = diag_block_forward(
        Ab, Bb, C2, D2, jnp.asarray(u), jnp.asarray(x0), jnp.asarray(lengths), T=8, need_state=True
    )
    assert np.isnan(y[2, :, 1, 5:]).all() and np.isfinite(y[2, :, 1, :5]).all()
    assert np.isfinite(y[2, :, 0]).all() and np.isnan(y[3, :, 0, 15:]).all()
    y_ref, _ = _reference(p, u[2, :, :5], x0[2])
    np.testing.assert_allclose(y[2, 0, :, :5], y_ref, rtol=1e-10, atol=1e-10)
    assert np.isnan(x[2, 1]).all() and np.isfinite(x[2, 0]).all() and np.isfinite(x[3]).all()
