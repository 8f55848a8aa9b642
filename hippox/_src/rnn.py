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

Memories (`hippo_memory`; the ``(A, B)`` of `hippox.transition` are fixed, not
trained):

* ``legs`` (scaled Legendre) is scale-invariant, ``dc/dt = (A c + B u) / t``: the
  first step sets ``c_0 = u_0 e_0`` and step ``t >= 1`` discretises with step
  ``1 / (t + 1)``, in ``O(N)`` with `hippox.legs_step` (no ``N × N`` matrix). This is
  exactly the recurrence of ``hippox.hippo_project(u, 'legs', N)``. The step counter
  ``t`` travels in the carry.
* the time-invariant measures (``legt``, ``lmu``, ``lagt``, ``glagt``, …) use one
  dense ``(Ab, Bb)`` from discretising ``(A, B)`` at a fixed step ``dt``
  (default ``1e-2``), built once in float64 on the host; this is the recurrence of
  ``hippox.hippo_project(u, measure, N, dt=dt)``. With ``dt = 1 / L`` the window of
  ``lmu`` (``theta = 1``) spans ``L`` samples, that of ``legt`` (``theta = 2``) ``2L``.

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
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate, legs, matrices

#: Default step of the time-invariant memories.
DEFAULT_DT = 1e-2
#: Discretisation methods of the time-invariant memories (``legs``: all but ``zoh``).
LTI_METHODS: tuple[str, ...] = ("zoh", "bilinear", "forward_euler", "backward_euler")
_ALPHA = {"forward_euler": 0.0, "bilinear": 0.5, "backward_euler": 1.0}


# ------------------------------------------------------------------------- memory


@functools.lru_cache(maxsize=128)
def _lti_np(measure: str, N: int, dt: float, method: str, params: tuple):
    """Float64 host ``(Ab, Bb)`` of a time-invariant measure at step ``dt`` (cached)."""
    A, B = matrices.transition_np(measure, N, **dict(params))
    if method == "zoh":
        block = np.zeros((N + 1, N + 1))
        block[:N, :N] = dt * A
        block[:N, N] = dt * B
        E = scipy.linalg.expm(block)
        Ab, Bb = E[:N, :N], E[:N, N]
    else:
        alpha = _ALPHA[method]
        lhs = np.eye(N) - alpha * dt * A
        Ab = np.linalg.solve(lhs, np.eye(N) + (1.0 - alpha) * dt * A)
        Bb = np.linalg.solve(lhs, dt * B)
    Ab, Bb = np.ascontiguousarray(Ab), np.ascontiguousarray(Bb)
    Ab.setflags(write=False)
    Bb.setflags(write=False)
    return Ab, Bb


@dataclasses.dataclass(frozen=True)
class HiPPOMemory:
    """A fixed HiPPO memory of order ``N`` (hashable, static; build with `hippo_memory`).

    Attributes:
      measure: canonical measure name (``legs`` or a time-invariant measure).
      N: memory order (state size per memory channel).
      method: discretisation method.
      dt: step of a time-invariant memory (None for ``legs``).
      params: measure parameters as a sorted tuple of ``(name, value)`` pairs.
    """

    measure: str
    N: int
    method: str
    dt: float | None
    params: tuple = ()

    @property
    def scale_invariant(self) -> bool:
        """True for ``legs`` (its step size shrinks as ``1 / (t + 1)``)."""
        return self.measure == "legs"

    def transition(self, dtype: DTypeLike | None = None) -> tuple[jax.Array, jax.Array]:
        """The discrete ``(Ab, Bb)`` of a time-invariant memory.

        Args:
          dtype: real dtype of the result (default float32).

        Returns:
          ``Ab`` ``(N, N)`` and ``Bb`` ``(N,)``.

        Raises:
          ValueError: for ``legs``, whose step changes with ``t`` (see
            `hippox.legs_transition`).
        """
        if self.scale_invariant:
            raise ValueError(
                "`memory` must be time-invariant for a fixed (Ab, Bb); 'legs' steps by "
                "1 / (t + 1), use hippox.legs_transition(N, k=t), got measure 'legs'."
            )
        dtype = _validate.real_dtype(dtype)
        Ab, Bb = _lti_np(self.measure, self.N, self.dt, self.method, self.params)
        return jnp.asarray(Ab, dtype), jnp.asarray(Bb, dtype)

    def update(self, c: ArrayLike, u: ArrayLike, t: ArrayLike) -> jax.Array:
        """One memory step: ``c_t = Ab_t c_{t-1} + Bb_t u_t``.

        Args:
          c: ``(..., N)`` previous memory ``c_{t-1}`` (real).
          u: ``(...)`` input ``u_t`` (one scalar per memory; broadcasts with
            ``c.shape[:-1]``).
          t: ``(...)`` integer 0-based step index of ``u_t`` (broadcasts with
            ``c.shape[:-1]``); used by ``legs`` only (``t = 0`` sets
            ``c = u e_0``, ``t >= 1`` steps by ``1 / (t + 1)``).

        Returns:
          ``(..., N)`` new memory, dtype promoted from ``c`` and ``u``.
        """
        c, u = jnp.asarray(c), jnp.asarray(u)
        dtype = jnp.result_type(c, u)
        if not jnp.issubdtype(dtype, jnp.floating):
            dtype = jnp.result_type(float)
        c, u = c.astype(dtype), u.astype(dtype)
        if self.scale_invariant:
            t = jnp.asarray(t)
            step = 1.0 / (t.astype(dtype) + 1.0)
            stepped = legs.legs_step(c, u, step, method=self.method)
            first = jnp.where(jnp.arange(self.N) == 0, u[..., None], jnp.zeros((), dtype))
            return jnp.where((t == 0)[..., None], first, stepped).astype(dtype)
        Ab, Bb = _lti_np(self.measure, self.N, self.dt, self.method, self.params)
        Ab, Bb = jnp.asarray(Ab, dtype), jnp.asarray(Bb, dtype)
        return c @ Ab.T + u[..., None] * Bb


