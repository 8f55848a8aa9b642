"""Framework-free pieces of the `SequenceModel` backbone and of the sequence-layer convention.

The backbone (Gu et al.'s S4 sequence model, with any hippox layer as the mixer), the
reference's ``SequenceModel`` / ``SequenceResidualBlock`` / ``S4Block`` of state-spaces/s4::

    x = encoder(u)                                    Dense d_input -> H
    for each block i = 0 .. n_layers - 1:
        z = norm(x)              if prenorm           LayerNorm / BatchNorm / none
        v = gate_act(Dense(z))   if gate              H -> I*gate  (GSS-style gate branch)
        z = Dense(z)             if bottleneck        H -> I = H // bottleneck
        z = gelu(layer(z))                            (..., L, I) -> (..., L, I*channels)
        z = Dense(z) * v         if gate              -> I*gate
        z = dropout(mult_act(z))
        z = final_act(Dense(z))  unless final_act None -> H ('glu...': Dense to 2H, GLU)
        x = residual(x, drop_path(dropout(z)))        'R': x + z (default), 'F': z,
                                                      'H' highway, 'D' decay, 'A' affine
        x = norm(x)              if not prenorm (post-norm)
    x = final_norm(x)            if prenorm and a norm is used
    x = pool(x)                                       'mean' / 'last' over L, or None
    y = decoder(x)                                    Dense H -> d_output

The older ``activation`` option is ``final_act``: ``'gelu'`` (the default) is
``final_act='id'`` (a Dense H -> H) and ``'glu'`` is ``final_act='glu'``. With
``residual=None`` (no residual function) the block returns ``z`` without the second
dropout and drop path, as the reference does. ``tie_dropout`` shares one dropout mask
over the sequence axis (the reference's ``DropoutNd``); ``drop_path`` drops a block's
branch for whole sequences (``StochasticDepth`` in ``'row'`` mode), both scaled by
``1 / (1 - rate)`` and off in evaluation mode.

Where the reference's ``S4Block`` is inconsistent hippox follows the GSS layout
(Mehta et al., 2022): with ``bottleneck`` the reference builds its input Dense
(``H/b -> H/b``) and input gate (``H/b -> gate*H/b``) yet applies them to ``H``
features, gives the layer ``H``
channels and maps the output to ``H/b`` (which its residual cannot add to ``x``);
here the input Dense is ``H -> H/b``, the layer gets ``H/b`` channels and the output
Dense maps back to ``H``. The gate's output Dense is always built (the reference's
forward calls it unconditionally). Dense layers use Flax's initialisation (lecun normal, zero
bias) rather than PyTorch's.

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
#: hippox's older name for the block's output: ``'gelu'`` (= ``final_act='id'``, a Dense
#: H -> H) or ``'glu'`` (= ``final_act='glu'``).
ACTIVATIONS: tuple[str, ...] = ("gelu", "glu")
#: The reference's activations (``src/models/nn/activation.py``) without ``modrelu`` (it
#: has a parameter); ``'glu-<act>'`` is a GLU whose gate goes through ``<act>``.
ACTIVATION_NAMES: tuple[str, ...] = (
    "id",
    "identity",
    "linear",
    "none",
    "tanh",
    "relu",
    "gelu",
    "elu",
    "swish",
    "silu",
    "sigmoid",
    "softplus",
    "sqrelu",
    "relu2",
    "laplace",
)
_GLU_NAMES = ("glu", *(f"glu-{a}" for a in ACTIVATION_NAMES))
#: ``final_act`` / ``gate_act`` choices (None: identity for ``gate_act``; no output
#: Dense at all for ``final_act``).
FINAL_ACTS: tuple[str, ...] = (*ACTIVATION_NAMES, *_GLU_NAMES)
#: The reference's residual registry (``src/models/nn/residual.py``) and the kind each
#: name means: ``'R'`` identity skip ``alpha x + beta y``, ``'F'`` feedforward (no
#: skip), ``'H'`` highway, ``'D'`` depth-decayed, ``'A'`` learned affine scalars.
RESIDUALS: dict[str, str] = {
    "R": "R",
    "residual": "R",
    "F": "F",
    "N": "F",
    "none": "F",
    "ff": "F",
    "feedforward": "F",
    "H": "H",
    "highway": "H",
    "D": "D",
    "decay": "D",
    "A": "A",
    "affine": "A",
}
#: Keyword options of each residual kind, with the reference's defaults.
RESIDUAL_KWARGS: dict[str, dict[str, Any]] = {
    "R": {"alpha": 1.0, "beta": 1.0},
    "F": {},
    "H": {"scaling_correction": False, "elemwise": False},
    "D": {"power": 0.5, "l2": True},
    "A": {"alpha": 1.0, "beta": 1.0, "scalar": True, "gamma": 0.0},
}
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
    final_act: str | None = "id"
    gate: int | None = None
    gate_act: str | None = None
    mult_act: str | None = None
    bottleneck: int | None = None
    residual: str | None = "R"
    residual_kwargs: tuple = ()
    drop_path: float = 0.0
    tie_dropout: bool = False

    @property
    def inner_width(self) -> int:
        """The width of the block's layer: ``d_model // bottleneck`` (``d_model``)."""
        return self.d_model if self.bottleneck is None else self.d_model // self.bottleneck


