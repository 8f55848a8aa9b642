"""Flax NNX `SequenceModel`: encoder, residual blocks of hippox layers, pooling, decoder.

The architecture is described in `hippox._src.layers.backbone`. Training and evaluation
modes follow the NNX conventions: dropout reads the ``deterministic`` attribute of its
`flax.nnx.Dropout` and BatchNorm ``use_running_average``; ``model.eval()`` sets both
(dropout off, running averages), ``model.train()`` unsets them. The constructor's
``deterministic`` sets the initial mode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers import backbone as _bb
from hippox._src.layers.backbone import SequenceCarry
from hippox.nnx import layers as _layers
from hippox.nnx import rnn as _rnn

__all__ = ["SequenceCarry", "SequenceModel"]


def _builtin(name: str, H: int, kw: dict, dtype, param_dtype, rngs: nnx.Rngs):
    common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    if name == "hippo_rnn":
        return _rnn.HiPPORNN(H, H, **kw, **common)
    cls = {"s4": _layers.S4, "s4d": _layers.S4D, "s5": _layers.S5, "lssl": _layers.LSSL}[name]
    return cls(H, **kw, **common)


class SequenceModel(nnx.Module):
    """A deep sequence model with hippox layers (NNX).

    ``u`` ``(..., L, d_input)`` -> ``(..., d_output)`` (``pooling='mean'`` or
    ``'last'``) or ``(..., L, d_output)`` (``pooling=None``). See
    `hippox._src.layers.backbone` for the block structure.

    Args:
      d_input: input features.
      d_output: output features.
      d_model: H, the width of every block.
      n_layers: number of residual blocks.
      layer: ``'s4'``, ``'s4d'``, ``'s5'``, ``'lssl'``, ``'hippo_rnn'``
        (`hippox.nnx.S4`, ..., `hippox.nnx.HiPPORNN` with ``H`` channels), or a callable
        ``layer(H, *, rngs) -> nnx.Module`` mapping ``(..., L, H)`` to ``(..., L, H)``
        (for step mode it must also offer ``initialize_carry(batch_shape)``,
        ``setup_step()`` and ``step(carry, u_k, step_params)``).
      layer_kwargs: keyword arguments of the built-in layer (e.g. ``{"N": 64}``).
      l_max: maximum sequence length (required by ``'s4'``).
      prenorm: normalise before the layer (True) or after the residual sum (False).
      norm: ``'layer'`` (LayerNorm), ``'batch'`` (BatchNorm) or None.
      dropout: dropout rate in ``[0, 1)`` (after the activation and after the block).
      activation: ``'gelu'`` (Dense H -> H) or ``'glu'`` (Dense H -> 2H and GLU) after
        the layer's GELU.
      pooling: ``'mean'``, ``'last'`` or None (sequence to sequence).
      deterministic: start in evaluation mode (dropout off, BatchNorm running averages).
      dtype: computation dtype of the dense and norm layers and the layers' output
        dtype (None: inferred).
      param_dtype: parameter storage dtype.
      rngs: `flax.nnx.Rngs` (``params``; ``dropout`` for dropout in training).

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from hippox.nnx import SequenceModel
      >>> model = SequenceModel(3, 10, d_model=8, n_layers=2, layer_kwargs={"N": 8},
      ...                       rngs=nnx.Rngs(0))
      >>> model(jnp.ones((4, 32, 3), jnp.float32)).shape
      (4, 10)
      >>> lm = SequenceModel(3, 3, d_model=8, n_layers=2, pooling=None,
      ...                    layer_kwargs={"N": 8}, rngs=nnx.Rngs(0))
      >>> lm.eval()
      >>> u = jnp.ones((4, 5, 3), jnp.float32)
      >>> carry = lm.initialize_carry((4,))
      >>> carry, y0 = lm.step(carry, u[:, 0])
      >>> bool(jnp.allclose(y0, lm(u)[:, 0], atol=1e-5))
      True
    """

    def __init__(
        self,
        d_input: int,
        d_output: int,
        *,
        d_model: int = 64,
        n_layers: int = 4,
        layer: str | Callable = "s4d",
        layer_kwargs: Mapping[str, Any] | None = None,
        l_max: int | None = None,
        prenorm: bool = True,
        norm: str | None = "layer",
        dropout: float = 0.0,
        activation: str = "gelu",
        pooling: str | None = "mean",
        deterministic: bool = False,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"`rngs` must be a flax.nnx.Rngs, got {type(rngs).__name__}.")
        d_input = _validate.check_size("d_input", d_input)
        opts = _bb.check_options(
            d_output=d_output,
            d_model=d_model,
            n_layers=n_layers,
            layer=layer,
            layer_kwargs=layer_kwargs,
            l_max=l_max,
            prenorm=prenorm,
            norm=norm,
            dropout=dropout,
            activation=activation,
            pooling=pooling,
        )
        _validate.check_bool("deterministic", deterministic)
        pd = _validate.real_dtype(param_dtype, name="param_dtype")
        H = opts.d_model
        self.d_model = H
        self.n_layers = opts.n_layers
        self.prenorm = opts.prenorm
        self.norm_kind = opts.norm
        self.activation = opts.activation
        self.pooling = opts.pooling
        self.param_dtype = pd
        lin = dict(dtype=dtype, param_dtype=pd, rngs=rngs)
        self.encoder = nnx.Linear(d_input, H, **lin)
        kw = _bb.layer_arguments(opts)
        if callable(opts.layer):
            self.layers = nnx.List([opts.layer(H, rngs=rngs) for _ in range(opts.n_layers)])
        else:
            self.layers = nnx.List(
                [_builtin(opts.layer, H, kw, dtype, pd, rngs) for _ in range(opts.n_layers)]
            )
        width = 2 * H if opts.activation == "glu" else H
        self.mixers = nnx.List([nnx.Linear(H, width, **lin) for _ in range(opts.n_layers)])
        self.norms = nnx.List([self._make_norm(deterministic, lin) for _ in range(opts.n_layers)])
        final = opts.prenorm and opts.norm is not None
        self.final_norm = self._make_norm(deterministic, lin) if final else None
        self.dropout = nnx.Dropout(opts.dropout, deterministic=deterministic, rngs=rngs)
        self.decoder = nnx.Linear(H, opts.d_output, **lin)

    def _make_norm(self, deterministic: bool, lin: dict):
        if self.norm_kind == "layer":
            return nnx.LayerNorm(self.d_model, **lin)
        if self.norm_kind == "batch":
            return nnx.BatchNorm(self.d_model, use_running_average=deterministic, **lin)
        return None

    def _norm(self, norm, x, *, step: bool):
        if norm is None:
            return x
        if step and isinstance(norm, nnx.BatchNorm):
            return norm(x, use_running_average=True)
        return norm(x)

    def _block_out(self, i: int, z: jax.Array, *, step: bool) -> jax.Array:
        z = _bb.gelu(z)
        if not step:
            z = self.dropout(z)
        z = self.mixers[i](z)
        if self.activation == "glu":
            z = _bb.glu(z)
        return z if step else self.dropout(z)

    def __call__(self, u: ArrayLike) -> jax.Array:
        """``u`` ``(..., L, d_input)`` -> ``(..., d_output)`` or ``(..., L, d_output)``."""
        u = jnp.asarray(u)
        if u.ndim < 2:
            raise ValueError(f"`u` must have shape (..., L, d_input), got {u.shape}.")
        x = self.encoder(u)
        for i in range(self.n_layers):
            z = self._norm(self.norms[i], x, step=False) if self.prenorm else x
            z = self._block_out(i, self.layers[i](z), step=False)
            x = x + z
            if not self.prenorm:
                x = self._norm(self.norms[i], x, step=False)
        x = self._norm(self.final_norm, x, step=False)
        return self.decoder(_bb.pool(x, self.pooling))

    # ------------------------------------------------------------------ step mode

    def initialize_carry(
        self, batch_shape: Sequence[int] = (), dtype: DTypeLike | None = None
    ) -> _bb.SequenceCarry:
        """Zero step-mode carry (every block's state and the pooling sums).

        Args:
          batch_shape: leading batch shape of the step inputs.
          dtype: dtype of the running pooling sum (default
            ``promote(param_dtype, float32)``).

        Returns:
          `hippox.nnx.SequenceCarry`.
        """
        batch = _validate.check_batch_shape(batch_shape)
        carries = [self._stepper(layer, "initialize_carry")(batch) for layer in self.layers]
        rd = jnp.promote_types(self.param_dtype, jnp.float32) if dtype is None else dtype
        return _bb.initial_carry(carries, batch, self.d_model, rd)

    def _stepper(self, layer, name: str):
        fn = getattr(layer, name, None)
        if fn is None:
            raise TypeError(
                f"step mode needs every layer to define `{name}`; {type(layer).__name__} does not."
            )
        return fn

    def setup_step(self) -> tuple:
        """Per-block step parameters (discretise once; pass to `step`)."""
        return tuple(self._stepper(layer, "setup_step")() for layer in self.layers)

    def step(self, carry: _bb.SequenceCarry, u_k: ArrayLike, step_params=None):
        """One position: ``u_k`` ``(..., d_input)`` -> ``(carry, y_k (..., d_output))``.

        Evaluation-mode semantics (dropout off, BatchNorm running averages): ``y_k``
        equals the forward pass in evaluation mode on the prefix ``u_0 … u_k``
        (``pooling=None``: its last position).

        Args:
          carry: `SequenceCarry` from `initialize_carry` or a previous `step`.
          u_k: ``(..., d_input)`` input at this position.
          step_params: from `setup_step` (recomputed when None: convenient, slower).

        Returns:
          ``(carry, y_k)``.
        """
        carry = _bb.check_carry(carry, self.n_layers)
        sp = self.setup_step() if step_params is None else step_params
        x = self.encoder(jnp.asarray(u_k))
        states = []
        for i, layer in enumerate(self.layers):
            z = self._norm(self.norms[i], x, step=True) if self.prenorm else x
            s, z = self._stepper(layer, "step")(carry.layers[i], z, sp[i])
            states.append(s)
            x = x + self._block_out(i, z, step=True)
            if not self.prenorm:
                x = self._norm(self.norms[i], x, step=True)
        x = self._norm(self.final_norm, x, step=True)
        total, count, pooled = _bb.pool_step(carry.total, carry.count, x, self.pooling)
        return _bb.SequenceCarry(tuple(states), total, count), self.decoder(pooled)