def hippo_memory(
    measure: str = "legs",
    N: int = 32,
    *,
    method: str = "bilinear",
    dt: float | None = None,
    **params,
) -> HiPPOMemory:
    """Validates and builds the static description of a HiPPO-RNN memory.

    Args:
      measure: ``legs`` (scale-invariant) or a deterministic time-invariant measure of
        `hippox.MEASURES` (``legt``, ``lmu``, ``lagt``, ``glagt``, ``fout``, …).
      N: memory order (int >= 1; even for the Fourier measures).
      method: ``bilinear``, ``forward_euler``, ``backward_euler``, or ``zoh``
        (time-invariant measures only).
      dt: step of a time-invariant memory (``> 0``; default ``1e-2``); must be None
        for ``legs``.
      **params: measure parameters (e.g. ``theta`` for ``legt``/``lmu``).

    Returns:
      A `HiPPOMemory`.

    Raises:
      ValueError: unknown or random measure, bad ``N``, method or ``dt``.
      TypeError: unknown measure parameters.

    Examples:
      >>> import hippox
      >>> mem = hippox.hippo_memory("legt", 4, dt=0.1)
      >>> Ab, Bb = mem.transition()
      >>> Ab.shape, Bb.shape
      ((4, 4), (4,))
    """
    measure = matrices.canonical_measure(measure)
    if measure in matrices.RANDOM_MEASURES:
        raise ValueError(
            f"`measure` must be a deterministic HiPPO measure for a HiPPO-RNN memory, got "
            f"the random ablation {measure!r}."
        )
    N = _validate.check_size("N", N)
    if measure == "legs":
        legs.check_legs_method(method)
        if dt is not None:
            raise ValueError(
                "`dt` must be None for the scale-invariant memory 'legs' (it steps by "
                f"1 / (t + 1)), got {dt!r}."
            )
        if params:
            raise TypeError(f"measure 'legs' takes no parameters, got {tuple(params)}.")
        return HiPPOMemory("legs", N, method, None, ())
    _validate.check_choice("method", method, LTI_METHODS)
    dt = DEFAULT_DT if dt is None else _validate.check_real("dt", dt, positive=True)
    ptuple = matrices.check_measure_params(measure, params)
    matrices.transition_np(measure, N, **dict(ptuple))  # validates N (e.g. even for Fourier)
    return HiPPOMemory(measure, N, method, dt, ptuple)


# ------------------------------------------------------------------------- cell


def _compute_dtype(*arrays) -> np.dtype:
    """float32 unless an input is float64 (half precisions are computed in float32)."""
    return np.dtype(jnp.promote_types(jnp.result_type(*arrays), jnp.float32))


