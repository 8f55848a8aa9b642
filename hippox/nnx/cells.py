"""Flax NNX baseline cells and layers: RNN, GRU, LSTM, MGU, MinimalRNN, ExpRNN, Lipschitz
RNN, UnICORNN (cells), and the sequence layers `LipschitzRNN`, `UnICORNN`, `CKConv`,
`CKBlock`.

Thin shells over the configs of ``hippox._src.layers.cells`` (equations there): the
parameters are `flax.nnx.Param` attributes with the names and shapes of the linen,
Haiku and Equinox versions, and every cell follows the Flax cell protocol
(``cell(carry, x) -> (carry, y)``, ``initialize_carry(input_shape, rngs)``,
``num_feature_axes``), so it runs under `flax.nnx.RNN`. The HiPPO variants (LegS, LegT,
LagT, LMU, HiPPO-Rand, timestamped) are `hippox.nnx.HiPPORNNCell` with the options of
`hippox.hippo_cell_options`.

The baselines of the authors' model README: `LipschitzRNNCell` / `LipschitzRNN`
(``hippox._src.layers.lipschitz``), `UnICORNNCell` / `UnICORNN`
(``hippox._src.layers.unicornn``) and the convolution `CKConv`
(``hippox._src.layers.ckconv``, no step mode). The sequence layers follow the calling
convention of the hippox SSM layers and can be `SequenceModel` blocks through a
callable ``layer``, e.g. ``layer=lambda H, rngs: LipschitzRNN(H, H, rngs=rngs)``.

Examples:
  >>> import jax.numpy as jnp
  >>> from flax import nnx
  >>> from hippox.nnx.cells import GRUCell
  >>> cell = GRUCell(3, 8, rngs=nnx.Rngs(0))
  >>> nnx.RNN(cell)(jnp.ones((2, 10, 3), jnp.float32)).shape
  (2, 10, 8)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers import cells as _cells
from hippox._src.layers import ckconv as _ckconv
from hippox._src.layers import lipschitz as _lipschitz
from hippox._src.layers import unicornn as _unicornn

__all__ = [
    "CKBlock",
    "CKConv",
    "ExpRNNCell",
    "GRUCell",
    "LSTMCell",
    "LipschitzRNN",
    "LipschitzRNNCell",
    "MGUCell",
    "MinimalRNNCell",
    "RNNCell",
    "UnICORNN",
    "UnICORNNCell",
]


class _Cell(nnx.RNNCellBase):
    """A baseline cell (NNX): ``(carry, x_t) -> (carry, h_t)``.

    Args:
      in_features: input features ``d_in``.
      hidden_features: hidden size.
      dtype: output dtype (None: the input's).
      param_dtype: parameter storage dtype (default float32).
      rngs: `flax.nnx.Rngs` with a ``params`` stream.
      **options: keyword fields of the cell's config (e.g. ``eps``, ``solver`` of
        `LipschitzRNNCell`; ``n_layers``, ``dt``, ``alpha`` of `UnICORNNCell`).
    """

    config_class: type

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
        **options,
    ):
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"`rngs` must be a flax.nnx.Rngs, got {type(rngs).__name__}.")
        self.config = self.config_class(in_features, hidden_features, **options)
        self.dtype = None if dtype is None else jnp.dtype(dtype)
        self.param_dtype = _validate.real_dtype(param_dtype, name="param_dtype")
        for name, (shape, init) in self.config.param_specs().items():
            setattr(self, name, nnx.Param(init(rngs.params(), shape, self.param_dtype)))

    def cell_params(self) -> dict[str, jax.Array]:
        """The parameters as a flat ``{name: array}`` dict (the pure core's input)."""
        return {name: getattr(self, name)[...] for name in self.config.param_shapes()}

    def __call__(self, carry, inputs: ArrayLike):
        """One step: ``inputs`` ``(..., in_features)`` -> ``(carry, h (..., hidden))``."""
        return self.config.step(self.cell_params(), carry, inputs, dtype=self.dtype)

    def initialize_carry(self, input_shape: tuple[int, ...], rngs=None):
        """Zero carry for inputs of shape ``(*batch, in_features)`` (``rngs`` unused)."""
        del rngs
        input_shape = tuple(input_shape)
        if len(input_shape) < 1 or input_shape[-1] != self.config.d_in:
            raise ValueError(f"`input_shape` must be (..., {self.config.d_in}), got {input_shape}.")
        return self.config.initial_state(input_shape[:-1], self.param_dtype)

    @property
    def num_feature_axes(self) -> int:
        return 1


def _make(name: str, config_class: type, what: str) -> type:
    doc = f"{what} (NNX): ``(carry, x_t) -> (carry, h_t)``; see ``hippox._src.layers.cells``.\n\n"
    doc += _Cell.__doc__.split("\n\n", 1)[1]
    return type(
        name, (_Cell,), {"config_class": config_class, "__doc__": doc, "__module__": __name__}
    )


RNNCell = _make("RNNCell", _cells.RNNConfig, "The vanilla tanh RNN cell")
GRUCell = _make("GRUCell", _cells.GRUConfig, "The GRU cell")
LSTMCell = _make("LSTMCell", _cells.LSTMConfig, "The LSTM cell (carry `LSTMState` (h, c))")
MGUCell = _make("MGUCell", _cells.MGUConfig, "The Minimal Gated Unit")
MinimalRNNCell = _make("MinimalRNNCell", _cells.MinimalRNNConfig, "The MinimalRNN cell")
ExpRNNCell = _make("ExpRNNCell", _cells.ExpRNNConfig, "The ExpRNN cell (orthogonal, modReLU)")
LipschitzRNNCell = _make(
    "LipschitzRNNCell", _lipschitz.LipschitzRNNConfig, "The Lipschitz RNN cell (Euler / RK2)"
)
UnICORNNCell = _make(
    "UnICORNNCell", _unicornn.UnICORNNConfig, "The stacked UnICORNN cell (carry (y, z))"
)


class _RecurrentLayer(nnx.Module):
    """A recurrent cell over a sequence (NNX): ``(..., L, in_features) -> (..., L, hidden)``.

    Same constructor and parameters as the cell; runs it with `jax.lax.scan`, with the
    calling convention of the hippox sequence layers and their step API
    (``initialize_carry``, ``setup_step``, ``step``), so it can be a `SequenceModel`
    block (``layer=lambda H, rngs: Layer(H, H, rngs=rngs)``).

    Args:
      in_features: input features ``d_in``.
      hidden_features: hidden size.
      dtype: output dtype (None: the input's).
      param_dtype: parameter storage dtype (default float32).
      rngs: `flax.nnx.Rngs` with a ``params`` stream.
      **options: keyword fields of the cell's config.
    """

    config_class: type
    __init__ = _Cell.__init__
    cell_params = _Cell.cell_params

    def __call__(
        self,
        x: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry=None,
        return_carry: bool = False,
    ):
        """The cell scanned over ``x`` ``(..., L, in_features)``.

        Args:
          x: ``(..., L, in_features)`` real input.
          seq_lengths: ``(...)`` ints in ``[0, L]`` (None: all valid); padding positions
            leave the carry untouched and output zeros.
          initial_carry: the carry to start from (from `initialize_carry`, `step` or a
            call with ``return_carry=True``), or None (zeros).
          return_carry: also return the carry after each sequence's last valid step.

        Returns:
          ``(..., L, hidden)``, or ``(carry, outputs)``.
        """
        return _lipschitz.call_recurrent_layer(
            self.config,
            self.cell_params(),
            x,
            param_dtype=self.param_dtype,
            dtype=self.dtype,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            return_carry=return_carry,
        )

    def initialize_carry(self, batch_shape=()):
        """Zero carry with batch shape ``batch_shape``."""
        return self.config.initial_state(batch_shape, self.param_dtype)

    def setup_step(self) -> dict[str, jax.Array]:
        """Step parameters (the weights)."""
        return self.cell_params()

    def step(self, carry, u_k: ArrayLike, step_params=None):
        """One step: ``u_k`` ``(..., in_features)`` -> ``(carry, y_k (..., hidden))``."""
        sp = self.cell_params() if step_params is None else step_params
        return self.config.step(sp, carry, u_k, dtype=self.dtype)


def _make_layer(name: str, config_class: type, what: str) -> type:
    doc = f"{what} over a sequence (NNX); see the cell's config.\n\n"
    doc += _RecurrentLayer.__doc__.split("\n\n", 1)[1]
    ns = {"config_class": config_class, "__doc__": doc, "__module__": __name__}
    return type(name, (_RecurrentLayer,), ns)


LipschitzRNN = _make_layer("LipschitzRNN", _lipschitz.LipschitzRNNConfig, "The Lipschitz RNN")
UnICORNN = _make_layer("UnICORNN", _unicornn.UnICORNNConfig, "The stacked UnICORNN")


class _ConvLayer(nnx.Module):
    """Shared plumbing of `CKConv` and `CKBlock`: parameters, dropout mode, call."""

    config_class: type

    def __init__(
        self,
        H: int,
        *,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
        **options,
    ):
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"`rngs` must be a flax.nnx.Rngs, got {type(rngs).__name__}.")
        self.config = self.config_class(H, **options)
        self.dtype = None if dtype is None else jnp.dtype(dtype)
        self.param_dtype = _validate.real_dtype(param_dtype, name="param_dtype")
        for name, (shape, init) in self.config.param_specs().items():
            setattr(self, name, nnx.Param(init(rngs.params(), shape, self.param_dtype)))
        rates = (getattr(self.config, "dropout", 0.0), self.config.weight_dropout)
        self.deterministic = False
        self.rngs = rngs["dropout"].fork() if max(rates) > 0 else nnx.data(None)

    def conv_params(self) -> dict[str, jax.Array]:
        """The parameters as a flat ``{name: array}`` dict."""
        return {name: getattr(self, name)[...] for name in self.config.param_shapes()}

    def __call__(
        self,
        u: ArrayLike,
        *,
        seq_lengths: ArrayLike | None = None,
        initial_carry=None,
        return_carry: bool = False,
        step_rescale=1.0,
        deterministic: bool | None = None,
        dropout_key=None,
    ):
        """The layer over ``u`` ``(..., L, H)``.

        Args:
          u: ``(..., L, H)`` real input.
          seq_lengths: ``(...)`` ints in ``[0, L]`` (None: all valid); padding never
            influences valid outputs and outputs 0.
          initial_carry: must be None (no recurrent state).
          return_carry: must be False (no recurrent state).
          step_rescale: another sampling rate (`CKConvConfig`).
          deterministic: no dropout (None: the module's ``deterministic`` attribute,
            False after construction or `train`, True after `eval`).
          dropout_key: an explicit dropout key (None: drawn from the ``dropout`` stream
            of the ``rngs`` given at construction, kept when a rate is > 0).

        Returns:
          ``(..., L, H)`` in ``dtype`` (default: ``u``'s).
        """
        _ckconv.check_no_carry(initial_carry, return_carry)
        det = self.deterministic if deterministic is None else deterministic
        key = None
        if not _validate.check_bool("deterministic", det):
            key = dropout_key
            if key is None and self.rngs is not None:
                key = self.rngs()
        return self.config.apply(
            self.conv_params(),
            u,
            dtype=self.dtype,
            seq_lengths=seq_lengths,
            step_rescale=step_rescale,
            dropout_key=key,
        )


