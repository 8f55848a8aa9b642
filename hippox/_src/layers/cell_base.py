"""The shared base of the recurrent cell configs: carry checks, step, sequence, padding.

A recurrent cell config (`RecurrentConfig`) is a frozen, hashable dataclass (a
`hippox._src.layers.base.LayerConfig`) whose methods are pure functions of a flat
parameter dict. A subclass declares

- ``param_shapes()`` / ``param_initializers()`` (as every layer config);
- ``state_class``: a NamedTuple type, the carry;
- ``state_spec()``: ``{field: (trailing_shape, kind)}`` with ``kind`` ``'float'``
  (kept in the compute dtype) or ``'int'`` (int32);
- ``_cell(p, state, x)``: one step on checked, cast, batch-broadcast arrays,
  returning ``(new_state, y)`` with ``y`` ``(*batch, features)``;

and inherits `initial_state`, `check_state`, `step` and `apply` (a `jax.lax.scan` with
optional ``seq_lengths`` padding), so the Flax, Haiku and Equinox wrappers of every cell
share one calling convention and the same parameter values give the same outputs in
every framework.

Dtypes: a cell computes and carries its state in ``promote(parameters, input,
float32)`` (float64 only for float64 inputs or parameters; bfloat16 activations are
computed in float32) and returns its outputs in the input's dtype (or ``dtype``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers import base


def check_x(x: ArrayLike, d_in: int, *, step: bool) -> jax.Array:
    """A real floating input ``(..., d_in)`` (``step``) or ``(..., L, d_in)``, ``L >= 1``."""
    x = _validate.as_array("x", x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"`x` must be a real floating array, got dtype {x.dtype}.")
    if step and (x.ndim < 1 or x.shape[-1] != d_in):
        raise ValueError(f"`x` must have shape (..., d_in) with d_in={d_in}, got {x.shape}.")
    if not step and (x.ndim < 2 or x.shape[-1] != d_in or x.shape[-2] < 1):
        raise ValueError(
            f"`x` must have shape (..., L, d_in) with L >= 1 and d_in={d_in}, got {x.shape}."
        )
    return x


def check_seq_lengths(seq_lengths: ArrayLike, batch: tuple[int, ...], L: int) -> jax.Array:
    """``seq_lengths``: an integer array of shape ``batch`` with entries in ``[0, L]``.

    The range is checked only when the values are concrete (not under `jax.jit`).
    """
    lengths = _validate.as_array("seq_lengths", seq_lengths)
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"`seq_lengths` must be an integer array, got dtype {lengths.dtype}.")
    if lengths.shape != tuple(batch):
        raise ValueError(
            f"`seq_lengths` must have the batch shape {tuple(batch)} of the input "
            f"(x.shape[:-2]), got {lengths.shape}."
        )
    value = _validate.concrete_value(lengths)
    if value is not None and value.size and (value.min() < 0 or value.max() > L):
        raise ValueError(
            f"`seq_lengths` must lie in [0, L] with L={L}, got values in "
            f"[{value.min()}, {value.max()}]."
        )
    return lengths.astype(jnp.int32)


def mask_step(valid: jax.Array, old, new, y: jax.Array):
    """Keeps the carry ``old`` and zeroes the output where ``valid`` (batch shape) is False."""

    def pick(a, b):
        v = valid.reshape(valid.shape + (1,) * (a.ndim - valid.ndim))
        return jnp.where(v, b, a)

    return jax.tree.map(pick, old, new), jnp.where(valid[..., None], y, jnp.zeros((), y.dtype))


class RecurrentConfig(base.LayerConfig):
    """Carry handling, step and sequence methods shared by the cell configs (a mixin).

    Subclasses are frozen dataclasses with fields ``d_in`` and ``features`` and define
    ``state_class``, ``state_spec`` and ``_cell`` (module docstring).
    """

    state_class: ClassVar[type]

    def state_spec(self) -> dict[str, tuple[tuple[int, ...], str]]:  # pragma: no cover
        """``{field: (trailing_shape, kind)}`` of the carry (``kind`` 'float' or 'int')."""
        raise NotImplementedError

    def _cell(self, p: dict[str, jax.Array], state, x: jax.Array):  # pragma: no cover
        """One step on checked arrays: ``(new_state, y)``."""
        raise NotImplementedError

    def initial_state(self, batch_shape: Sequence[int] = (), param_dtype: DTypeLike = jnp.float32):
        """The zero carry.

        Args:
          batch_shape: leading batch shape (an int or a sequence of ints).
          param_dtype: parameter dtype; floating leaves are kept in
            ``promote(param_dtype, float32)``, integer leaves in int32.

        Returns:
          ``state_class`` of zeros, each leaf ``(*batch_shape, *trailing_shape)``.
        """
        batch = _validate.check_batch_shape(batch_shape)
        rd = base.state_dtype(param_dtype, complex_state=False)
        leaves = {
            f: jnp.zeros((*batch, *shape), rd if kind == "float" else jnp.int32)
            for f, (shape, kind) in self.state_spec().items()
        }
        return self.state_class(**leaves)

    def check_state(
        self,
        state,
        batch_shape: Sequence[int],
        param_dtype: DTypeLike | None = None,
        *,
        name: str = "state",
    ):
        """Checks a carry against this config and an input's batch shape.

        Args:
          state: the carry to check.
          batch_shape: batch shape of the input it will be used with (``x.shape[:-1]``
            for a step, ``x.shape[:-2]`` for a sequence).
          param_dtype: when given, the dtype the floating leaves must have
            (``promote(param_dtype, float32)``, as `initial_state` makes them).
          name: the argument name used in error messages.

        Returns:
          ``state`` with its leaves as arrays.

        Raises:
          TypeError: not a ``state_class``, a leaf of the wrong kind (floating /
            integer), floating leaves of different dtypes, or a dtype other than the
            one of ``param_dtype``.
          ValueError: a leaf whose shape is not ``(*batch_shape, *trailing_shape)``.
        """
        cls = self.state_class.__name__
        if not isinstance(state, self.state_class):
            raise TypeError(
                f"`{name}` must be a {cls} (from initial_state / initialize_carry), got "
                f"{type(state).__name__}."
            )
        batch = _validate.check_batch_shape(batch_shape)
        spec = self.state_spec()
        leaves = {f: _validate.as_array(f"{name}.{f}", getattr(state, f)) for f in spec}
        for f, (shape, kind) in spec.items():
            leaf = leaves[f]
            if leaf.shape != (*batch, *shape):
                raise ValueError(
                    f"`{name}.{f}` must have shape {(*batch, *shape)} (batch {batch} of the "
                    f"input, then {shape} for this {type(self).__name__}), got {leaf.shape}."
                )
            if kind == "int" and not jnp.issubdtype(leaf.dtype, jnp.integer):
                raise TypeError(f"`{name}.{f}` must be an integer step counter, got {leaf.dtype}.")
            if kind == "float" and not jnp.issubdtype(leaf.dtype, jnp.floating):
                raise TypeError(f"`{name}.{f}` must be real floating, got {leaf.dtype}.")
        floats = {f: leaves[f].dtype for f, (_, kind) in spec.items() if kind == "float"}
        if len(set(floats.values())) > 1:
            shown = ", ".join(f"{name}.{f} {d}" for f, d in floats.items())
            raise TypeError(f"`{name}` floating leaves must share one dtype, got {shown}.")
        if param_dtype is not None and floats:
            rd = base.state_dtype(param_dtype, complex_state=False)
            got = next(iter(floats.values()))
            if got != rd:
                raise TypeError(
                    f"`{name}` must have dtype {rd} (the carry of param_dtype "
                    f"{np.dtype(param_dtype)}), got {got}."
                )
        return self.state_class(**leaves)

    def _prepare(self, params, state, x, x_batch):
        """Validates, casts to the compute dtype and broadcasts to the common batch shape."""
        cls = self.state_class.__name__
        if not isinstance(state, self.state_class):
            raise TypeError(
                f"`state` must be a {cls} (from initial_state), got {type(state).__name__}."
            )
        spec = self.state_spec()
        leaves = {f: _validate.as_array(f"state.{f}", getattr(state, f)) for f in spec}
        batches = []
        for f, (shape, kind) in spec.items():
            leaf = leaves[f]
            k = len(shape)
            if leaf.ndim < k or leaf.shape[leaf.ndim - k :] != shape:
                raise ValueError(
                    f"`state.{f}` must have shape (..., {', '.join(map(str, shape))}) for this "
                    f"{type(self).__name__}, got {leaf.shape}."
                )
            if kind == "int" and not jnp.issubdtype(leaf.dtype, jnp.integer):
                raise TypeError(f"`state.{f}` must be an integer step counter, got {leaf.dtype}.")
            batches.append(leaf.shape[: leaf.ndim - k])
        floats = [leaves[f] for f, (_, kind) in spec.items() if kind == "float"]
        p, rd = self.prepared(params, x, *floats)
        try:
            batch = jnp.broadcast_shapes(x_batch, *batches)
        except ValueError:
            shapes = ", ".join(f"{f} {leaves[f].shape}" for f in spec)
            raise ValueError(
                f"`state` batch shapes ({shapes}) must broadcast with the batch shape "
                f"{x_batch} of `x`."
            ) from None
        cast = {
            f: jnp.broadcast_to(
                leaves[f].astype(rd if kind == "float" else jnp.int32), (*batch, *shape)
            )
            for f, (shape, kind) in spec.items()
        }
        x = jnp.broadcast_to(x.astype(rd), (*batch, *x.shape[len(x_batch) :]))
        return p, self.state_class(**cast), x

    def step(
        self,
        params: Mapping[str, ArrayLike],
        state,
        x: ArrayLike,
        *,
        dtype: DTypeLike | None = None,
    ):
        """One step of the cell.

        Args:
          params: ``{name: array}`` with the shapes of `param_shapes`.
          state: the carry (``state_class``); batch shape broadcasting with ``x``'s.
          x: ``(..., d_in)`` real floating input ``x_t``.
          dtype: output dtype (None: ``x``'s dtype).

        Returns:
          ``(new_state, y_t)``: the state in the compute dtype and ``y_t``
          ``(..., features)`` in ``dtype``.

        Raises:
          ValueError: a missing parameter or a wrong shape.
          TypeError: a non-floating ``x`` or a state of the wrong type.
        """
        x = check_x(x, self.d_in, step=True)
        out = x.dtype if dtype is None else np.dtype(dtype)
        p, state, x = self._prepare(params, state, x, x.shape[:-1])
        return _step_jit(self, p, state, x, out)

    def apply(
        self,
        params: Mapping[str, ArrayLike],
        x: ArrayLike,
        state: Any = None,
        *,
        dtype: DTypeLike | None = None,
        seq_lengths: ArrayLike | None = None,
    ):
        """The cell over a sequence (a `jax.lax.scan` of `step`).

        Args:
          params: ``{name: array}`` with the shapes of `param_shapes`.
          x: ``(..., L, d_in)`` real floating inputs (time on axis -2).
          state: initial carry (None: `initial_state` for the batch shape of ``x``).
          dtype: output dtype (None: ``x``'s dtype).
          seq_lengths: optional integer array of shape ``x.shape[:-2]`` with entries in
            ``[0, L]``: sequence ``b`` is ``x[b, :seq_lengths[b]]`` and the positions
            ``l >= seq_lengths[b]`` are padding. Padding leaves the carry untouched
            (a step counter too) and its outputs are 0, so the outputs at valid
            positions equal the unpadded run and the returned state is the state after
            each sequence's last valid step (as `flax.nnx.RNN` with ``seq_lengths``).
            Shape, dtype and (for concrete values) range are checked eagerly.

        Returns:
          ``(final_state, y)`` with ``y`` ``(..., L, features)``.

        Raises:
          TypeError: non-integer ``seq_lengths`` (and the errors of `step`).
          ValueError: ``seq_lengths`` of the wrong shape or outside ``[0, L]``.
        """
        x = check_x(x, self.d_in, step=False)
        out = x.dtype if dtype is None else np.dtype(dtype)
        lengths = None
        if seq_lengths is not None:
            lengths = check_seq_lengths(seq_lengths, x.shape[:-2], x.shape[-2])
        if state is None:
            pd = jnp.result_type(*self.check_params(params).values())
            state = self.initial_state(x.shape[:-2], pd)
        p, state, x = self._prepare(params, state, x, x.shape[:-2])
        if lengths is not None:
            lengths = jnp.broadcast_to(lengths, x.shape[:-2])
        return _apply_jit(self, p, state, x, lengths, out)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _step_jit(cfg, p, state, x, out):
    state, y = cfg._cell(p, state, x)
    return state, y.astype(out)


@functools.partial(jax.jit, static_argnums=(0, 5))
def _apply_jit(cfg, p, state, x, lengths, out):
    def body(s, inputs):
        l, x_t = inputs
        new, y = cfg._cell(p, s, x_t)
        if lengths is not None:
            new, y = mask_step(l < lengths, s, new, y)
        return new, y.astype(out)

    xs = (jnp.arange(x.shape[-2]), jnp.moveaxis(x, -2, 0))
    state, y = jax.lax.scan(body, state, xs)
    return state, jnp.moveaxis(y, 0, -2)


# ----------------------------------------------------------------------- initializers


def uniform_init(bound: float):
    """``init(key, shape, dtype)`` drawing U(-bound, bound) (float64 bound, cast at the end)."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def fan_in_uniform(key, shape, dtype=jnp.float32):
    """PyTorch ``nn.Linear``'s default for ``x @ W`` weights ``(fan_in, fan_out)`` and
    biases ``(fan_out,)`` of a layer with the given fan-in: U(±1/sqrt(fan_in)).

    For a bias, pass the layer's fan-in through `bias_uniform` instead.
    """
    return jax.random.uniform(key, shape, dtype, -1.0, 1.0) / float(np.sqrt(shape[0]))


def bias_uniform(fan_in: int):
    """``nn.Linear``'s default bias: U(±1/sqrt(fan_in)) (zeros when ``fan_in == 0``)."""
    return uniform_init(float(1.0 / np.sqrt(fan_in))) if fan_in else jax.nn.initializers.zeros


def kaiming_uniform(gain: float = 1.0):
    """``torch.nn.init.kaiming_uniform_`` (fan-in): U(±gain sqrt(3 / fan_in)), ``x @ W``."""

    def init(key, shape, dtype=jnp.float32):
        bound = float(gain * np.sqrt(3.0 / shape[0])) if shape[0] else 0.0
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def xavier_normal(key, shape, dtype=jnp.float32):
    """``torch.nn.init.xavier_normal_``: N(0, 2 / (fan_in + fan_out)), ``x @ W`` layout."""
    std = float(np.sqrt(2.0 / (shape[0] + shape[1])))
    return std * jax.random.normal(key, shape, dtype)


def constant_init(value: float):
    """``init(key, shape, dtype)`` filled with ``value``."""

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(shape, value, dtype)

    return init


def stacked_init(*parts: tuple[int, Any]):
    """Row blocks ``[(rows, init), ...]`` of an ``x @ W`` weight, each drawn with its own init
    (with the block's own fan-in and the full fan-out; the authors' per-slice re-inits)."""

    def init(key, shape, dtype=jnp.float32):
        keys = jax.random.split(key, len(parts))
        blocks = [f(k, (rows, shape[1]), dtype) for k, (rows, f) in zip(keys, parts, strict=True)]
        return jnp.concatenate(blocks, axis=0)

    return init


ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "id": lambda x: x,
}
#: Kaiming gains of the activations (``torch.nn.init.calculate_gain``).
GAINS = {"tanh": 5.0 / 3.0, "relu": float(np.sqrt(2.0)), "sigmoid": 1.0, "id": 1.0}