def _check_x(x: ArrayLike, d_in: int, *, step: bool) -> jax.Array:
    x = jnp.asarray(x)
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
class HiPPORNNConfig:
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
    memory_size: int = 1
    N: int = 32
    measure: str = "legs"
    method: str = "bilinear"
    dt: float | None = None
    gated: bool = False
    measure_params: tuple = ()

    def __post_init__(self):
        _set = object.__setattr__
        _set(self, "d_in", _validate.check_size("d_in", self.d_in))
        _set(self, "features", _validate.check_size("features", self.features))
        _set(self, "memory_size", _validate.check_size("memory_size", self.memory_size))
        if not isinstance(self.gated, (bool, np.bool_)):
            raise TypeError(f"`gated` must be a bool, got {self.gated!r}.")
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

    def param_initializers(self) -> dict[str, Callable]:
        """``{name: init(key, shape, dtype)}`` (LeCun normal weights, zero biases)."""
        kernel = jax.nn.initializers.lecun_normal()
        bias = jax.nn.initializers.zeros
        inits = {"W_u": kernel, "b_u": bias, "W_h": kernel, "b_h": bias, "W_g": kernel, "b_g": bias}
        return {name: inits[name] for name in self.param_shapes()}

    def param_specs(self) -> dict[str, tuple[tuple[int, ...], Callable]]:
        """``{name: (shape, initializer)}`` for every parameter, in a fixed order."""
        inits = self.param_initializers()
        return {name: (shape, inits[name]) for name, shape in self.param_shapes().items()}

    def init_params(self, key, *, param_dtype: DTypeLike = jnp.float32) -> dict[str, jax.Array]:
        """Initial parameters as a flat dict (framework-free use).

        Args:
          key: jax.random key, split once per parameter in `param_shapes` order.
          param_dtype: real storage dtype.

        Returns:
          ``{name: array}`` with the shapes of `param_shapes`.
        """
        _validate.require_key("key", key, "HiPPORNNConfig.init_params")
        pd = _validate.real_dtype(param_dtype, name="param_dtype")
        specs = self.param_specs()
        keys = jax.random.split(key, len(specs))
        items = zip(keys, specs.items(), strict=True)
        return {n: init(k, shape, pd) for k, (n, (shape, init)) in items}

    def _checked(self, params) -> dict[str, jax.Array]:
        if not isinstance(params, Mapping):
            raise TypeError(
                f"`params` must be a mapping of name -> array, got {type(params).__name__}."
            )
        out = {}
        for name, shape in self.param_shapes().items():
            if name not in params:
                raise ValueError(
                    f"`params` must contain the leaves {tuple(self.param_shapes())}, missing "
                    f"{name!r}."
                )
            v = jnp.asarray(params[name])
            if v.shape != shape:
                raise ValueError(f"`params[{name!r}]` must have shape {shape}, got {v.shape}.")
            if not jnp.issubdtype(v.dtype, jnp.floating):
                raise TypeError(f"`params[{name!r}]` must be real floating, got {v.dtype}.")
            out[name] = v
        return out

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
        if isinstance(batch_shape, numbers.Integral):
            batch_shape = (batch_shape,)
        batch = tuple(_validate.check_size("batch_shape entry", n, minimum=0) for n in batch_shape)
        rd = _compute_dtype(jnp.zeros((), _validate.real_dtype(param_dtype, name="param_dtype")))
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
        h, c, t = (jnp.asarray(a) for a in state)
        if h.shape[-1:] != (self.features,) or c.shape[-2:] != (self.memory_size, self.N):
            raise ValueError(
                f"`state` must have h (..., {self.features}) and c (..., {self.memory_size}, "
                f"{self.N}), got {h.shape} and {c.shape}."
            )
        if not jnp.issubdtype(t.dtype, jnp.integer):
            raise TypeError(f"`state.t` must be an integer step counter, got dtype {t.dtype}.")
        p = self._checked(params)
        rd = _compute_dtype(*p.values(), x, h, c)
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
        return {k: v.astype(rd) for k, v in p.items()}, h, c, t, x

    def apply(
        self,
        params: Mapping[str, ArrayLike],
        x: ArrayLike,
        state: HiPPORNNState | None = None,
        *,
        dtype: DTypeLike | None = None,
    ) -> tuple[HiPPORNNState, jax.Array]:
        """The cell over a sequence (a `jax.lax.scan` of `step`).

        Args:
          params: ``{name: array}`` with the shapes of `param_shapes`.
          x: ``(..., L, d_in)`` real floating inputs (time on axis -2).
          state: initial carry (None: `initial_state` for the batch shape of ``x``).
          dtype: output dtype (None: ``x``'s dtype).

        Returns:
          ``(final_state, h)`` with ``h`` ``(..., L, features)``.
        """
        x = _check_x(x, self.d_in, step=False)
        out = x.dtype if dtype is None else np.dtype(dtype)
        if state is None:
            pd = jnp.result_type(*self._checked(params).values())
            state = self.initial_state(x.shape[:-2], pd)
        p, h, c, t, x = self._prepare(params, state, x, x.shape[:-2])
        return _apply_jit(self, p, h, c, t, x, out)


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


@functools.partial(jax.jit, static_argnums=(0, 6))
def _apply_jit(cfg, p, h, c, t, x, out):
    def body(s, x_t):
        s, y = _step_core(cfg, p, *s, x_t)
        return s, y.astype(out)

    state, y = jax.lax.scan(body, HiPPORNNState(h, c, t), jnp.moveaxis(x, -2, 0))
    return state, jnp.moveaxis(y, 0, -2)