def _check_residual_kwargs(kind: str | None, kwargs) -> tuple:
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"`residual_kwargs` must be a mapping or None, got {kwargs!r}.")
    allowed = RESIDUAL_KWARGS.get(kind, {})
    out = dict(allowed)
    for k, v in kwargs.items():
        if k not in allowed:
            raise ValueError(
                f"`residual_kwargs` must have keys in {tuple(allowed)} for residual={kind!r}, "
                f"got {k!r}."
            )
        if isinstance(allowed[k], bool):
            out[k] = _validate.check_bool(f"residual_kwargs[{k!r}]", v)
        else:
            out[k] = _validate.check_real(f"residual_kwargs[{k!r}]", v)
    return tuple(sorted(out.items()))


def _resolve_final_act(final_act, activation: str):
    if isinstance(final_act, str) and final_act == "auto":
        return "id" if activation == "gelu" else "glu"
    if activation != "gelu":
        raise ValueError(
            f"`final_act` replaces the older `activation`: give one of them, got "
            f"activation={activation!r} and final_act={final_act!r}."
        )
    return _validate.check_none_or_choice("final_act", final_act, FINAL_ACTS)


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
    final_act: str | None = "auto",
    gate: int | None = None,
    gate_act: str | None = None,
    mult_act: str | None = None,
    bottleneck: int | None = None,
    residual: str | None = "R",
    residual_kwargs: Mapping[str, Any] | None = None,
    drop_path: float = 0.0,
    tie_dropout: bool = False,
) -> BackboneOptions:
    """Validates the `SequenceModel` options eagerly.

    The block options follow the reference's ``S4Block`` and ``SequenceResidualBlock``
    (module docstring). ``final_act='auto'`` follows the older ``activation``
    (``'gelu'`` -> ``'id'``, ``'glu'`` -> ``'glu'``).

    Raises:
      ValueError: an unknown layer, norm, activation, residual or pooling; a bad size;
        a dropout or drop-path rate outside ``[0, 1)``; ``layer='s4'`` without
        ``l_max``; widths that do not meet (``final_act=None`` with a gate or a
        bottleneck).
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
    final_act = _resolve_final_act(final_act, activation)
    gate = None if gate is None else _validate.check_size("gate", gate)
    gate_act = _validate.check_none_or_choice("gate_act", gate_act, FINAL_ACTS)
    mult_act = _validate.check_none_or_choice("mult_act", mult_act, ACTIVATION_NAMES)
    if bottleneck is not None:
        bottleneck = _validate.check_size("bottleneck", bottleneck)
        if d_model // bottleneck < 1:
            raise ValueError(
                f"`bottleneck` must be <= d_model={d_model} (the layer gets d_model // "
                f"bottleneck channels), got {bottleneck}."
            )
    if residual is not None:
        _validate.check_choice("residual", residual, tuple(RESIDUALS))
        residual = RESIDUALS[residual]
    elif residual_kwargs:
        raise ValueError(
            f"`residual_kwargs` must be empty for residual=None, got {residual_kwargs}."
        )
    rkw = _check_residual_kwargs(residual, residual_kwargs)
    drop_path = _validate.check_real("drop_path", drop_path, low=0.0)
    if drop_path >= 1.0:
        raise ValueError(f"`drop_path` must be in [0, 1), got {drop_path}.")
    tie_dropout = _validate.check_bool("tie_dropout", tie_dropout)
    opts = BackboneOptions(
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
        final_act,
        gate,
        gate_act,
        mult_act,
        bottleneck,
        residual,
        rkw,
        drop_path,
        tie_dropout,
    )
    if final_act is None and _branch_width(opts) != d_model:
        raise ValueError(
            f"`final_act` None (no output Dense) needs the block's branch to have d_model="
            f"{d_model} features, got {_branch_width(opts)} (gate={gate}, "
            f"bottleneck={bottleneck}); use final_act='id' for a plain Dense."
        )
    return opts


class Wiring(NamedTuple):
    """The options `forward` and `step` read (hashable: static in every framework)."""

    n_layers: int
    prenorm: bool
    pooling: str | None
    final_act: str | None = "id"
    gate: bool = False
    gate_act: str | None = None
    mult_act: str | None = None
    bottleneck: bool = False
    residual: str | None = "R"
    residual_kwargs: tuple = ()

    @classmethod
    def of(cls, opts: BackboneOptions) -> Wiring:
        return cls(
            opts.n_layers,
            opts.prenorm,
            opts.pooling,
            opts.final_act,
            opts.gate is not None,
            opts.gate_act,
            opts.mult_act,
            opts.bottleneck is not None,
            opts.residual,
            opts.residual_kwargs,
        )


def layer_arguments(opts: BackboneOptions) -> dict:
    """Keyword arguments of a built-in layer: ``layer_kwargs`` plus ``l_max`` for S4."""
    kw = dict(opts.layer_kwargs)
    if opts.layer == "s4" and "l_max" not in kw:
        kw["l_max"] = opts.l_max
    return kw


def layer_config(opts: BackboneOptions):
    """The config of a built-in block layer with ``H = inner_width`` channels."""
    H, kw = opts.inner_width, layer_arguments(opts)
    if opts.layer == "hippo_rnn":
        return HiPPORNNConfig(H, H, **kw)
    return LAYER_CONFIGS[opts.layer](H, **kw)


def layer_width(opts: BackboneOptions) -> int:
    """Output features of a block's layer: ``channels * inner_width`` (S4D/S4 ``channels``)."""
    channels = opts.layer_kwargs.get("channels", 1) if opts.layer in ("s4", "s4d") else 1
    return int(channels) * opts.inner_width