class CKConv(_ConvLayer):
    """The continuous kernel convolution (NNX): ``(..., L, H) -> (..., L, H)``.

    An MLP generates the causal kernel (`hippox._src.layers.ckconv.CKConvConfig`,
    equations there). No step mode: the layer has no recurrent state, so it refuses
    ``initial_carry`` and ``return_carry=True`` (and `SequenceModel.step` with it).
    Kernel dropout (``weight_dropout > 0``) acts in training mode (`flax.nnx.Module.train`,
    the default) with keys from the ``dropout`` stream of ``rngs``; `eval` turns it off.

    Args:
      H: channels.
      **options: ``hidden``, ``activation``, ``omega_0``, ``norm``, ``bias``, ``l_max``,
        ``weight_dropout``, ``smoothing_sigma`` of `CKConvConfig` (defaults: the
        reference's ``model=ckconv``).
      dtype: output dtype (None: the input's).
      param_dtype: parameter storage dtype (default float32).
      rngs: `flax.nnx.Rngs` with a ``params`` stream (and ``dropout``, else ``default``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from hippox.nnx.cells import CKConv
      >>> layer = CKConv(4, hidden=16, l_max=64, rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((2, 64, 4), jnp.float32)).shape
      (2, 64, 4)
    """

    config_class = _ckconv.CKConvConfig

    def kernel(self, L: int, *, step_rescale=1.0) -> jax.Array:
        """The sampled kernel ``(L, H_out, H_in)`` (lag-major, no dropout)."""
        return self.config.kernel(self.conv_params(), L, step_rescale=step_rescale)


class CKBlock(_ConvLayer):
    """The reference's CKConv residual block (NNX): ``(..., L, H) -> (..., L, H)``.

    Two CKConvs, each followed by LayerNorm, ReLU and dropout, then the residual and a
    ReLU (`hippox._src.layers.ckconv.CKBlockConfig`, equations there). Dropout and
    kernel dropout act in training mode (the default; `eval` turns them off) with keys
    from the ``dropout`` stream of ``rngs``. No step mode. Usable as a `SequenceModel`
    block: ``layer=lambda H, rngs: CKBlock(H, rngs=rngs)``.

    Args:
      H: channels.
      **options: ``dropout`` and the `CKConvConfig` options of `CKBlockConfig`.
      dtype: output dtype (None: the input's).
      param_dtype: parameter storage dtype (default float32).
      rngs: `flax.nnx.Rngs` with a ``params`` stream (and ``dropout``, else ``default``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from hippox.nnx.cells import CKBlock
      >>> block = CKBlock(4, hidden=8, l_max=16, rngs=nnx.Rngs(0))
      >>> block.eval()
      >>> block(jnp.ones((2, 16, 4), jnp.float32)).shape
      (2, 16, 4)
    """

    config_class = _ckconv.CKBlockConfig
