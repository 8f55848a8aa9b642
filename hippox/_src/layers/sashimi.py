"""Framework-free SaShiMi: options, parameter layout, the chunked forward and step mode.

The backbone of Goel et al. (2022), with a hippox layer as the sequence mixer, written
as a recursion over resolutions. Level ``k`` runs at ``1 / P_k`` of the input rate
(``P_k = pool[0] ⋯ pool[k-1]``) with width ``H_k = d_model · expand^k``; ``K = len(pool)``::

    level(K, x) = center(x) + x                       n_layers blocks (plus ff blocks)
    level(k, x) = ups(v), v = UpPool_k(level(k + 1, DownPool_k(a))) + a
        with a = x                                    (SaShiMi), ups = blocks + skip of v
        or   a = downs(x), every block's input kept   (UNet: each up block adds the
                                                       matching down block's input)
    y = LayerNorm(level(0, u))

A block is ``x + drop(layer(LayerNorm(x)))`` (a hippox layer), followed when ``ff > 0`` by
``x + drop(Dense(GELU-drop(Dense(LayerNorm(x)))))`` (width ``ff · H``). The resampling is
`hippox._src.layers.pooling`'s: ``DownPool_k`` folds ``pool[k]`` positions and maps
``pool[k]·H_k -> H_{k+1}``; ``UpPool_k`` maps ``H_{k+1} -> pool[k]·H_k``, delays one
coarse position (causality) and unfolds.

**Parameters** are a nested dict laid out as ``flax.nnx.to_pure_dict`` writes the
`hippox.nnx.SaShiMi` parameters (`param_specs`): ``down[i]`` (UNet blocks and the
down-pools, finest first), ``center[i]``, ``up[s][0]`` (the up-pool of stage ``s``,
coarsest first) and ``up[s][j >= 1]`` (its blocks), ``norm``. A layer block is
``{"norm", "layer"}`` (the layer config's leaves), a feed-forward block
``{"norm", "layer": {"inner", "outer"}}``, a pool ``{"linear"}``; dense layers are
``{"kernel", "bias"}``, norms ``{"scale", "bias"}``. `group_params`/`ungroup_params`
flatten this to ``{"down_0_linear": {...}, "center_0_layer": {...}, ...}`` (the
sub-module names of the Haiku and linen versions).

**Step mode** (the reference's ``DownPool.step``/``UpPool.step``): the carry holds the
number of positions seen (one int32 count for the whole batch), every layer block's
carry, and per down-pool a buffer of the last ``pool[k]`` level-``k`` inputs and per
up-pool the ``pool[k]`` pending level-``k`` outputs. A level-``k`` step writes its input
into slot ``s = m mod pool[k]`` (``m`` its level-``k`` position), reads up-pool output
``s`` and, when the window is full (``s = pool[k] - 1``), runs level ``k + 1`` once and
refills the up-pool buffer (a `jax.lax.cond`, so coarse levels cost only when due).
Scanning `step` over a sequence gives the outputs of `forward` on it; `forward` with
``return_carry=True`` gives the carry `step` would have (chunks, prefill then decode).
A chunk passed to `forward` must start at a multiple of ``prod(pool)`` positions
(checked when the count is concrete).

References:
  Goel, Gu, Donahue, Ré. "It's Raw! Audio Generation with State-Space Models."
  ICML 2022. (state-spaces/s4: ``backbones/sashimi.py``, ``modules/pool.py``.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from hippox._src import _validate
from hippox._src.layers import backbone as bb
from hippox._src.layers import pooling
from hippox._src.layers.lssl import LSSLConfig
from hippox._src.layers.s4 import S4Config
from hippox._src.layers.s4d import S4DConfig
from hippox._src.layers.s5 import S5Config

#: The built-in sequence mixers of SaShiMi.
LAYER_CONFIGS: dict[str, type] = {
    "s4d": S4DConfig,
    "s4": S4Config,
    "s5": S5Config,
    "lssl": LSSLConfig,
}


class SaShiMiOptions(NamedTuple):
    """Validated SaShiMi options (hashable: a static argument in every framework)."""

    d_model: int
    n_layers: int
    pool: tuple[int, ...]
    expand: int
    ff: int
    unet: bool
    dropout: float
    layer: Any  # a name of LAYER_CONFIGS, or a framework callable (NNX only)
    layer_kwargs: tuple  # sorted (name, value) items

    @property
    def factor(self) -> int:
        """``prod(pool)``: input lengths and chunk starts are multiples of it."""
        return math.prod(self.pool)

    def width(self, k: int) -> int:
        """Width ``H_k`` of level ``k``."""
        return self.d_model * self.expand**k

    def config(self, k: int):
        """The built-in layer config at level ``k`` (None for a callable layer)."""
        if callable(self.layer):
            return None
        return LAYER_CONFIGS[self.layer](self.width(k), **dict(self.layer_kwargs))


def check_options(
    *,
    d_model,
    n_layers,
    pool,
    expand,
    ff,
    layer,
    layer_kwargs,
    unet,
    dropout,
    allow_callable: bool = True,
) -> SaShiMiOptions:
    """Validates the SaShiMi options eagerly (naming the argument)."""
    H = _validate.check_size("d_model", d_model)
    n_layers = _validate.check_size("n_layers", n_layers, minimum=0)
    if isinstance(pool, int) or not isinstance(pool, Sequence):
        raise TypeError(f"`pool` must be a sequence of ints, got {pool!r}.")
    pool = tuple(_validate.check_size("pool entry", p) for p in pool)
    expand = _validate.check_size("expand", expand)
    ff = _validate.check_size("ff", ff, minimum=0)
    unet = _validate.check_bool("unet", unet)
    dropout = _validate.check_real("dropout", dropout, low=0.0)
    if dropout >= 1.0:
        raise ValueError(f"`dropout` must be in [0, 1), got {dropout}.")
    if callable(layer) and not allow_callable:
        raise TypeError(f"`layer` must be one of {tuple(LAYER_CONFIGS)} here, got {layer!r}.")
    if not callable(layer):
        _validate.check_choice("layer", layer, tuple(LAYER_CONFIGS))
    if layer_kwargs is not None and not isinstance(layer_kwargs, Mapping):
        raise TypeError(f"`layer_kwargs` must be a mapping or None, got {layer_kwargs!r}.")
    kwargs = tuple(sorted(dict(layer_kwargs or {}).items()))
    if layer == "s4" and "l_max" not in dict(kwargs):
        raise ValueError(
            "`layer_kwargs` must give l_max for layer='s4' (the length S4's C_tilde refers to; "
            f"any value: it runs at every length), got {dict(kwargs)!r}."
        )
    opts = SaShiMiOptions(H, n_layers, pool, expand, ff, unet, dropout, layer, kwargs)
    for k in range(len(pool) + 1):
        opts.config(k)  # the layer options are checked by the configs, before any framework
    return opts


# ------------------------------------------------------------------------ layout


class _Level(NamedTuple):
    downs: tuple[str, ...]  # UNet block paths before the down-pool
    down: str  # the down-pool's path
    up: str  # the up-pool's path
    ups: tuple[str, ...]  # block paths after the up-pool


class Layout(NamedTuple):
    """Block paths (``"down/3"``, ``"center/0"``, ``"up/1/2"``) per level and their kinds."""

    levels: tuple[_Level, ...]
    center: tuple[str, ...]
    kinds: tuple[tuple[str, str, int], ...]  # (path, 'layer' | 'ff' | 'pool', level)

    def layer_paths(self) -> tuple[str, ...]:
        """Paths of the layer blocks (the ones with a carry), in parameter order."""
        return tuple(p for p, kind, _ in self.kinds if kind == "layer")

    def level_of(self, path: str) -> int:
        return next(k for p, _, k in self.kinds if p == path)


def layout(opts: SaShiMiOptions) -> Layout:
    """The block paths of the network (the order of `param_specs`)."""
    per_level = ("layer", "ff") if opts.ff > 0 else ("layer",)
    kinds: list = []

    def blocks(prefix: str, start: int, level: int) -> tuple[str, ...]:
        out = []
        for i in range(opts.n_layers * len(per_level)):
            path = f"{prefix}/{start + i}"
            kinds.append((path, per_level[i % len(per_level)], level))
            out.append(path)
        return tuple(out)

    downs, idx = [], 0
    for k in range(len(opts.pool)):
        pre = blocks("down", idx, k) if opts.unet else ()
        idx += len(pre)
        kinds.append((f"down/{idx}", "pool", k))
        downs.append((pre, f"down/{idx}"))
        idx += 1
    center = blocks("center", 0, len(opts.pool))
    levels: list = [None] * len(opts.pool)
    for s, k in enumerate(reversed(range(len(opts.pool)))):
        kinds.append((f"up/{s}/0", "pool", k))
        levels[k] = _Level(downs[k][0], downs[k][1], f"up/{s}/0", blocks(f"up/{s}", 1, k))
    return Layout(tuple(levels), center, tuple(kinds))


def param_specs(opts: SaShiMiOptions) -> dict:
    """``{..: (shape, init)}`` nested as ``flax.nnx.to_pure_dict`` writes the NNX model.

    A callable layer's leaves are not known here: its ``layer`` entries are ``{}``.
    """
    specs: dict = {"down": {}, "center": {}, "up": {}}
    for path, kind, k in layout(opts).kinds:
        H = opts.width(k)
        if kind == "pool":
            if path.startswith("down"):
                spec = {"linear": bb.dense_params(opts.pool[k] * H, opts.width(k + 1))}
            else:
                spec = {"linear": bb.dense_params(opts.width(k + 1), opts.pool[k] * H)}
        elif kind == "ff":
            inner = bb.dense_params(H, opts.ff * H)
            outer = bb.dense_params(opts.ff * H, H)
            spec = {"norm": bb.norm_params(H), "layer": {"inner": inner, "outer": outer}}
        else:
            cfg = opts.config(k)
            spec = {"norm": bb.norm_params(H), "layer": {} if cfg is None else cfg.param_specs()}
        put(specs, path, spec)
    specs["norm"] = bb.norm_params(opts.d_model)
    return specs


def put(tree: dict, path: str, value) -> None:
    """Sets ``tree`` at ``"up/1/2"``-style ``path``, creating the dicts on the way."""
    *heads, last = [int(p) if p.isdigit() else p for p in path.split("/")]
    for h in heads:
        tree = tree.setdefault(h, {})
    tree[last] = value


def get(tree: Mapping, path: str):
    """The entry of a nested dict at ``"up/1/2"``-style ``path``."""
    for p in path.split("/"):
        tree = tree[int(p) if p.isdigit() else p]
    return tree


def _groups(tree: Mapping, prefix: tuple = ()) -> dict[str, str]:
    """``{group name: path}`` of every innermost dict (no dict values) of ``tree``."""
    if all(not isinstance(v, Mapping) for v in tree.values()):
        return {"_".join(prefix): "/".join(prefix)}
    out: dict = {}
    for key, v in tree.items():
        out.update(_groups(v, (*prefix, str(key))))
    return out


def group_params(params: Mapping) -> dict:
    """Nested parameters -> ``{"down_0_linear": {...}, "center_0_layer": {...}, ...}``.

    Every innermost dict of arrays becomes one entry named by its path joined with
    ``_`` (the sub-module names of the Haiku and linen SaShiMi); `ungroup_params` inverts.
    """
    return {name: dict(get(params, path)) for name, path in _groups(params).items()}


def ungroup_params(grouped: Mapping, opts: SaShiMiOptions) -> dict:
    """The inverse of `group_params` for the network of ``opts``."""
    is_spec = lambda x: isinstance(x, tuple) and len(x) == 2 and callable(x[1])  # noqa: E731
    specs = jax.tree.map(lambda s: 0, param_specs(opts), is_leaf=is_spec)
    nested: dict = {}
    for name, path in _groups(specs).items():
        put(nested, path, dict(grouped[name]))
    return nested


# ------------------------------------------------------------------------ carry


class SaShiMiCarry(NamedTuple):
    """The step-mode state of SaShiMi.

    Attributes:
      count: int32 ``()``: positions seen (the same for every sequence of the batch).
      layers: ``{path: carry}`` of every layer block (`Layout.layer_paths`).
      down: per down-pool ``k``, ``(..., pool[k], H_k)``: its window of inputs.
      up: per up-pool ``k``, ``(..., pool[k], H_k)``: its pending outputs.
    """

    count: jax.Array
    layers: dict
    down: tuple
    up: tuple


def initial_carry(opts: SaShiMiOptions, layer_carries: Mapping, batch_shape, dtype) -> SaShiMiCarry:
    """Zero carry around the layers' zero carries (``{path: carry}``)."""
    batch = _validate.check_batch_shape(batch_shape)
    bufs = tuple(jnp.zeros((*batch, p, opts.width(k)), dtype) for k, p in enumerate(opts.pool))
    return SaShiMiCarry(jnp.zeros((), jnp.int32), dict(layer_carries), bufs, bufs)