def _branch_width(opts: BackboneOptions) -> int:
    """Features entering the output Dense: ``inner_width * gate`` or the layer's output."""
    return opts.inner_width * opts.gate if opts.gate is not None else layer_width(opts)


def activation_width(name: str | None, d: int) -> int:
    """Width of a Dense followed by activation ``name`` that outputs ``d`` features (GLU: 2d)."""
    return 2 * d if name is not None and name.startswith("glu") else d


class DenseSpec(NamedTuple):
    """A Dense layer ``d_in -> d_out`` of a block (Flax's initialisation, `dense_params`)."""

    d_in: int
    d_out: int


class ArraySpec(NamedTuple):
    """A plain parameter array of a block: ``init(key, shape, dtype)``."""

    shape: tuple[int, ...]
    init: Callable


def _constant(value: float) -> Callable:
    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(shape, value, dtype)

    return init


def block_specs(opts: BackboneOptions) -> dict[str, tuple]:
    """The parameters of every block besides its layer and norms, named as in NNX.

    ``{name: (spec_0, ..., spec_{n-1})}`` with `DenseSpec` / `ArraySpec` entries:
    ``input_gates`` (gate: ``H -> inner*gate``, then ``gate_act``), ``input_linears``
    (bottleneck: ``H -> inner``), ``output_gates`` (gate: layer output ``-> inner*gate``),
    ``mixers`` (the output Dense ``-> H``, then ``final_act``; absent for
    ``final_act=None``), and the residual's ``residual_wx``, ``residual_wy`` (highway)
    or ``residual_affine`` (affine). Every framework builds its modules from this.
    """
    H, n, Hi = opts.d_model, opts.n_layers, opts.inner_width
    out: dict[str, tuple] = {}
    if opts.gate is not None:
        out["input_gates"] = (DenseSpec(H, activation_width(opts.gate_act, Hi * opts.gate)),) * n
    if opts.bottleneck is not None:
        out["input_linears"] = (DenseSpec(H, Hi),) * n
    if opts.gate is not None:
        out["output_gates"] = (DenseSpec(layer_width(opts), Hi * opts.gate),) * n
    if opts.final_act is not None:
        out["mixers"] = (DenseSpec(_branch_width(opts), activation_width(opts.final_act, H)),) * n
    kw = dict(opts.residual_kwargs)
    if opts.residual == "H":
        out["residual_wx"] = (DenseSpec(H, H),) * n
        if kw["elemwise"]:
            out["residual_wy"] = (ArraySpec((H,), jax.nn.initializers.normal(1.0)),) * n
        else:
            out["residual_wy"] = (DenseSpec(H, H),) * n
    if opts.residual == "A":
        shape = (1,) if kw["scalar"] else (H,)
        out["residual_affine"] = tuple(
            ArraySpec(shape, _constant(kw["beta"] * (i + 1) ** (-kw["gamma"]))) for i in range(n)
        )
    return out


