"""Flax linen `SequenceModel`: encoder, residual blocks of hippox layers, pooling, decoder.

The architecture is described in `hippox._src.layers.backbone`. Training and evaluation
modes follow the linen conventions: the ``deterministic`` field or call argument
(merged with `flax.linen.merge_param`) turns dropout off and makes BatchNorm use its
running averages; in training mode dropout needs a ``'dropout'`` rng and BatchNorm a
mutable ``'batch_stats'`` collection.

Parameter trees mirror the `hippox.nnx` model: ``encoder``, ``layers_i``,
``mixers_i``, ``norms_i``, ``final_norm``, ``decoder`` here are ``encoder``,
``layers[i]``, ``mixers[i]``, ``norms[i]``, ``final_norm``, ``decoder`` there, with
the same leaf names and shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers import backbone as _bb
from hippox._src.layers.backbone import SequenceCarry
from hippox.linen import layers as _layers
from hippox.linen import rnn as _rnn

__all__ = ["SequenceCarry", "SequenceModel"]


class SequenceModel(nn.Module):
    """A deep sequence model with hippox layers (linen).

    ``u`` ``(..., L, d_input)`` -> ``(..., d_output)`` (``pooling='mean'`` or
    ``'last'``) or ``(..., L, d_output)`` (``pooling=None``); ``d_input`` is read from
    the input. Fields are the keyword arguments of `hippox.nnx.SequenceModel`, except
    that a callable ``layer`` is called as ``layer(H)`` and returns an unbound linen
    module, and ``deterministic`` may be None (then it must be passed to the call).

    Step mode (evaluation semantics: dropout off, BatchNorm running averages)::

        carry = model.initialize_carry(batch_shape)               # unbound is fine
        sp = model.apply(variables, method="setup_step")
        carry, y_k = model.apply(variables, carry, u_k, sp, method="step")

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from hippox.linen import SequenceModel
      >>> model = SequenceModel(d_output=10, d_model=8, n_layers=2, layer_kwargs={"N": 8})
      >>> u = jnp.ones((4, 32, 3), jnp.float32)
      >>> variables = model.init(jax.random.key(0), u, deterministic=True)
      >>> model.apply(variables, u, deterministic=True).shape
      (4, 10)
    """

    d_output: int
    d_model: int = 64
    n_layers: int = 4
    layer: Any = "s4d"
    layer_kwargs: Any = None
    l_max: int | None = None
    prenorm: bool = True
    norm: str | None = "layer"
    dropout: float = 0.0
    activation: str = "gelu"
    pooling: str | None = "mean"
    deterministic: bool | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "options", self._check_options())  # validated once
        _validate.real_dtype(self.param_dtype, name="param_dtype")

    @nn.nowrap
    def _check_options(self) -> _bb.BackboneOptions:
        return _bb.check_options(
            d_output=self.d_output,
            d_model=self.d_model,
            n_layers=self.n_layers,
            layer=self.layer,
            layer_kwargs=self.layer_kwargs,
            l_max=self.l_max,
            prenorm=self.prenorm,
            norm=self.norm,
            dropout=self.dropout,
            activation=self.activation,
            pooling=self.pooling,
        )

    @nn.nowrap
    def _make_layer(self, opts: _bb.BackboneOptions, **parent):
        H = opts.d_model
        if callable(opts.layer):
            return opts.layer(H)
        kw = dict(
            _bb.layer_arguments(opts), dtype=self.dtype, param_dtype=self.param_dtype, **parent
        )
        if opts.layer == "hippo_rnn":
            return _rnn.HiPPORNN(in_features=H, features=H, **kw)
        cls = {"s4": _layers.S4, "s4d": _layers.S4D, "s5": _layers.S5, "lssl": _layers.LSSL}[
            opts.layer
        ]
        return cls(H=H, **kw)

    @nn.nowrap
    def _make_norm(self):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        if self.norm == "layer":
            return nn.LayerNorm(**kw)
        return nn.BatchNorm(**kw)

    def setup(self):
        opts = self.options
        H, n = opts.d_model, opts.n_layers
        dense = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        self.encoder = nn.Dense(H, **dense)
        self.layers = [self._make_layer(opts) for _ in range(n)]
        width = 2 * H if opts.activation == "glu" else H
        self.mixers = [nn.Dense(width, **dense) for _ in range(n)]
        if opts.norm is not None:
            self.norms = [self._make_norm() for _ in range(n)]
            if opts.prenorm:
                self.final_norm = self._make_norm()
        self.drop = nn.Dropout(opts.dropout)
        self.decoder = nn.Dense(opts.d_output, **dense)

    def _norm(self, which, x, *, eval_mode: bool):
        if self.norm is None or which is None:
            return x
        norm = self.final_norm if which == "final" else self.norms[which]
        if self.norm == "batch":
            return norm(x, use_running_average=eval_mode)
        return norm(x)

    def _block_out(self, i: int, z: jax.Array, det: bool) -> jax.Array:
        z = self.drop(_bb.gelu(z), deterministic=det)
        z = self.mixers[i](z)
        if self.activation == "glu":
            z = _bb.glu(z)
        return self.drop(z, deterministic=det)

    def __call__(self, u: ArrayLike, deterministic: bool | None = None) -> jax.Array:
        """``u`` ``(..., L, d_input)`` -> ``(..., d_output)`` or ``(..., L, d_output)``.

        Args:
          u: input sequence.
          deterministic: evaluation mode (overrides the field; one of them must be
            set).
        """
        det = nn.merge_param("deterministic", self.deterministic, deterministic)
        u = jnp.asarray(u)
        if u.ndim < 2:
            raise ValueError(f"`u` must have shape (..., L, d_input), got {u.shape}.")
        x = self.encoder(u)
        for i in range(self.n_layers):
            z = self._norm(i, x, eval_mode=det) if self.prenorm else x
            x = x + self._block_out(i, self.layers[i](z), det)
            if not self.prenorm:
                x = self._norm(i, x, eval_mode=det)
        if self.prenorm:
            x = self._norm("final", x, eval_mode=det)
        return self.decoder(_bb.pool(x, self.pooling))

    # ------------------------------------------------------------------ step mode

    @nn.nowrap
    def initialize_carry(
        self, batch_shape: Sequence[int] = (), dtype: DTypeLike | None = None
    ) -> _bb.SequenceCarry:
        """Zero step-mode carry (callable on an unbound module).

        Args:
          batch_shape: leading batch shape of the step inputs.
          dtype: dtype of the running pooling sum (default
            ``promote(param_dtype, float32)``).

        Returns:
          `hippox.linen.SequenceCarry`.
        """
        opts = self.options
        batch = _validate.check_batch_shape(batch_shape)
        carries = []
        for _ in range(opts.n_layers):
            layer = self._make_layer(opts, parent=None)
            if not hasattr(layer, "initialize_carry"):
                raise TypeError(
                    "step mode needs every layer to define `initialize_carry`; "
                    f"{type(layer).__name__} does not."
                )
            carries.append(layer.initialize_carry(batch))
        rd = jnp.promote_types(self.param_dtype, jnp.float32) if dtype is None else dtype
        return _bb.initial_carry(carries, batch, opts.d_model, rd)

    def setup_step(self) -> tuple:
        """Per-block step parameters (discretise once; pass to `step`)."""
        return tuple(layer.setup_step() for layer in self.layers)

    def step(self, carry: _bb.SequenceCarry, u_k: ArrayLike, step_params=None):
        """One position: ``u_k`` ``(..., d_input)`` -> ``(carry, y_k (..., d_output))``.

        ``y_k`` equals the forward pass in evaluation mode on the prefix ``u_0 … u_k``
        (``pooling=None``: its last position).
        """
        carry = _bb.check_carry(carry, self.n_layers)
        sp = self.setup_step() if step_params is None else step_params
        x = self.encoder(jnp.asarray(u_k))
        states = []
        for i, layer in enumerate(self.layers):
            z = self._norm(i, x, eval_mode=True) if self.prenorm else x
            s, z = layer.step(carry.layers[i], z, sp[i])
            states.append(s)
            z = self.mixers[i](_bb.gelu(z))
            x = x + (_bb.glu(z) if self.activation == "glu" else z)
            if not self.prenorm:
                x = self._norm(i, x, eval_mode=True)
        if self.prenorm:
            x = self._norm("final", x, eval_mode=True)
        total, count, pooled = _bb.pool_step(carry.total, carry.count, x, self.pooling)
        return _bb.SequenceCarry(tuple(states), total, count), self.decoder(pooled)