def check_carry(name: str, carry, expected: SaShiMiCarry, batch) -> SaShiMiCarry:
    """``carry`` against the structure and shapes of ``expected`` (kinds of dtypes)."""
    carry = bb.check_carry_like(
        name,
        carry,
        expected,
        exact_dtype=False,
        context=f" (the carry for inputs of batch shape {tuple(batch)})",
    )
    return SaShiMiCarry(*carry)


def check_input(u, opts: SaShiMiOptions) -> jax.Array:
    """``u`` ``(..., L, d_model)`` with ``L`` a positive multiple of ``prod(pool)``."""
    u = _validate.as_array("u", u)
    f = opts.factor
    if u.ndim < 2 or u.shape[-1] != opts.d_model or u.shape[-2] % f or u.shape[-2] == 0:
        raise ValueError(
            f"`u` must have shape (..., L, {opts.d_model}) with L a positive multiple of "
            f"prod(pool)={f}, got {u.shape}."
        )
    if not jnp.issubdtype(u.dtype, jnp.floating):
        raise TypeError(f"`u` must be a real floating array, got dtype {u.dtype}.")
    return u


def check_step_input(u_k, opts: SaShiMiOptions) -> jax.Array:
    """``u_k`` ``(..., d_model)``."""
    u_k = _validate.as_array("u_k", u_k)
    if u_k.ndim < 1 or u_k.shape[-1] != opts.d_model:
        raise ValueError(f"`u_k` must have shape (..., {opts.d_model}), got {u_k.shape}.")
    if not jnp.issubdtype(u_k.dtype, jnp.floating):
        raise TypeError(f"`u_k` must be a real floating array, got dtype {u_k.dtype}.")
    return u_k


