"""The Equinox `SequenceModel` (re-exported by ``hippox.equinox``; see `hippox.nnx.SequenceModel`).

The blocks, wiring and options are those of ``hippox._src.layers.backbone``; one unbatched
example per call (batch with `jax.vmap`), as every ``hippox.equinox`` module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers import backbone as _bb
from hippox._src.layers.rnn import HiPPORNNConfig

__all__ = ["SequenceModel"]


def _param_dtype(params: Mapping) -> jnp.dtype:
    return jnp.result_type(*jax.tree.leaves(params))


class SequenceModel(eqx.Module):
    """The hippox backbone (`hippox.nnx.SequenceModel`) as an Equinox module.

    ``u`` ``(L, d_input)`` -> ``(d_output,)`` (``pooling='mean'``/``'last'``) or
    ``(L, d_output)`` (``pooling=None``), with the calling convention (``seq_lengths``,
    ``initial_carry``, ``return_carry``; carry a `SequenceCarry`) and step mode of the
    Flax model; batch with `jax.vmap`.

    With ``norm='batch'`` build it with `equinox.nn.make_with_state` (``model, state =
    eqx.nn.make_with_state(SequenceModel)(...)``) and pass ``state``: calls return
    ``(out, state)``; the running ``mean``/``var`` are updated from valid positions only
    unless ``inference``. The batch statistics cover the examples of a `jax.vmap` whose
    ``axis_name`` is given here as ``axis_name`` (otherwise one call's positions), e.g.
    ``jax.vmap(model, in_axes=(0, None), out_axes=(0, None), axis_name="batch")(us,
    state)``. Dropout and drop path draw from ``key`` (split it per example under
    `jax.vmap` for independent masks).

    The block options ``final_act``, ``gate``, ``gate_act``, ``mult_act``,
    ``bottleneck``, ``residual``, ``residual_kwargs``, ``drop_path`` and ``tie_dropout``
    are those of `hippox.nnx.SequenceModel`.

    Args:
      d_input: input features.
      d_output: output features.
      key: jax.random key for the parameters.
      d_model: width H of every block.
      n_layers: number of residual blocks.
      layer: a built-in layer name (as in `hippox.nnx.SequenceModel`).
      layer_kwargs: keyword options of the built-in layer.
      l_max: maximum sequence length (the reference length of S4's ``C_tilde``).
      prenorm: normalise before the layer (True) or after the residual sum (False).
      dropout: dropout rate in ``[0, 1)``.
      activation: ``'gelu'`` or ``'glu'`` after the layer (older name of ``final_act``).
      pooling: ``'mean'``, ``'last'`` or None (sequence to sequence).
      norm: ``'layer'``, ``'batch'`` or None.
      axis_name: the `jax.vmap` axis name BatchNorm's statistics reduce over (None:
        one call's positions).
      inference: evaluation mode (dropout off); toggle with
        `equinox.nn.inference_mode`.
      dtype: computation dtype of the dense and norm layers and the layers' output
        dtype (None: inferred).
      param_dtype: parameter storage dtype.

    Attributes:
      params: nested dict ``encoder``, ``layers[i]``, ``mixers[i]`` (and the other block
        parts), ``norms[i]``, ``final_norm``, ``decoder`` (as `flax.nnx.to_pure_dict`
        of the NNX model's parameters).
      norm_state: `equinox.nn.StateIndex` of each BatchNorm's ``(mean, var)`` (blocks,
        then the final norm), or None.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import hippox.equinox
      >>> model = hippox.equinox.SequenceModel(3, 2, d_model=4, n_layers=1,
      ...                                      layer_kwargs={"N": 4}, key=jax.random.key(0))
      >>> us, ns = jnp.ones((5, 8, 3), jnp.float32), jnp.array([8, 5, 3, 1, 8])
      >>> jax.vmap(lambda u, n: model(u, seq_lengths=n))(us, ns).shape
      (5, 2)
    """

    params: dict
    inference: bool
    d_input: int = eqx.field(static=True)
    wiring: _bb.Wiring = eqx.field(static=True)
    layer_config: Any = eqx.field(static=True)
    dropout: float = eqx.field(static=True)
    drop_path: float = eqx.field(static=True)
    tie_dropout: bool = eqx.field(static=True)
    d_model: int = eqx.field(static=True)
    norm_state: tuple | None
    axis_name: Any = eqx.field(static=True, default=None)
    dtype: Any = eqx.field(static=True, default=None)

    def __init__(
        self,
        d_input: int,
        d_output: int,
        *,
        key,
        d_model: int = 64,
        n_layers: int = 4,
        layer: str = "s4d",
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
        axis_name: Any = None,
        inference: bool = False,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
    ):
        _validate.check_key("key", key, "hippox.equinox.SequenceModel")
        self.d_input = _validate.check_size("d_input", d_input)
        if callable(layer):
            raise TypeError(
                f"`layer` must be one of {_bb.LAYERS} in the Equinox SequenceModel, got {layer!r}."
            )
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
        self.inference = _validate.check_bool("inference", inference)
        pd = _validate.real_dtype(param_dtype, name="param_dtype")
        self.wiring, self.d_model = _bb.Wiring.of(opts), opts.d_model
        self.dropout, self.drop_path = opts.dropout, opts.drop_path
        self.tie_dropout = opts.tie_dropout
        self.axis_name = axis_name
        if opts.norm == "batch":
            H = opts.d_model
            n_norms = opts.n_layers + (1 if opts.prenorm else 0)
            init = (jnp.zeros((H,), jnp.float32), jnp.ones((H,), jnp.float32))
            self.norm_state = tuple(eqx.nn.StateIndex(init) for _ in range(n_norms))
        else:
            self.norm_state = None
        self.layer_config = _bb.layer_config(opts)
        self.dtype = _bb.output_dtype(dtype)
        specs = _bb.param_specs(self.d_input, opts, self.layer_config)
        self.params = _bb.init_params(specs, key, pd)

    def _norm_params(self, i: int):
        return self.params.get("final_norm") if i == -1 else self.params.get("norms", {}).get(i)

    def _layer_norm(self, i: int, x, mask=None):
        p = self._norm_params(i)
        return x if p is None else _bb.layer_norm(p, x, self.dtype)

    def _call_layer(self, i: int, z, lengths, carry, want_carry: bool):
        out = _bb.call_layer(
            self.layer_config,
            self.params["layers"][i],
            z,
            param_dtype=_param_dtype(self.params),
            dtype=self.dtype,
            seq_lengths=lengths,
            initial_carry=carry,
            return_carry=want_carry,
        )
        return out if want_carry else (None, out)

    def _dense(self, name: str, i: int | None = None) -> Callable:
        p = self.params[name] if i is None else self.params[name][i]
        return lambda x: _bb.dense(p, x, self.dtype)

    def _block_dense(self, name: str, i: int, z):
        return _bb.dense(self.params[name][i], z, self.dtype)

    def _param(self, name: str, i: int):
        return self.params[name][i]

    def _check_state(self, state):
        if self.norm_state is not None and state is None:
            raise ValueError(
                "`state` must be the eqx.nn.State of the BatchNorm statistics for norm='batch' "
                "(model, state = eqx.nn.make_with_state(SequenceModel)(...)), got None."
            )
        if state is not None and not isinstance(state, eqx.nn.State):
            raise TypeError(f"`state` must be an equinox.nn.State or None, got {state!r}.")

    def _state_index(self, i: int):
        return self.norm_state[i if i >= 0 else len(self.norm_state) - 1]

    def __call__(
        self,
        u: ArrayLike,
        state: eqx.nn.State | None = None,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry: _bb.SequenceCarry | None = None,
        return_carry: bool = False,
        key=None,
    ):
        """The model over a sequence (or a chunk of one); see `hippox.nnx.SequenceModel`.

        Args:
          u: ``(L, d_input)`` real input (leading batch axes are accepted too).
          state: `equinox.nn.State` (BatchNorm statistics; required for
            ``norm='batch'``), or None.
          seq_lengths: ints in ``[0, L]`` of shape ``u.shape[:-2]`` (None: all valid).
          initial_carry: `SequenceCarry` to continue from, or None.
          return_carry: also return the `SequenceCarry`.
          key: jax.random key for dropout and drop path (needed unless ``inference`` or
            both rates are 0).

        Returns:
          ``y``, or ``(carry, y)``; with ``state`` given, ``(that, state)``.
        """
        u, initial_carry = _bb.check_call(u, self.d_input, initial_carry, self.initialize_carry)
        self._check_state(state)
        training = not self.inference and (self.dropout > 0.0 or self.drop_path > 0.0)
        if training and key is None:
            raise ValueError(
                "`key` must be a jax.random key for dropout in training mode (or set "
                "inference=True, e.g. with equinox.nn.inference_mode), got None."
            )
        keys = iter(jax.random.split(key, 3 * self.wiring.n_layers) if training else ())

        def drop(x, kind):
            rate = self.drop_path if kind == "drop_path" else self.dropout
            if not training or rate == 0.0:
                return x
            return _bb.dropout(x, rate, next(keys), _bb.broadcast_dims(kind, self.tie_dropout))

        box = [state]

        def norm(i, x, mask=None):
            if self.norm_state is None:
                return self._layer_norm(i, x)
            index = self._state_index(i)
            y, stats = _bb.batch_norm(
                self._norm_params(i),
                box[0].get(index),
                x,
                mask,
                use_running_average=self.inference,
                dtype=self.dtype,
                axis_name=self.axis_name,
            )
            if not self.inference:
                box[0] = box[0].set(index, stats)
            return y

        out = _bb.forward(
            self.wiring,
            u,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            return_carry=return_carry,
            carry_dtype=jnp.promote_types(_param_dtype(self.params), jnp.float32),
            encode=self._dense("encoder"),
            layer=self._call_layer,
            dense=self._block_dense,
            norm=norm,
            drop=drop,
            decode=self._dense("decoder"),
            param=self._param,
        )
        return out if state is None else (out, box[0])

    def initialize_carry(
        self, batch_shape: Sequence[int] = (), dtype: DTypeLike | None = None
    ) -> _bb.SequenceCarry:
        """Zero carry (``batch_shape`` ``()`` for one sequence)."""
        batch = _validate.check_batch_shape(batch_shape)
        pd = _param_dtype(self.params)
        carries = [self.layer_config.initial_state(batch, pd)] * self.wiring.n_layers
        rd = jnp.promote_types(pd, jnp.float32) if dtype is None else dtype
        return _bb.initial_carry(carries, batch, self.d_model, rd)

    def setup_step(self) -> tuple:
        """Per-block step parameters (discretise once; pass to `step`)."""
        cfg = self.layer_config
        if isinstance(cfg, HiPPORNNConfig):
            return tuple(self.params["layers"][i] for i in range(self.wiring.n_layers))
        return tuple(cfg.step_params(self.params["layers"][i]) for i in range(self.wiring.n_layers))

    def step(
        self,
        carry: _bb.SequenceCarry,
        u_k: ArrayLike,
        step_params=None,
        state: eqx.nn.State | None = None,
    ):
        """One position: ``u_k`` ``(d_input,)`` -> ``(carry, y_k (d_output,))`` (evaluation).

        ``state``: the BatchNorm statistics (required for ``norm='batch'``; read only).
        """
        carry, u_k = _bb.check_step(carry, u_k, self.d_input, self.initialize_carry)
        self._check_state(state)
        sp = self.setup_step() if step_params is None else step_params
        cfg = self.layer_config

        def norm(i, x):
            if self.norm_state is None:
                return self._layer_norm(i, x)
            stats = state.get(self._state_index(i))
            p = self._norm_params(i)
            return _bb.batch_norm(p, stats, x, use_running_average=True, dtype=self.dtype)[0]

        return _bb.step(
            self.wiring,
            carry,
            u_k,
            encode=self._dense("encoder"),
            layer_step=lambda i, c, z: cfg.step(sp[i], c, z, dtype=self.dtype),
            dense=self._block_dense,
            norm=norm,
            decode=self._dense("decoder"),
            param=self._param,
        )
