"""CKConv (Romero et al. 2022): a causal convolution whose kernel an MLP generates.

A small MLP (the *kernel net*) maps a relative position ``p`` to the ``(H, H)`` kernel
values ``K(p)[out, in]``; the layer convolves its input causally with the kernel
sampled on a grid of positions, one tap per lag::

    y[t, o] = Σ_{m=0..t} Σ_i K_m[o, i] u[t - m, i] + bias[o],   K_m = r · K(p_m)

The last position ``+1`` is lag 0 and positions decrease with the lag by the step
``2 r / (l_max - 1)`` (``p_m = 1 - 2 m r / (l_max - 1)``), so at the training length
``L = l_max`` the grid is ``linspace(-1, 1, L)``, the reference's. ``r`` is
``step_rescale`` (another sampling rate: the reference scales the kernel by the same
factor ``sr_change``). For a finer sampling (``r < 1``) the reference can smooth the
sampled kernel along the lags with a Gaussian (its ``sigma``; ``smoothing_sigma`` here,
off by default): ``2h + 1`` taps ``G(j) = exp(-j² / (2σ²)) / (σ sqrt(2π))``,
``j = -h … h``, ``h = int(1 / r)``, replace each ``K_m`` with ``h <= m < L - h`` by
``Σ_j G(j) K_{m+j}`` (the ``h`` first and last lags are kept; the weights are not
normalised, as in the reference); ``r`` must then be a concrete number. Sequences
longer than ``l_max`` sample positions below ``-1`` (extrapolation). With
``l_max=None`` the grid is ``linspace(-1, 1, L)`` of each call's length ``L`` (so the
kernel, and the outputs, depend on the padded length).

The kernel net (the reference's ``KernelNet``: three weight-normalised pointwise
layers ``1 -> hidden -> hidden -> H·H``, output index ``o·H + i``)::

    'sine' (SIREN, the default):  h = sin(ω₀ (h W_k + b_k))      for k = 1, 2
    otherwise:                     h = act(norm(h W_k + b_k))     (act: relu, ...)
    K(p) = h W_3 + b_3

Weight normalisation: ``W_k = g_k ⊙ v_k / ‖v_k‖`` (norm over the input axis, one gain per
output unit, as `torch.nn.utils.weight_norm`); leaves ``v{k}`` (fan_in, fan_out),
``g{k}`` (fan_out,), ``b{k}`` (fan_out,) (biases when ``bias=True``), the output bias
``bias`` (H,), and for ``norm='layer'`` (non-sine nets only) ``norm{k}_scale`` /
``norm{k}_shift`` (hidden,). ``'layer'`` is the reference's ``LayerNorm`` (a one-group
GroupNorm: statistics over every position and hidden unit of the sampled grid, eps
1e-12, a per-unit affine map). ``'batch'`` is the reference's ``BatchNorm1d`` in training
mode: per hidden unit, statistics over the positions of the sampled grid (eps 1e-5), a
per-unit affine map. The grid is fixed, so these statistics are a deterministic
function of the parameters; hippox uses them at evaluation too (deviation: PyTorch
would switch to running averages of them, which lag the trained values).

Kernel dropout (``weight_dropout``, the reference's ``weight_dropout``): with a
``dropout_key``, each entry of the sampled kernel ``K_m[o, i]`` is zeroed with
probability ``weight_dropout`` and the others scaled by ``1 / (1 - weight_dropout)``
(inverted dropout, as ``torch.nn.Dropout`` in training mode); without a key (evaluation)
the kernel is used as is.

`CKBlockConfig` is the reference's residual block (``CKBlock``, after Bai et al.'s TCN
block): two CKConvs, each followed by the block's LayerNorm, ReLU and dropout, then the
residual and a final ReLU.

Initialisation. SIREN (``'sine'``): ``v_1`` ~ U(-1, 1), ``v_2, v_3`` ~ U(±sqrt(6 / fan_in)
/ ω₀), biases ``b_k`` ~ U(-1, 1), ``bias`` 0 (the reference's ``KernelNet.initialize``).
Other activations: PyTorch's default ``Conv1d`` init (``v`` and ``b`` U(±1/sqrt(fan_in))),
``bias`` 0. Each gain ``g_k`` is drawn as the norm of an independent draw from ``v_k``'s
distribution (exactly the intended distribution of ``W_k`` when fan_in = 1, close to it
otherwise), because each leaf is initialised from its own key. Known difference: in the
reference, ``KernelNet.initialize`` writes the initial weights into the tensor that
``weight_norm`` recomputes from ``(g, v)`` before every forward pass, so its nets train
from PyTorch's default weights (its biases do take effect, and its ReLU biases are
computed from the discarded weights); hippox uses the initialisation the reference
intends. Defaults are those of the reference configuration ``model=ckconv``
(``hidden=32``, ``'sine'``, ``ω₀ = 40``, ``norm='layer'``, ``bias=True``).

There is no recurrent form (the kernel is a general function of the lag), so CKConv has
no step mode and no carry: the sequence layers refuse ``initial_carry`` and
``return_carry=True``.

References:
  Romero, Kuzina, Bekkers, Tomczak, Hoogendoorn. "CKConv: Continuous Kernel
  Convolution For Sequential Data." ICLR 2022.
  Sitzmann et al. "Implicit Neural Representations with Periodic Activation Functions"
  (SIREN). NeurIPS 2020.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from hippox._src import _validate
from hippox._src.layers import base
from hippox._src.layers import cell_base as cb

#: The kernel net's activations (``'sine'``: SIREN).
CKCONV_ACTIVATIONS = {
    "sine": jnp.sin,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,
    "swish": jax.nn.swish,
}
#: The kernel net's normalisations (non-sine nets only).
CKCONV_NORMS: tuple = ("layer", "batch", None)
_NORM_EPS = {"layer": 1e-12, "batch": 1e-5}


def _uniform(bound: float):
    return cb.uniform_init(bound)


def weight_norm_gain(v_init, fan_in: int):
    """Initializer of a weight-norm gain ``(fan_out,)``: the column norms of an
    independent draw of the ``(fan_in, fan_out)`` direction ``v`` from ``v_init``."""

    def init(key, shape, dtype=jnp.float32):
        v = v_init(key, (fan_in, shape[0]), jnp.float32)
        return jnp.linalg.norm(v, axis=0).astype(dtype)

    return init


@dataclasses.dataclass(frozen=True)
class CKConvConfig(base.LayerConfig):
    """The CKConv layer (module docstring): ``(..., L, H) -> (..., L, H)``.

    Args:
      H: channels (input and output).
      hidden: hidden units of the kernel net (default 32).
      activation: ``'sine'`` (default, SIREN), ``'relu'``, ``'leaky_relu'``, ``'swish'``.
      omega_0: ``ω₀`` of the SIREN layers (> 0; default 40).
      norm: ``'layer'`` (default), ``'batch'`` or None; used by non-sine nets only, as in
        the reference.
      bias: biases in the kernel net and the output bias (default True).
      l_max: length of the sampled grid at ``step_rescale=1`` (>= 2), the reference's
        training length; None: every call's own length.
      weight_dropout: kernel dropout rate in [0, 1) (default 0, the reference's); active
        only when a ``dropout_key`` is passed.
      smoothing_sigma: ``σ > 0`` of the Gaussian smoothing of the kernel at
        ``step_rescale < 1`` (module docstring), or None (default: no smoothing).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from hippox._src.layers.ckconv import CKConvConfig
      >>> cfg = CKConvConfig(4, hidden=16, l_max=32)
      >>> cfg.apply(cfg.init_params(jax.random.key(0)), jnp.ones((2, 32, 4))).shape
      (2, 32, 4)
    """

    H: int
    _: dataclasses.KW_ONLY
    hidden: int = 32
    activation: str = "sine"
    omega_0: float = 40.0
    norm: str | None = "layer"
    bias: bool = True
    l_max: int | None = None
    weight_dropout: float = 0.0
    smoothing_sigma: float | None = None

    def __post_init__(self):
        base.set_field(self, "H", _validate.check_size("H", self.H))
        base.set_field(self, "hidden", _validate.check_size("hidden", self.hidden))
        _validate.check_choice("activation", self.activation, tuple(CKCONV_ACTIVATIONS))
        base.set_field(
            self, "omega_0", _validate.check_real("omega_0", self.omega_0, positive=True)
        )
        _validate.check_none_or_choice("norm", self.norm, CKCONV_NORMS)
        base.set_field(self, "bias", _validate.check_bool("bias", self.bias))
        if self.l_max is not None:
            base.set_field(self, "l_max", _validate.check_size("l_max", self.l_max, minimum=2))
        base.set_field(self, "weight_dropout", check_rate("weight_dropout", self.weight_dropout))
        if self.smoothing_sigma is not None:
            sigma = _validate.check_real("smoothing_sigma", self.smoothing_sigma, positive=True)
            base.set_field(self, "smoothing_sigma", sigma)

    def smoothing_half_width(self, step_rescale) -> int:
        """``h`` of the Gaussian smoothing at ``step_rescale`` (0: no smoothing)."""
        if self.smoothing_sigma is None:
            return 0
        r = _validate.concrete_value(step_rescale)
        if r is None or r.ndim != 0:
            raise ValueError(
                "`step_rescale` must be a concrete scalar when `smoothing_sigma` is set (the "
                f"number of smoothing taps depends on it), got {step_rescale!r}."
            )
        r = float(r)
        return int(1.0 / r) if 0 < r < 1 else 0

    @property
    def _siren(self) -> bool:
        return self.activation == "sine"

    @property
    def _layer_norm(self) -> bool:
        return not self._siren and self.norm is not None

    def _fans(self):
        return ((1, self.hidden), (self.hidden, self.hidden), (self.hidden, self.H * self.H))

    def param_shapes(self):
        shapes = {}
        for k, (fi, fo) in enumerate(self._fans(), start=1):
            shapes[f"v{k}"] = (fi, fo)
            shapes[f"g{k}"] = (fo,)
            if self.bias:
                shapes[f"b{k}"] = (fo,)
            if self._layer_norm and k < 3:
                shapes[f"norm{k}_scale"] = (fo,)
                shapes[f"norm{k}_shift"] = (fo,)
        if self.bias:
            shapes["bias"] = (self.H,)
        return shapes

    def param_initializers(self):
        inits = {}
        for k, (fi, _) in enumerate(self._fans(), start=1):
            if self._siren:
                bound = 1.0 if k == 1 else float(np.sqrt(6.0 / fi) / self.omega_0)
                b_init = _uniform(1.0)
            else:
                bound = float(1.0 / np.sqrt(fi))
                b_init = _uniform(bound)
            inits[f"v{k}"] = _uniform(bound)
            inits[f"g{k}"] = weight_norm_gain(_uniform(bound), fi)
            inits[f"b{k}"] = b_init
            inits[f"norm{k}_scale"] = jax.nn.initializers.ones
            inits[f"norm{k}_shift"] = jax.nn.initializers.zeros
        inits["bias"] = jax.nn.initializers.zeros
        return inits

    # ------------------------------------------------------------------ the kernel

    def positions(self, L: int, step_rescale=1.0, dtype: DTypeLike = jnp.float32) -> jax.Array:
        """The sampled positions ``p_m`` ``(max(L, l_max),)`` for lags ``m = 0, 1, ...``."""
        n = L if self.l_max is None else max(L, self.l_max)
        if n == 1:  # linspace(-1, 1, 1) = [-1], as torch.linspace
            return jnp.full((1,), -1.0, dtype)
        ref = n if self.l_max is None else self.l_max
        return 1.0 - jnp.arange(n, dtype=dtype) * (2.0 / (ref - 1)) * step_rescale

    def kernel_net(self, params, p: jax.Array) -> jax.Array:
        """The MLP at positions ``p`` ``(n,)``: kernel values ``(n, H_out, H_in)``."""
        act = CKCONV_ACTIVATIONS[self.activation]
        h = p[:, None]
        for k in (1, 2, 3):
            v = params[f"v{k}"]
            W = params[f"g{k}"] * v / jnp.linalg.norm(v, axis=0)
            h = h @ W
            if self.bias:
                h = h + params[f"b{k}"]
            if k == 3:
                break
            if self._siren:
                h = jnp.sin(self.omega_0 * h)
                continue
            if self._layer_norm:
                axis = None if self.norm == "layer" else 0  # batch: per unit, over positions
                mean = jnp.mean(h, axis=axis)
                var = jnp.mean(jnp.square(h - mean), axis=axis)
                h = (h - mean) * jax.lax.rsqrt(var + _NORM_EPS[self.norm])
                h = h * params[f"norm{k}_scale"] + params[f"norm{k}_shift"]
            h = act(h)
        return h.reshape(p.shape[0], self.H, self.H)

    def kernel(self, params, L: int, *, step_rescale=1.0, dropout_key=None) -> jax.Array:
        """The convolution kernel ``K_m`` ``(L, H_out, H_in)`` for lags ``m < L``.

        Args:
          params: ``{name: array}`` with the shapes of `param_shapes`.
          L: number of lags (>= 1).
          step_rescale: the sampling-rate factor ``r`` (module docstring).
          dropout_key: a jax.random key for kernel dropout (None: no dropout).

        Returns:
          ``(L, H, H)`` in the compute dtype of the parameters.
        """
        L = _validate.check_size("L", L)
        p, rd = self.prepared(params)
        h = self.smoothing_half_width(step_rescale)
        r = base.check_step_rescale(step_rescale, rd)
        return _kernel_jit(self, p, L, r, dropout_key, h)

    def apply(
        self,
        params,
        u: ArrayLike,
        *,
        dtype: DTypeLike | None = None,
        seq_lengths: ArrayLike | None = None,
        step_rescale=1.0,
        dropout_key=None,
    ) -> jax.Array:
        """The layer over a sequence (FFT convolution, ``O(L log L)``).

        Args:
          params: ``{name: array}`` with the shapes of `param_shapes`.
          u: ``(..., L, H)`` real floating input.
          dtype: output dtype (None: ``u``'s).
          seq_lengths: ``(...)`` ints in ``[0, L]`` (None: all valid); padding inputs are
            zeroed before the convolution (they never influence valid outputs) and the
            outputs there are 0.
          step_rescale: ``r > 0``, another sampling rate (module docstring).
          dropout_key: a jax.random key for kernel dropout (training), or None (no
            dropout).

        Returns:
          ``y`` ``(..., L, H)`` in ``dtype``.

        Raises:
          TypeError, ValueError: bad ``u``, ``seq_lengths``, ``step_rescale`` or
            parameters, naming the argument.
        """
        u = base.check_sequence_input(u, self.H)
        out = base.output_dtype(dtype, u)
        L = u.shape[-2]
        lengths = None
        if seq_lengths is not None:
            lengths = cb.check_seq_lengths(seq_lengths, u.shape[:-2], L)
        p, rd = self.prepared(params, u)
        h = self.smoothing_half_width(step_rescale)
        r = base.check_step_rescale(step_rescale, rd)
        return _apply_jit(self, p, u.astype(rd), lengths, r, out, dropout_key, h)


def check_rate(name: str, value) -> float:
    """A dropout rate in ``[0, 1)``."""
    value = _validate.check_real(name, value, low=0.0)
    if value >= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {value!r}.")
    return value


def dropout(x: jax.Array, rate: float, key) -> jax.Array:
    """Inverted dropout: zeros with probability ``rate``, scales the rest by ``1/(1-rate)``."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype))


def check_no_carry(initial_carry, return_carry) -> None:
    """CKConv has no recurrent state: refuses a carry with a clear error."""
    if _validate.check_bool("return_carry", return_carry) or initial_carry is not None:
        raise ValueError(
            "CKConv has no recurrent state (its kernel is a general function of the lag): "
            "`initial_carry` must be None and `return_carry` False, got "
            f"initial_carry={type(initial_carry).__name__}, return_carry={return_carry}."
        )


def _smooth(K, sigma: float, h: int):
    """The reference's Gaussian smoothing of the kernel along the lags (module docstring)."""
    L = K.shape[0]
    if h == 0 or L <= 2 * h:
        return K
    j = np.arange(-h, h + 1, dtype=np.float64)
    G = np.exp(-(j**2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi))
    inner = sum(float(G[k]) * K[k : L - 2 * h + k] for k in range(2 * h + 1))
    return K.at[h : L - h].set(inner)


@functools.partial(jax.jit, static_argnums=(0, 2, 5))
def _kernel_jit(cfg, p, L, r, key=None, h=0):
    K = dropout(cfg.kernel_net(p, cfg.positions(L, r, r.dtype))[:L], cfg.weight_dropout, key)
    if h:
        K = _smooth(K, cfg.smoothing_sigma, h)
    return r * K


@functools.partial(jax.jit, static_argnums=(0, 5, 7))
def _apply_jit(cfg, p, u, lengths, r, out, key=None, h=0):
    L = u.shape[-2]
    K = _kernel_jit(cfg, p, L, r, key, h)  # (L, H_out, H_in)
    valid = None
    if lengths is not None:
        valid = (jnp.arange(L) < lengths[..., None])[..., None]  # (..., L, 1)
        u = jnp.where(valid, u, jnp.zeros((), u.dtype))
    n = 2 * L
    Kf = jnp.fft.rfft(K, n=n, axis=0)  # (F, H_out, H_in)
    Uf = jnp.fft.rfft(u, n=n, axis=-2)  # (..., F, H_in)
    y = jnp.fft.irfft(jnp.einsum("...fi,foi->...fo", Uf, Kf), n=n, axis=-2)[..., :L, :]
    if cfg.bias:
        y = y + p["bias"]
    if valid is not None:
        y = jnp.where(valid, y, jnp.zeros((), y.dtype))
    return y.astype(out)


@dataclasses.dataclass(frozen=True)
class CKBlockConfig(base.LayerConfig):
    """The reference's CKConv residual block: ``(..., L, H) -> (..., L, H)``.

    ::

        y = Dropout(ReLU(LN_1(CKConv_1(u))))
        y = ReLU(Dropout(ReLU(LN_2(CKConv_2(y)))) + u)

    ``LN`` is the reference's ``LayerNorm`` (a one-group GroupNorm: per sequence,
    statistics over every position and channel, eps 1e-12, a per-channel affine map;
    with ``seq_lengths``, over the valid positions only, so padding never influences
    valid outputs). Dropout (rate ``dropout``, elementwise, inverted) and the kernel
    dropout of the convolutions act only when a ``dropout_key`` is passed. The block
    maps ``H`` channels to ``H`` (the reference's ``CKCNN`` blocks; the identity
    shortcut).

    Parameters: ``conv1_<name>``, ``conv2_<name>`` for each parameter of `CKConvConfig`,
    ``norm1_scale``, ``norm1_shift``, ``norm2_scale``, ``norm2_shift`` (H,) (ones / zeros).

    The other fields are those of `CKConvConfig` but ``H`` (``hidden``, ``activation``,
    ``omega_0``, ``norm``, ``bias``, ``l_max``, ``weight_dropout``, ``smoothing_sigma``),
    shared by both convolutions.

    Args:
      H: channels.
      dropout: the block's dropout rate in [0, 1) (default 0.2, the reference's
        ``model=ckconv`` configuration).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from hippox._src.layers.ckconv import CKBlockConfig
      >>> cfg = CKBlockConfig(4, hidden=8, l_max=16)
      >>> p = cfg.init_params(jax.random.key(0))
      >>> cfg.apply(p, jnp.ones((2, 16, 4)), dropout_key=jax.random.key(1)).shape
      (2, 16, 4)
    """

    H: int
    _: dataclasses.KW_ONLY
    dropout: float = 0.2
    hidden: int = 32
    activation: str = "sine"
    omega_0: float = 40.0
    norm: str | None = "layer"
    bias: bool = True
    l_max: int | None = None
    weight_dropout: float = 0.0
    smoothing_sigma: float | None = None

    def __post_init__(self):
        base.set_field(self, "dropout", check_rate("dropout", self.dropout))
        conv = self.conv
        for f in dataclasses.fields(CKConvConfig):
            if f.name != "_":
                base.set_field(self, f.name, getattr(conv, f.name))

    @property
    def conv(self) -> CKConvConfig:
        """The config of each of the two convolutions."""
        names = [f.name for f in dataclasses.fields(CKConvConfig) if f.name not in ("H", "_")]
        return CKConvConfig(self.H, **{n: getattr(self, n) for n in names})

    def param_shapes(self):
        conv = self.conv.param_shapes()
        shapes = {f"conv1_{k}": v for k, v in conv.items()}
        shapes.update({f"conv2_{k}": v for k, v in conv.items()})
        for k in (1, 2):
            shapes[f"norm{k}_scale"] = (self.H,)
            shapes[f"norm{k}_shift"] = (self.H,)
        return shapes

    def param_initializers(self):
        conv = self.conv.param_initializers()
        inits = {f"conv{k}_{n}": init for k in (1, 2) for n, init in conv.items()}
        for k in (1, 2):
            inits[f"norm{k}_scale"] = jax.nn.initializers.ones
            inits[f"norm{k}_shift"] = jax.nn.initializers.zeros
        return inits

    def apply(
        self,
        params,
        u: ArrayLike,
        *,
        dtype: DTypeLike | None = None,
        seq_lengths: ArrayLike | None = None,
        step_rescale=1.0,
        dropout_key=None,
    ) -> jax.Array:
        """The block over a sequence.

        Args:
          params: ``{name: array}`` with the shapes of `param_shapes`.
          u: ``(..., L, H)`` real floating input.
          dtype: output dtype (None: ``u``'s).
          seq_lengths: ``(...)`` ints in ``[0, L]`` (None: all valid); outputs at padding
            positions are 0 and padding never influences valid outputs.
          step_rescale: ``r > 0``, another sampling rate (`CKConvConfig`).
          dropout_key: a jax.random key for dropout and kernel dropout (training), or
            None (no dropout).

        Returns:
          ``y`` ``(..., L, H)`` in ``dtype``.
        """
        u = base.check_sequence_input(u, self.H)
        out = base.output_dtype(dtype, u)
        L = u.shape[-2]
        lengths = None
        if seq_lengths is not None:
            lengths = cb.check_seq_lengths(seq_lengths, u.shape[:-2], L)
        p, rd = self.prepared(params, u)
        h = self.conv.smoothing_half_width(step_rescale)
        r = base.check_step_rescale(step_rescale, rd)
        return _block_jit(self, p, u.astype(rd), lengths, r, out, dropout_key, h)


@functools.partial(jax.jit, static_argnums=(0, 5, 7))
def _block_jit(cfg, p, x, lengths, r, out, key, h):
    L = x.shape[-2]
    keys = [None] * 4 if key is None else list(jax.random.split(key, 4))
    valid = jnp.ones(x.shape[:-1] + (1,), bool)
    if lengths is not None:
        valid = (jnp.arange(L) < lengths[..., None])[..., None]
    conv, y = cfg.conv, x
    for k in (1, 2):
        pk = {n[6:]: v for n, v in p.items() if n.startswith(f"conv{k}_")}
        y = _apply_jit(conv, pk, y, lengths, r, y.dtype, keys[k - 1], h)
        y = _group_norm(y, p[f"norm{k}_scale"], p[f"norm{k}_shift"], valid)
        y = dropout(jax.nn.relu(y), cfg.dropout, keys[k + 1])
    y = jax.nn.relu(y + x)
    return jnp.where(valid, y, jnp.zeros((), y.dtype)).astype(out)


def _group_norm(y, scale, shift, valid):
    """One-group GroupNorm over the valid positions and all channels of each sequence."""
    n = jnp.sum(valid, axis=(-2, -1), keepdims=True) * y.shape[-1]
    n = jnp.maximum(n, 1)
    mean = jnp.sum(jnp.where(valid, y, 0.0), axis=(-2, -1), keepdims=True) / n
    var = jnp.sum(jnp.where(valid, jnp.square(y - mean), 0.0), axis=(-2, -1), keepdims=True) / n
    return (y - mean) * jax.lax.rsqrt(var + 1e-12) * scale + shift
