"""Tests of hippox._src.conv against direct O(L^2) sums, np.convolve and a recurrence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import hippox


def direct_causal(u, K):
    """y[..., l] = Σ_{j<=l} K[..., l-j] u[..., j] (explicit double loop)."""
    u, K = np.broadcast_arrays(u, K)
    y = np.zeros(u.shape)
    L = u.shape[-1]
    for l in range(L):
        for j in range(l + 1):
            y[..., l] += K[..., l - j] * u[..., j]
    return y


def direct_bidirectional(u, Kf, Kb):
    u, Kf, Kb = np.broadcast_arrays(u, Kf, Kb)
    y = np.zeros(u.shape)
    L = u.shape[-1]
    for l in range(L):
        for j in range(L):
            y[..., l] += (Kf[..., l - j] if j <= l else Kb[..., j - l - 1]) * u[..., j]
    return y


@pytest.mark.parametrize("L", [1, 2, 5, 64, 100])
def test_causal_conv_matches_np_convolve(rng, L):
    Bs, H = 2, 3
    u, K, D = rng.standard_normal((Bs, H, L)), rng.standard_normal((H, L)), rng.standard_normal(H)
    y = hippox.causal_conv(u, K, D=D)
    ref = np.array(
        [[np.convolve(u[b, h], K[h])[:L] + D[h] * u[b, h] for h in range(H)] for b in range(Bs)]
    )
    assert y.shape == (Bs, H, L) and y.dtype == np.float64
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(
        hippox.causal_conv(u, K), direct_causal(u, K), rtol=1e-12, atol=1e-12 * np.abs(ref).max()
    )


def test_causal_conv_broadcasting(rng):
    L = 9
    u = rng.standard_normal((4, 1, L))  # (B, 1, L) against K (H, L)
    K = rng.standard_normal((3, L))
    y = hippox.causal_conv(u, K, D=np.float64(0.5))
    ref = direct_causal(u, K) + 0.5 * u
    assert y.shape == (4, 3, L)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    y1 = hippox.causal_conv(u[0, 0], K[0])  # plain 1-D sequences
    np.testing.assert_allclose(y1, np.convolve(u[0, 0], K[0])[:L], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("L", [1, 2, 7, 64])
def test_bidirectional_conv_direct_sum(rng, L):
    H = 3
    u = rng.standard_normal((2, H, L))
    Kf, Kb, D = rng.standard_normal((H, L)), rng.standard_normal((H, L)), rng.standard_normal(H)
    y = hippox.bidirectional_conv(u, Kf, Kb, D=D)
    ref = direct_bidirectional(u, Kf, Kb) + D[:, None] * u
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    # K_bwd = 0 reduces to the causal convolution; K_fwd = 0 to the flipped, shifted one.
    np.testing.assert_allclose(
        hippox.bidirectional_conv(u, Kf, 0 * Kb), hippox.causal_conv(u, Kf), atol=1e-12
    )
    shifted = np.concatenate([np.zeros((H, 1)), Kb[:, :-1]], axis=-1)
    flipped = hippox.causal_conv(u[..., ::-1], shifted)[..., ::-1]
    np.testing.assert_allclose(hippox.bidirectional_conv(u, 0 * Kf, Kb), flipped, atol=1e-12)


def test_causal_conv_equals_recurrence(rng):
    """FFT convolution with the S4D kernel equals the step-by-step recurrence."""
    Bs, H, M, L = 2, 3, 4, 50
    Lam = -rng.uniform(0.1, 1.0, (H, M)) + 1j * rng.standard_normal((H, M)) * 3
    Bv = rng.standard_normal((H, M)) + 1j * rng.standard_normal((H, M))
    C = rng.standard_normal((H, M)) + 1j * rng.standard_normal((H, M))
    dt, D = rng.uniform(0.01, 0.2, H), rng.standard_normal(H)
    u = rng.standard_normal((Bs, H, L))
    # Zero-order hold, written out here (independent of hippox.discretize_diag).
    Ab = np.exp(dt[:, None] * Lam)
    Bb = (Ab - 1) / Lam * Bv

    def step(x, uk):  # x (Bs, H, M), uk (Bs, H)
        x = Ab * x + Bb * uk[..., None]
        return x, 2 * jnp.sum(C * x, axis=-1).real + D * uk

    _, ys = jax.lax.scan(step, jnp.zeros((Bs, H, M), complex), jnp.moveaxis(u, -1, 0))
    ref = np.moveaxis(np.asarray(ys), 0, -1)
    K = hippox.kernel_diag(Lam, Bv, C, dt, L)
    y = hippox.causal_conv(u, K, D=D)
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())


def test_dtypes(rng):
    L = 33
    u, K = rng.standard_normal((2, L)), rng.standard_normal((2, L))
    ref = direct_causal(u, K)
    y32 = hippox.causal_conv(u.astype(np.float32), K.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    ybf = hippox.causal_conv(jnp.asarray(u, jnp.bfloat16), jnp.asarray(K, jnp.bfloat16))
    assert ybf.dtype == jnp.bfloat16  # computed in float32, no silent promotion of the result
    np.testing.assert_allclose(np.asarray(ybf, np.float64), ref, atol=0.05 * np.abs(ref).max())
    yb = hippox.bidirectional_conv(
        u.astype(np.float32), K.astype(np.float32), K.astype(np.float32), D=np.ones(2, np.float32)
    )
    assert yb.dtype == np.float32
    jaxpr = str(jax.make_jaxpr(hippox.causal_conv)(u.astype(np.float32), K.astype(np.float32)))
    assert "f64" not in jaxpr and "c128" not in jaxpr


def test_grads_jit_vmap(rng):
    L, H = 6, 2
    u, K, Kb, D = (
        rng.standard_normal((H, L)),
        rng.standard_normal((H, L)),
        rng.standard_normal((H, L)),
        rng.standard_normal(H),
    )
    check_grads(lambda u, K, D: hippox.causal_conv(u, K, D=D), (u, K, D), order=1, modes=["rev"])
    check_grads(
        lambda u, K, Kb: hippox.bidirectional_conv(u, K, Kb), (u, K, Kb), order=1, modes=["rev"]
    )
    y = hippox.causal_conv(u, K, D=D)
    np.testing.assert_allclose(jax.jit(hippox.causal_conv)(u, K, D=D), y, atol=1e-13)
    np.testing.assert_allclose(
        jax.vmap(lambda a, b, d: hippox.causal_conv(a, b, D=d))(u, K, D), y, atol=1e-13
    )


def test_errors(rng):
    u, K = rng.standard_normal((2, 3, 8)), rng.standard_normal((3, 8))
    with pytest.raises(ValueError, match="`K` must have the length of `u`"):
        hippox.causal_conv(u, K[:, :5])
    with pytest.raises(ValueError, match="`K` must have leading axes that broadcast"):
        hippox.causal_conv(u, rng.standard_normal((4, 8)))
    with pytest.raises(ValueError, match="`D` must broadcast"):
        hippox.causal_conv(u, K, D=np.ones(5))
    with pytest.raises(TypeError, match="`u` must be a real array"):
        hippox.causal_conv(u + 1j, K)
    with pytest.raises(ValueError, match="`u` must have shape"):
        hippox.causal_conv(np.float64(1.0), K)
    with pytest.raises(ValueError, match="`K_bwd` must have the length of `u`"):
        hippox.bidirectional_conv(u, K, K[:, :7])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channel_last_conv_equals_causal_conv(rng, dtype):
    """The layers' channel-last path: the same numbers as `causal_conv` on the transposed
    input (float64 NumPy direct sum as the reference), non-finite policy included."""
    from hippox._src.conv import causal_conv_channels_last

    B, L, H = 3, 37, 5
    u = rng.standard_normal((B, L, H))
    K = rng.standard_normal((H, L))
    D = rng.standard_normal(H)
    u[1, 20, 2] = np.nan  # sequence 1, channel 2: NaN from l = 20 on, earlier exact
    u[2, 30, 4] = np.inf
    K[3, 25] = np.nan  # channel 3 of every sequence: NaN from l = 25 on
    want = np.empty((B, L, H))
    for b in range(B):
        for h in range(H):
            uf, kf = np.nan_to_num(u[b, :, h], posinf=0.0), np.nan_to_num(K[h])
            want[b, :, h] = np.convolve(uf, kf)[:L] + D[h] * uf
    want[1, 20:, 2] = want[2, 30:, 4] = np.nan
    want[:, 25:, 3] = np.nan
    args = [jnp.asarray(a, dtype) for a in (u, K, D)]
    got = causal_conv_channels_last(*args)
    plain = jnp.swapaxes(
        hippox.causal_conv(jnp.swapaxes(args[0], -1, -2), args[1], D=args[2]), -1, -2
    )
    assert got.dtype == np.dtype(dtype) and got.shape == (B, L, H)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, atol=tol * np.nanmax(np.abs(want)))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, plain, atol=tol * np.nanmax(np.abs(want)))
    no_skip = causal_conv_channels_last(args[0], args[1], None)
    np.testing.assert_allclose(
        no_skip + args[2] * jnp.nan_to_num(args[0], posinf=0.0),
        got,
        atol=tol * np.nanmax(np.abs(want)),
    )
