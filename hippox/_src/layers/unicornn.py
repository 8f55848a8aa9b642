"""UnICORNN (Rusch & Mishra 2021): stacked undamped independent controlled oscillators.

Each of ``n_layers`` layers maps its input ``u`` (the cell input for layer 0, the
previous layer's ``y`` otherwise) through a dense map and drives ``H`` independent
oscillators ``y'' = -[tanh(w ⊙ y + u V + b) + α y]``, written as the first-order
system ``y' = z``, ``z' = -[tanh(w ⊙ y + u V + b) + α y]`` and integrated with the
symplectic Euler step of the reference (the new ``z`` is used in the ``y`` update)::

    δ = Δt σ(c)                                  (per-oscillator step, σ the sigmoid)
    z⁺ = z - δ ⊙ [tanh(w ⊙ y + u V + b) + α y]
    y⁺ = y + δ ⊙ z⁺

The layer's output is ``y⁺``; the cell's output is the last layer's ``y⁺``. The
reference runs each layer over the whole sequence before the next (a CUDA kernel);
because every layer is causal and the dense maps act per time step, stepping all
layers at each position (this cell) gives the same outputs. The reference's dropout
between layers (one mask for all time steps) is a training regulariser left to the
backbone (`hippox.nnx.SequenceModel`'s dropout), not part of the cell.

Parameters of layer ``l`` (the reference's initialisation): ``V_l`` (d_l, H) Kaiming
uniform with ``a = 8`` (U(±sqrt(2 / 65) sqrt(3 / d_l))), ``b_l`` (H,) zeros, ``w_l``
(H,) U(0, 1), ``c_l`` (H,) U(-0.1, 0.1); ``d_0 = d_in``, ``d_l = H`` after. The carry is
`UnICORNNState` ``(y, z)``, each ``(..., n_layers, H)``. Defaults (``n_layers=3``,
``dt=0.046``, ``alpha=10``) are those of the reference configuration
``model=unicornn``; ``dt`` may be one step per layer, as in the reference.

References:
  Rusch, Mishra. "UnICORNN: A recurrent model for learning very long time
  dependencies." ICML 2021.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hippox._src import _validate
from hippox._src.layers import base
from hippox._src.layers import cell_base as cb


class UnICORNNState(NamedTuple):
    """The UnICORNN carry: positions ``y`` and velocities ``z``, each ``(..., n_layers, H)``."""

    y: jax.Array
    z: jax.Array


def _check_dt(dt, n_layers: int) -> tuple[float, ...]:
    if isinstance(dt, numbers.Real) and not isinstance(dt, bool):
        return (_validate.check_real("dt", dt, positive=True),) * n_layers
    if not isinstance(dt, (tuple, list)) or len(dt) != n_layers:
        raise ValueError(
            f"`dt` must be a positive number or a sequence of n_layers={n_layers} positive "
            f"numbers, got {dt!r}."
        )
    return tuple(_validate.check_real(f"dt[{i}]", v, positive=True) for i, v in enumerate(dt))


@dataclasses.dataclass(frozen=True)
class UnICORNNConfig(cb.RecurrentConfig):
    """The stacked UnICORNN cell (module docstring) as a frozen config of pure methods.

    Args:
      d_in: input features.
      features: hidden size ``H`` (oscillators per layer).
      n_layers: number of stacked layers (default 3).
      dt: ``Δt`` (> 0), one number or one per layer (default 0.046); kept as a tuple.
      alpha: ``α``, the oscillators' restoring term (default 10).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from hippox._src.layers.unicornn import UnICORNNConfig
      >>> cfg = UnICORNNConfig(3, 8, n_layers=2)
      >>> state, y = cfg.apply(cfg.init_params(jax.random.key(0)), jnp.ones((2, 5, 3)))
      >>> y.shape, state.y.shape
      ((2, 5, 8), (2, 2, 8))
    """

    d_in: int
    features: int
    _: dataclasses.KW_ONLY
    n_layers: int = 3
    dt: float | tuple[float, ...] = 0.046
    alpha: float = 10.0

    state_class: ClassVar[type] = UnICORNNState

    def __post_init__(self):
        base.set_field(self, "d_in", _validate.check_size("d_in", self.d_in))
        base.set_field(self, "features", _validate.check_size("features", self.features))
        base.set_field(self, "n_layers", _validate.check_size("n_layers", self.n_layers))
        base.set_field(self, "dt", _check_dt(self.dt, self.n_layers))
        base.set_field(self, "alpha", _validate.check_real("alpha", self.alpha))

    def state_spec(self):
        shape = (self.n_layers, self.features)
        return {"y": (shape, "float"), "z": (shape, "float")}

    def param_shapes(self):
        H = self.features
        shapes = {}
        for layer in range(self.n_layers):
            d = self.d_in if layer == 0 else H
            shapes.update(
                {f"V_{layer}": (d, H), f"b_{layer}": (H,), f"w_{layer}": (H,), f"c_{layer}": (H,)}
            )
        return shapes

    def param_initializers(self):
        inits = {}
        for layer in range(self.n_layers):
            inits[f"V_{layer}"] = cb.kaiming_uniform(float(np.sqrt(2.0 / 65.0)))
            inits[f"b_{layer}"] = jax.nn.initializers.zeros
            inits[f"w_{layer}"] = _uniform(0.0, 1.0)
            inits[f"c_{layer}"] = _uniform(-0.1, 0.1)
        return inits

    def _cell(self, p, state, x):
        u = x
        ys, zs = [], []
        for layer in range(self.n_layers):
            u = u @ p[f"V_{layer}"] + p[f"b_{layer}"]
            y, z = state.y[..., layer, :], state.z[..., layer, :]
            delta = self.dt[layer] * jax.nn.sigmoid(p[f"c_{layer}"])
            z = z - delta * (jnp.tanh(p[f"w_{layer}"] * y + u) + self.alpha * y)
            y = y + delta * z
            ys.append(y)
            zs.append(z)
            u = y
        return UnICORNNState(jnp.stack(ys, axis=-2), jnp.stack(zs, axis=-2)), u


def _uniform(low: float, high: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, low, high)

    return init
