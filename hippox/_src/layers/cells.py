"""Baseline recurrent cells of the HiPPO paper's table: RNN, GRU, LSTM, MGU, MinimalRNN, ExpRNN.

Frozen, hashable configs of pure methods (`hippox._src.layers.cell_base.RecurrentConfig`:
``init_params``, ``initial_state``, ``check_state``, ``step``, ``apply`` with
``seq_lengths``), wrapped for Flax NNX, linen, Haiku and Equinox in the ``cells``
modules of each framework. Weights use the ``x @ W`` layout; ``[a, b]`` is
concatenation on the feature axis, ``σ`` the logistic sigmoid. Initialisations follow
the authors' cells (the ``state-spaces`` ``RNNCell``, ``GatedRNNCell``,
``MinimalRNNCell``; PyTorch ``nn.LSTM`` for the LSTM): input and recurrent matrices
Xavier normal ``N(0, 2 / (fan_in + fan_out))``, gate weights and every bias PyTorch
``nn.Linear``'s ``U(±1 / sqrt(fan_in))``; the LSTM every leaf ``U(±1 / sqrt(H))``.

* `RNNConfig` (vanilla, tanh): ``h = tanh(x W_hx + b_hx + h W_hh + b_hh)``.
* `GRUConfig` (the authors' gated RNN with update and reset gates)::

      r = σ([x, h] W_r + b_r);  g = σ([x, h] W_g + b_g)
      h~ = tanh(x W_hx + b_hx + (r h) W_hh + b_hh);  h = (1 - g) h + g h~

* `LSTMConfig` (PyTorch's): ``[i, f, c~, o] = x W_ih + b_ih + h W_hh + b_hh``;
  ``c = σ(f) c + σ(i) tanh(c~)``; ``h = σ(o) tanh(c)``; carry `LSTMState` ``(h, c)``.
* `MGUConfig` (Minimal Gated Unit, Zhou et al. 2016)::

      f = σ([x, h] W_f + b_f);  h~ = tanh(x W_hx + b_hx + (f h) W_hh + b_hh)
      h = (1 - f) h + f h~

* `MinimalRNNConfig` (Chen 2017; the authors' ``MinimalRNNCell``)::

      z = tanh(x W_hx + b_hx);  g = σ([x, h] W_g + b_g);  h = (1 - g) h + g z

* `ExpRNNConfig` (Lezcano-Casado & Martínez-Rubio 2019): an orthogonal recurrent
  matrix ``Q = expm(S)``, ``S = T - T^T`` from the trained strictly upper-triangular
  part ``T`` of ``W_S``, and the modReLU ``σ_b(z) = sign(z) relu(|z| + b)``::

      h = modrelu(x W_hx + h Q, b)

  ``W_S`` starts from the Henaff initialisation (2 × 2 rotation blocks with angles
  ``U(-π, π)``), ``W_hx`` Kaiming normal (relu gain), ``b`` zero (the authors'
  ``OrthogonalCell``).

The carry of every cell but the LSTM is `RNNState` ``(h,)``; the output is ``h``.

References:
  Gu, Dao, Ermon, Rudra, Ré. "HiPPO: Recurrent Memory with Optimal Polynomial
  Projections." NeurIPS 2020 (the baselines of its Table 1).
  Cho et al. 2014 (GRU); Hochreiter & Schmidhuber 1997 (LSTM); Zhou, Wu, Zhang, Zhou,
  "Minimal Gated Unit for Recurrent Neural Networks" 2016; Chen, "MinimalRNN" 2017;
  Lezcano-Casado & Martínez-Rubio, "Cheap Orthogonal Constraints in Neural Networks"
  ICML 2019.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hippox._src import _validate
from hippox._src.layers import base
from hippox._src.layers import cell_base as cb


class RNNState(NamedTuple):
    """The carry of the single-state baseline cells: ``h`` ``(..., features)``."""

    h: jax.Array


class LSTMState(NamedTuple):
    """The carry of the LSTM: ``h`` and the cell state ``c``, both ``(..., features)``."""

    h: jax.Array
    c: jax.Array


@dataclasses.dataclass(frozen=True)
class _Baseline(cb.RecurrentConfig):
    d_in: int
    features: int

    state_class: ClassVar[type] = RNNState

    def __post_init__(self):
        base.set_field(self, "d_in", _validate.check_size("d_in", self.d_in))
        base.set_field(self, "features", _validate.check_size("features", self.features))

    def state_spec(self):
        return {f: ((self.features,), "float") for f in self.state_class._fields}


def _lin(x, p, w, b):
    return x @ p[w] + p[b]


@dataclasses.dataclass(frozen=True)
class RNNConfig(_Baseline):
    """Vanilla tanh RNN (module docstring): ``W_hx`` (d_in, H), ``b_hx``, ``W_hh`` (H, H),
    ``b_hh``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from hippox._src.layers.cells import RNNConfig
      >>> cfg = RNNConfig(3, 4)
      >>> state, h = cfg.apply(cfg.init_params(jax.random.key(0)), jnp.ones((2, 5, 3)))
      >>> h.shape
      (2, 5, 4)
    """

    def param_shapes(self):
        d, H = self.d_in, self.features
        return {"W_hx": (d, H), "b_hx": (H,), "W_hh": (H, H), "b_hh": (H,)}

    def param_initializers(self):
        d, H = self.d_in, self.features
        return {
            "W_hx": cb.xavier_normal,
            "b_hx": cb.bias_uniform(d),
            "W_hh": cb.xavier_normal,
            "b_hh": cb.bias_uniform(H),
        }

    def _cell(self, p, state, x):
        h = jnp.tanh(_lin(x, p, "W_hx", "b_hx") + _lin(state.h, p, "W_hh", "b_hh"))
        return RNNState(h), h


@dataclasses.dataclass(frozen=True)
class GRUConfig(_Baseline):
    """GRU (module docstring): ``W_hx``, ``b_hx``, ``W_hh``, ``b_hh``, and gates ``W_r``,
    ``b_r``, ``W_g``, ``b_g`` of shape (d_in + H, H), (H,)."""

    def param_shapes(self):
        d, H = self.d_in, self.features
        return {
            "W_hx": (d, H),
            "b_hx": (H,),
            "W_hh": (H, H),
            "b_hh": (H,),
            "W_r": (d + H, H),
            "b_r": (H,),
            "W_g": (d + H, H),
            "b_g": (H,),
        }

    def param_initializers(self):
        d, H = self.d_in, self.features
        return {
            "W_hx": cb.xavier_normal,
            "b_hx": cb.bias_uniform(d),
            "W_hh": cb.xavier_normal,
            "b_hh": cb.bias_uniform(H),
            "W_r": cb.fan_in_uniform,
            "b_r": cb.bias_uniform(d + H),
            "W_g": cb.fan_in_uniform,
            "b_g": cb.bias_uniform(d + H),
        }

    def _cell(self, p, state, x):
        xh = jnp.concatenate([x, state.h], axis=-1)
        r = jax.nn.sigmoid(_lin(xh, p, "W_r", "b_r"))
        g = jax.nn.sigmoid(_lin(xh, p, "W_g", "b_g"))
        new = jnp.tanh(_lin(x, p, "W_hx", "b_hx") + _lin(r * state.h, p, "W_hh", "b_hh"))
        h = (1.0 - g) * state.h + g * new
        return RNNState(h), h


@dataclasses.dataclass(frozen=True)
class LSTMConfig(_Baseline):
    """LSTM (PyTorch's, module docstring): ``W_ih`` (d_in, 4H), ``b_ih`` (4H,), ``W_hh``
    (H, 4H), ``b_hh`` (4H,), gate order ``i, f, c~, o``; carry `LSTMState`."""

    state_class: ClassVar[type] = LSTMState

    def param_shapes(self):
        d, H = self.d_in, self.features
        return {"W_ih": (d, 4 * H), "b_ih": (4 * H,), "W_hh": (H, 4 * H), "b_hh": (4 * H,)}

    def param_initializers(self):
        return dict.fromkeys(self.param_shapes(), cb.uniform_init(float(self.features) ** -0.5))

    def _cell(self, p, state, x):
        z = _lin(x, p, "W_ih", "b_ih") + _lin(state.h, p, "W_hh", "b_hh")
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * state.c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return LSTMState(h=h, c=c), h


@dataclasses.dataclass(frozen=True)
class MGUConfig(_Baseline):
    """Minimal Gated Unit (module docstring): ``W_hx``, ``b_hx``, ``W_hh``, ``b_hh``, the
    forget gate ``W_f`` (d_in + H, H), ``b_f``."""

    def param_shapes(self):
        d, H = self.d_in, self.features
        return {
            "W_hx": (d, H),
            "b_hx": (H,),
            "W_hh": (H, H),
            "b_hh": (H,),
            "W_f": (d + H, H),
            "b_f": (H,),
        }

    def param_initializers(self):
        d, H = self.d_in, self.features
        return {
            "W_hx": cb.xavier_normal,
            "b_hx": cb.bias_uniform(d),
            "W_hh": cb.xavier_normal,
            "b_hh": cb.bias_uniform(H),
            "W_f": cb.fan_in_uniform,
            "b_f": cb.bias_uniform(d + H),
        }

    def _cell(self, p, state, x):
        f = jax.nn.sigmoid(_lin(jnp.concatenate([x, state.h], axis=-1), p, "W_f", "b_f"))
        new = jnp.tanh(_lin(x, p, "W_hx", "b_hx") + _lin(f * state.h, p, "W_hh", "b_hh"))
        h = (1.0 - f) * state.h + f * new
        return RNNState(h), h


@dataclasses.dataclass(frozen=True)
class MinimalRNNConfig(_Baseline):
    """MinimalRNN (module docstring): ``W_hx`` (d_in, H), ``b_hx``, gate ``W_g``
    (d_in + H, H), ``b_g``."""

    def param_shapes(self):
        d, H = self.d_in, self.features
        return {"W_hx": (d, H), "b_hx": (H,), "W_g": (d + H, H), "b_g": (H,)}

    def param_initializers(self):
        d, H = self.d_in, self.features
        return {
            "W_hx": cb.xavier_normal,
            "b_hx": cb.bias_uniform(d),
            "W_g": cb.fan_in_uniform,
            "b_g": cb.bias_uniform(d + H),
        }

    def _cell(self, p, state, x):
        z = jnp.tanh(_lin(x, p, "W_hx", "b_hx"))
        g = jax.nn.sigmoid(_lin(jnp.concatenate([x, state.h], axis=-1), p, "W_g", "b_g"))
        h = (1.0 - g) * state.h + g * z
        return RNNState(h), h


def henaff_init(key, shape, dtype=jnp.float32):
    """Henaff et al.'s skew init: 2 × 2 blocks ``[[0, a], [-a, 0]]``, ``a ~ U(-π, π)``,
    stored as the upper triangle of an ``(H, H)`` matrix (`ExpRNNConfig`)."""
    H = shape[0]
    a = jax.random.uniform(key, (H // 2,), jnp.float32, -np.pi, np.pi)
    W = jnp.zeros(shape, jnp.float32)
    idx = jnp.arange(H // 2) * 2
    return W.at[idx, idx + 1].set(a).astype(dtype)


def modrelu(z: jax.Array, b: jax.Array) -> jax.Array:
    """The modReLU ``sign(z) relu(|z| + b)``."""
    return jnp.sign(z) * jax.nn.relu(jnp.abs(z) + b)


def orthogonal_from(W_S: jax.Array) -> jax.Array:
    """``expm(T - T^T)`` with ``T`` the strictly upper-triangular part of ``W_S``."""
    T = jnp.triu(W_S, 1)
    return jax.scipy.linalg.expm(T - T.T)


@dataclasses.dataclass(frozen=True)
class ExpRNNConfig(_Baseline):
    """ExpRNN (module docstring): ``W_hx`` (d_in, H), ``W_S`` (H, H) (its strict upper
    triangle parameterises ``Q = expm(S)``), modReLU bias ``b`` (H,).

    The orthogonal matrix is rebuilt once per `apply` call (outside the scan) and once
    per `step`.
    """

    def param_shapes(self):
        d, H = self.d_in, self.features
        return {"W_hx": (d, H), "W_S": (H, H), "b": (H,)}

    def param_initializers(self):
        kaiming_relu = jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")
        return {"W_hx": kaiming_relu, "W_S": henaff_init, "b": jax.nn.initializers.zeros}

    def _cell(self, p, state, x):
        Q = p["Q"] if "Q" in p else orthogonal_from(p["W_S"])
        h = modrelu(x @ p["W_hx"] + state.h @ Q, p["b"])
        return RNNState(h), h

    def prepared(self, params, *arrays):
        p, rd = super().prepared(params, *arrays)
        p["Q"] = orthogonal_from(p["W_S"])
        return p, rd


#: Baseline cell configs by name.
BASELINE_CELLS: dict[str, type] = {
    "rnn": RNNConfig,
    "gru": GRUConfig,
    "lstm": LSTMConfig,
    "mgu": MGUConfig,
    "minimalrnn": MinimalRNNConfig,
    "exprnn": ExpRNNConfig,
}
