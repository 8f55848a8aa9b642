"""The Lipschitz RNN (Erichson et al. 2021): a continuous-time RNN with a stable linear part.

The hidden state follows the ODE (row vectors, ``x @ W`` layout as in the reference)::

    h' = f(h, x) = α h A + tanh(h W + x U + b)

with the hidden-to-hidden matrices built from unconstrained ``M_A``, ``M_W`` ``(H, H)``
by the symmetric-skew decomposition::

    A = (1 - β_A)(M_A + M_Aᵀ) + β_A(M_A - M_Aᵀ) - γ_A I
    W = (1 - β_W)(M_W + M_Wᵀ) + β_W(M_W - M_Wᵀ) - γ_W I

(``β`` in [0, 1] trades the symmetric part, whose eigenvalues are real, against the
skew part, whose eigenvalues are imaginary; ``γ`` shifts the spectrum to the left).
The paper gives ``A`` and ``W`` their own ``(β, γ)``; the reference code uses one pair
for both, which is the default here (``beta``, ``gamma``; set ``beta_W`` / ``gamma_W``
for W's own). One step of the cell integrates the ODE over a step ``ε`` with ``x`` held
fixed:

* ``solver='euler'`` (the reference's default): ``h⁺ = h + ε f(h, x)``;
* ``solver='midpoint'`` (RK2, the explicit midpoint rule of the reference's
  ``LipschitzRNN_ODE`` variant): ``h⁺ = h + ε f(h + ε/2 f(h, x), x)``.

``gated=True`` is the reference's ``LipschitzRNN_gated``: the update is multiplied by
an input-dependent gate, ``f(h, x) = (α h A + tanh(h W + z)) ⊙ σ(h W + x U_g + b_g)``
(extra parameters ``U_g`` (d_in, H), ``b_g`` (H,), PyTorch ``nn.Linear``'s init).

The carry is `hippox._src.layers.cells.RNNState` ``(h,)``; the output is ``h``.

Initialisation (the reference's): ``M_A``, ``M_W`` ~ N(0, (init_std / H)²)
(``init='gaussian'``); the input map ``U``, ``b`` PyTorch ``nn.Linear``'s
U(±1/sqrt(d_in)). ``init='orthogonal'`` starts ``M_A``, ``M_W`` from the orthogonal
polar factor ``Q = U Vᵀ`` of such a draw (``G = U S Vᵀ``), the reference's init of its
Cayley-RNN ablation (``calRNN``); ``init_std`` then does not matter. Defaults are those of the
reference configuration ``model=lipschitzrnn`` (ε = 0.03, β = 0.75, γ = 0.001,
α = 1, init_std = 1, Euler). The ``state-spaces`` port feeds the block input to the
nonlinearity directly (its input map is left to the backbone's encoder); here the input
map ``x U + b`` of the paper and of the original code is part of the cell, so ``d_in``
may differ from ``H``.

References:
  Erichson, Azencot, Queiruga, Hodgkinson, Mahoney. "Lipschitz Recurrent Neural
  Networks." ICLR 2021.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from hippox._src import _validate
from hippox._src.layers import base
from hippox._src.layers import cell_base as cb
from hippox._src.layers.cells import RNNState

#: The ``solver`` choices of `LipschitzRNNConfig`.
LIPSCHITZ_SOLVERS: tuple[str, ...] = ("euler", "midpoint")
#: The ``init`` choices of `LipschitzRNNConfig` (of ``M_A``, ``M_W``).
LIPSCHITZ_INITS: tuple[str, ...] = ("gaussian", "orthogonal")


def symmetric_skew(M: jax.Array, beta, gamma) -> jax.Array:
    """``(1 - β)(M + Mᵀ) + β(M - Mᵀ) - γ I`` for a square ``M`` ``(H, H)``."""
    Mt = jnp.swapaxes(M, -1, -2)
    eye = jnp.eye(M.shape[-1], dtype=M.dtype)
    return (1.0 - beta) * (M + Mt) + beta * (M - Mt) - gamma * eye


def gaussian_init(init_std: float):
    """The reference's ``gaussian_init_``: N(0, (init_std / H)²) for an ``(H, H)`` matrix."""

    def init(key, shape, dtype=jnp.float32):
        return (init_std / shape[-1]) * jax.random.normal(key, shape, dtype)

    return init


def orthogonal_init(key, shape, dtype=jnp.float32):
    """The orthogonal polar factor ``U Vᵀ`` of a Gaussian ``(H, H)`` draw ``U S Vᵀ``."""
    G = jax.random.normal(key, shape, jnp.float32)
    U, _, Vt = jnp.linalg.svd(G)
    return (U @ Vt).astype(dtype)


