"""The Haiku `SequenceModel` (re-exported by ``hippox.haiku``; see `hippox.nnx.SequenceModel`).

The blocks, wiring and options are those of ``hippox._src.layers.backbone``; the sequence
layers are the Haiku layers of ``hippox.haiku``. Sub-modules are named ``encoder``,
``layers_i``, ``mixers_i``, ``norms_i``, ``final_norm``, ``decoder`` (the linen names), with
the leaves of the Flax model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import haiku as hk
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from hippox._haiku_params import get_params
from hippox._src import _validate
from hippox._src.layers import backbone as _bb

__all__ = ["SequenceModel"]


class _Dense(hk.Module):
    def __init__(self, d_in: int, d_out: int, *, name: str, param_dtype, dtype):
        super().__init__(name=name)
        self.specs = _bb.dense_params(d_in, d_out)
        self.param_dtype, self.dtype = param_dtype, dtype

    def __call__(self, x):
        return _bb.dense(get_params(self.specs, self.param_dtype), x, self.dtype)


class _LayerNorm(hk.Module):
    def __init__(self, H: int, *, name: str, param_dtype, dtype):
        super().__init__(name=name)
        self.specs = _bb.norm_params(H)
        self.param_dtype, self.dtype = param_dtype, dtype

    def __call__(self, x):
        return _bb.layer_norm(get_params(self.specs, self.param_dtype), x, self.dtype)


class _BatchNorm(hk.Module):
    """`flax.nnx.BatchNorm`'s maths over valid positions (``scale``/``bias``, state
    ``mean``/``var``)."""

    def __init__(self, H: int, *, name: str, param_dtype, dtype):
        super().__init__(name=name)
        self.H, self.specs = H, _bb.norm_params(H)
        self.param_dtype, self.dtype = param_dtype, dtype

    def __call__(self, x, mask=None, *, is_training: bool):
        p = get_params(self.specs, self.param_dtype)
        mean = hk.get_state("mean", (self.H,), jnp.float32, init=jnp.zeros)
        var = hk.get_state("var", (self.H,), jnp.float32, init=jnp.ones)
        y, (mean, var) = _bb.batch_norm(
            p, (mean, var), x, mask, use_running_average=not is_training, dtype=self.dtype
        )
        if is_training:
            hk.set_state("mean", mean)
            hk.set_state("var", var)
        return y


class SequenceModel(hk.Module):
    """The hippox backbone (`hippox.nnx.SequenceModel`) as a Haiku module.

    ``u`` ``(..., L, d_input)`` -> ``(..., d_output)`` (``pooling='mean'``/``'last'``)
    or ``(..., L, d_output)`` (``pooling=None``), with the calling convention
    (``seq_lengths``, ``initial_carry``, ``return_carry``; carry a `SequenceCarry`) and
    step mode of the Flax model. Dropout and drop path are active with
    ``is_training=True`` (keys from the transform's rng). With ``norm='batch'`` use
    `haiku.transform_with_state`: the running ``mean``/``var`` are state, updated with
    ``is_training=True`` from valid positions only, used otherwise and in step mode.

    The block options ``final_act``, ``gate``, ``gate_act``, ``mult_act``,
    ``bottleneck``, ``residual``, ``residual_kwargs``, ``drop_path`` and ``tie_dropout``
    are those of `hippox.nnx.SequenceModel`.

    Args:
      d_input: input features.
      d_output: output features.
      d_model: width H of every block.
      n_layers: number of residual blocks.
      layer: a built-in layer name (as in `hippox.nnx.SequenceModel`), or a callable
        ``layer(H)`` returning a Haiku module with the calling convention.
      layer_kwargs: keyword options of the built-in layer.
      l_max: maximum sequence length (the reference length of S4's ``C_tilde``).
      prenorm: normalise before the layer (True) or after the residual sum (False).
      dropout: dropout rate in ``[0, 1)``.
      activation: ``'gelu'`` or ``'glu'`` after the layer (older name of ``final_act``).
      pooling: ``'mean'``, ``'last'`` or None (sequence to sequence).
      norm: ``'layer'``, ``'batch'`` or None.
      name: module name (default ``'sequence_model'``).
      dtype: computation dtype of the dense and norm layers and the layers' output
        dtype (None: inferred).
      param_dtype: parameter storage dtype.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import haiku as hk
      >>> import hippox.haiku
      >>> f = hk.transform(lambda u, n: hippox.haiku.SequenceModel(
      ...     3, 2, d_model=4, n_layers=1, layer_kwargs={"N": 4})(u, seq_lengths=n))
      >>> u, n = jnp.ones((2, 8, 3), jnp.float32), jnp.array([8, 5])
      >>> params = f.init(jax.random.key(0), u, n)
      >>> f.apply(params, None, u, n).shape
      (2, 2)
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
        name: str | None = "sequence_model",
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
    ):
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
        super().__init__(name=name)
        pd = _validate.real_dtype(param_dtype, name="param_dtype")
        self.options, self.wiring = opts, _bb.Wiring.of(opts)
        self.d_input, self.param_dtype = d_input, pd
        self.dtype = _bb.output_dtype(dtype)
        H, n = opts.d_model, opts.n_layers
        kw = dict(param_dtype=pd, dtype=self.dtype)
        self.encoder = _Dense(d_input, H, name="encoder", **kw)
        self.layers = [self._make_layer(opts, f"layers_{i}", kw) for i in range(n)]
        self.block_specs = _bb.block_specs(opts)
        self.parts = {
            name: [
                _Dense(*sp, name=f"{name}_{i}", **kw) if isinstance(sp, _bb.DenseSpec) else None
                for i, sp in enumerate(specs)
            ]
            for name, specs in self.block_specs.items()
        }
        norm_cls = {"layer": _LayerNorm, "batch": _BatchNorm, None: None}[opts.norm]
        self.norms = [norm_cls(H, name=f"norms_{i}", **kw) if norm_cls else None for i in range(n)]
        final = opts.prenorm and opts.norm is not None
        self.final_norm = norm_cls(H, name="final_norm", **kw) if final else None
        self.decoder = _Dense(H, opts.d_output, name="decoder", **kw)

    @staticmethod
    def _make_layer(opts, name: str, kw: dict):
        H = opts.inner_width
        if callable(opts.layer):
            return opts.layer(H)
        from hippox import haiku as hx  # the layer classes (that module imports this one)

        lkw = _bb.layer_arguments(opts)
        if opts.layer == "hippo_rnn":
            return hx.HiPPORNN(H, H, name=name, **lkw, **kw)
        layers = {"s4d": hx.S4D, "s4": hx.S4, "s5": hx.S5, "lssl": hx.LSSL}
        return layers[opts.layer](H, name=name, **lkw, **kw)

    def _norm(self, i: int, x, mask=None, *, is_training: bool = False):
        norm = self.final_norm if i == -1 else self.norms[i]
        if norm is None:
            return x
        if isinstance(norm, _BatchNorm):
            return norm(x, mask, is_training=is_training)
        return norm(x)

    def _dense(self, name: str, i: int, z):
        return self.parts[name][i](z)

    def _param(self, name: str, i: int):
        sp = self.block_specs[name][i]
        init = lambda shape, dtype: sp.init(hk.maybe_next_rng_key(), tuple(shape), dtype)  # noqa: E731
        return hk.get_parameter(f"{name}_{i}", sp.shape, self.param_dtype, init=init)

    def _call_layer(self, i: int, z, lengths, carry, want_carry: bool):
        layer = self.layers[i]
        if want_carry:
            return layer(z, seq_lengths=lengths, initial_carry=carry, return_carry=True)
        return None, (layer(z) if lengths is None else layer(z, seq_lengths=lengths))

    def _carry_dtype(self):
        return jnp.promote_types(self.param_dtype, jnp.float32)

    def __call__(
        self,
        u: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry: _bb.SequenceCarry | None = None,
        return_carry: bool = False,
        is_training: bool = False,
    ):
        """The model over a sequence (or a chunk of one); see `hippox.nnx.SequenceModel`.

        Args:
          u: ``(..., L, d_input)`` real input.
          seq_lengths: ``(...)`` ints in ``[0, L]`` (None: all valid).
          initial_carry: `SequenceCarry` to continue from, or None.
          return_carry: also return the `SequenceCarry`.
          is_training: apply dropout (keys from the transform's rng).

        Returns:
          ``y``, or ``(carry, y)``.
        """
        u, initial_carry = _bb.check_call(
            u, self.d_input, initial_carry, self.initialize_carry, abstract=False
        )
        is_training = _validate.check_bool("is_training", is_training)
        opts = self.options

        def drop(x, kind):
            rate = opts.drop_path if kind == "drop_path" else opts.dropout
            if not is_training or rate == 0.0:
                return x
            dims = _bb.broadcast_dims(kind, opts.tie_dropout)
            return _bb.dropout(x, rate, hk.next_rng_key(), dims)

        return _bb.forward(
            self.wiring,
            u,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            return_carry=return_carry,
            carry_dtype=self._carry_dtype(),
            encode=self.encoder,
            layer=self._call_layer,
            dense=self._dense,
            norm=lambda i, x, mask: self._norm(i, x, mask, is_training=is_training),
            drop=drop,
            decode=self.decoder,
            param=self._param,
        )

    def initialize_carry(
        self, batch_shape: Sequence[int] = (), dtype: DTypeLike | None = None
    ) -> _bb.SequenceCarry:
        """Zero carry (every block's state and the pooling sums); see the NNX model."""
        batch = _validate.check_batch_shape(batch_shape)
        carries = [layer.initialize_carry(batch) for layer in self.layers]
        rd = self._carry_dtype() if dtype is None else dtype
        return _bb.initial_carry(carries, batch, self.options.d_model, rd)

    def setup_step(self) -> tuple:
        """Per-block step parameters (discretise once; pass to `step`)."""
        return tuple(layer.setup_step() for layer in self.layers)

    def step(self, carry: _bb.SequenceCarry, u_k: ArrayLike, step_params=None):
        """One position: ``u_k`` ``(..., d_input)`` -> ``(carry, y_k (..., d_output))``."""
        carry, u_k = _bb.check_step(carry, u_k, self.d_input, self.initialize_carry, abstract=False)
        sp = self.setup_step() if step_params is None else step_params
        return _bb.step(
            self.wiring,
            carry,
            u_k,
            encode=self.encoder,
            layer_step=lambda i, c, z: self.layers[i].step(c, z, sp[i]),
            dense=self._dense,
            norm=self._norm,
            decode=self.decoder,
            param=self._param,
        )
