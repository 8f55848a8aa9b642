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


def _block_part(spec, lin: dict):
    """An `nnx.Linear` for a `DenseSpec`, an `nnx.Param` for an `ArraySpec`."""
    if isinstance(spec, _bb.DenseSpec):
        return nnx.Linear(spec.d_in, spec.d_out, **lin)
    return nnx.Param(spec.init(lin["rngs"].params(), spec.shape, lin["param_dtype"]))


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
        the layer's GELU; the older name of ``final_act`` (``'id'`` / ``'glu'``).
      pooling: ``'mean'``, ``'last'`` or None (sequence to sequence).
      final_act: activation after the block's output Dense (the reference's choices,
        `hippox._src.layers.backbone.FINAL_ACTS`: ``'id'``, ``'glu'``, ``'gelu'``,
        ``'tanh'``, ``'relu'``, ``'sigmoid'``, ``'silu'``, ``'glu-<act>'``, ...), None
        for no output Dense, ``'auto'`` (default) to follow ``activation``.
      gate: GSS-style gate expansion factor (None: no gate): a gate branch
        ``gate_act(Dense(z))`` multiplies ``Dense(gelu(layer(z)))``, both
        ``inner * gate`` wide.
      gate_act: activation of the gate branch (None: identity).
      mult_act: activation after the gate multiplication (None: identity).
      bottleneck: the layer runs on ``d_model // bottleneck`` channels (a Dense before
        it; the output Dense maps back to ``d_model``); None: no bottleneck.
      residual: the reference's residual kind: ``'R'`` (default, ``x + z``), ``'F'``
        (no skip), ``'H'`` (highway), ``'D'`` (depth decay), ``'A'`` (learned affine),
        their long names, or None (the branch alone, without its second dropout).
      residual_kwargs: the kind's options (``alpha``, ``beta``; ``gamma``, ``scalar``;
        ``power``, ``l2``; ``scaling_correction``, ``elemwise``), reference defaults.
      drop_path: stochastic-depth rate in ``[0, 1)`` (whole sequences, training only).
      tie_dropout: share each dropout mask over the sequence axis.
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
        final_act: str | None = "auto",
        gate: int | None = None,
        gate_act: str | None = None,
        mult_act: str | None = None,
        bottleneck: int | None = None,
        residual: str | None = "R",
        residual_kwargs: Mapping[str, Any] | None = None,
        drop_path: float = 0.0,
        tie_dropout: bool = False,
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
            final_act=final_act,
            gate=gate,
            gate_act=gate_act,
            mult_act=mult_act,
            bottleneck=bottleneck,
            residual=residual,
            residual_kwargs=residual_kwargs,
            drop_path=drop_path,
            tie_dropout=tie_dropout,
        )
        _validate.check_bool("deterministic", deterministic)
        pd = _validate.real_dtype(param_dtype, name="param_dtype")
        H = opts.d_model
        self.wiring = _bb.Wiring.of(opts)
        self.d_input = d_input
        self.d_model = H
        self.n_layers = opts.n_layers
        self.prenorm = opts.prenorm
        self.norm_kind = opts.norm
        self.pooling = opts.pooling
        self.param_dtype = pd
        lin = dict(dtype=dtype, param_dtype=pd, rngs=rngs)
        self.encoder = nnx.Linear(d_input, H, **lin)
        kw, Hi = _bb.layer_arguments(opts), opts.inner_width
        if callable(opts.layer):
            self.layers = nnx.List([opts.layer(Hi, rngs=rngs) for _ in range(opts.n_layers)])
        else:
            self.layers = nnx.List(
                [_builtin(opts.layer, Hi, kw, dtype, pd, rngs) for _ in range(opts.n_layers)]
            )
        for name, specs in _bb.block_specs(opts).items():
            setattr(self, name, nnx.List([_block_part(sp, lin) for sp in specs]))
        self.norms = nnx.List([self._make_norm(deterministic, lin) for _ in range(opts.n_layers)])
        final = opts.prenorm and opts.norm is not None
        self.final_norm = self._make_norm(deterministic, lin) if final else None
        self.dropout = nnx.Dropout(
            opts.dropout,
            broadcast_dims=_bb.broadcast_dims("dropout", opts.tie_dropout),
            deterministic=deterministic,
            rngs=rngs,
        )
        self.drop_path = nnx.Dropout(
            opts.drop_path,
            broadcast_dims=_bb.broadcast_dims("drop_path", False),
            deterministic=deterministic,
            rngs=rngs,
        )
        self.decoder = nnx.Linear(H, opts.d_output, **lin)

    def _make_norm(self, deterministic: bool, lin: dict):
        if self.norm_kind == "layer":
            return nnx.LayerNorm(self.d_model, **lin)
        if self.norm_kind == "batch":
            return nnx.BatchNorm(self.d_model, use_running_average=deterministic, **lin)
        return None

    def _norm(self, which: int, x, mask=None, *, step: bool = False):
        norm = self.final_norm if which == -1 else self.norms[which]
        if norm is None:
            return x
        if isinstance(norm, nnx.BatchNorm):
            if step:
                return norm(x, use_running_average=True)
            return norm(x, mask=None if mask is None else mask[..., None])
        return norm(x)

    def _dense(self, name: str, i: int, z):
        return getattr(self, name)[i](z)

    def _param(self, name: str, i: int):
        return getattr(self, name)[i][...]

    def _drop(self, x, kind: str):
        return self.drop_path(x) if kind == "drop_path" else self.dropout(x)

    def _call_layer(self, i: int, z, lengths, carry, want_carry: bool):
        layer = self.layers[i]
        if want_carry:
            return layer(z, seq_lengths=lengths, initial_carry=carry, return_carry=True)
        return None, (layer(z) if lengths is None else layer(z, seq_lengths=lengths))

    def __call__(
        self,
        u: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry: _bb.SequenceCarry | None = None,
        return_carry: bool = False,
    ):
        """The model over a sequence (or a chunk of one).

        Args:
          u: ``(..., L, d_input)`` real input.
          seq_lengths: ``(...)`` ints in ``[0, L]`` (None: all valid). Padding positions
            never influence valid ones; pooling uses valid positions only; with
            ``pooling=None`` the outputs at padding positions are zero.
          initial_carry: `SequenceCarry` to continue from (from `initialize_carry`,
            `step` or a call with ``return_carry=True``), or None.
          return_carry: also return the `SequenceCarry` after the last valid position.

        Returns:
          ``(..., d_output)`` (pooled over every valid position so far) or
          ``(..., L, d_output)`` (``pooling=None``); or ``(carry, y)``.
        """
        u, initial_carry = _bb.check_call(u, self.d_input, initial_carry, self.initialize_carry)
        return _bb.forward(
            self.wiring,
            u,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            return_carry=return_carry,
            carry_dtype=self._carry_dtype(None),
            encode=self.encoder,
            layer=self._call_layer,
            dense=self._dense,
            norm=self._norm,
            drop=self._drop,
            decode=self.decoder,
            param=self._param,
        )

    # ------------------------------------------------------------------ step mode

    def _carry_dtype(self, dtype):
        return jnp.promote_types(self.param_dtype, jnp.float32) if dtype is None else dtype

    def initialize_carry(
        self, batch_shape: Sequence[int] = (), dtype: DTypeLike | None = None
    ) -> _bb.SequenceCarry:
        """Zero carry (every block's state and the pooling sums).

        Args:
          batch_shape: leading batch shape of the inputs.
          dtype: dtype of the running pooling sums (default
            ``promote(param_dtype, float32)``).

        Returns:
          `hippox.nnx.SequenceCarry`.
        """
        batch = _validate.check_batch_shape(batch_shape)
        carries = [self._stepper(layer, "initialize_carry")(batch) for layer in self.layers]
        return _bb.initial_carry(carries, batch, self.d_model, self._carry_dtype(dtype))

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
        (``pooling=None``: its last position). The carry is the one of `__call__`, so a
        prompt prefilled by ``model(prompt, return_carry=True)`` continues here.

        Args:
          carry: `SequenceCarry` from `initialize_carry`, a previous `step` or a call
            with ``return_carry=True``.
          u_k: ``(..., d_input)`` input at this position.
          step_params: from `setup_step` (recomputed when None: convenient, slower).

        Returns:
          ``(carry, y_k)``.
        """
        carry, u_k = _bb.check_step(carry, u_k, self.d_input, self.initialize_carry)
        sp = self.setup_step() if step_params is None else step_params
        return _bb.step(
            self.wiring,
            carry,
            u_k,
            encode=self.encoder,
            layer_step=lambda i, c, z: self._stepper(self.layers[i], "step")(c, z, sp[i]),
            dense=self._dense,
            norm=lambda i, x: self._norm(i, x, step=True),
            decode=self.decoder,
            param=self._param,
        )
