"""The HiPPO-RNN cell (Gu et al., 2020): an RNN whose hidden state reads a HiPPO memory.

One step, with input ``x_t`` (``d_in`` features), hidden state ``h`` (``features``),
and ``F = memory_size`` memory channels, each an order-``N`` HiPPO memory::

    u_t = [x_t, h_{t-1}] @ W_u + b_u                        (F,)    memory inputs
    c_t[f] = Ab_t c_{t-1}[f] + Bb_t u_t[f]                  (F, N)  HiPPO memory update
    h~_t = tanh([x_t, vec(c_t)] @ W_h + b_h)                (features,)
    h_t = h~_t                                               (plain cell)
    h_t = (1 - g_t) h_{t-1} + g_t h~_t,                      (gated cell)
          g_t = sigmoid([x_t, vec(c_t)] @ W_g + b_g)

``vec(c_t)`` flattens the ``(F, N)`` memory channel-major (channel ``f`` occupies
entries ``f N … f N + N - 1``). Weights use the ``x @ W`` layout of Flax ``Dense`` and
Haiku ``Linear``: ``W_u`` ``(d_in + features, F)``, ``W_h`` and ``W_g``
``(d_in + F N, features)``. The cell's output is ``h_t``.

Ordering: the memory is updated first and the hidden state reads the fresh memory
``c_t``, so ``h_t`` sees ``x_t`` twice (directly and through ``u_t``). The HiPPO
paper's figure feeds ``c_{t-1}`` to the hidden update and then writes ``h_t`` into the
memory; both orderings carry the same information, the one here makes ``h_t`` a
function of the memory after the current sample.

`HiPPORNNConfig` holds the hyperparameters (frozen, hashable) and its methods are pure
functions of a flat parameter dict ``{"W_u": ..., "b_u": ..., "W_h": ..., "b_h": ...}``
(plus ``"W_g"``, ``"b_g"`` when gated): `HiPPORNNConfig.step` for one step,
`HiPPORNNConfig.apply` for a sequence. The Flax, Haiku and Equinox cells
(`hippox.nnx.HiPPORNNCell`, `hippox.linen.HiPPORNNCell`, `hippox.haiku.HiPPORNNCell`,
`hippox.equinox.HiPPORNNCell`) only create those parameters and call these methods, so
the same parameter values give the same outputs in every framework.

Dtypes: the cell computes and carries its state in ``promote(parameters, input,
float32)`` (float64 only for float64 inputs or parameters; bfloat16 activations are
computed in float32, since a long memory recurrence in half precision loses its
accuracy) and returns ``h_t`` in the input's dtype.

References:
  Gu, Dao, Ermon, Rudra, Ré. "HiPPO: Recurrent Memory with Optimal Polynomial
  Projections." NeurIPS 2020.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers import base
from hippox._src.memory import HiPPOMemory, hippo_memory


def _check_x(x: ArrayLike, d_in: int, *, step: bool) -> jax.Array:
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


class HiPPORNNState(NamedTuple):
    """The carry of a HiPPO-RNN cell.

    Attributes:
      h: ``(..., features)`` hidden state ``h_{t-1}``.
      c: ``(..., F, N)`` memory ``c_{t-1}``.
      t: ``(...)`` int32 index of the next step (0 before the first input).
    """

    h: jax.Array
    c: jax.Array
    t: jax.Array


@dataclasses.dataclass(frozen=True)
class HiPPORNNConfig(base.LayerConfig):
    """The HiPPO-RNN cell (module docstring) as a frozen, hashable config of pure methods.

    Parameters (name: shape, ``x @ W`` layout): ``W_u`` (d_in + features, F), ``b_u``
    (F,), ``W_h`` (d_in + F N, features), ``b_h`` (features,), and for ``gated=True``
    ``W_g`` (d_in + F N, features), ``b_g`` (features,). Weights are LeCun normal
    (fan-in the input rows), biases zero. The memory ``(A, B)`` is fixed (no
    parameter).

    Attributes:
      d_in: input features.
      features: hidden size.
      memory_size: number F of memory channels.
      N: memory order.
      measure: ``legs`` or a time-invariant measure (`hippo_memory`).
      method: discretisation method of the memory (`hippo_memory`).
      dt: step of a time-invariant memory (None: ``1e-2``; must be None for ``legs``).
      gated: use the gated update ``h = (1 - g) h_prev + g tanh(...)``.
      measure_params: measure parameters as ``(name, value)`` pairs, e.g.
        ``(("theta", 1.0),)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import hippox
      >>> cfg = hippox.HiPPORNNConfig(d_in=3, features=5, memory_size=2, N=4)
      >>> params = cfg.init_params(jax.random.key(0))
      >>> {k: v.shape for k, v in params.items()}
      {'W_u': (8, 2), 'b_u': (2,), 'W_h': (11, 5), 'b_h': (5,)}
      >>> state, h = cfg.apply(params, jnp.ones((7, 10, 3), jnp.float32))
      >>> h.shape, state.c.shape, state.t[0].item()
      ((7, 10, 5), (7, 2, 4), 10)
    """

    d_in: int
    features: int
    _: dataclasses.KW_ONLY
    memory_size: int = 1
    N: int = 32
    measure: str = "legs"
    method: str = "bilinear"
    dt: float | None = None
    gated: bool = False
    measure_params: tuple = ()

    def __post_init__(self):
        _set = base.set_field
        _set(self, "d_in", _validate.check_size("d_in", self.d_in))
        _set(self, "features", _validate.check_size("features", self.features))
        _set(self, "memory_size", _validate.check_size("memory_size", self.memory_size))
        _set(self, "gated", _validate.check_bool("gated", self.gated))
        try:
            mp = tuple(sorted((str(k), v) for k, v in dict(self.measure_params).items()))
        except (TypeError, ValueError):
            raise TypeError(
                "`measure_params` must be (name, value) pairs or a mapping, got "
                f"{self.measure_params!r}."
            ) from None
        _set(self, "measure_params", mp)
        mem = hippo_memory(self.measure, self.N, method=self.method, dt=self.dt, **dict(mp))
        _set(self, "measure", mem.measure)
        _set(self, "N", mem.N)

    @property
    def memory(self) -> HiPPOMemory:
        """The cell's `HiPPOMemory`."""
        return hippo_memory(
            self.measure, self.N, method=self.method, dt=self.dt, **dict(self.measure_params)
        )

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        d, H, F, N = self.d_in, self.features, self.memory_size, self.N
        shapes = {"W_u": (d + H, F), "b_u": (F,), "W_h": (d + F * N, H), "b_h": (H,)}
        if self.gated:
            shapes.update(W_g=(d + F * N, H), b_g=(H,))
        return shapes

    def param_initializers(self) -> dict[str, base.Initializer]:
        """``{name: init(key, shape, dtype)}`` (LeCun normal weights, zero biases)."""
        kernel = jax.nn.initializers.lecun_normal()
        bias = jax.nn.initializers.zeros
        inits = {"W_u": kernel, "b_u": bias, "W_h": kernel, "b_h": bias, "W_g": kernel, "b_g": bias}
        return {name: inits[name] for name in self.param_shapes()}

    def initial_state(
        self, batch_shape: Sequence[int] = (), param_dtype: DTypeLike = jnp.float32
    ) -> HiPPORNNState:
        """The zero carry.

        Args:
          batch_shape: leading batch shape (an int or a sequence of ints).
          param_dtype: parameter dtype; the state is kept in ``promote(param_dtype,
            float32)`` (a long memory recurrence in half precision loses accuracy).

        Returns:
          `HiPPORNNState`: ``h`` ``(*batch_shape, features)``, ``c``
          ``(*batch_shape, F, N)`` zeros and ``t`` ``(*batch_shape)`` int32 zeros.
        """
        batch = _validate.check_batch_shape(batch_shape)
        rd = base.state_dtype(param_dtype, complex_state=False)
        return HiPPORNNState(
            h=jnp.zeros((*batch, self.features), rd),
            c=jnp.zeros((*batch, self.memory_size, self.N), rd),
            t=jnp.zeros(batch, jnp.int32),
        )

    def step(
        self,
        params: Mapping[str, ArrayLike],
        state: HiPPORNNState,
        x: ArrayLike,
        *,
        dtype: DTypeLike | None = None,
    ) -> tuple[HiPPORNNState, jax.Array]:
        """One step of the cell.

        Args:
          params: ``{name: array}`` with the shapes of `param_shapes`.
          state: `HiPPORNNState` ``(h_{t-1}, c_{t-1}, t)``; batch shape broadcasting
            with ``x``'s.
          x: ``(..., d_in)`` real floating input ``x_t``.
          dtype: output dtype (None: ``x``'s dtype).

        Returns:
          ``(new_state, h_t)``: the state in the compute dtype
          (``promote(params, state, x, float32)``) and ``h_t`` ``(..., features)`` in
          ``dtype``.

        Raises:
          ValueError: a missing parameter or a wrong shape.
          TypeError: a non-floating ``x`` or a state that is not a `HiPPORNNState`.
        """
        x = _check_x(x, self.d_in, step=True)
        out = x.dtype if dtype is None else np.dtype(dtype)
        p, h, c, t, x = self._prepare(params, state, x, x.shape[:-1])
        return _step_jit(self, p, h, c, t, x, out)

    def _prepare(self, params, state, x, x_batch):
        """Validates, casts to the compute dtype and broadcasts to the common batch shape."""
        if not isinstance(state, HiPPORNNState):
            raise TypeError(
                f"`state` must be a HiPPORNNState (from initial_state), got {type(state).__name__}."
            )
        h, c, t = (_validate.as_array("state", a) for a in state)
        if h.shape[-1:] != (self.features,) or c.shape[-2:] != (self.memory_size, self.N):
            raise ValueError(
                f"`state` must have h (..., {self.features}) and c (..., {self.memory_size}, "
                f"{self.N}), got {h.shape} and {c.shape}."
            )
        if not jnp.issubdtype(t.dtype, jnp.integer):
            raise TypeError(f"`state.t` must be an integer step counter, got dtype {t.dtype}.")
        p, rd = self.prepared(params, x, h, c)
        try:
            batch = jnp.broadcast_shapes(x_batch, h.shape[:-1], c.shape[:-2], t.shape)
        except ValueError:
            raise ValueError(
                f"`state` batch shapes (h {h.shape}, c {c.shape}, t {t.shape}) must broadcast "
                f"with the batch shape {x_batch} of `x`."
            ) from None
        h = jnp.broadcast_to(h.astype(rd), (*batch, self.features))
        c = jnp.broadcast_to(c.astype(rd), (*batch, self.memory_size, self.N))
        t = jnp.broadcast_to(t.astype(jnp.int32), batch)
        x = jnp.broadcast_to(x.astype(rd), (*batch, *x.shape[len(x_batch) :]))
        return p, h, c, t, x

    def apply(
        self,
        params: Mapping[str, ArrayLike],
        x: ArrayLike,
        state: HiPPORNNState | None = None,
        *,
        dtype: DTypeLike | None = None,
        seq_lengths: ArrayLike | None = None,
    ) -> tuple[HiPPORNNState, jax.Array]:
        """The cell over a sequence (a `jax.lax.scan` of `step`).

        Args:
          params: ``{name: array}`` with the shapes of `param_shapes`.
          x: ``(..., L, d_in)`` real floating inputs (time on axis -2).
          state: initial carry (None: `initial_state` for the batch shape of ``x``).
          dtype: output dtype (None: ``x``'s dtype).
          seq_lengths: optional integer array of shape ``x.shape[:-2]`` with entries in
            ``[0, L]``: sequence ``b`` is ``x[b, :seq_lengths[b]]`` and the positions
            ``l >= seq_lengths[b]`` are padding. Padding leaves the carry untouched
            (the step counter too) and its outputs are 0, so the outputs at valid
            positions equal the unpadded run and the returned state is the state after
            each sequence's last valid step (as `flax.nnx.RNN` with ``seq_lengths``).
            Shape, dtype and (for concrete values) range are checked eagerly.

        Returns:
          ``(final_state, h)`` with ``h`` ``(..., L, features)``.

        Raises:
          TypeError: non-integer ``seq_lengths`` (and the errors of `step`).
          ValueError: ``seq_lengths`` of the wrong shape or outside ``[0, L]``.
        """
        x = _check_x(x, self.d_in, step=False)
        out = x.dtype if dtype is None else np.dtype(dtype)
        lengths = None
        if seq_lengths is not None:
            lengths = check_seq_lengths(seq_lengths, x.shape[:-2], x.shape[-2])
        if state is None:
            pd = jnp.result_type(*self.check_params(params).values())
            state = self.initial_state(x.shape[:-2], pd)
        p, h, c, t, x = self._prepare(params, state, x, x.shape[:-2])
        if lengths is not None:
            lengths = jnp.broadcast_to(lengths, t.shape)
        return _apply_jit(self, p, h, c, t, x, lengths, out)

    def check_state(
        self,
        state: HiPPORNNState,
        batch_shape: Sequence[int],
        param_dtype: DTypeLike | None = None,
        *,
        name: str = "state",
    ) -> HiPPORNNState:
        """Checks a carry against this config and an input's batch shape.

        Args:
          state: the carry to check.
          batch_shape: batch shape of the input it will be used with (``x.shape[:-1]``
            for a step, ``x.shape[:-2]`` for a sequence).
          param_dtype: when given, the dtype the carry must have
            (``promote(param_dtype, float32)``, as `initial_state` makes it).
          name: the argument name used in error messages.

        Returns:
          ``state`` with its leaves as arrays.

        Raises:
          TypeError: not a `HiPPORNNState`, non-floating ``h``/``c``, non-integer ``t``,
            or a dtype other than the one of ``param_dtype``.
          ValueError: a shape other than ``h (*batch, features)``, ``c (*batch, F, N)``,
            ``t (*batch)``.
        """
        if not isinstance(state, HiPPORNNState):
            raise TypeError(
                f"`{name}` must be a HiPPORNNState (h, c, t) from initial_state / "
                f"initialize_carry, got {type(state).__name__}."
            )
        batch = _validate.check_batch_shape(batch_shape)
        h, c, t = (_validate.as_array(f"{name}.{f}", a) for f, a in zip("hct", state, strict=True))
        want = {
            "h": (*batch, self.features),
            "c": (*batch, self.memory_size, self.N),
            "t": batch,
        }
        for field, leaf in zip("hct", (h, c, t), strict=True):
            if leaf.shape != want[field]:
                raise ValueError(
                    f"`{name}.{field}` must have shape {want[field]} (batch {batch} of the "
                    f"input, features={self.features}, memory_size={self.memory_size}, "
                    f"N={self.N}), got {leaf.shape}."
                )
        for field, leaf in (("h", h), ("c", c)):
            if not jnp.issubdtype(leaf.dtype, jnp.floating):
                raise TypeError(f"`{name}.{field}` must be real floating, got {leaf.dtype}.")
        if h.dtype != c.dtype:
            raise TypeError(
                f"`{name}.h` and `{name}.c` must share one dtype, got {h.dtype} and {c.dtype}."
            )
        if not jnp.issubdtype(t.dtype, jnp.integer):
            raise TypeError(f"`{name}.t` must be an integer step counter, got {t.dtype}.")
        if param_dtype is not None:
            rd = base.state_dtype(param_dtype, complex_state=False)
            if h.dtype != rd:
                raise TypeError(
                    f"`{name}` must have dtype {rd} (the carry of param_dtype "
                    f"{np.dtype(param_dtype)}), got {h.dtype}."
                )
        return HiPPORNNState(h, c, t)


