"""The shared base of the layer configs: parameter specs, initial parameters, checks.

Every hippox layer (S4D, S4, S5, LSSL, the HiPPO-RNN) is a frozen, hashable config
dataclass whose methods are pure functions of a flat dict of real parameters
(``{"Lambda_re": ..., "B": ..., ...}``). A config declares two things:

- ``param_shapes()``: ``{name: shape}`` in a fixed order (the order keys are split in);
- ``param_initializers()``: ``{name: init(key, shape, dtype)}`` (at least every name of
  ``param_shapes``).

and inherits the bookkeeping every framework wrapper uses (`LayerConfig.param_specs`,
`LayerConfig.init_params`, `LayerConfig.check_params`), so the NNX, linen, Haiku and
Equinox wrappers create the same leaves with the same names.

The module also holds the small helpers the layer maths share (input checks, the
output/state dtype rules, ``n_ssm`` groups, the channel-last FFT convolution).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from hippox import initializers as inits
from hippox._src import _validate
from hippox._src.conv import bidirectional_conv, causal_conv, causal_conv_channels_last
from hippox._src.layers import masking

#: A flat ``{name: array}`` parameter dict.
Params = Mapping[str, Any]
#: ``init(key, shape, dtype=None) -> jax.Array`` (the jax.nn.initializers protocol).
Initializer = Callable[..., jax.Array]


class LayerConfig:
    """Parameter bookkeeping shared by every layer config (a mixin of frozen dataclasses)."""

    def param_shapes(self) -> dict[str, tuple[int, ...]]:  # pragma: no cover - abstract
        """``{name: shape}`` of every parameter, in a fixed order."""
        raise NotImplementedError

    def param_initializers(self) -> dict[str, Initializer]:  # pragma: no cover - abstract
        """``{name: init(key, shape, dtype)}`` for (at least) every parameter."""
        raise NotImplementedError

    def param_specs(self) -> dict[str, tuple[tuple[int, ...], Initializer]]:
        """``{name: (shape, initializer)}`` for every parameter, in a fixed order."""
        inits = self.param_initializers()
        return {name: (shape, inits[name]) for name, shape in self.param_shapes().items()}

    def init_params(self, key, *, param_dtype: DTypeLike = jnp.float32) -> dict[str, jax.Array]:
        """Initial parameters as a flat dict (framework-free use; one key per leaf).

        Args:
          key: jax.random key, split once per parameter in `param_shapes` order.
          param_dtype: real storage dtype.

        Returns:
          ``{name: array}`` with the shapes of `param_shapes`.
        """
        _validate.require_key("key", key, f"{type(self).__name__}.init_params")
        pd = _validate.real_dtype(param_dtype, name="param_dtype")
        # The split runs inside the draw program (no eager op to compile first).
        return self._run_draw(_draw_split, pd, key)

    def init_from_counter(
        self, key, start, *, param_dtype: DTypeLike = jnp.float32
    ) -> dict[str, jax.Array]:
        """`init_from_keys` with the keys ``fold_in(key, start + i)``, ``i = 0 … P - 1``.

        These are the keys a counter-based stream hands out one call at a time (Flax NNX's
        ``rngs.params()``: ``fold_in(key, count)``, then ``count += 1``); here they are
        derived inside the one compiled draw, so a first build compiles no eager key
        operation.

        Args:
          key: the stream's jax.random key.
          start: the stream's counter before the first leaf (an integer array).
          param_dtype: real storage dtype.

        Returns:
          ``{name: array}`` with the shapes of `param_shapes`.
        """
        pd = _validate.real_dtype(param_dtype, name="param_dtype")
        return self._run_draw(_draw_counter, pd, key, jnp.asarray(start))

    def init_from_keys(self, keys, *, param_dtype: DTypeLike = jnp.float32) -> dict[str, jax.Array]:
        """Initial parameters from one key per leaf, all drawn in one compiled call.

        Calling each initializer eagerly compiles one small XLA program per random draw
        and parameter shape (about ten for an S4 layer, most of a first build's time);
        here the whole dict is one `jax.jit` program, compiled once per config and
        ``param_dtype`` (the config is a static argument). The values are those of
        ``{name: init(keys[i], shape, param_dtype)}``; inside one program XLA may fuse a
        draw with its scaling, so a random leaf can differ from the eager call in the
        last float32 bit.

        Args:
          keys: jax.random keys ``(P,)``, one per parameter in `param_shapes` order.
          param_dtype: real storage dtype.

        Returns:
          ``{name: array}`` with the shapes of `param_shapes`.
        """
        pd = _validate.real_dtype(param_dtype, name="param_dtype")
        n = len(self.param_shapes())
        if not (isinstance(keys, jax.Array) and keys.shape[:1] == (n,)):
            raise ValueError(
                f"`keys` must be an array of {n} jax.random keys (one per parameter), got "
                f"{getattr(keys, 'shape', type(keys).__name__)}."
            )
        return self._run_draw(_draw, pd, keys)

    def _run_draw(self, draw, pd, *args) -> dict[str, jax.Array]:
        """``draw(self, pd, *args)`` as one compiled program (fast compile) when possible."""
        try:
            hash(self)
        except TypeError:  # a config holding an unhashable value: run it op by op
            return draw(self, pd, *args)
        try:
            out = _JITTED[draw](self, pd, *args)  # a jit output dict comes back sorted
        except ValueError as err:  # inside another jit: compiler options are top-level only
            if "compiler_options" not in str(err):
                raise
            return draw(self, pd, *args)
        return {name: out[name] for name in self.param_shapes()}

    def check_params(self, params: Params) -> dict[str, jax.Array]:
        """Checks a parameter dict; returns its leaves (in `param_shapes` order) as arrays.

        Raises:
          TypeError: ``params`` is not a mapping, or a leaf is not real floating.
          ValueError: a missing leaf or a wrong shape (naming the leaf).
        """
        if not isinstance(params, Mapping):
            raise TypeError(
                f"`params` must be a mapping of name -> array, got {type(params).__name__}."
            )
        shapes = self.param_shapes()
        out = {}
        for name, shape in shapes.items():
            if name not in params:
                raise ValueError(
                    f"`params` must contain the leaves {tuple(shapes)}, missing {name!r}."
                )
            leaf = _validate.as_array(f"params[{name!r}]", params[name])
            if leaf.shape != shape:
                raise ValueError(f"`params[{name!r}]` must have shape {shape}, got {leaf.shape}.")
            if not jnp.issubdtype(leaf.dtype, jnp.floating):
                raise TypeError(f"`params[{name!r}]` must be real floating, got {leaf.dtype}.")
            out[name] = leaf
        return out

    def state_layout(self) -> tuple[tuple[int, ...], bool, str]:  # pragma: no cover
        """``(core shape, complex?, description)`` of the step-mode state (per layer)."""
        raise NotImplementedError

    def check_state(
        self,
        state,
        batch_shape,
        param_dtype: DTypeLike | None = None,
        *,
        name: str = "initial_state",
    ) -> jax.Array:
        """Validates a carried state: one array ``(*batch_shape, *core)`` (`state_layout`).

        Args:
          state: the state (from `initial_state`, `step` or ``apply(return_state=True)``).
          batch_shape: the batch shape of the input it goes with.
          param_dtype: if given, the state must have dtype ``initial_state``'s for it.
          name: the argument's name in error messages (``initial_carry`` in the wrappers).

        Returns:
          The state as a ``jax.Array``.

        Raises:
          TypeError: not a single array, the wrong kind (real / complex), or not the dtype
            for ``param_dtype``.
          ValueError: another shape (a layer of another size, another batch).
        """
        core, complex_state, what = self.state_layout()
        batch = _validate.check_batch_shape(batch_shape)
        dtype = None
        if param_dtype is not None:
            dtype = state_dtype(param_dtype, complex_state=complex_state)
        return masking.check_state(
            state,
            (*batch, *core),
            complex_state=complex_state,
            dtype=dtype,
            name=name,
            what=what,
        )

    def prepared(self, params: Params, *arrays: jax.Array) -> tuple[dict[str, jax.Array], np.dtype]:
        """Checked parameters cast to the compute dtype, and that dtype.

        The compute dtype is float32 unless a parameter or one of ``arrays`` (the
        input) is float64 (`hippox._src._validate.compute_dtype`).
        """
        p = self.check_params(params)
        rd = _validate.compute_dtype(*p.values(), *arrays)
        return {k: v.astype(rd) for k, v in p.items()}, rd


def _draw(config: LayerConfig, param_dtype, keys) -> dict[str, jax.Array]:
    """Every initializer of ``config``, one key each (see `LayerConfig.init_from_keys`)."""
    items = zip(keys, config.param_specs().items(), strict=True)
    return {name: init(k, shape, param_dtype) for k, (name, (shape, init)) in items}


def _draw_split(config: LayerConfig, param_dtype, key) -> dict[str, jax.Array]:
    """`_draw` with the keys ``jax.random.split(key, P)`` (`LayerConfig.init_params`)."""
    return _draw(config, param_dtype, jax.random.split(key, len(config.param_shapes())))


def _draw_counter(config: LayerConfig, param_dtype, key, start) -> dict[str, jax.Array]:
    """`_draw` with the keys ``fold_in(key, start + i)`` (`LayerConfig.init_from_counter`)."""
    counts = start + jnp.arange(len(config.param_shapes()), dtype=start.dtype)
    return _draw(config, param_dtype, jax.vmap(lambda c: jax.random.fold_in(key, c))(counts))


#: XLA options of the one-off draw program: no backend (LLVM) optimisation. It runs once
#: per build, so compiling it fast matters and running it fast does not (its values are
#: the same to within float32 rounding of the draws' scaling).
_FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _jit_draw(fn):
    """``fn`` as one program per (config, param_dtype), compiled fast."""
    try:
        return jax.jit(fn, static_argnums=(0, 1), compiler_options=_FAST_COMPILE)
    except TypeError:  # a JAX without jit(compiler_options=...): default options
        return jax.jit(fn, static_argnums=(0, 1))


_JITTED = {fn: _jit_draw(fn) for fn in (_draw, _draw_split, _draw_counter)}


# ------------------------------------------------------------------------ helpers


def set_field(obj, name: str, value) -> None:
    """Sets a field of a frozen dataclass in its ``__post_init__`` (normalised values)."""
    object.__setattr__(obj, name, value)


def check_sequence_input(u: ArrayLike, H: int, *, name: str = "u") -> jax.Array:
    """``u`` of shape ``(..., L, H)``, real floating, ``L >= 1``."""
    u = _validate.as_array(name, u)
    if not jnp.issubdtype(u.dtype, jnp.floating):
        raise TypeError(f"`{name}` must be a real floating array, got dtype {u.dtype}.")
    if u.ndim < 2 or u.shape[-1] != H or u.shape[-2] < 1:
        raise ValueError(
            f"`{name}` must have shape (..., L, H) with L >= 1 and H={H} channels, got {u.shape}."
        )
    return u


def check_step_input(u: ArrayLike, H: int, *, name: str = "u") -> jax.Array:
    """``u`` of shape ``(..., H)``, real floating (one step)."""
    u = _validate.as_array(name, u)
    if not jnp.issubdtype(u.dtype, jnp.floating):
        raise TypeError(f"`{name}` must be a real floating array, got dtype {u.dtype}.")
    if u.ndim < 1 or u.shape[-1] != H:
        raise ValueError(f"`{name}` must have shape (..., H) with H={H} channels, got {u.shape}.")
    return u


def output_dtype(dtype: DTypeLike | None, u: jax.Array) -> np.dtype:
    """The activation dtype: ``dtype``, or the input's when None."""
    return u.dtype if dtype is None else jnp.dtype(dtype)


def state_dtype(param_dtype: DTypeLike, *, complex_state: bool = True) -> np.dtype:
    """The step-mode state dtype for ``param_dtype``: complex64/128 (or float32/64)."""
    rd = _validate.compute_dtype(_validate.real_dtype(param_dtype, name="param_dtype"))
    return _validate.complex_dtype(rd) if complex_state else rd


def check_groups(H: int, n_ssm) -> int:
    """The number of independent SSM copies: ``n_ssm`` (dividing H), or H when None."""
    if n_ssm is None:
        return H
    n_ssm = _validate.check_size("n_ssm", n_ssm)
    if H % n_ssm:
        raise ValueError(f"`n_ssm` must divide H={H}, got {n_ssm}.")
    return n_ssm


def expand_groups(x: jax.Array, H: int, axis: int = 0) -> jax.Array:
    """Repeats the n_ssm groups of axis `axis` to H channels (channel h uses copy h // (H/G))."""
    G = x.shape[axis]
    return x if G == H else jnp.repeat(x, H // G, axis=axis)


def check_step_rescale(step_rescale, dtype) -> jax.Array:
    """``step_rescale`` (> 0 when it is a Python number) as an array of ``dtype``."""
    if isinstance(step_rescale, numbers.Real) and not isinstance(step_rescale, bool):
        _validate.check_real("step_rescale", step_rescale, positive=True)
    return _validate.as_array("step_rescale", step_rescale).astype(dtype)


def refuse_bidirectional_step(bidirectional: bool) -> None:
    """Step mode has no recurrent form for a bidirectional layer."""
    if bidirectional:
        raise ValueError(
            "`bidirectional` must be False for step mode (a bidirectional layer sees the "
            "future and has no recurrent form), got True."
        )


def convolve(K, u: jax.Array, D: jax.Array, rd) -> jax.Array:
    """Channel-last FFT convolution: ``u`` ``(..., L, H)`` with ``K`` ``(H, L)`` + ``D u``.

    ``K`` may be a pair ``(K_fwd, K_bwd)`` (`hippox.bidirectional_conv`). With several
    output channels, ``K`` is ``(channels, H, L)`` and ``D`` ``(channels, H)``, and the
    output is ``(..., L, channels * H)`` with feature index ``c * H + h`` (the reference's
    ``(c h)`` order).
    """
    multi = (K[0] if isinstance(K, tuple) else K).ndim == 3
    if not multi and not isinstance(K, tuple):
        return causal_conv_channels_last(u.astype(rd), K, D)
    ut = jnp.swapaxes(u, -1, -2).astype(rd)  # (..., H, L)
    if multi:
        ut = ut[..., None, :, :]  # (..., 1, H, L) against (channels, H, L)
    if isinstance(K, tuple):
        y = bidirectional_conv(ut, K[0], K[1], D=D)
    else:
        y = causal_conv(ut, K, D=D)
    if multi:
        y = y.reshape(*y.shape[:-3], -1, y.shape[-1])
    return jnp.swapaxes(y, -1, -2)


def merge_channels(y: jax.Array, channels: int) -> jax.Array:
    """``(..., c, H, L)`` -> channel-last ``(..., L, H)`` (c = 1) or ``(..., L, c * H)``."""
    y = y[..., 0, :, :] if channels == 1 else y.reshape(*y.shape[:-3], -1, y.shape[-1])
    return jnp.swapaxes(y, -1, -2)


# ------------------------------------------------------------------------ timescales

#: The ``dt_transform`` choices: ``dt = f(log_dt)`` (the reference's names; its
#: ``'none'`` is left out because it allows ``dt <= 0``).
DT_TRANSFORMS: tuple[str, ...] = ("exp", "softplus", "sigmoid", "relu")


def dt_from_param(raw: jax.Array, transform: str) -> jax.Array:
    """The step ``dt`` from its stored leaf (``log_dt``) under ``dt_transform``.

    ``exp``: ``exp(raw)``; ``softplus``: ``log(1 + exp(raw))``; ``sigmoid``:
    ``1 / (1 + exp(-raw))``; ``relu``: ``max(raw, 0) + 1e-4`` (as in the reference S4).
    """
    if transform == "exp":
        return jnp.exp(raw)
    if transform == "softplus":
        return jax.nn.softplus(raw)
    if transform == "sigmoid":
        return jax.nn.sigmoid(raw)
    return jax.nn.relu(raw) + 1e-4


def _dt_inverse_host(dt: np.ndarray, transform: str) -> np.ndarray:
    """The stored leaf for a step ``dt`` (float64 host; the reference clamps dt >= 1e-4)."""
    if transform == "exp":
        return np.log(dt)
    dt = np.maximum(dt, 1e-4)
    if transform == "softplus":
        return np.log(np.expm1(dt))
    if transform == "sigmoid":
        return np.log(dt) - np.log1p(-dt)
    return dt


def dt_initializer(
    *, dt_min: float, dt_max: float, transform: str = "exp", deterministic: bool = False
) -> Initializer:
    """Initializer of the ``log_dt`` leaf under ``dt_transform`` (``init(key, shape, dtype)``).

    Random (default): ``dt`` log-uniform on ``[dt_min, dt_max]`` per entry (for ``exp``
    exactly `hippox.initializers.log_dt`), stored as the transform's inverse.
    ``deterministic`` (the reference's option): ``dt_h = exp(linspace(log dt_min,
    log dt_max, H))`` over the first axis of ``shape`` (``(H,)``), no key needed.
    """
    _validate.check_choice("dt_transform", transform, DT_TRANSFORMS)
    if transform == "sigmoid" and dt_max >= 1:
        raise ValueError(f"`dt_max` must be < 1 for dt_transform='sigmoid', got {dt_max}.")
    log_init = inits.log_dt(dt_min=dt_min, dt_max=dt_max)  # validates dt_min, dt_max
    if not deterministic and transform == "exp":
        return log_init

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        shape = tuple(shape)
        dtype = _validate.real_dtype(dtype, name="dtype")
        if deterministic:
            if len(shape) != 1:
                raise ValueError(
                    f"`shape` must be (H,) for a deterministic dt initialisation, got {shape}."
                )
            dt = np.exp(np.linspace(np.log(dt_min), np.log(dt_max), shape[0]))
            return jnp.asarray(_dt_inverse_host(dt, transform), dtype)
        _validate.require_key("key", key, "a random dt initialisation")
        dt = jnp.exp(log_init(key, shape, dtype))
        if transform == "softplus":
            return jnp.log(jnp.expm1(jnp.maximum(dt, 1e-4)))
        if transform == "sigmoid":
            return jax.scipy.special.logit(jnp.maximum(dt, 1e-4))
        return jnp.maximum(dt, 1e-4)

    return initializer