def gelu(x: jax.Array) -> jax.Array:
    """The exact (erf) GELU."""
    return jax.nn.gelu(x, approximate=False)


def activation(name: str | None, x: jax.Array) -> jax.Array:
    """The reference's activation ``name`` (`ACTIVATION_NAMES`, ``'glu'``, ``'glu-<act>'``).

    None and ``'id'``/``'identity'``/``'linear'``/``'none'`` are the identity; ``'gelu'``
    is the exact GELU, ``'sqrelu'``/``'relu2'`` is ``relu(x)**2``, ``'laplace'`` is
    ``(1 + erf((x - 0.707107) / (0.282095 sqrt 2))) / 2``; GLUs split the last axis.

    Examples:
      >>> import jax.numpy as jnp
      >>> from hippox._src.layers.backbone import activation
      >>> activation("glu-tanh", jnp.array([2.0, 0.5])).tolist() == [2.0 * float(jnp.tanh(0.5))]
      True
    """
    if name is None or name in ("id", "identity", "linear", "none"):
        return x
    if name.startswith("glu"):
        a, b = jnp.split(x, 2, axis=-1)
        return a * (jax.nn.sigmoid(b) if name == "glu" else activation(name[4:], b))
    if name == "tanh":
        return jnp.tanh(x)
    if name == "relu":
        return jax.nn.relu(x)
    if name == "gelu":
        return gelu(x)
    if name == "elu":
        return jax.nn.elu(x)
    if name in ("swish", "silu"):
        return jax.nn.silu(x)
    if name == "sigmoid":
        return jax.nn.sigmoid(x)
    if name == "softplus":
        return jax.nn.softplus(x)
    if name in ("sqrelu", "relu2"):
        return jnp.square(jax.nn.relu(x))
    if name == "laplace":
        mu, sigma = 0.707107, 0.282095
        return 0.5 * (1.0 + jax.scipy.special.erf((x - mu) / (sigma * np.sqrt(2.0))))
    raise ValueError(f"`activation` must be one of {FINAL_ACTS} or None, got {name!r}.")


def residual(
    wiring: Wiring, i: int, x: jax.Array, y: jax.Array, dense: Callable, param: Callable
) -> jax.Array:
    """The block's residual function (the reference's registry) of input ``x``, branch ``y``.

    ``i`` is the block index (the reference's ``i_layer = i + 1``). Kinds:
    None -> ``y``; ``'F'`` -> ``y``; ``'R'`` -> ``alpha x + beta y``; ``'A'`` ->
    ``alpha x + c y`` (``c`` learned, initialised ``beta i_layer^-gamma``); ``'D'`` ->
    ``alpha x + beta y`` with ``beta = i_layer^-power``, ``alpha = sqrt(1 - beta^2)``
    (``l2``) or ``1 - beta``; ``'H'`` -> ``s (1 - r) x + r y'`` with
    ``y' = Wy y`` (or ``wy * y``, ``elemwise``), ``r = sigmoid(Wx x + y')``, ``s = 1.732``
    with ``scaling_correction`` else 1.
    """
    kind, kw = wiring.residual, dict(wiring.residual_kwargs)
    if kind is None or kind == "F":
        return y
    if kind == "R":
        y = kw["beta"] * y if kw["beta"] != 1.0 else y
        return kw["alpha"] * x + y if kw["alpha"] else y
    if kind == "A":
        return kw["alpha"] * x + param("residual_affine", i).astype(y.dtype) * y
    if kind == "D":
        beta = (i + 1) ** (-kw["power"])
        alpha = (1.0 - beta**2) ** 0.5 if kw["l2"] else 1.0 - beta
        return alpha * x + beta * y
    if kw["elemwise"]:
        wy = param("residual_wy", i).astype(y.dtype) * y
    else:
        wy = dense("residual_wy", i, y)
    r = jax.nn.sigmoid(dense("residual_wx", i, x) + wy)
    s = 1.732 if kw["scaling_correction"] else 1.0
    return (s * (1.0 - r) * x + r * wy).astype(y.dtype)


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