def _step_core(cfg: HiPPORNNConfig, p, h_prev, c_prev, t, x):
    batch = t.shape
    u = jnp.concatenate([x, h_prev], axis=-1) @ p["W_u"] + p["b_u"]  # (..., F)
    c = cfg.memory.update(c_prev, u, t[..., None])  # (..., F, N)
    xc = jnp.concatenate([x, c.reshape(*batch, cfg.memory_size * cfg.N)], axis=-1)
    h = jnp.tanh(xc @ p["W_h"] + p["b_h"])
    if cfg.gated:
        g = jax.nn.sigmoid(xc @ p["W_g"] + p["b_g"])
        h = (1.0 - g) * h_prev + g * h
    return HiPPORNNState(h=h, c=c, t=t + 1), h


@functools.partial(jax.jit, static_argnums=(0, 6))
def _step_jit(cfg, p, h, c, t, x, out):
    state, y = _step_core(cfg, p, h, c, t, x)
    return state, y.astype(out)


@functools.partial(jax.jit, static_argnums=(0, 7))
def _apply_jit(cfg, p, h, c, t, x, lengths, out):
    def body(s, inputs):
        l, x_t = inputs
        new, y = _step_core(cfg, p, *s, x_t)
        if lengths is not None:
            new, y = mask_step(l < lengths, s, new, y)
        return new, y.astype(out)

    L = x.shape[-2]
    xs = (jnp.arange(L), jnp.moveaxis(x, -2, 0))
    state, y = jax.lax.scan(body, HiPPORNNState(h, c, t), xs)
    return state, jnp.moveaxis(y, 0, -2)


def mask_step(valid: jax.Array, old, new, y: jax.Array):
    """Keeps the carry ``old`` and zeroes the output where ``valid`` (batch shape) is False.

    ``old`` and ``new`` are pytrees whose leaves have the batch shape of ``valid`` as
    their leading axes; ``y`` is ``(*batch, features)``.
    """

    def pick(a, b):
        v = valid.reshape(valid.shape + (1,) * (a.ndim - valid.ndim))
        return jnp.where(v, b, a)

    new = jax.tree.map(pick, old, new)
    return new, jnp.where(valid[..., None], y, jnp.zeros((), y.dtype))


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