def _check_chunk_start(count, factor: int) -> None:
    value = _validate.concrete_value(count)
    if value is not None and int(value) % factor:
        raise ValueError(
            f"`initial_carry` must have seen a multiple of prod(pool)={factor} positions for a "
            f"call (chunks start at a pooling boundary; continue with step instead), got "
            f"count={int(value)}."
        )


# ------------------------------------------------------------------------ maths


def _feed_forward(p: Mapping, x: jax.Array, drop: Callable, dtype) -> jax.Array:
    return bb.dense(p["outer"], drop(bb.gelu(bb.dense(p["inner"], x, dtype))), dtype)


def forward(
    opts: SaShiMiOptions,
    params: Mapping,
    u: jax.Array,
    *,
    layer: Callable,
    drop: Callable,
    initial_carry: SaShiMiCarry | None = None,
    return_carry: bool = False,
    dtype=None,
):
    """SaShiMi over a chunk ``u`` ``(..., L, d_model)`` (module docstring).

    Args:
      opts: validated options.
      params: the nested parameters (`param_specs` layout; layer entries may be
        anything the ``layer`` callback reads).
      u: checked input, ``L`` a multiple of ``prod(pool)``.
      layer: ``(path, z, carry, want_carry) -> (carry, z)``: the layer of block
        ``path`` under the sequence-layer calling convention (``want_carry`` False:
        ``carry`` is None and may be returned as None).
      drop: ``x -> dropout(x)`` (identity in evaluation mode).
      initial_carry: a checked `SaShiMiCarry` whose count is a multiple of
        ``prod(pool)``, or None (zeros).
      return_carry: also return the carry after the chunk.
      dtype: dtype of the dense and norm layers (None: inferred).

    Returns:
      ``y`` ``(..., L, d_model)``, or ``(SaShiMiCarry, y)``.
    """
    lay = layout(opts)
    layer_paths = set(lay.layer_paths())
    want = initial_carry is not None or return_carry
    if initial_carry is not None:
        _check_chunk_start(initial_carry.count, opts.factor)
    layers_out: dict = {}
    downs_out: list = [None] * len(opts.pool)
    ups_out: list = [None] * len(opts.pool)

    def block(path: str, x: jax.Array) -> jax.Array:
        p = get(params, path)
        z = bb.layer_norm(p["norm"], x, dtype)
        if path in layer_paths:
            c_in = None if initial_carry is None else initial_carry.layers[path]
            c, z = layer(path, z, c_in, want)
            layers_out[path] = c
        else:
            z = _feed_forward(p["layer"], z, drop, dtype)
        return x + drop(z)

    def level(k: int, x: jax.Array) -> jax.Array:
        if k == len(opts.pool):
            v = x
            for path in lay.center:
                v = block(path, v)
            return v + x
        lv, p = lay.levels[k], opts.pool[k]
        a = [x]
        for path in lv.downs:
            a.append(block(path, a[-1]))
        h = a[-1]
        w = level(k + 1, bb.dense(get(params, lv.down)["linear"], pooling.fold(h, p), dtype))
        up = bb.dense(get(params, lv.up)["linear"], w, dtype)  # (..., L_{k+1}, p·H_k)
        if initial_carry is None:
            first = jnp.zeros_like(up[..., :1, :])
        else:
            buf = initial_carry.up[k]
            first = buf.reshape(*buf.shape[:-2], 1, -1).astype(up.dtype)
        first = jnp.broadcast_to(first, (*up.shape[:-2], 1, up.shape[-1]))
        shifted = jnp.concatenate([first, up[..., :-1, :]], axis=-2)
        downs_out[k] = h[..., -p:, :]
        ups_out[k] = up[..., -1, :].reshape(*up.shape[:-2], p, -1)
        v = pooling.unfold(shifted, p) + h
        if opts.unet:
            for j, path in enumerate(lv.ups):
                v = block(path, v) + a[len(lv.downs) - 1 - j]
            return v
        skip = v
        for path in lv.ups:
            v = block(path, v)
        return v + skip

    y = bb.layer_norm(params["norm"], level(0, u), dtype)
    if not return_carry:
        return y
    count = jnp.asarray(u.shape[-2], jnp.int32)
    if initial_carry is not None:
        count = initial_carry.count + count
        buf_dtype = [b.dtype for b in initial_carry.down]
    else:
        buf_dtype = [jnp.promote_types(y.dtype, jnp.float32)] * len(opts.pool)
    down = tuple(b.astype(d) for b, d in zip(downs_out, buf_dtype, strict=True))
    up = tuple(b.astype(d) for b, d in zip(ups_out, buf_dtype, strict=True))
    return SaShiMiCarry(count, layers_out, down, up), y


