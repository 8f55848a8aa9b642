"""Framework-free pieces of the `SequenceModel` backbone and of the sequence-layer convention.

The backbone (Gu et al.'s S4 sequence model, with any hippox layer as the mixer)::

    x = encoder(u)                                    Dense d_input -> H
    for each of the n_layers blocks:
        z = norm(x)              if prenorm           LayerNorm / BatchNorm / none
        z = layer(z)                                  (..., L, H) -> (..., L, H)
        z = dropout(gelu(z))
        z = dense(z)             activation 'gelu':   Dense H -> H
        z = glu(dense(z))        activation 'glu':    Dense H -> 2H, a * sigmoid(b)
        x = x + dropout(z)
        x = norm(x)              if not prenorm (post-norm)
    x = final_norm(x)            if prenorm and a norm is used
    x = pool(x)                                       'mean' / 'last' over L, or None
    y = decoder(x)                                    Dense H -> d_output

``layer`` is ``'s4'``, ``'s4d'``, ``'s5'``, ``'lssl'``, ``'hippo_rnn'`` or a callable
building a layer. GELU is the exact (erf) GELU. Step mode runs the same network one
position at a time (every layer in its recurrent form, dropout off, BatchNorm with
its running averages) and pools on the fly (a running sum for ``'mean'``), so step
``k`` returns exactly what the full forward pass in evaluation mode returns on the
prefix ``u_0 … u_k``.

The calling convention of every sequence layer (``flax.nnx.RNN``'s)::

    y = layer(u)                                            u (..., L, H)
    carry, y = layer(u, seq_lengths=lengths, initial_carry=carry, return_carry=True)

* ``seq_lengths`` ``(...)`` ints in ``[0, L]``: positions at or after a sequence's length
  are padding; they never influence valid positions, their outputs are zero, and the
  returned carry is the state after each sequence's last valid step.
* ``initial_carry``: the state to start from, the same structure as the step-mode carry
  (``initialize_carry`` / ``step``), so a sequence split into chunks with the carry passed
  along gives the output of one call, and a prompt prefilled in one call continues in
  step mode.

For a `SequenceModel` the carry is a `SequenceCarry`: every block's carry plus the
pooling sums, so chunked calls also pool over everything seen so far. Masks flow
through every block (each layer gets ``seq_lengths``; BatchNorm statistics use valid
positions only; the position-wise dense and norm layers need no mask); the pooled
output uses valid positions only, and with ``pooling=None`` the outputs at padding
positions are zero.

This module holds the validation of the options, the pure helpers (`glu`,
`pool_chunk`, `pool_step`), the checks of the convention (`check_carry_like`,
`call_layer`) and the framework-independent wiring of the backbone (`forward`,
`step`), shared by the NNX, linen, Haiku and Equinox implementations, which supply
their own dense, norm, dropout and layer callables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from hippox._src import _validate
from hippox._src.layers.lssl import LSSLConfig
from hippox._src.layers.masking import check_seq_lengths, valid_mask
from hippox._src.layers.rnn import HiPPORNNConfig
from hippox._src.layers.s4 import S4Config
from hippox._src.layers.s4d import S4DConfig
from hippox._src.layers.s5 import S5Config

#: Built-in layer names of `SequenceModel`.
LAYERS: tuple[str, ...] = ("s4", "s4d", "s5", "lssl", "hippo_rnn")
#: Pooling choices (None: sequence to sequence).
POOLINGS: tuple[str | None, ...] = ("mean", "last", None)
#: Normalisation choices (None: no normalisation).
NORMS: tuple[str | None, ...] = ("layer", "batch", None)
#: Output activation of a block.
ACTIVATIONS: tuple[str, ...] = ("gelu", "glu")
#: The configs of the built-in layers (``hippo_rnn`` is built as ``HiPPORNNConfig(H, H)``).
LAYER_CONFIGS: dict[str, type] = {
    "s4": S4Config,
    "s4d": S4DConfig,
    "s5": S5Config,
    "lssl": LSSLConfig,
    "hippo_rnn": HiPPORNNConfig,
}


class BackboneOptions(NamedTuple):
    """Validated `SequenceModel` options (see `check_options`)."""

    d_output: int
    d_model: int
    n_layers: int
    layer: str | Callable
    layer_kwargs: dict
    l_max: int | None
    prenorm: bool
    norm: str | None
    dropout: float
    activation: str
    pooling: str | None


def check_options(
    *,
    d_output: int,
    d_model: int,
    n_layers: int,
    layer,
    layer_kwargs: Mapping[str, Any] | None,
    l_max: int | None,
    prenorm: bool,
    norm: str | None,
    dropout: float,
    activation: str,
    pooling: str | None,
) -> BackboneOptions:
    """Validates the `SequenceModel` options eagerly.

    Raises:
      ValueError: an unknown layer, norm, activation or pooling; a bad size; a
        dropout rate outside ``[0, 1)``; ``layer='s4'`` without ``l_max``.
      TypeError: wrongly typed options.
    """
    d_output = _validate.check_size("d_output", d_output)
    d_model = _validate.check_size("d_model", d_model)
    n_layers = _validate.check_size("n_layers", n_layers, minimum=0)
    if not callable(layer):
        _validate.check_choice("layer", layer, LAYERS)
    if layer_kwargs is None:
        layer_kwargs = {}
    if not isinstance(layer_kwargs, Mapping):
        raise TypeError(f"`layer_kwargs` must be a mapping or None, got {layer_kwargs!r}.")
    layer_kwargs = dict(layer_kwargs)
    if l_max is not None:
        l_max = _validate.check_size("l_max", l_max)
    if layer == "s4" and l_max is None and "l_max" not in layer_kwargs:
        raise ValueError(
            "`l_max` must be given for layer='s4' (S4 stores C_tilde for a fixed length), got None."
        )
    prenorm = _validate.check_bool("prenorm", prenorm)
    norm = _validate.check_none_or_choice("norm", norm, ("layer", "batch"))
    dropout = _validate.check_real("dropout", dropout, low=0.0)
    if dropout >= 1.0:
        raise ValueError(f"`dropout` must be in [0, 1), got {dropout}.")
    _validate.check_choice("activation", activation, ACTIVATIONS)
    pooling = _validate.check_none_or_choice("pooling", pooling, ("mean", "last"))
    return BackboneOptions(
        d_output,
        d_model,
        n_layers,
        layer,
        layer_kwargs,
        l_max,
        prenorm,
        norm,
        dropout,
        activation,
        pooling,
    )


class Wiring(NamedTuple):
    """The options `forward` and `step` read (hashable: static in every framework)."""

    n_layers: int
    prenorm: bool
    activation: str
    pooling: str | None

    @classmethod
    def of(cls, opts: BackboneOptions) -> Wiring:
        return cls(opts.n_layers, opts.prenorm, opts.activation, opts.pooling)


def layer_arguments(opts: BackboneOptions) -> dict:
    """Keyword arguments of a built-in layer: ``layer_kwargs`` plus ``l_max`` for S4."""
    kw = dict(opts.layer_kwargs)
    if opts.layer == "s4" and "l_max" not in kw:
        kw["l_max"] = opts.l_max
    return kw


def layer_config(opts: BackboneOptions):
    """The config of a built-in block layer with ``H = d_model`` channels."""
    H, kw = opts.d_model, layer_arguments(opts)
    if opts.layer == "hippo_rnn":
        return HiPPORNNConfig(H, H, **kw)
    return LAYER_CONFIGS[opts.layer](H, **kw)


def gelu(x: jax.Array) -> jax.Array:
    """The exact (erf) GELU."""
    return jax.nn.gelu(x, approximate=False)


def glu(z: ArrayLike) -> jax.Array:
    """Gated linear unit over the last axis: ``a * sigmoid(b)`` for ``z = [a, b]``.

    Args:
      z: ``(..., 2H)``.

    Returns:
      ``(..., H)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from hippox._src.layers.backbone import glu
      >>> glu(jnp.array([2.0, 0.0], jnp.float32))
      Array([1.], dtype=float32)
    """
    z = jnp.asarray(z)
    if z.ndim < 1 or z.shape[-1] % 2:
        raise ValueError(f"`z` must have an even last axis (..., 2H), got {z.shape}.")
    a, b = jnp.split(z, 2, axis=-1)
    return a * jax.nn.sigmoid(b)


# ------------------------------------------------------------------------ carries


class SequenceCarry(NamedTuple):
    """The carry of a `SequenceModel` (its step mode and its chunked ``__call__``).

    Attributes:
      layers: one carry per block (each layer's own step-mode state).
      total: ``(..., H)`` sum of the final features over the valid positions so far
        (for ``'mean'`` pooling).
      count: ``(...)`` int32, the number of valid positions processed per sequence.
      last: ``(..., H)`` the final features at the last valid position (for
        ``'last'`` pooling; zeros before the first).
    """

    layers: tuple
    total: jax.Array
    count: jax.Array
    last: jax.Array


def initial_carry(layer_carries, batch_shape, H: int, dtype) -> SequenceCarry:
    """A `SequenceCarry` around the layers' zero carries."""
    batch = tuple(batch_shape)
    zeros = jnp.zeros((*batch, H), dtype)
    return SequenceCarry(tuple(layer_carries), zeros, jnp.zeros(batch, jnp.int32), zeros)


def _kind(dtype) -> str:
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return "complex"
    if jnp.issubdtype(dtype, jnp.floating):
        return "real floating"
    if jnp.issubdtype(dtype, jnp.integer):
        return "integer"
    return str(dtype)


def _describe(tree) -> str:
    leaves = jax.tree.leaves(tree)
    if len(leaves) == 1 and jax.tree.structure(tree).num_nodes == 1:
        return f"an array of shape {jnp.shape(leaves[0])}"
    return f"a {type(tree).__name__} with {len(leaves)} arrays"


def check_carry_like(
    name: str,
    carry,
    expected,
    *,
    alternatives: tuple = (),
    exact_dtype: bool = True,
    context: str = "",
) -> Any:
    """Checks that ``carry`` has the structure, shapes and dtypes of ``expected``.

    Args:
      name: the argument's name in error messages (``initial_carry``, ``carry``).
      carry: the carry to check (any pytree).
      expected: the carry the layer makes (arrays or `jax.ShapeDtypeStruct`).
      alternatives: other accepted carries (same structure and shapes), whose leaf
        dtypes are accepted too (e.g. the carry of a float64 input).
      exact_dtype: require one of the expected dtypes; otherwise only the kind
        (complex, real floating, integer).
      context: appended to shape errors (e.g. the input's batch shape).

    Returns:
      ``carry`` with its leaves as arrays.

    Raises:
      TypeError: another structure (e.g. a tuple for a single-array carry) or dtype.
      ValueError: another shape (e.g. from a layer of another size, or a batch that
        does not match the input).
    """
    exp_paths, exp_def = jax.tree_util.tree_flatten_with_path(expected)
    try:
        leaves, treedef = jax.tree.flatten(carry)
    except Exception:  # noqa: BLE001 - anything unflattenable is the wrong structure
        leaves, treedef = None, None
    if treedef != exp_def:
        raise TypeError(
            f"`{name}` must have the structure of this layer's carry ({_describe(expected)}, "
            f"as initialize_carry makes it), got {_describe(carry)}."
        )
    alt_leaves = [jax.tree.leaves(a) for a in alternatives]
    out = []
    for k, ((path, exp), leaf) in enumerate(zip(exp_paths, leaves, strict=True)):
        where = f"{name}{jax.tree_util.keystr(path)}"
        leaf = _validate.as_array(where, leaf)
        if leaf.shape != tuple(exp.shape):
            raise ValueError(
                f"`{where}` must have shape {tuple(exp.shape)}{context}, got {leaf.shape}."
            )
        allowed = [np.dtype(exp.dtype), *(np.dtype(a[k].dtype) for a in alt_leaves)]
        if exact_dtype and leaf.dtype not in allowed:
            raise TypeError(
                f"`{where}` must have dtype {' or '.join(sorted({str(d) for d in allowed}))}, "
                f"got {leaf.dtype}."
            )
        if not exact_dtype and _kind(leaf.dtype) != _kind(exp.dtype):
            raise TypeError(f"`{where}` must be {_kind(exp.dtype)}, got {leaf.dtype}.")
        out.append(leaf)
    return jax.tree.unflatten(treedef, out)


def _state_specs(config, batch, param_dtype, u_dtype):
    """The carry ``config`` makes for ``param_dtype``, and for the compute dtype with ``u``."""
    pd = np.dtype(param_dtype)
    cd = _validate.compute_dtype(pd, u_dtype)
    exp = jax.eval_shape(lambda: config.initial_state(batch, pd))
    alt = jax.eval_shape(lambda: config.initial_state(batch, cd))
    return exp, alt


def call_layer(
    config,
    params,
    u: ArrayLike,
    *,
    param_dtype,
    dtype=None,
    seq_lengths=None,
    initial_carry=None,
    return_carry: bool = False,
    **extra,
):
    """A layer config under the sequence-layer calling convention (module docstring).

    Args:
      config: an SSM layer config (`hippox.S4DConfig`, ...) or a
        `hippox.HiPPORNNConfig`.
      params: its flat parameter dict.
      u: ``(..., L, H)`` input.
      param_dtype: the layer's parameter dtype (the dtype of its zero carry).
      dtype: output dtype (None: ``u``'s).
      seq_lengths: ``(...)`` ints in ``[0, L]``, or None.
      initial_carry: the carry to start from (the structure of ``initialize_carry``),
        or None (zeros).
      return_carry: return ``(carry, y)`` instead of ``y``.
      **extra: further keywords of the SSM config's ``apply`` (``step_rescale``).

    Returns:
      ``y`` ``(..., L, H_out)``, or ``(carry, y)``.

    Raises:
      TypeError, ValueError: bad ``u``, ``seq_lengths``, ``initial_carry`` or
        ``return_carry``, naming the argument.
    """
    return_carry = _validate.check_bool("return_carry", return_carry)
    u = _validate.as_array("u", u)
    if u.ndim < 2:
        raise ValueError(f"`u` must have shape (..., L, H) (length, features), got {u.shape}.")
    batch = u.shape[:-2]
    if initial_carry is not None:
        exp, alt = _state_specs(config, batch, param_dtype, u.dtype)
        initial_carry = check_carry_like(
            "initial_carry",
            initial_carry,
            exp,
            alternatives=(alt,),
            context=f" (the carry for inputs of batch shape {batch})",
        )
    if isinstance(config, HiPPORNNConfig):
        if u.shape[-1] != config.d_in:
            raise ValueError(
                f"`u` must have shape (..., L, in_features={config.d_in}), got {u.shape}."
            )
        if extra:
            raise TypeError(f"the HiPPO-RNN takes no {sorted(extra)} argument.")
        carry, y = config.apply(params, u, initial_carry, dtype=dtype, seq_lengths=seq_lengths)
        return (carry, y) if return_carry else y
    return config.apply(
        params,
        u,
        dtype=dtype,
        seq_lengths=seq_lengths,
        initial_state=initial_carry,
        return_state=return_carry,
        **extra,
    )


def step_layer(config, step_params, carry, u_k: ArrayLike, *, param_dtype, dtype=None):
    """One step of a layer config, the carry checked first (named ``carry``).

    Args:
      config: an SSM layer config or a `hippox.HiPPORNNConfig`.
      step_params: its step parameters (``step_params(...)``; the weights for the RNN).
      carry: the step-mode carry (the structure of ``initialize_carry`` for the batch
        shape of ``u_k``).
      u_k: ``(..., features)`` input of this position.
      param_dtype: the layer's parameter dtype.
      dtype: output dtype (None: ``u_k``'s).

    Returns:
      ``(carry, y_k)``.
    """
    u = _validate.as_array("u", u_k)
    if u.ndim < 1:
        raise ValueError(f"`u` must have shape (..., features) for a step, got {u.shape}.")
    batch = u.shape[:-1]
    exp, alt = _state_specs(config, batch, param_dtype, u.dtype)
    carry = check_carry_like(
        "carry",
        carry,
        exp,
        alternatives=(alt,),
        context=f" (the carry for step inputs of batch shape {batch})",
    )
    return config.step(step_params, carry, u, dtype=dtype)


def output_dtype(dtype):
    """A layer's ``dtype`` argument: None or a real floating dtype (checked, named)."""
    return None if dtype is None else _validate.real_dtype(dtype, name="dtype")


# ------------------------------------------------------------------------ pooling


def pool_chunk(
    x: jax.Array,
    lengths: jax.Array | None,
    prev: SequenceCarry | None,
    pooling: str | None,
    dtype,
):
    """Pools a chunk of final features, continuing the pooling state ``prev``.

    Args:
      x: ``(..., L, H)`` final features of the chunk.
      lengths: ``(...)`` valid lengths, or None (all ``L``).
      prev: the carry before the chunk (its ``total``, ``count``, ``last``), or None.
      pooling: ``'mean'``, ``'last'`` or None.
      dtype: dtype of the running ``total`` and ``last``.

    Returns:
      ``(total, count, last, pooled)``: the pooling state after the chunk and the
      pooled features (``(..., H)`` over every valid position so far; ``x`` with
      padding set to zero for None). A sequence with no valid position yet pools to
      zeros.
    """
    batch, L = x.shape[:-2], x.shape[-2]
    if lengths is None:
        n = jnp.full(batch, L, jnp.int32)
        xm = x
    else:
        n = jnp.broadcast_to(lengths, batch)
        xm = jnp.where(valid_mask(n, L)[..., None], x, jnp.zeros((), x.dtype))
    if prev is None:
        total0 = last0 = jnp.zeros((*batch, x.shape[-1]), dtype)
        count0 = jnp.zeros(batch, jnp.int32)
    else:
        total0, count0, last0 = prev.total, prev.count, prev.last
    total = (total0 + jnp.sum(xm, axis=-2).astype(dtype)).astype(dtype)
    count = count0 + n
    idx = jnp.clip(n - 1, 0, L - 1)[..., None, None]
    x_last = jnp.take_along_axis(x, jnp.broadcast_to(idx, (*batch, 1, x.shape[-1])), -2)[..., 0, :]
    last = jnp.where((n > 0)[..., None], x_last.astype(dtype), last0).astype(dtype)
    if pooling == "mean":
        denom = jnp.maximum(count, 1).astype(dtype)[..., None]
        pooled = (total / denom).astype(x.dtype)
    elif pooling == "last":
        pooled = last.astype(x.dtype)
    else:
        pooled = xm
    return total, count, last, pooled


def pool(x: ArrayLike, pooling: str | None, lengths: ArrayLike | None = None) -> jax.Array:
    """Pools ``(..., L, H)`` over the valid positions: ``'mean'``, ``'last'`` or None.

    Examples:
      >>> import jax.numpy as jnp
      >>> from hippox._src.layers.backbone import pool
      >>> x = jnp.arange(6.0).reshape(3, 2)
      >>> pool(x, "mean").tolist(), pool(x, "last").tolist(), pool(x, None).shape
      ([2.0, 3.0], [4.0, 5.0], (3, 2))
      >>> pool(x, "mean", jnp.array(2)).tolist()
      [1.0, 2.0]
    """
    x = jnp.asarray(x)
    lengths = None if lengths is None else jnp.asarray(lengths, jnp.int32)
    return pool_chunk(x, lengths, None, pooling, x.dtype)[3]


def pool_step(carry: SequenceCarry, x_k: jax.Array, pooling: str | None):
    """Streaming pooling of one position: ``(total, count, last, pooled)`` after it.

    ``pooled`` equals `pool` over every position so far (for None and ``'last'`` it is
    ``x_k``).
    """
    total = (carry.total + x_k).astype(carry.total.dtype)
    count = carry.count + 1
    last = x_k.astype(carry.last.dtype)
    if pooling == "mean":
        pooled = (total / count.astype(total.dtype)[..., None]).astype(x_k.dtype)
        return total, count, last, pooled
    return total, count, last, x_k


# ------------------------------------------------------------------------ wiring


def check_model_input(u: ArrayLike, d_input: int | None, *, name: str = "u") -> jax.Array:
    """``u`` ``(..., L, d_input)`` real floating (``d_input`` None: any)."""
    u = _validate.as_array(name, u)
    if not jnp.issubdtype(u.dtype, jnp.floating):
        raise TypeError(f"`{name}` must be a real floating array, got dtype {u.dtype}.")
    if u.ndim < 2 or u.shape[-2] < 1 or (d_input is not None and u.shape[-1] != d_input):
        want = "d_input" if d_input is None else f"d_input={d_input} (as built)"
        raise ValueError(f"`{name}` must have shape (..., L, {want}) with L >= 1, got {u.shape}.")
    return u


def check_step_input(u_k: ArrayLike, d_input: int | None, *, name: str = "u_k") -> jax.Array:
    """``u_k`` ``(..., d_input)`` real floating (one position)."""
    u_k = _validate.as_array(name, u_k)
    if not jnp.issubdtype(u_k.dtype, jnp.floating):
        raise TypeError(f"`{name}` must be a real floating array, got dtype {u_k.dtype}.")
    if u_k.ndim < 1 or (d_input is not None and u_k.shape[-1] != d_input):
        raise ValueError(f"`{name}` must have shape (..., d_input={d_input}), got {u_k.shape}.")
    return u_k


def check_model_carry(carry, expected: SequenceCarry, *, name: str, batch) -> SequenceCarry:
    """Checks a `SequenceCarry` against the model's zero carry (structure, shapes, kinds).

    Exact dtypes of the layer states are checked by each layer.
    """
    if not isinstance(carry, SequenceCarry):
        raise TypeError(
            f"`{name}` must be a SequenceCarry (from initialize_carry, step or a call with "
            f"return_carry=True), got {type(carry).__name__}."
        )
    if len(carry.layers) != len(expected.layers):
        raise ValueError(
            f"`{name}` must hold {len(expected.layers)} layer carries (one per block), got "
            f"{len(carry.layers)}."
        )
    return check_carry_like(
        name,
        carry,
        expected,
        exact_dtype=False,
        context=f" (the carry for inputs of batch shape {tuple(batch)})",
    )


def forward(
    opts: Wiring,
    u: jax.Array,
    *,
    seq_lengths,
    initial_carry: SequenceCarry | None,
    return_carry: bool,
    carry_dtype,
    encode: Callable,
    layer: Callable,
    mix: Callable,
    norm: Callable,
    drop: Callable,
    decode: Callable,
):
    """The backbone over a chunk, with masks and carries (the framework supplies the parts).

    Args:
      opts: the `Wiring` of the validated options.
      u: ``(..., L, d_input)`` checked input.
      seq_lengths: ``(...)`` valid lengths or None.
      initial_carry: a checked `SequenceCarry` or None.
      return_carry: return ``(carry, y)``.
      carry_dtype: dtype of the pooling sums when ``initial_carry`` is None.
      encode, decode: ``x -> Dense(x)``.
      layer: ``(i, z, lengths, carry_i, want_carry) -> (carry_i, z)``: block ``i``'s
        layer under the calling convention (``want_carry`` False: no carry in or out,
        return ``(None, z)``; a plain ``layer(z)`` call when ``lengths`` is None too).
      mix: ``(i, z) -> Dense(z)`` (the block's output dense layer).
      norm: ``(i, x, mask) -> x``; ``i = -1`` is the final norm; ``mask`` ``(..., L)``
        or None (only BatchNorm statistics need it).
      drop: ``x -> dropout(x)`` (identity in evaluation mode).

    Returns:
      ``y`` or ``(SequenceCarry, y)``.
    """
    return_carry = _validate.check_bool("return_carry", return_carry)
    batch, L = u.shape[:-2], u.shape[-2]
    lengths = check_seq_lengths(seq_lengths, batch, L)
    mask = None if lengths is None else valid_mask(lengths, L)
    want_carry = initial_carry is not None or return_carry
    x = encode(u)
    carries = []
    for i in range(opts.n_layers):
        z = norm(i, x, mask) if opts.prenorm else x
        c_in = None if initial_carry is None else initial_carry.layers[i]
        c, z = layer(i, z, lengths, c_in, want_carry)
        carries.append(c)
        z = mix(i, drop(gelu(z)))
        if opts.activation == "glu":
            z = glu(z)
        x = x + drop(z)
        if not opts.prenorm:
            x = norm(i, x, mask)
    if opts.prenorm:
        x = norm(-1, x, mask)
    dt = carry_dtype if initial_carry is None else initial_carry.total.dtype
    total, count, last, pooled = pool_chunk(x, lengths, initial_carry, opts.pooling, dt)
    y = decode(pooled)
    if opts.pooling is None and mask is not None:
        y = jnp.where(mask[..., None], y, jnp.zeros((), y.dtype))
    if not return_carry:
        return y
    return SequenceCarry(tuple(carries), total, count, last), y


def step(
    opts: Wiring,
    carry: SequenceCarry,
    u_k: jax.Array,
    *,
    encode: Callable,
    layer_step: Callable,
    mix: Callable,
    norm: Callable,
    decode: Callable,
):
    """One position of the backbone in step mode (evaluation semantics).

    Args:
      opts: the `Wiring` of the validated options.
      carry: a checked `SequenceCarry`.
      u_k: ``(..., d_input)`` checked input.
      encode, mix, decode: as in `forward`.
      layer_step: ``(i, carry_i, z) -> (carry_i, z)``.
      norm: ``(i, x) -> x`` in evaluation mode (``i = -1``: the final norm).

    Returns:
      ``(carry, y_k)``.
    """
    x = encode(u_k)
    states = []
    for i in range(opts.n_layers):
        z = norm(i, x) if opts.prenorm else x
        s, z = layer_step(i, carry.layers[i], z)
        states.append(s)
        z = mix(i, gelu(z))
        x = x + (glu(z) if opts.activation == "glu" else z)
        if not opts.prenorm:
            x = norm(i, x)
    if opts.prenorm:
        x = norm(-1, x)
    total, count, last, pooled = pool_step(carry, x, opts.pooling)
    return SequenceCarry(tuple(states), total, count, last), decode(pooled)


# ------------------------------------------------------------------------ pure parts


def dense_params(d_in: int, d_out: int) -> dict:
    """``{"kernel": ((d_in, d_out), lecun_normal), "bias": ((d_out,), zeros)}`` (Flax's)."""
    return {
        "kernel": ((d_in, d_out), jax.nn.initializers.lecun_normal()),
        "bias": ((d_out,), jax.nn.initializers.zeros),
    }


def norm_params(H: int) -> dict:
    """LayerNorm ``{"scale": ones, "bias": zeros}`` (Flax's)."""
    return {
        "scale": ((H,), jax.nn.initializers.ones),
        "bias": ((H,), jax.nn.initializers.zeros),
    }


def param_specs(d_input: int, opts: BackboneOptions, config) -> dict:
    """``{name: (shape, init)}`` trees of a built-in-layer backbone, named as in NNX.

    ``encoder``, ``layers[i]`` (the ``config``'s leaves), ``mixers[i]``, ``norms[i]``
    (LayerNorm only), ``final_norm`` (prenorm with a norm), ``decoder``; block entries
    are dicts keyed by the int ``i`` (as ``flax.nnx.to_pure_dict`` writes an
    ``nnx.List``), so an NNX parameter tree loads as it is.
    """
    H, n = opts.d_model, opts.n_layers
    width = 2 * H if opts.activation == "glu" else H
    specs: dict = {
        "encoder": dense_params(d_input, H),
        "layers": {i: config.param_specs() for i in range(n)},
        "mixers": {i: dense_params(H, width) for i in range(n)},
    }
    if opts.norm == "layer":
        specs["norms"] = {i: norm_params(H) for i in range(n)}
        if opts.prenorm:
            specs["final_norm"] = norm_params(H)
    specs["decoder"] = dense_params(H, opts.d_output)
    return specs


def init_params(specs: dict, key, param_dtype) -> dict:
    """Initial values of a `param_specs` tree (one key per leaf, in flattening order)."""
    is_spec = lambda x: isinstance(x, tuple) and len(x) == 2 and callable(x[1])  # noqa: E731
    leaves, treedef = jax.tree.flatten(specs, is_leaf=is_spec)
    keys = jax.random.split(key, len(leaves))
    values = [init(k, shape, param_dtype) for k, (shape, init) in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, values)


def refuse_batch_norm(norm, framework: str) -> None:
    """BatchNorm needs mutable statistics: only the Flax models offer it."""
    if norm == "batch":
        raise ValueError(
            f"`norm` must be 'layer' or None in the {framework} SequenceModel (BatchNorm "
            "keeps running statistics; use hippox.nnx or hippox.linen for it), got 'batch'."
        )


def dense(p: Mapping, x: jax.Array, dtype=None) -> jax.Array:
    """``x @ kernel + bias`` in ``dtype`` (None: promote(x, kernel)), as `flax.nnx.Linear`."""
    dt = jnp.result_type(x, p["kernel"]) if dtype is None else dtype
    return (x.astype(dt) @ p["kernel"].astype(dt) + p["bias"].astype(dt)).astype(dt)


def layer_norm(p: Mapping, x: jax.Array, dtype=None, eps: float = 1e-6) -> jax.Array:
    """LayerNorm over the last axis (``eps=1e-6``, as `flax.nnx.LayerNorm`)."""
    dt = jnp.result_type(x, p["scale"]) if dtype is None else dtype
    xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean = xf.mean(-1, keepdims=True)
    var = jnp.maximum((xf * xf).mean(-1, keepdims=True) - mean * mean, 0.0)
    y = (xf - mean) * jax.lax.rsqrt(var + eps)
    return (y * p["scale"] + p["bias"]).astype(dt)


def dropout(x: jax.Array, rate: float, key) -> jax.Array:
    """Inverted dropout (``key`` None or ``rate`` 0: identity)."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)).astype(x.dtype)
