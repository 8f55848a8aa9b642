"""The S4D layer's FFT-free block path equals its FFT path (and chunked processing likewise)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hippox

TOL = {np.float32: 1e-5, np.float64: 1e-10}


def _pair(dtype=np.float32, **options):
    """(fft config, block config, params) of one S4D layer with the given options."""
    H, N = options.pop("H", 3), options.pop("N", 8)
    fft = hippox.S4DConfig(H, N, implementation="fft", **options)
    blk = dataclasses.replace(fft, implementation="block")
    params = fft.init_params(jax.random.key(7), param_dtype=dtype)
    # Non-zero D and C_bwd, and timescales that make the state matter over the sequence.
    params = {k: v + 0.3 if k == "D" else v for k, v in params.items()}
    return fft, blk, params


def _close(a, b, dtype, scale=None):
    a, b = np.asarray(a), np.asarray(b)
    scale = np.abs(b).max() if scale is None else scale
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL[dtype] * max(scale, 1e-30))


SLOW = pytest.mark.slow
CASES = [  # (options, dtype): one fast case per option set, the other dtype marked slow
    ({}, np.float32),
    pytest.param({}, np.float64, marks=SLOW),
    ({"disc": "bilinear", "channels": 2}, np.float64),
    pytest.param({"disc": "bilinear", "channels": 2}, np.float32, marks=SLOW),
    pytest.param({"bidirectional": True}, np.float32, marks=SLOW),
    pytest.param({"bidirectional": True}, np.float64, marks=SLOW),  # also in test_grad
    ({"conj_sym": False, "dt_tie": False, "bandlimit": 0.3, "n_ssm": 1}, np.float32),
    pytest.param(
        {"conj_sym": False, "dt_tie": False, "bandlimit": 0.3, "n_ssm": 1}, np.float64, marks=SLOW
    ),
]


@pytest.mark.parametrize("options,dtype", CASES)
def test_forward_equals_fft(options, dtype, rng):
    fft, blk, params = _pair(dtype, **options)
    u = jnp.asarray(rng.standard_normal((2, 150, 3)), dtype)  # L = 150: blocks of 64, padded
    y_fft = jax.jit(lambda p, u: fft.apply(p, u, step_rescale=0.7))(params, u)
    y_blk = jax.jit(lambda p, u: blk.apply(p, u, step_rescale=0.7))(params, u)
    assert y_blk.dtype == y_fft.dtype == np.dtype(dtype)
    assert y_blk.shape == y_fft.shape == (2, 150, fft.features_out)
    _close(y_blk, y_fft, dtype)


def _reference(cfg, params, u, x0, lengths):
    """Float64 NumPy step loop over each sequence's valid part (the layer's step mode)."""
    sp = cfg.step_params(params)
    Ab, Bb, C, D = (np.asarray(a, complex if np.iscomplexobj(a) else float) for a in sp)
    ys = np.zeros(u.shape)
    xs = np.array(x0, complex)
    for b in range(u.shape[0]):
        x = xs[b]
        for l in range(lengths[b]):
            x = Ab * x + Bb * u[b, l][:, None]
            ys[b, l] = (C * x).sum(-1).real + D * u[b, l]
        xs[b] = x
    return ys, xs


@pytest.mark.parametrize("dtype", [pytest.param(np.float32, marks=SLOW), np.float64])
def test_padded_with_carry_equals_fft_and_steps(dtype, rng):
    fft, blk, params = _pair(dtype, N=6)
    B, L = 4, 140
    u = rng.standard_normal((B, L, 3))
    lengths = np.array([140, 0, 64, 77])  # full, empty, a block boundary, mid-block
    x0 = rng.standard_normal((B, 3, 3)) + 1j * rng.standard_normal((B, 3, 3))
    cd = np.complex64 if dtype == np.float32 else np.complex128
    args = (params, jnp.asarray(u, dtype))
    kw = dict(seq_lengths=jnp.asarray(lengths), initial_state=jnp.asarray(x0, cd))
    x_fft, y_fft = jax.jit(lambda p, u: fft.apply(p, u, **kw, return_state=True))(*args)
    x_blk, y_blk = jax.jit(lambda p, u: blk.apply(p, u, **kw, return_state=True))(*args)
    # Each path is within TOL of the float64 step loop, so within 2 TOL of the other.
    p64 = {k: np.asarray(v, np.float64) for k, v in params.items()}
    y_ref, x_ref = _reference(fft, p64, u, x0, lengths)
    _close(y_blk, y_ref, dtype)
    _close(x_blk, x_ref, dtype)
    _close(y_blk, y_fft, dtype, scale=2 * np.abs(y_ref).max())
    _close(x_blk, x_fft, dtype, scale=2 * np.abs(x_ref).max())
    assert np.all(np.asarray(y_blk)[1] == 0) and np.all(np.asarray(y_blk)[2, 64:] == 0)


def test_chunks_with_carry_equal_one_call(rng):
    fft, blk, params = _pair(np.float64)
    u = jnp.asarray(rng.standard_normal((2, 300, 3)))
    y_one = fft.apply(params, u)
    x, ys = None, []
    for piece in (u[:, :100], u[:, 100:290], u[:, 290:]):  # lengths 100, 190, 10
        x, y = blk.apply(params, piece, initial_state=x, return_state=True)
        ys.append(y)
    _close(jnp.concatenate(ys, axis=1), y_one, np.float64)
    x_fft, _ = fft.apply(params, u, return_state=True)
    _close(x, x_fft, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, pytest.param(np.float64, marks=SLOW)])
def test_grad_equals_fft(dtype, rng):
    fft, blk, params = _pair(dtype, bidirectional=True)
    u = jnp.asarray(rng.standard_normal((2, 130, 3)), dtype)
    w = jnp.asarray(rng.standard_normal((2, 130, 3)), dtype)

    def loss(cfg):
        return jax.jit(jax.grad(lambda p, u: jnp.sum(w * jnp.tanh(cfg.apply(p, u))), (0, 1)))

    (gp_fft, gu_fft), (gp_blk, gu_blk) = loss(fft)(params, u), loss(blk)(params, u)
    _close(gu_blk, gu_fft, dtype)
    for name in params:
        _close(gp_blk[name], gp_fft[name], dtype, scale=np.abs(gp_fft[name]).max() + 1e-3)


@SLOW
def test_vmap_and_jit(rng):
    _, blk, params = _pair(np.float64)
    u = jnp.asarray(rng.standard_normal((3, 70, 3)))
    y = blk.apply(params, u)
    np.testing.assert_allclose(jax.vmap(lambda v: blk.apply(params, v))(u), y, atol=1e-12)
    np.testing.assert_allclose(jax.jit(blk.apply)(params, u), y, atol=1e-12)


def test_non_finite_policy_matches_fft(rng):
    fft, blk, params = _pair(np.float64)
    u = rng.standard_normal((2, 100, 3))
    u[0, 40, 1] = np.nan  # sequence 0, channel 1, in the middle of the first block
    u[1, 90, 2] = np.inf
    u = jnp.asarray(u)
    x_fft, y_fft = fft.apply(params, u, return_state=True)
    x_blk, y_blk = blk.apply(params, u, return_state=True)
    nan = np.isnan(np.asarray(y_fft))
    np.testing.assert_array_equal(np.isnan(np.asarray(y_blk)), nan)
    assert nan[0, 40:, 1].all() and not nan[0, :40, 1].any() and not nan[0, :, 0].any()
    np.testing.assert_allclose(np.where(nan, 0, y_blk), np.where(nan, 0, y_fft), atol=1e-10)
    assert np.isnan(x_blk[0, 1]).all() and np.isnan(x_blk[1, 2]).all()
    assert np.isfinite(x_blk[0, 0]).all()
    assert not np.isfinite(x_fft[0, 1]).any()
    # Bidirectional: the channel with a non-finite sample is NaN everywhere, as with the FFT.
    fft2, blk2, params2 = _pair(np.float64, bidirectional=True)
    y2 = np.asarray(blk2.apply(params2, u))
    np.testing.assert_array_equal(np.isnan(y2), np.isnan(np.asarray(fft2.apply(params2, u))))
    assert np.isnan(y2[0, :, 1]).all() and not np.isnan(y2[0, :, 0]).any()


def test_auto_rule_and_dss():
    rule = hippox.diag_implementation
    assert rule(127, 32, state=True, backend="cpu") == "fft"
    assert rule(128, 32, state=True, backend="cpu") == "block"
    assert rule(4096, 32, backend="cpu") == rule(4096, 32, backend="gpu") == "fft"
    assert rule(4096, 32, backend="tpu") == "block" and rule(100, 32, backend="tpu") == "fft"
    assert rule(4096, 32, state=True, implementation="fft") == "fft"
    assert rule(10, 32, implementation="block") == "block"
    cfg = hippox.S4DConfig(2, 4)
    assert cfg.implementation == "auto"
    assert cfg._use_block(256, True) == (rule(256, 2, state=True) == "block")
    assert not hippox.S4DConfig(2, 4, disc="dss")._use_block(4096, True)  # dss: FFT
    with pytest.raises(ValueError, match="`implementation`.*dss"):
        hippox.S4DConfig(2, 4, disc="dss", implementation="block")
    with pytest.raises(ValueError, match="`implementation`"):
        hippox.S4DConfig(2, 4, implementation="conv")
    with pytest.raises(ValueError, match="`implementation`"):
        hippox.diag_implementation(100, 4, implementation="Block")


def test_forward_chunk_diag_implementation(rng):
    Lam = -rng.uniform(0.1, 1, (3, 4)) + 1j * rng.standard_normal((3, 4))
    p = hippox.diag_step_params(
        jnp.asarray(Lam),
        jnp.ones((3, 4)) + 0j,
        jnp.asarray(rng.standard_normal((3, 4)) + 0j),
        jnp.full((3,), 0.1),
        jnp.ones(3),
    )
    u = jnp.asarray(rng.standard_normal((2, 3, 300)))
    x0 = jnp.asarray(rng.standard_normal((2, 3, 4)) + 0j)
    y_f, x_f = hippox.forward_chunk_diag(p, u, x0, implementation="fft")
    for path in ("block", "auto"):
        y_b, x_b = hippox.forward_chunk_diag(p, u, x0, implementation=path)
        _close(y_b, y_f, np.float64)
        _close(x_b, x_f, np.float64)
    with pytest.raises(ValueError, match="`implementation`"):
        hippox.forward_chunk_diag(p, u, implementation="scan")


@SLOW
def test_wrappers_pass_implementation():
    nnx = pytest.importorskip("flax.nnx")
    from hippox import linen as hlinen
    from hippox import nnx as hnnx

    layer = hnnx.S4D(2, 4, implementation="block", rngs=nnx.Rngs(0))
    assert layer.config.implementation == "block"
    u = jnp.ones((1, 300, 2))
    module = hlinen.S4D(2, 4, implementation="fft")
    variables = module.init(jax.random.key(0), u)
    assert module.config.implementation == "fft"
    y_fft = module.apply(variables, u)
    y_blk = hlinen.S4D(2, 4, implementation="block").apply(variables, u)
    np.testing.assert_allclose(y_blk, y_fft, atol=1e-5 * float(jnp.abs(y_fft).max()))