def _block_in(opts: Wiring, i: int, z, dense: Callable):
    """The reference S4Block before its layer: the gate branch and the bottleneck."""
    gate = activation(opts.gate_act, dense("input_gates", i, z)) if opts.gate else None
    if opts.bottleneck:
        z = dense("input_linears", i, z)
    return z, gate


def _block_out(opts: Wiring, i: int, z, gate, dense: Callable, drop: Callable):
    """The reference S4Block after its layer: GELU, gate, ``mult_act``, dropout, output Dense."""
    z = gelu(z)
    if gate is not None:
        z = dense("output_gates", i, z) * gate
    z = drop(activation(opts.mult_act, z))
    if opts.final_act is not None:
        z = activation(opts.final_act, dense("mixers", i, z))
    return z


def check_call(u, d_input: int | None, initial_carry, initialize_carry: Callable, *, abstract=True):
    """A model call's checked ``(u, initial_carry)``: the input, and the carry against the
    zero carry ``initialize_carry(batch_shape)`` (evaluated abstractly unless ``abstract``
    is False, e.g. inside a Haiku transform)."""
    u = check_model_input(u, d_input)
    if initial_carry is not None:
        batch = u.shape[:-2]
        make = lambda: initialize_carry(batch)  # noqa: E731
        expected = jax.eval_shape(make) if abstract else make()
        initial_carry = check_model_carry(
            initial_carry, expected, name="initial_carry", batch=batch
        )
    return u, initial_carry