def step(
    opts: SaShiMiOptions,
    params: Mapping,
    carry: SaShiMiCarry,
    u_k: jax.Array,
    *,
    layer_step: Callable,
    dtype=None,
):
    """One position of SaShiMi in step mode (evaluation semantics; module docstring).

    Args:
      opts: validated options.
      params: the nested parameters.
      carry: a checked `SaShiMiCarry`.
      u_k: ``(..., d_model)`` checked input.
      layer_step: ``(path, carry, z) -> (carry, z)``: a pure step of block ``path``'s
        layer (no framework state: it runs inside `jax.lax.cond`).
      dtype: dtype of the dense and norm layers (None: inferred).

    Returns:
      ``(carry, y_k)``, ``y_k`` ``(..., d_model)``.
    """
    lay = layout(opts)
    layer_paths = set(lay.layer_paths())
    t = carry.count

    def block(path, x, layers):
        p = get(params, path)
        z = bb.layer_norm(p["norm"], x, dtype)
        if path in layer_paths:
            c, z = layer_step(path, layers[path], z)
            layers = {**layers, path: c}
        else:
            z = _feed_forward(p["layer"], z, lambda v: v, dtype)
        return x + z, layers

    def level(k, x, state):
        layers, down, up = state
        if k == len(opts.pool):
            v = x
            for path in lay.center:
                v, layers = block(path, v, layers)
            return v + x, (layers, down, up)
        lv, p = lay.levels[k], opts.pool[k]
        a = [x]
        for path in lv.downs:
            y, layers = block(path, a[-1], layers)
            a.append(y)
        h = a[-1]
        s = (t // math.prod(opts.pool[:k])) % p
        buf = jax.lax.dynamic_update_index_in_dim(down[k], h.astype(down[k].dtype), s, axis=-2)
        down = (*down[:k], buf, *down[k + 1 :])
        out = jax.lax.dynamic_index_in_dim(up[k], s, axis=-2, keepdims=False)

        def coarse(state):
            layers, down, up = state
            folded = down[k].reshape(*down[k].shape[:-2], -1).astype(h.dtype)
            z = bb.dense(get(params, lv.down)["linear"], folded, dtype)
            w, (layers, down, up) = level(k + 1, z, (layers, down, up))
            new = bb.dense(get(params, lv.up)["linear"], w, dtype)
            new = new.reshape(*new.shape[:-1], p, -1).astype(up[k].dtype)
            return layers, down, (*up[:k], new, *up[k + 1 :])

        layers, down, up = jax.lax.cond(s == p - 1, coarse, lambda st: st, (layers, down, up))
        v = out.astype(h.dtype) + h
        if opts.unet:
            for j, path in enumerate(lv.ups):
                y, layers = block(path, v, layers)
                v = y + a[len(lv.downs) - 1 - j]
        else:
            skip = v
            for path in lv.ups:
                v, layers = block(path, v, layers)
            v = v + skip
        return v, (layers, down, up)

    x, (layers, down, up) = level(0, u_k, (dict(carry.layers), carry.down, carry.up))
    y = bb.layer_norm(params["norm"], x, dtype)
    return SaShiMiCarry(t + 1, layers, down, up), y


# ------------------------------------------------------------------------ built-in layers


def builtin_layer(opts: SaShiMiOptions, params: Mapping, *, param_dtype, dtype=None) -> Callable:
    """The ``layer`` callback of `forward` for built-in layers (params in the nested dict)."""
    lay = layout(opts)

    def call(path, z, carry, want):
        cfg = opts.config(lay.level_of(path))
        out = bb.call_layer(
            cfg,
            get(params, path)["layer"],
            z,
            param_dtype=param_dtype,
            dtype=dtype,
            initial_carry=carry,
            return_carry=want,
        )
        return out if want else (None, out)

    return call


def builtin_setup_step(opts: SaShiMiOptions, params: Mapping) -> dict:
    """``{path: step params}`` of every layer block (discretise once)."""
    lay = layout(opts)
    return {
        path: opts.config(lay.level_of(path)).step_params(get(params, path)["layer"])
        for path in lay.layer_paths()
    }


def builtin_layer_step(opts: SaShiMiOptions, step_params: Mapping, *, param_dtype, dtype=None):
    """The ``layer_step`` callback of `step` for built-in layers."""
    lay = layout(opts)

    def call(path, carry, z):
        cfg = opts.config(lay.level_of(path))
        return bb.step_layer(cfg, step_params[path], carry, z, param_dtype=param_dtype, dtype=dtype)

    return call


def builtin_initial_carry(opts: SaShiMiOptions, batch_shape, param_dtype, dtype=None):
    """Zero `SaShiMiCarry` of a built-in-layer network."""
    batch = _validate.check_batch_shape(batch_shape)
    lay = layout(opts)
    layers = {
        p: opts.config(lay.level_of(p)).initial_state(batch, param_dtype) for p in lay.layer_paths()
    }
    rd = jnp.promote_types(param_dtype, jnp.float32) if dtype is None else dtype
    return initial_carry(opts, layers, batch, rd)


# ------------------------------------------------------------------------ wrapper entry points


def call(
    opts: SaShiMiOptions,
    params: Mapping,
    u,
    *,
    initial_carry,
    return_carry,
    drop: Callable,
    param_dtype,
    dtype=None,
    layer: Callable | None = None,
    initialize: Callable | None = None,
):
    """A framework's ``__call__``: checks ``u``, ``return_carry`` and ``initial_carry``
    (against ``initialize(batch_shape)``, default `builtin_initial_carry`), then `forward`
    (with `builtin_layer` unless ``layer`` is given)."""
    u = check_input(u, opts)
    return_carry = _validate.check_bool("return_carry", return_carry)
    if initialize is None:
        initialize = lambda b: builtin_initial_carry(opts, b, param_dtype)  # noqa: E731
    if initial_carry is not None:
        batch = u.shape[:-2]
        initial_carry = check_carry("initial_carry", initial_carry, initialize(batch), batch)
    if layer is None:
        layer = builtin_layer(opts, params, param_dtype=param_dtype, dtype=dtype)
    return forward(
        opts,
        params,
        u,
        layer=layer,
        drop=drop,
        initial_carry=initial_carry,
        return_carry=return_carry,
        dtype=dtype,
    )


def step_call(
    opts: SaShiMiOptions,
    params: Mapping,
    carry,
    u_k,
    step_params,
    *,
    param_dtype,
    dtype=None,
    layer_step: Callable | None = None,
    initialize: Callable | None = None,
):
    """A framework's ``step``: checks ``u_k`` and ``carry``, then `step` (built-in layers'
    step params from `builtin_setup_step` when ``step_params`` is None, unless
    ``layer_step`` is given)."""
    u_k = check_step_input(u_k, opts)
    if initialize is None:
        initialize = lambda b: builtin_initial_carry(opts, b, param_dtype)  # noqa: E731
    batch = u_k.shape[:-1]
    carry = check_carry("carry", carry, initialize(batch), batch)
    if layer_step is None:
        sp = builtin_setup_step(opts, params) if step_params is None else step_params
        layer_step = builtin_layer_step(opts, sp, param_dtype=param_dtype, dtype=dtype)
    return step(opts, params, carry, u_k, layer_step=layer_step, dtype=dtype)
