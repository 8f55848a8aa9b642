"""The HiPPO-RNN cell (Gu et al., 2020): an RNN whose hidden state reads a HiPPO memory.

One step, with input ``x_t`` (``d_in`` features), hidden state ``h`` (``features``),
and ``F = memory_size`` memory channels, each an order-``N`` HiPPO memory
(``hippox._src.memory``)::

    u_t = act_u([x_t, h_{t-1}] @ W_u + b_u + sum_n c_{t-1}[:, n] W_um[:, n])  (F,)
    c_t[f] = Ab_t c_{t-1}[f] + Bb_t u_t[f]                                    (F, N)
    z_t = [x_t, vec(c_t)]                                       hidden-update input
    h~_t = act_h(z_t @ W_h + b_h + h_{t-1} @ W_hh + b_hh)
    h_t = (1 - g_t) h_{t-1} + g_t h~_t

with the gate ``g_t`` of ``gate`` (the authors' mechanisms): ``'N'`` ``g = 1`` (no
gate, ``h_t = h~_t``); ``'G'`` ``g = sigmoid(z' @ W_g + b_g)``; ``'R'`` a refine gate
``g = (1 - 2r) s^2 + 2 r s`` with ``s = sigmoid(z' @ W_g + b_g)``,
``r = sigmoid(z' @ W_r + b_r)``; ``'UR'`` the same with ``b_g`` initialised
uniformly over the gate's range (Gu et al. 2020, "Improving the Gating Mechanism of
Recurrent Neural Networks"), where ``z' = [z_t, h_{t-1}]`` when ``hh`` else ``z_t``.

The architecture flags (the authors' ``architecture`` dict) choose the wiring: ``ux``
(``x`` feeds the memory input), ``hx`` (``x`` feeds the hidden update), ``hm`` (the
memory feeds the hidden update), ``hh`` (``h_{t-1}`` feeds it through ``W_hh``), ``um``
(the memory feeds its own input through ``W_um``), ``bias`` (every linear map has a
bias). Absent pieces have no parameter. ``vec(c_t)`` flattens the memory
channel-major. Weights use the ``x @ W`` layout of Flax ``Dense``: ``W_u``
``(d_x + features, F)``, ``W_h`` ``(d_x + F N, features)``, and so on, with the rows
ordered as the concatenations above.

Ordering: the memory is updated first and the hidden state reads the fresh memory
``c_t`` (the authors' cell).

**Defaults follow the authors' cell** (the ``state-spaces`` ``MemoryCell``): the gated
update ``gate='G'`` (hippox's cell was ungated before; on a small digits benchmark the
ungated cell scored about 20 points lower), the LegS step schedule ``'reference'``
(``1 / t``; `hippox.legs_dt`) and the authors' initializers (``init='reference'``):
``W_u`` Kaiming uniform ``U(±gain sqrt(3 / fan_in))`` (gain of ``memory_activation``),
``W_h`` and ``W_hh`` Xavier normal ``N(0, 2 / (fan_in + fan_out))``, ``W_g`` / ``W_r``
PyTorch ``nn.Linear``'s default ``U(±1 / sqrt(fan_in))``, every bias
``U(±1 / sqrt(fan_in))`` of its layer, ``W_um`` zero. ``init='lmu'`` is the
initialisation of the authors' LMU cell (``W_u``'s input rows one, hidden rows zero;
``W_h``'s input rows zero, memory rows Xavier normal; ``W_hh``, ``W_um`` zero), and
``init='lecun'`` hippox's earlier one (LeCun normal weights, zero biases). Pass
``gate='N'`` (or ``gated=False``) and ``schedule='shifted'``, ``init='lecun'`` for the
earlier hippox cell. Deviation: with ``'UR'``, the authors keep the uniform gate bias
as a separate frozen buffer added to the trained bias; here it is the initial value
of the trained ``b_g`` (the same initial gate).

``N = -1`` means ``N = features`` (the authors' ``memory_order=-1``).

Timestamped cells (``timestamped=True``, the authors' ``tlsi``/``tlti``): the first
input channel is the timestamp ``t_k``, the other ``d_in - 1`` channels are the
features, and the memory steps by the time gap (`hippox.HiPPOMemory.update_timed`);
the carry's ``t`` holds the last timestamp (a float) instead of the step counter.

`hippo_cell_options` gives the authors' presets (LegS, LegT, LagT, GLagT, LMU,
HiPPO-Rand, and the timestamped cells). The Flax, Haiku and Equinox cells
(`hippox.nnx.HiPPORNNCell`, ...) create the parameters and call these methods, so the
same parameter values give the same outputs in every framework.

References:
  Gu, Dao, Ermon, Rudra, Ré. "HiPPO: Recurrent Memory with Optimal Polynomial
  Projections." NeurIPS 2020.
  Voelker, Kajić, Eliasmith. "Legendre Memory Units: Continuous-Time Representation
  in Recurrent Neural Networks." NeurIPS 2019.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hippox._src import _validate
from hippox._src.layers import base
from hippox._src.layers import cell_base as cb
from hippox._src.layers.cell_base import check_seq_lengths as check_seq_lengths
from hippox._src.layers.cell_base import mask_step as mask_step
from hippox._src.memory import HiPPOMemory, hippo_memory

GATES: tuple[str, ...] = ("N", "G", "R", "UR")
INITS: tuple[str, ...] = ("reference", "lmu", "lecun")
ARCHITECTURE: tuple[str, ...] = ("ux", "hx", "hm", "hh", "um", "bias")


class HiPPORNNState(NamedTuple):
    """The carry of a HiPPO-RNN cell.

    Attributes:
      h: ``(..., features)`` hidden state ``h_{t-1}``.
      c: ``(..., F, N)`` memory ``c_{t-1}``.
      t: ``(...)`` int32 index of the next step (0 before the first input); for a
        timestamped cell the last timestamp (floating, 0 at the start).
    """

    h: jax.Array
    c: jax.Array
    t: jax.Array


@dataclasses.dataclass(frozen=True)
class HiPPORNNConfig(cb.RecurrentConfig):
    """The HiPPO-RNN cell (module docstring) as a frozen, hashable config of pure methods.

    Parameters (``x @ W`` layout; ``d_x`` = input features, ``d_in`` or ``d_in - 1``
    when timestamped): ``W_u`` (d_x·ux + features, F), ``W_h`` (d_x·hx + F N·hm,
    features), with ``bias`` ``b_u`` (F,), ``b_h`` (features,); with ``um`` ``W_um``
    (F, N); with ``hh`` ``W_hh`` (features, features) (+ ``b_hh``); with a gate
    ``W_g`` (rows of ``W_h`` + features·hh, features), ``b_g`` (``'UR'``: always), and
    for ``'R'``/``'UR'`` also ``W_r``, ``b_r``. The memory ``(A, B)`` is fixed.

    Attributes:
      d_in: input features (the timestamp channel included when timestamped).
      features: hidden size.
      memory_size: number F of memory channels.
      N: memory order (``-1``: ``features``).
      measure: ``legs``, a time-invariant measure, or ``random`` (`hippo_memory`).
      method: discretisation method of the memory (`hippo_memory`).
      dt: step of a time-invariant memory (None: ``1e-2``; timestamped: the time scale,
        default 1; must be None for ``legs``).
      gate: ``'N'``, ``'G'`` (default, the authors'), ``'R'`` or ``'UR'``.
      gated: legacy flag: True means ``gate='G'``, False ``gate='N'`` (None: use
        ``gate``); normalised to None.
      measure_params: measure parameters as ``(name, value)`` pairs.
      schedule: LegS step schedule (None: ``'reference'``; `hippox.legs_dt`).
      l_max: tabulated ``zoh`` LegS steps (None: 1024).
      seed: seed of ``random``'s fixed ``(A, B)`` (None: 0).
      timestamped: the first input channel is the timestamp.
      ux, hx, hm, hh, um, bias: the architecture flags (module docstring; defaults
        those of the authors' cell: ``ux``, ``hx``, ``hm``, ``bias`` on).
      memory_activation: ``'id'`` (default), ``'tanh'``, ``'relu'`` or ``'sigmoid'``.
      hidden_activation: ``'tanh'`` (default), ``'relu'``, ``'sigmoid'`` or ``'id'``.
      init: ``'reference'`` (default), ``'lmu'`` or ``'lecun'`` (module docstring).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import hippox
      >>> cfg = hippox.HiPPORNNConfig(d_in=3, features=5, memory_size=2, N=4)
      >>> params = cfg.init_params(jax.random.key(0))
      >>> {k: params[k].shape for k in cfg.param_shapes()}
      {'W_u': (8, 2), 'b_u': (2,), 'W_h': (11, 5), 'b_h': (5,), 'W_g': (11, 5), 'b_g': (5,)}
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
    gate: str = "G"
    gated: bool | None = None
    measure_params: tuple = ()
    schedule: str | None = None
    l_max: int | None = None
    seed: int | None = None
    timestamped: bool = False
    ux: bool = True
    hx: bool = True
    hm: bool = True
    hh: bool = False
    um: bool = False
    bias: bool = True
    memory_activation: str = "id"
    hidden_activation: str = "tanh"
    init: str = "reference"

    state_class: ClassVar[type] = HiPPORNNState

    def __post_init__(self):
        _set = base.set_field
        _set(self, "d_in", _validate.check_size("d_in", self.d_in))
        _set(self, "features", _validate.check_size("features", self.features))
        _set(self, "memory_size", _validate.check_size("memory_size", self.memory_size))
        if self.N == -1:
            _set(self, "N", self.features)
        _validate.check_choice("gate", self.gate, GATES)
        if self.gated is not None:
            gated = _validate.check_bool("gated", self.gated)
            if (gated and self.gate == "N") or (not gated and self.gate in ("R", "UR")):
                raise ValueError(
                    f"`gated` ({gated}) contradicts `gate` ({self.gate!r}); pass only `gate`."
                )
            _set(self, "gate", self.gate if gated else "N")
            _set(self, "gated", None)
        for flag in ARCHITECTURE:
            _set(self, flag, _validate.check_bool(flag, getattr(self, flag)))
        _set(self, "timestamped", _validate.check_bool("timestamped", self.timestamped))
        _validate.check_choice("memory_activation", self.memory_activation, tuple(cb.ACTIVATIONS))
        _validate.check_choice("hidden_activation", self.hidden_activation, tuple(cb.ACTIVATIONS))
        _validate.check_choice("init", self.init, INITS)
        try:
            mp = tuple(sorted((str(k), v) for k, v in dict(self.measure_params).items()))
        except (TypeError, ValueError):
            raise TypeError(
                "`measure_params` must be (name, value) pairs or a mapping, got "
                f"{self.measure_params!r}."
            ) from None
        _set(self, "measure_params", mp)
        if self.seed is not None and not isinstance(self.seed, (int, np.integer)):
            _set(self, "seed", seed_from_key(self.seed))
        mem = self.memory
        _set(self, "measure", mem.measure)
        _set(self, "N", mem.N)

    @property
    def memory(self) -> HiPPOMemory:
        """The cell's `HiPPOMemory`."""
        return hippo_memory(
            self.measure,
            self.N,
            method=self.method,
            dt=self.dt,
            schedule=self.schedule,
            l_max=self.l_max,
            seed=self.seed,
            timestamped=self.timestamped,
            **dict(self.measure_params),
        )

    @property
    def d_x(self) -> int:
        """Input features (``d_in``, less the timestamp channel when timestamped)."""
        return self.d_in - 1 if self.timestamped else self.d_in

    def _rows(self) -> tuple[int, int, int]:
        """(rows of W_u, rows of W_h, rows of W_g)."""
        d, H, F, N = self.d_x, self.features, self.memory_size, self.N
        rows_h = d * self.hx + F * N * self.hm
        return d * self.ux + H, rows_h, rows_h + H * self.hh

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        H, F, N = self.features, self.memory_size, self.N
        ru, rh, rg = self._rows()
        shapes: dict[str, tuple[int, ...]] = {"W_u": (ru, F)}
        if self.bias:
            shapes["b_u"] = (F,)
        if self.um:
            shapes["W_um"] = (F, N)
        shapes["W_h"] = (rh, H)
        if self.bias:
            shapes["b_h"] = (H,)
        if self.hh:
            shapes["W_hh"] = (H, H)
            if self.bias:
                shapes["b_hh"] = (H,)
        if self.gate != "N":
            shapes["W_g"] = (rg, H)
            if self.bias or self.gate == "UR":
                shapes["b_g"] = (H,)
        if self.gate in ("R", "UR"):
            shapes["W_r"] = (rg, H)
            if self.bias:
                shapes["b_r"] = (H,)
        return shapes

    def param_initializers(self) -> dict[str, base.Initializer]:
        """``{name: init(key, shape, dtype)}`` of ``init`` (module docstring)."""
        ru, rh, rg = self._rows()
        H, zeros = self.features, jax.nn.initializers.zeros
        if self.init == "lecun":
            lecun = jax.nn.initializers.lecun_normal()
            inits = dict.fromkeys(("W_u", "W_h", "W_hh", "W_g", "W_r"), lecun)
            inits.update(dict.fromkeys(("b_u", "b_h", "b_hh", "b_g", "b_r", "W_um"), zeros))
        else:
            gain = cb.GAINS[self.memory_activation]
            inits = {
                "W_u": cb.kaiming_uniform(gain),
                "b_u": cb.bias_uniform(ru),
                "W_um": zeros,
                "W_h": cb.xavier_normal,
                "b_h": cb.bias_uniform(rh),
                "W_hh": cb.xavier_normal,
                "b_hh": cb.bias_uniform(H),
                "W_g": cb.fan_in_uniform,
                "b_g": cb.bias_uniform(rg) if self.bias else zeros,
                "W_r": cb.fan_in_uniform,
                "b_r": cb.bias_uniform(rg),
            }
            if self.init == "lmu":
                dm, dh = self.d_x * self.ux, self.d_x * self.hx
                one = cb.constant_init(1.0)
                inits["W_u"] = cb.stacked_init((dm, one), (H, zeros))
                inits["W_h"] = cb.stacked_init((dh, zeros), (rh - dh, cb.xavier_normal))
                inits["W_hh"] = zeros
        if self.gate == "UR":
            inits["b_g"] = _uniform_gate_bias(inits["b_g"], H)
        return {name: inits[name] for name in self.param_shapes()}

    def state_spec(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return {
            "h": ((self.features,), "float"),
            "c": ((self.memory_size, self.N), "float"),
            "t": ((), "float" if self.timestamped else "int"),
        }

    def _cell(self, p, state, x):
        act_u = cb.ACTIVATIONS[self.memory_activation]
        act_h = cb.ACTIVATIONS[self.hidden_activation]
        h_prev, c_prev, t = state
        batch = h_prev.shape[:-1]
        if self.timestamped:
            ts, x = x[..., 0], x[..., 1:]
        empty = x[..., :0]
        pre_u = jnp.concatenate([x if self.ux else empty, h_prev], axis=-1) @ p["W_u"]
        if self.bias:
            pre_u = pre_u + p["b_u"]
        if self.um:
            pre_u = pre_u + jnp.sum(c_prev * p["W_um"], axis=-1)
        u = act_u(pre_u)  # (..., F)
        if self.timestamped:
            c = self.memory.update_timed(c_prev, u, t[..., None], ts[..., None])
            t_next = ts
        else:
            c = self.memory.update(c_prev, u, t[..., None])
            t_next = t + 1
        parts = [x] if self.hx else []
        if self.hm:
            parts.append(c.reshape(*batch, self.memory_size * self.N))
        z = jnp.concatenate(parts, axis=-1) if parts else empty
        pre_h = z @ p["W_h"]
        if self.bias:
            pre_h = pre_h + p["b_h"]
        if self.hh:
            pre_h = pre_h + h_prev @ p["W_hh"]
            if self.bias:
                pre_h = pre_h + p["b_hh"]
        hidden = act_h(pre_h)
        if self.gate == "N":
            h = hidden
        else:
            zg = jnp.concatenate([z, h_prev], axis=-1) if self.hh else z
            pre_g = zg @ p["W_g"]
            if "b_g" in p:
                pre_g = pre_g + p["b_g"]
            g = jax.nn.sigmoid(pre_g)
            if self.gate in ("R", "UR"):
                pre_r = zg @ p["W_r"]
                if self.bias:
                    pre_r = pre_r + p["b_r"]
                r = jax.nn.sigmoid(pre_r)
                g = (1.0 - 2.0 * r) * g**2 + 2.0 * r * g
            h = (1.0 - g) * h_prev + g * hidden
        return HiPPORNNState(h=h, c=c, t=t_next.astype(t.dtype)), h


def _uniform_gate_bias(bias_init, H: int):
    """The UR gate's bias: ``log(1/s - 1)``, ``s ~ U(1/H, 1 - 1/H)``, plus ``bias_init``."""

    def init(key, shape, dtype=jnp.float32):
        k1, k2 = jax.random.split(key)
        lo = 1.0 / H if H > 2 else 0.25
        s = jax.random.uniform(k1, shape, jnp.float32, lo, 1.0 - lo)
        return (jnp.log(1.0 / s - 1.0) + bias_init(k2, shape, jnp.float32)).astype(dtype)

    return init


def seed_from_key(key) -> int:
    """An int seed from a jax PRNG key (for HiPPO-Rand's host-drawn fixed ``A``)."""
    try:
        data = np.asarray(jax.random.key_data(key)).ravel()
    except (TypeError, ValueError):
        raise TypeError(f"`seed` must be an int or a jax PRNG key, got {key!r}.") from None
    return int(np.uint64(data.astype(np.uint64)[-1]) % np.uint64(2**31 - 1))


_PRESETS: dict[str, dict[str, Any]] = {
    "legs": dict(measure="legs", method="bilinear", schedule="reference"),
    "legt": dict(measure="legt", method="bilinear", dt=0.01),
    "lagt": dict(measure="lagt", method="bilinear", dt=1.0),
    "glagt": dict(measure="glagt", method="bilinear", dt=1.0),
    "lmu": dict(
        measure="lmu",
        method="zoh",
        gate="N",
        ux=True,
        um=True,
        hx=True,
        hm=True,
        hh=True,
        bias=False,
        init="lmu",
    ),
    "random": dict(measure="random", method="zoh", dt=0.01),
    "tlsi": dict(measure="legs", method="bilinear", timestamped=True),
    "tlti": dict(measure="legt", method="bilinear", dt=1.0, timestamped=True),
}
#: Names of `hippo_cell_options`' presets.
HIPPO_CELLS: tuple[str, ...] = tuple(_PRESETS)


def hippo_cell_options(name: str, *, theta: float = 100.0, **overrides) -> dict[str, Any]:
    """The keyword options of the authors' HiPPO-RNN cells, for `HiPPORNNConfig` and wrappers.

    Presets (the authors' cell configs): ``'legs'`` (HiPPO-LegS, bilinear, ``1 / t``
    schedule), ``'legt'`` (HiPPO-LegT, bilinear, ``dt = 0.01``), ``'lagt'`` (HiPPO-LagT,
    bilinear, ``dt = 1``), ``'glagt'`` (generalised Laguerre, ``dt = 1``), ``'lmu'``
    (the Legendre Memory Unit's wiring: ``u = e_x x + e_h h + e_m c``, ``h =
    tanh(W_x x + W_h h + W_m c)``, no gate, no biases, ``zoh`` at ``dt = 1 / theta``;
    the LMU's initialisation ``init='lmu'``), ``'random'`` (HiPPO-Rand: a fixed random
    ``A``, ``zoh`` at ``dt = 0.01``; set ``seed``), ``'tlsi'`` / ``'tlti'``
    (timestamped LegS / LegT, bilinear; ``dt`` the time scale of ``tlti``). Each step
    size is an option: pass ``dt`` (or ``theta`` for the LMU) to change it; the memory
    window of LegT/LMU spans ``theta_measure / dt`` samples.

    HiPPO-Rand is the authors' ``RandomCell`` exactly (``A`` N(0, 1/N) entries, ``B``
    N(0, 1), their LTI cell's ``zoh`` at ``dt = 0.01``), and like theirs it is not
    stabilised: by the circular law the eigenvalues of ``A`` fill the unit disc, so
    ``max Re λ(A)`` approaches 1 and the discrete memory grows like
    ``exp(L · dt · max Re λ(A))`` over ``L`` steps (spectral radius of ``Ab``
    ``exp(dt max Re λ)``; for ``N = 41``, seed 0: 1.0086 per step, ×819 over 784 steps,
    and about ×2500 at the paper's ``N = 512``). At small hidden sizes this saturates
    the hidden units (80% at initialisation on the digits stand-in) and the cell stays
    at chance; see ``examples/RESULTS.md``. A smaller ``dt`` limits the growth;
    ``measure_params={'max_real': -0.1}`` shifts ``A`` to be stable (`hippox.hippo_memory`),
    a fairer ablation (62% against the authors' 27% on the sequential digits stand-in).

    Args:
      name: one of `HIPPO_CELLS`.
      theta: the LMU's window in samples (``dt = 1 / theta``; the authors' default
        100, their permuted-MNIST config 784). Only for ``'lmu'``.
      **overrides: options that replace the preset's.

    Returns:
      ``{option: value}`` to pass as ``**options``.

    Examples:
      >>> import hippox
      >>> from hippox._src.layers.rnn import hippo_cell_options
      >>> cfg = hippox.HiPPORNNConfig(1, 8, N=4, **hippo_cell_options("lmu", theta=784))
      >>> cfg.gate, cfg.method, round(cfg.dt, 6), sorted(cfg.param_shapes())
      ('N', 'zoh', 0.001276, ['W_h', 'W_hh', 'W_u', 'W_um'])
    """
    _validate.check_choice("name", name, HIPPO_CELLS)
    opts = dict(_PRESETS[name])
    if name == "lmu":
        opts["dt"] = 1.0 / _validate.check_real("theta", theta, positive=True)
    elif theta != 100.0:
        raise ValueError(f"`theta` is an option of the 'lmu' cell only, got it for {name!r}.")
    opts.update(overrides)
    return opts