def check_step(carry, u_k, d_input: int | None, initialize_carry: Callable, *, abstract=True):
    """A model step's checked ``(carry, u_k)`` (as `check_call`)."""
    u_k = check_step_input(u_k, d_input)
    batch = u_k.shape[:-1]
    make = lambda: initialize_carry(batch)  # noqa: E731
    expected = jax.eval_shape(make) if abstract else make()
    return check_model_carry(carry, expected, name="carry", batch=batch), u_k


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
    dense: Callable,
    norm: Callable,
    drop: Callable,
    decode: Callable,
    param: Callable | None = None,
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
      dense: ``(name, i, z) -> Dense(z)``: block ``i``'s Dense layer ``name`` (a
        `block_specs` name).
      norm: ``(i, x, mask) -> x``; ``i = -1`` is the final norm; ``mask`` ``(..., L)``
        or None (only BatchNorm statistics need it).
      drop: ``(x, kind) -> x``: ``kind`` ``'dropout'`` (the model's dropout, its mask
        shared over L with ``tie_dropout``) or ``'drop_path'`` (stochastic depth: one
        mask entry per sequence); identity in evaluation mode.
      param: ``(name, i) -> array``: block ``i``'s `ArraySpec` parameter ``name``.

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
        z, gate = _block_in(opts, i, z, dense)
        c, z = layer(i, z, lengths, c_in, want_carry)
        carries.append(c)
        z = _block_out(opts, i, z, gate, dense, lambda y: drop(y, "dropout"))
        if opts.residual is not None:
            z = drop(drop(z, "dropout"), "drop_path")
        x = residual(opts, i, x, z, dense, param)
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
    dense: Callable,
    norm: Callable,
    decode: Callable,
    param: Callable | None = None,
):
    """One position of the backbone in step mode (evaluation semantics).

    Args:
      opts: the `Wiring` of the validated options.
      carry: a checked `SequenceCarry`.
      u_k: ``(..., d_input)`` checked input.
      encode, dense, decode, param: as in `forward`.
      layer_step: ``(i, carry_i, z) -> (carry_i, z)``.
      norm: ``(i, x) -> x`` in evaluation mode (``i = -1``: the final norm).

    Returns:
      ``(carry, y_k)``.
    """
    x = encode(u_k)
    states = []
    for i in range(opts.n_layers):
        z = norm(i, x) if opts.prenorm else x
        z, gate = _block_in(opts, i, z, dense)
        s, z = layer_step(i, carry.layers[i], z)
        states.append(s)
        z = _block_out(opts, i, z, gate, dense, lambda y: y)
        x = residual(opts, i, x, z, dense, param)
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

    ``encoder``, ``layers[i]`` (the ``config``'s leaves), the `block_specs` parts
    (``mixers[i]``, ...), ``norms[i]``, ``final_norm`` (prenorm with a norm),
    ``decoder``; block entries
    are dicts keyed by the int ``i`` (as ``flax.nnx.to_pure_dict`` writes an
    ``nnx.List``), so an NNX parameter tree loads as it is.
    """
    H, n = opts.d_model, opts.n_layers
    specs: dict = {
        "encoder": dense_params(d_input, H),
        "layers": {i: config.param_specs() for i in range(n)},
    }
    for name, per_block in block_specs(opts).items():
        specs[name] = {
            i: dense_params(*sp) if isinstance(sp, DenseSpec) else (sp.shape, sp.init)
            for i, sp in enumerate(per_block)
        }
    if opts.norm is not None:  # LayerNorm and BatchNorm: scale and bias
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


def dropout(x: jax.Array, rate: float, key, broadcast_dims: tuple[int, ...] = ()) -> jax.Array:
    """Inverted dropout (``key`` None or ``rate`` 0: identity).

    ``broadcast_dims``: axes along which one mask entry is shared (as in
    `flax.nnx.Dropout`): ``(-2,)`` ties the mask over the sequence (the reference's
    ``DropoutNd``), ``(-2, -1)`` keeps or drops whole sequences (its ``StochasticDepth``
    in ``'row'`` mode). Kept entries are scaled by ``1 / (1 - rate)``.
    """
    if key is None or rate == 0.0:
        return x
    shape = list(x.shape)
    for d in broadcast_dims:
        shape[d] = 1
    keep = jax.random.bernoulli(key, 1.0 - rate, tuple(shape))
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)).astype(x.dtype)


def broadcast_dims(kind: str, tie_dropout: bool) -> tuple[int, ...]:
    """The `dropout` ``broadcast_dims`` of the model's ``'dropout'`` or ``'drop_path'``."""
    if kind == "drop_path":
        return (-2, -1)
    return (-2,) if tie_dropout else ()


def batch_norm(
    p: Mapping,
    stats: tuple,
    x: jax.Array,
    mask: jax.Array | None = None,
    *,
    use_running_average: bool,
    momentum: float = 0.99,
    eps: float = 1e-5,
    dtype=None,
    axis_name: str | None = None,
):
    """BatchNorm over every axis but the last, statistics over valid positions only.

    The formulas of `flax.nnx.BatchNorm` (``momentum=0.99``, ``epsilon=1e-5``, fast
    variance ``E[x^2] - E[x]^2`` clipped at 0, statistics in at least float32).

    Args:
      p: ``{"scale": (H,), "bias": (H,)}``.
      stats: ``(mean, var)`` running averages, ``(H,)`` each.
      x: ``(..., L, H)`` (or ``(..., H)`` in step mode).
      mask: ``(..., L)`` valid positions (None: all), for the batch statistics.
      use_running_average: normalise with ``stats`` (evaluation) instead of the batch's.
      momentum: running-average decay.
      eps: added to the variance.
      dtype: output dtype (None: promote(x, scale)).
      axis_name: a `jax.vmap` / ``shard_map`` axis name whose examples share the
        statistics (Equinox's unbatched convention), or None.

    Returns:
      ``(y, (mean, var))``: the output and the updated running averages (unchanged
      with ``use_running_average``).
    """
    dt = jnp.result_type(x, p["scale"]) if dtype is None else dtype
    sd = jnp.promote_types(x.dtype, jnp.float32)
    xf = x.astype(sd)
    ra_mean, ra_var = stats
    if use_running_average:
        mean, var = ra_mean.astype(sd), ra_var.astype(sd)
        new_stats = stats
    else:
        axes = tuple(range(x.ndim - 1))
        w = jnp.ones(x.shape[:-1] + (1,), sd) if mask is None else mask[..., None].astype(sd)
        w = jnp.broadcast_to(w, x.shape[:-1] + (1,))
        s1, s2, n = jnp.sum(xf * w, axes), jnp.sum(xf * xf * w, axes), jnp.sum(w, axes)
        if axis_name is not None:
            s1, s2, n = jax.lax.psum((s1, s2, n), axis_name)
        n = jnp.maximum(n, 1.0)
        mean = s1 / n
        var = jnp.maximum(0.0, s2 / n - mean * mean)
        new_stats = (
            (momentum * ra_mean + (1.0 - momentum) * mean).astype(ra_mean.dtype),
            (momentum * ra_var + (1.0 - momentum) * var).astype(ra_var.dtype),
        )
    y = (xf - mean) * jax.lax.rsqrt(var + eps)
    return (y * p["scale"] + p["bias"]).astype(dt), new_stats
