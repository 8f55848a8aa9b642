"""Tests of `hippox.Hippo`, the original hippox (v0.0.4) API.

The decompositions are checked against the dense matrices of `hippox.transition` and
`hippox.rank_correction` (identity ``A = V (Λ - P̃ᵀ conj P̃) V⁻¹`` and, for unitary V,
``A = 2 Re(V Λ V*) - PᵀP``), the diagonal spectra against their closed forms, and the
initializers by running the README's usage patterns in Haiku and Equinox, plus Flax
linen.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import linalg as sla

import hippox
from hippox.main import Hippo

DENSE = [m for m in hippox.HIPPO_MEASURES if m not in ("linear", "inverse")]
_CANONICAL = {"fourier": "fout", "fourier_diag": "foud", "fourier_double": "fourier2"}
UNITARY = [m for m in DENSE if _CANONICAL.get(m, m) in hippox.NPLR_MEASURES]


def _dense(measure, N):
    A, B = hippox.transition(_CANONICAL.get(measure, measure), N, dtype=np.float64)
    return np.asarray(A), np.asarray(B)


def _full(params, conj_sym):
    """(Λ, V, V⁻¹, P̃) of the full, conjugate-closed system."""
    Lam = np.asarray(params.state_matrix)
    V, Vinv = (np.asarray(x) for x in params.eigenvector_pair)
    P = np.asarray(params.low_rank_term)
    if conj_sym:
        Lam = np.concatenate([Lam, Lam.conj()])
        V = np.concatenate([V, V.conj()], axis=1)
        Vinv = np.concatenate([Vinv, Vinv.conj()], axis=0)
        P = np.concatenate([P, P.conj()], axis=1)
    return Lam, V, Vinv, P


# ------------------------------------------------------------------- decompositions


@pytest.mark.parametrize("measure", DENSE)
@pytest.mark.parametrize("conj_sym", [False, True])
@pytest.mark.parametrize("N", [2, 8, 16])
def test_diagonalised_reconstructs_dense_matrix(measure, conj_sym, N):
    A, B = _dense(measure, N)
    params = Hippo(state_size=N, measure=measure, conj_sym=conj_sym, dtype=np.float64)()
    M = N // 2 if conj_sym else N
    assert params.state_matrix.shape == (M,)
    assert params.input_matrix.shape == (M,)
    assert params.eigenvector_pair.V.shape == (N, M)
    assert params.eigenvector_pair.V_inv.shape == (M, N)
    assert params.state_matrix.dtype == jnp.complex128
    Lam, V, Vinv, P = _full(params, conj_sym)
    scale = max(1.0, np.abs(A).max())
    np.testing.assert_allclose(Vinv @ V, np.eye(N), atol=1e-10)
    np.testing.assert_allclose(V @ (np.diag(Lam) - P.T @ P.conj()) @ Vinv, A, atol=1e-10 * scale)
    np.testing.assert_allclose(np.asarray(params.input_matrix), (Vinv @ B)[:M], atol=1e-10 * scale)
    # Half layout: Im <= 0, conjugates follow in the same order.
    assert np.all(Lam[: N // 2].imag <= 1e-12)
    if not conj_sym:
        np.testing.assert_allclose(Lam[N // 2 :], Lam[: N // 2].conj())


@pytest.mark.parametrize("measure", UNITARY)
@pytest.mark.parametrize("N", [4, 10])
def test_unitary_identity_with_rank_correction(measure, N):
    """A = 2 Re(V Λ V*) - PᵀP, with P from hippox.rank_correction (conj_sym halves)."""
    A, B = _dense(measure, N)
    name = _CANONICAL.get(measure, measure)
    rank = 2 if name == "legt" else 1
    P = np.asarray(hippox.rank_correction(name, N, rank=rank, dtype=np.float64))
    params = Hippo(N, measure, conj_sym=True, dtype=np.float64)()
    Lam = np.asarray(params.state_matrix)
    V, Vinv = (np.asarray(x) for x in params.eigenvector_pair)
    np.testing.assert_allclose(Vinv, V.conj().T, atol=1e-12)
    np.testing.assert_allclose(2 * (V @ np.diag(Lam) @ V.conj().T).real - P.T @ P, A, atol=1e-10)
    np.testing.assert_allclose(np.asarray(params.low_rank_term), P @ V.conj(), atol=1e-10)
    np.testing.assert_allclose(np.asarray(params.input_matrix), V.conj().T @ B, atol=1e-10)


@pytest.mark.parametrize("measure", DENSE)
def test_undiagonalised_is_dense(measure):
    N = 6
    A, B = _dense(measure, N)
    params = Hippo(N, measure, diagonalize=False, dtype=np.float64)()
    np.testing.assert_array_equal(np.asarray(params.state_matrix), A)
    np.testing.assert_array_equal(np.asarray(params.input_matrix), B)
    assert params.eigenvector_pair is None
    name = _CANONICAL.get(measure, measure)
    if name in hippox.NPLR_MEASURES:
        P = hippox.rank_correction(name, N, rank=2 if name == "legt" else 1, dtype=np.float64)
        np.testing.assert_array_equal(np.asarray(params.low_rank_term), np.asarray(P))
    else:
        assert params.low_rank_term is None


@pytest.mark.parametrize("measure", ["linear", "inverse"])
@pytest.mark.parametrize("conj_sym", [False, True])
def test_diagonal_spectra(measure, conj_sym):
    N = 12
    n = np.arange(N // 2)
    if measure == "linear":
        half = -0.5 - 1j * np.pi * n
    else:
        half = -0.5 - 1j * (N / np.pi) * (N / (2 * n + 1) - 1)
    expected = half if conj_sym else np.concatenate([half, half.conj()])
    params = Hippo(N, measure, conj_sym=conj_sym, dtype=np.float64)()
    np.testing.assert_allclose(np.asarray(params.state_matrix), expected, rtol=1e-14)
    np.testing.assert_array_equal(np.asarray(params.input_matrix), np.ones(expected.shape))
    assert params.eigenvector_pair is None and params.low_rank_term is None


@pytest.mark.parametrize("diagonalize", [False, True])
@pytest.mark.parametrize("conj_sym", [False, True])
def test_block_diagonal(diagonalize, conj_sym):
    N, J = 12, 3
    hippo = Hippo(
        N,
        "legs",
        conj_sym=conj_sym,
        diagonalize=diagonalize,
        block_diagonal=True,
        n_blocks=J,
        dtype=np.float64,
    )
    params = hippo()
    Ab, Bb = _dense("legs", N // J)
    A, B = sla.block_diag(*[Ab] * J), np.tile(Bb, J)
    assert hippo.state_size == N and hippo.block_size == N // J
    if not diagonalize:
        np.testing.assert_array_equal(np.asarray(params.state_matrix), A)
        np.testing.assert_array_equal(np.asarray(params.input_matrix), B)
        return
    single = Hippo(N // J, "legs", conj_sym=conj_sym, dtype=np.float64)()
    np.testing.assert_array_equal(
        np.asarray(params.state_matrix), np.tile(np.asarray(single.state_matrix), J)
    )
    Lam = np.asarray(params.state_matrix)
    V, Vinv = (np.asarray(x) for x in params.eigenvector_pair)
    P = np.asarray(params.low_rank_term)
    assert P.shape == (J, Lam.shape[0])
    if conj_sym:
        Lam, V, Vinv, P = (
            np.concatenate([x, x.conj()], axis=ax)
            for x, ax in ((Lam, 0), (V, 1), (Vinv, 0), (P, 1))
        )
    np.testing.assert_allclose(V @ (np.diag(Lam) - P.T @ P.conj()) @ Vinv, A, atol=1e-10)
    M = np.asarray(params.input_matrix).shape[0]
    np.testing.assert_allclose(np.asarray(params.input_matrix), (Vinv @ B)[:M], atol=1e-10)


# --------------------------------------------------------------- immutability, naming


def test_frozen_and_repeatable():
    hippo = Hippo(state_size=8, measure="legs", block_diagonal=True, n_blocks=2)
    before = dataclasses.asdict(hippo)
    first, second = hippo(), hippo()
    assert dataclasses.asdict(hippo) == before
    assert hippo.state_size == 8  # the old API overwrote it with the block size
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(dataclasses.FrozenInstanceError):
        hippo.state_size = 4
    init = hippo.lambda_initializer("imaginary")
    np.testing.assert_array_equal(init(None, (8,)), init(None, (8,)))
    assert dataclasses.asdict(hippo) == before
    assert hash(hippo) == hash(Hippo(state_size=8, measure="legs", block_diagonal=True, n_blocks=2))


def test_old_keyword_and_names():
    old = Hippo(state_size=8, basis_measure="legt")
    new = Hippo(state_size=8, measure="legt")
    assert old == new and old.measure == old.basis_measure == "legt"
    assert Hippo(8).measure == "legs"
    np.testing.assert_array_equal(
        np.asarray(Hippo(8, "fourier_double")().state_matrix),
        np.asarray(Hippo(8, "fourier2")().state_matrix),
    )
    with pytest.raises(ValueError, match="must agree"):
        Hippo(state_size=8, measure="legs", basis_measure="legt")


@pytest.mark.parametrize("measure", ["legt", "lmu", "glagt"])
def test_brief_measures_default_options(measure):
    params = Hippo(8, measure)()
    assert params.state_matrix.shape == (8,) and params.input_matrix.shape == (8,)
    assert params.state_matrix.dtype == jnp.complex64
    assert np.all(np.isfinite(np.asarray(params.input_matrix)))


# ------------------------------------------------------------------------ initializers


def test_initializer_call_forms_and_shapes():
    hippo = Hippo(8, "legs", conj_sym=True)
    params = hippo()
    init = hippo.lambda_initializer("real")
    expected = np.asarray(params.state_matrix.real)
    for value in (
        init((4,), jnp.float32),  # Haiku
        init(jax.random.key(0), (4,), jnp.float32),  # Flax / jax.nn.initializers
        init(None, (4,)),  # deterministic: key=None is fine
        init(jax.random.PRNGKey(1), [4]),
        init(key=None, shape=(4,)),
    ):
        assert value.shape == (4,) and value.dtype == jnp.float32
        np.testing.assert_array_equal(value, expected)
    tiled = init(None, (3, 4))
    np.testing.assert_array_equal(tiled, np.broadcast_to(expected, (3, 4)))
    with pytest.raises(ValueError, match=r"`shape` must be \(4,\)"):
        init(None, (8,))
    with pytest.raises(ValueError, match=r"`shape` must be \(4,\)"):
        init((4, 3), jnp.float32)
    b = hippo.b_initializer()
    assert b(None, (4, 1)).shape == (4, 1)
    assert b(None, (2, 4, 1)).shape == (2, 4, 1)
    np.testing.assert_allclose(b(None, (4,), jnp.complex64), params.input_matrix)
    with pytest.raises(ValueError, match=r"\(4,\) or \(4, 1\)"):
        b(None, (4, 2))
    P = hippo.low_rank_initializer()
    np.testing.assert_allclose(P(None, (1, 4)), params.low_rank_term)
    with pytest.raises(ValueError, match=r"`shape` must be \(1, 4\)"):
        P(None, (4,))


def test_initializer_dtypes():
    hippo = Hippo(8, "legt")
    lam = hippo.lambda_initializer("imaginary")
    assert lam(None, (8,)).dtype == jnp.float32  # Hippo.dtype default
    assert lam(None, (8,), jnp.float64).dtype == jnp.float64
    assert lam(None, (8,), jnp.bfloat16).dtype == jnp.bfloat16
    full = hippo.lambda_initializer("full")
    assert full(None, (8,)).dtype == jnp.complex64
    assert full(None, (8,), jnp.complex128).dtype == jnp.complex128
    with pytest.raises(ValueError, match="`dtype` must be complex"):
        full((8,), jnp.float32)
    with pytest.raises(ValueError, match="`dtype` must be a real floating"):
        lam(None, (8,), jnp.int32)
    # hippox's eigenvector phase makes V* B real for legs: a real dtype is accepted.
    b = Hippo(8, "legs").b_initializer()
    np.testing.assert_allclose(b((8, 1), jnp.float32)[:, 0], Hippo(8, "legs")().input_matrix.real)
    assert Hippo(8, "legs", dtype=jnp.float64)().state_matrix.dtype == jnp.complex128


# --------------------------------------------------------------- README usage patterns


def test_readme_haiku_module():
    import haiku as hk

    state_size = 8

    class MyHippoModule(hk.Module):
        def __init__(self, state_size, measure):
            super().__init__()
            _hippo = Hippo(state_size=state_size, measure=measure)
            _hippo()
            self._lambda_real = hk.get_parameter(
                "lambda_real", shape=[state_size], init=_hippo.lambda_initializer("real")
            )
            self._lambda_imag = hk.get_parameter(
                "lambda_imaginary", shape=[state_size], init=_hippo.lambda_initializer("imaginary")
            )
            self._state_matrix = self._lambda_real + 1j * self._lambda_imag
            self._input_matrix = hk.get_parameter(
                "input_matrix", shape=[state_size, 1], init=_hippo.b_initializer()
            )

        def __call__(self, input, prev_state):
            return self._state_matrix * prev_state + self._input_matrix @ input

    f = hk.transform(lambda u, x: MyHippoModule(state_size, "legs")(u, x))
    u, x0 = jnp.ones((1,)), jnp.zeros((state_size,), jnp.complex64)
    params = f.init(jax.random.key(0), u, x0)
    ref = Hippo(state_size=state_size, measure="legs")()
    p = params["my_hippo_module"]
    np.testing.assert_array_equal(p["lambda_real"], ref.state_matrix.real)
    np.testing.assert_array_equal(p["lambda_imaginary"], ref.state_matrix.imag)
    np.testing.assert_allclose(p["input_matrix"][:, 0], ref.input_matrix.real)
    x1 = f.apply(params, None, u, x0)
    np.testing.assert_allclose(x1, ref.input_matrix, atol=1e-6)


def test_readme_equinox_module():
    import equinox as eqx

    class MyHippoModule(eqx.Module):
        A: jax.Array
        B: jax.Array

        def __init__(self, state_size, measure):
            _hippo = Hippo(state_size=state_size, measure=measure)
            _hippo_params = _hippo()
            self.A = _hippo_params.state_matrix
            self.B = _hippo_params.input_matrix

        def __call__(self, input, prev_state):
            return self.A * prev_state + self.B * input

    module = MyHippoModule(8, "legt")
    x = jnp.zeros(8, jnp.complex64)
    for _ in range(3):
        x = eqx.filter_jit(module)(1.0, x)
    A = np.asarray(module.A)
    expected = np.asarray(module.B) * (1 + A + A**2)
    np.testing.assert_allclose(x, expected, rtol=1e-5)


def test_flax_linen_module():
    import flax.linen as nn

    hippo = Hippo(state_size=8, measure="fout", conj_sym=True, dplr=True)

    class HippoLayer(nn.Module):
        @nn.compact
        def __call__(self, x):
            lam_re = self.param("lambda_re", hippo.lambda_initializer("real"), (2, 4))
            lam_im = self.param("lambda_im", hippo.lambda_initializer("imaginary"), (2, 4))
            P = self.param("P", hippo.low_rank_initializer(), (1, 4), jnp.complex64)
            return (lam_re + 1j * lam_im) * x + P[0]

    layer = HippoLayer()
    variables = jax.jit(layer.init)(jax.random.key(0), jnp.ones((2, 4), jnp.complex64))
    ref = hippo()
    np.testing.assert_array_equal(variables["params"]["lambda_re"][1], ref.state_matrix.real)
    np.testing.assert_array_equal(variables["params"]["lambda_im"][0], ref.state_matrix.imag)
    np.testing.assert_array_equal(variables["params"]["P"], ref.low_rank_term)
    out = layer.apply(variables, jnp.ones((2, 4), jnp.complex64))
    assert out.shape == (2, 4)


# -------------------------------------------------------------------- eigenbasis maps


@pytest.mark.parametrize("measure", ["legs", "lmu", "glagt", "fout"])
@pytest.mark.parametrize("conj_sym", [False, True])
def test_eigenvector_transform(rng, measure, conj_sym):
    N = 8
    hippo = Hippo(N, measure, conj_sym=conj_sym, dtype=np.float64)
    params = hippo()
    M = N // 2 if conj_sym else N
    _, B = _dense(measure, N)
    Bt = hippo.eigenvector_transform(B, inverse=True)(None, (M,))
    np.testing.assert_allclose(Bt, params.input_matrix, atol=1e-12)
    np.testing.assert_allclose(hippo.to_eigenbasis(B), params.input_matrix, atol=1e-12)
    x = rng.normal(size=(3, N))
    z = hippo.to_eigenbasis(x)
    back = hippo.from_eigenbasis(z)
    np.testing.assert_allclose(np.real(back), x, atol=1e-10)
    np.testing.assert_allclose(np.imag(back), 0, atol=1e-10)
    C = rng.normal(size=(2, N))
    Ct = hippo.eigenvector_transform(C, inverse=False)(None, (2, M))
    y = np.einsum("hm,bm->bh", Ct, z)
    np.testing.assert_allclose(2 * y.real if conj_sym else y, x @ C.T, atol=1e-10)
    split = hippo.eigenvector_transform(C, inverse=False, concatenate=True)((2, M, 2), None)
    np.testing.assert_allclose(split[..., 0] + 1j * split[..., 1], Ct, atol=1e-14)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"state_size": 8, "measure": "nope"}, ValueError, "`measure` must be one of"),
        ({"state_size": 8, "measure": "random"}, ValueError, "`measure` must be one of"),
        ({"state_size": 7}, ValueError, "must be even when diagonalize"),
        ({"state_size": 0}, ValueError, "`state_size` must be"),
        ({"state_size": 8.0}, TypeError, "`state_size` must be an integer"),
        ({"state_size": 8, "block_diagonal": True}, ValueError, "`n_blocks` must be given"),
        ({"state_size": 8, "n_blocks": 2}, ValueError, "only used with block_diagonal"),
        ({"state_size": 8, "block_diagonal": True, "n_blocks": 3}, ValueError, "multiple of"),
        ({"state_size": 12, "block_diagonal": True, "n_blocks": 4}, ValueError, "block size 3"),
        ({"state_size": 8, "dplr": True, "diagonalize": False}, ValueError, "`dplr` must be"),
        ({"state_size": 8, "measure": "linear", "diagonalize": False}, ValueError, "`diagonalize`"),
        ({"state_size": 8, "conj_sym": 1}, TypeError, "`conj_sym` must be a bool"),
        ({"state_size": 7, "measure": "fout", "diagonalize": False}, ValueError, "even"),
        ({"state_size": 8, "dtype": jnp.int32}, ValueError, "`dtype` must be a real"),
    ],
)
def test_construction_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        Hippo(**kwargs)


def test_method_errors():
    with pytest.raises(ValueError, match="`return_array` must be one of"):
        Hippo(8).lambda_initializer("both")
    with pytest.raises(ValueError, match="no low-rank term"):
        Hippo(8, "lmu", diagonalize=False).low_rank_initializer()
    with pytest.raises(ValueError, match="no eigenvectors"):
        Hippo(8, "linear").eigenvector_transform(np.ones(8))
    with pytest.raises(ValueError, match=r"`input` must have shape \(\.\.\., 8\)"):
        Hippo(8).eigenvector_transform(np.ones(4))
    with pytest.raises(TypeError, match="needs a `shape`"):
        Hippo(8).b_initializer()(None)
    # odd N works undiagonalised (the dense matrices)
    assert Hippo(7, "legs", diagonalize=False)().state_matrix.shape == (7, 7)
