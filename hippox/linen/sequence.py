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
    final_act: str | None = "auto"
    gate: int | None = None
    gate_act: str | None = None
    mult_act: str | None = None
    bottleneck: int | None = None
    residual: str | None = "R"
    residual_kwargs: Any = None
    drop_path: float = 0.0
    tie_dropout: bool = False
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
            final_act=self.final_act,
            gate=self.gate,
            gate_act=self.gate_act,
            mult_act=self.mult_act,
            bottleneck=self.bottleneck,
            residual=self.residual,
            residual_kwargs=self.residual_kwargs,
            drop_path=self.drop_path,
            tie_dropout=self.tie_dropout,
        )

    @nn.nowrap
    def _make_layer(self, opts: _bb.BackboneOptions, **parent):
        H = opts.inner_width
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
        for name, specs in _bb.block_specs(opts).items():
            parts = [
                nn.Dense(sp.d_out, **dense)
                if isinstance(sp, _bb.DenseSpec)
                else self.param(f"{name}_{i}", sp.init, sp.shape, self.param_dtype)
                for i, sp in enumerate(specs)
            ]
            setattr(self, name, parts)  # submodules ``{name}_{i}``, as NNX's ``name[i]``
        if opts.norm is not None:
            self.norms = [self._make_norm() for _ in range(n)]
            if opts.prenorm:
                self.final_norm = self._make_norm()
        self.drop = nn.Dropout(
            opts.dropout, broadcast_dims=_bb.broadcast_dims("dropout", opts.tie_dropout)
        )
        self.path_drop = nn.Dropout(
            opts.drop_path, broadcast_dims=_bb.broadcast_dims("drop_path", False)
        )
        self.decoder = nn.Dense(opts.d_output, **dense)

    def _norm(self, which, x, mask=None, *, eval_mode: bool):
        if self.norm is None:
            return x
        norm = self.final_norm if which == -1 else self.norms[which]
        if self.norm == "batch":
            m = None if (mask is None or eval_mode) else mask[..., None]
            return norm(x, use_running_average=eval_mode, mask=m)
        return norm(x)

    def _dense(self, name: str, i: int, z):
        return getattr(self, name)[i](z)

    def _param(self, name: str, i: int):
        return getattr(self, name)[i]

    def _call_layer(self, i: int, z, lengths, carry, want_carry: bool):
        layer = self.layers[i]
        if want_carry:
            return layer(z, seq_lengths=lengths, initial_carry=carry, return_carry=True)
        return None, (layer(z) if lengths is None else layer(z, seq_lengths=lengths))

    def _check_features(self, u: jax.Array) -> None:
        """Refuses an input whose feature count differs from the one the model was built with."""
        if self.is_initializing() or not self.encoder.has_variable("params", "kernel"):
            return
        d_input = self.encoder.variables["params"]["kernel"].shape[0]
        _bb.check_model_input(u, d_input)

    def __call__(
        self,
        u: ArrayLike,
        deterministic: bool | None = None,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry: _bb.SequenceCarry | None = None,
        return_carry: bool = False,
    ):
        """``u`` ``(..., L, d_input)`` -> ``(..., d_output)`` or ``(..., L, d_output)``.

        Args:
          u: input sequence (or a chunk of one).
          deterministic: evaluation mode (overrides the field; one of them must be
            set).
          seq_lengths, initial_carry, return_carry: the calling convention, as in
            `hippox.nnx.SequenceModel.__call__`.

        Returns:
          ``y``, or ``(carry, y)`` with ``return_carry=True``.
        """
        det = nn.merge_param("deterministic", self.deterministic, deterministic)
        u, initial_carry = _bb.check_call(u, None, initial_carry, self.initialize_carry)
        self._check_features(u)
        return _bb.forward(
            _bb.Wiring.of(self.options),
            u,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            return_carry=return_carry,
            carry_dtype=jnp.promote_types(self.param_dtype, jnp.float32),
            encode=self.encoder,
            layer=self._call_layer,
            dense=self._dense,
            norm=lambda i, x, mask: self._norm(i, x, mask, eval_mode=det),
            drop=lambda x, kind: (self.path_drop if kind == "drop_path" else self.drop)(
                x, deterministic=det
            ),
            decode=self.decoder,
            param=self._param,
        )

    # ------------------------------------------------------------------ step mode

    @nn.nowrap
    def initialize_carry(
        self, batch_shape: Sequence[int] = (), dtype: DTypeLike | None = None
    ) -> _bb.SequenceCarry:
        """Zero carry (callable on an unbound module).

        Args:
          batch_shape: leading batch shape of the inputs.
          dtype: dtype of the running pooling sums (default
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
        (``pooling=None``: its last position); the carry is the one of `__call__`.
        """
        carry, u_k = _bb.check_step(carry, u_k, None, self.initialize_carry)
        self._check_features(u_k[..., None, :])
        sp = self.setup_step() if step_params is None else step_params
        return _bb.step(
            _bb.Wiring.of(self.options),
            carry,
            u_k,
            encode=self.encoder,
            layer_step=lambda i, c, z: self.layers[i].step(c, z, sp[i]),
            dense=self._dense,
            norm=lambda i, x: self._norm(i, x, eval_mode=True),
            decode=self.decoder,
            param=self._param,
        )