@dataclasses.dataclass(frozen=True)
class LipschitzRNNConfig(cb.RecurrentConfig):
    """The Lipschitz RNN cell (module docstring) as a frozen config of pure methods.

    Parameters: ``U`` (d_in, H), ``b`` (H,), ``M_A`` (H, H), ``M_W`` (H, H), and with
    ``gated`` ``U_g`` (d_in, H), ``b_g`` (H,).

    Args:
      d_in: input features.
      features: hidden size ``H``.
      eps: integration step ``ε`` (> 0; default 0.03).
      beta: ``β_A`` in [0, 1] (default 0.75), and ``β_W`` unless ``beta_W`` is given.
      gamma: ``γ_A >= 0`` (default 0.001), and ``γ_W`` unless ``gamma_W`` is given.
      alpha: ``α``, the weight of the linear term (default 1).
      init_std: scale of the N(0, (init_std / H)²) init of ``M_A``, ``M_W`` (> 0).
      solver: ``'euler'`` (default) or ``'midpoint'`` (RK2).
      beta_W: ``β_W`` in [0, 1] (None: ``beta``, the reference's single ``β``).
      gamma_W: ``γ_W >= 0`` (None: ``gamma``).
      gated: the reference's gated variant (module docstring; default False).
      init: ``'gaussian'`` (default, the reference's) or ``'orthogonal'``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from hippox._src.layers.lipschitz import LipschitzRNNConfig
      >>> cfg = LipschitzRNNConfig(3, 8)
      >>> state, h = cfg.apply(cfg.init_params(jax.random.key(0)), jnp.ones((2, 5, 3)))
      >>> h.shape, state.h.shape
      ((2, 5, 8), (2, 8))
    """

    d_in: int
    features: int
    _: dataclasses.KW_ONLY
    eps: float = 0.03
    beta: float = 0.75
    gamma: float = 0.001
    alpha: float = 1.0
    init_std: float = 1.0
    solver: str = "euler"
    beta_W: float | None = None
    gamma_W: float | None = None
    gated: bool = False
    init: str = "gaussian"

    state_class: ClassVar[type] = RNNState

    def __post_init__(self):
        base.set_field(self, "d_in", _validate.check_size("d_in", self.d_in))
        base.set_field(self, "features", _validate.check_size("features", self.features))
        base.set_field(self, "eps", _validate.check_real("eps", self.eps, positive=True))
        base.set_field(self, "beta", _validate.check_real("beta", self.beta, low=0.0, high=1.0))
        base.set_field(self, "gamma", _validate.check_real("gamma", self.gamma, low=0.0))
        base.set_field(self, "alpha", _validate.check_real("alpha", self.alpha))
        base.set_field(
            self, "init_std", _validate.check_real("init_std", self.init_std, positive=True)
        )
        _validate.check_choice("solver", self.solver, LIPSCHITZ_SOLVERS)
        if self.beta_W is not None:
            base.set_field(
                self, "beta_W", _validate.check_real("beta_W", self.beta_W, low=0.0, high=1.0)
            )
        if self.gamma_W is not None:
            base.set_field(self, "gamma_W", _validate.check_real("gamma_W", self.gamma_W, low=0.0))
        base.set_field(self, "gated", _validate.check_bool("gated", self.gated))
        _validate.check_choice("init", self.init, LIPSCHITZ_INITS)

    def state_spec(self):
        return {"h": ((self.features,), "float")}

    def param_shapes(self):
        d, H = self.d_in, self.features
        shapes = {"U": (d, H), "b": (H,), "M_A": (H, H), "M_W": (H, H)}
        if self.gated:
            shapes.update(U_g=(d, H), b_g=(H,))
        return shapes

    def param_initializers(self):
        g = gaussian_init(self.init_std) if self.init == "gaussian" else orthogonal_init
        lin = {"U": cb.fan_in_uniform, "b": cb.bias_uniform(self.d_in)}
        inits = {**lin, "M_A": g, "M_W": g, "U_g": lin["U"], "b_g": lin["b"]}
        return {name: inits[name] for name in self.param_shapes()}

    def matrices(self, params) -> tuple[jax.Array, jax.Array]:
        """``(A, W)`` ``(H, H)`` from ``M_A``, ``M_W`` (module docstring)."""
        beta_W = self.beta if self.beta_W is None else self.beta_W
        gamma_W = self.gamma if self.gamma_W is None else self.gamma_W
        A = symmetric_skew(params["M_A"], self.beta, self.gamma)
        W = symmetric_skew(params["M_W"], beta_W, gamma_W)
        return A, W

    def prepared(self, params, *arrays):
        p, rd = super().prepared(params, *arrays)
        p["A"], p["W"] = self.matrices(p)
        return p, rd

    def _cell(self, p, state, x):
        A, W = (p["A"], p["W"]) if "A" in p else self.matrices(p)
        z = x @ p["U"] + p["b"]
        z_g = x @ p["U_g"] + p["b_g"] if self.gated else None

        def f(h):
            hW = h @ W
            q = self.alpha * (h @ A) + jnp.tanh(hW + z)
            return q * jax.nn.sigmoid(hW + z_g) if self.gated else q

        h = state.h
        if self.solver == "euler":
            h = h + self.eps * f(h)
        else:
            h = h + self.eps * f(h + 0.5 * self.eps * f(h))
        return RNNState(h), h


def call_recurrent_layer(
    config: cb.RecurrentConfig,
    params,
    x,
    *,
    param_dtype,
    dtype=None,
    seq_lengths=None,
    initial_carry=None,
    return_carry: bool = False,
):
    """Any `RecurrentConfig` under the sequence-layer calling convention.

    ``layer(x, *, seq_lengths, initial_carry, return_carry)`` of the hippox sequence
    layers (used by the Lipschitz RNN and UnICORNN sequence layers of every framework).

    Args:
      config: the cell config.
      params: its flat parameter dict.
      x: ``(..., L, d_in)`` input.
      param_dtype: the layer's parameter dtype (its zero carry's dtype).
      dtype: output dtype (None: ``x``'s).
      seq_lengths: ``(...)`` ints in ``[0, L]``, or None.
      initial_carry: the carry to start from (``config.state_class``, checked against
        ``x``'s batch shape and ``param_dtype``), or None (zeros).
      return_carry: return ``(carry, y)`` instead of ``y``.

    Returns:
      ``y`` ``(..., L, features)``, or ``(carry, y)``.
    """
    return_carry = _validate.check_bool("return_carry", return_carry)
    x = cb.check_x(x, config.d_in, step=False)
    if initial_carry is not None:
        initial_carry = config.check_state(
            initial_carry, x.shape[:-2], param_dtype, name="initial_carry"
        )
    carry, y = config.apply(params, x, initial_carry, dtype=dtype, seq_lengths=seq_lengths)
    return (carry, y) if return_carry else y
