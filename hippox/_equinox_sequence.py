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
      activation: ``'gelu'`` or ``'glu'`` after the layer.
      pooling: ``'mean'``, ``'last'`` or None (sequence to sequence).
      norm: ``'layer'`` or None (BatchNorm is offered by the Flax models only).
      inference: evaluation mode (dropout off); toggle with
        `equinox.nn.inference_mode`.
      dtype: computation dtype of the dense and norm layers and the layers' output
        dtype (None: inferred).
      param_dtype: parameter storage dtype.

    Attributes:
      params: nested dict ``encoder``, ``layers[i]``, ``mixers[i]``, ``norms[i]``,
        ``final_norm``, ``decoder`` (as `flax.nnx.to_pure_dict` of the NNX model).

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
    d_model: int = eqx.field(static=True)
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
        )
        _bb.refuse_batch_norm(opts.norm, "Equinox")
        self.inference = _validate.check_bool("inference", inference)
        pd = _validate.real_dtype(param_dtype, name="param_dtype")
        self.wiring, self.dropout, self.d_model = _bb.Wiring.of(opts), opts.dropout, opts.d_model
        self.layer_config = _bb.layer_config(opts)
        self.dtype = _bb.output_dtype(dtype)
        specs = _bb.param_specs(self.d_input, opts, self.layer_config)
        self.params = _bb.init_params(specs, key, pd)

    def _norm(self, i: int, x, mask=None):
        p = self.params.get("final_norm") if i == -1 else self.params.get("norms", {}).get(i)
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

    def __call__(
        self,
        u: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry: _bb.SequenceCarry | None = None,
        return_carry: bool = False,
        key=None,
    ):
        """The model over a sequence (or a chunk of one); see `hippox.nnx.SequenceModel`.

        Args:
          u: ``(L, d_input)`` real input (leading batch axes are accepted too).
          seq_lengths: ints in ``[0, L]`` of shape ``u.shape[:-2]`` (None: all valid).
          initial_carry: `SequenceCarry` to continue from, or None.
          return_carry: also return the `SequenceCarry`.
          key: jax.random key for dropout (needed unless ``inference`` or no dropout).

        Returns:
          ``y``, or ``(carry, y)``.
        """
        u = _bb.check_model_input(u, self.d_input)
        if initial_carry is not None:
            expected = jax.eval_shape(lambda: self.initialize_carry(u.shape[:-2]))
            initial_carry = _bb.check_model_carry(
                initial_carry, expected, name="initial_carry", batch=u.shape[:-2]
            )
        training = not self.inference and self.dropout > 0.0
        if training and key is None:
            raise ValueError(
                "`key` must be a jax.random key for dropout in training mode (or set "
                "inference=True, e.g. with equinox.nn.inference_mode), got None."
            )
        keys = iter(jax.random.split(key, 2 * self.wiring.n_layers) if training else ())

        def drop(x):
            return _bb.dropout(x, self.dropout, next(keys)) if training else x

        return _bb.forward(
            self.wiring,
            u,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            return_carry=return_carry,
            carry_dtype=jnp.promote_types(_param_dtype(self.params), jnp.float32),
            encode=self._dense("encoder"),
            layer=self._call_layer,
            mix=lambda i, z: self._dense("mixers", i)(z),
            norm=self._norm,
            drop=drop,
            decode=self._dense("decoder"),
        )

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

    def step(self, carry: _bb.SequenceCarry, u_k: ArrayLike, step_params=None):
        """One position: ``u_k`` ``(d_input,)`` -> ``(carry, y_k (d_output,))`` (evaluation)."""
        u_k = _bb.check_step_input(u_k, self.d_input)
        expected = jax.eval_shape(lambda: self.initialize_carry(u_k.shape[:-1]))
        carry = _bb.check_model_carry(carry, expected, name="carry", batch=u_k.shape[:-1])
        sp = self.setup_step() if step_params is None else step_params
        cfg = self.layer_config
        return _bb.step(
            self.wiring,
            carry,
            u_k,
            encode=self._dense("encoder"),
            layer_step=lambda i, c, z: cfg.step(sp[i], c, z, dtype=self.dtype),
            mix=lambda i, z: self._dense("mixers", i)(z),
            norm=self._norm,
            decode=self._dense("decoder"),
        )
