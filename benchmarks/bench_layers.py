"""Benchmarks of the hippox sequence layers (Flax NNX): training-step throughput and init time.

Groups (``ratio`` in the table = baseline median / row median, same run):

* ``layer_train_step``: one forward + backward pass (``jax.value_and_grad`` of a
  scalar loss of the output, with respect to the parameters and the input) of a
  single layer on ``u`` of shape ``(B, L, H)``, for `hippox.nnx.HiPPORNN` (LegS
  memory, hidden size H), `hippox.nnx.S4`, `hippox.nnx.S4D`, `hippox.nnx.S5` and
  Flax's LSTM (`flax.nnx.OptimizedLSTMCell` under `flax.nnx.RNN`, hidden size H; the
  baseline). Full size: B = 16, H = 128, N = 64, L = 1024. ``note`` gives the
  throughput in sequence elements (positions, B·L of them per step) per second.
* ``first_params``: the first S4 parameter draw (H = 256, N = 64) in a fresh process,
  `LayerConfig.init_params`'s one compiled call vs one eager call per leaf (baseline).
* ``first_build``: the first S4 layer (H = 256, N = 64, L = 4096) built with its
  parameters materialised, in a fresh process per framework (NNX, linen ``init``, Haiku
  ``init``, Equinox), after JAX's own start-up; the layers draw every leaf in one
  compiled program (`LayerConfig.init_from_keys`). Baseline: the same S4's leaves
  drawn by one eager call each (what every wrapper did before). Median of 3 processes.
* ``layer_goals``: the issue-13 workloads at B = 8, H = 256, N = 64, L = 4096: the S4D
  and S4 layers' forward (``config.apply``) and forward + backward (gradient of a scalar
  loss with respect to the parameters and the input), against the floor of their
  convolution on this backend, the ``rfft`` + ``irfft`` pair of ``u`` alone (baseline).
* ``layer_init``: wall time of constructing each layer (parameters materialised)
  the first time in this process (baseline) and again with another seed (median of
  a few). Each layer is measured in a fresh Python process (so no layer reuses the
  compilations of another built before it), after one unrelated `flax.nnx.Linear`
  (so the first row does not also pay JAX's own start-up). hippox builds its HiPPO
  matrices on the host once per static configuration (cached), and JAX compiles each
  random initializer once per shape, so the second construction should be much
  cheaper.

``quick=True`` runs the same groups at small sizes.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from _harness import Row, measure
from flax import nnx

import hippox.nnx

LAYERS: tuple[str, ...] = ("lstm", "hippo_rnn", "s4", "s4d", "s5")


class _LSTM(nnx.Module):
    """Flax's LSTM over a sequence ``(B, L, H) -> (B, L, H)`` from a zero carry."""

    def __init__(self, H: int, *, rngs: nnx.Rngs):
        self.rnn = nnx.RNN(nnx.OptimizedLSTMCell(H, H, rngs=rngs), rngs=False)

    def __call__(self, u):
        carry = self.rnn.cell.initialize_carry(u.shape[:1] + u.shape[2:], nnx.Rngs(carry=0))
        return self.rnn(u, initial_carry=carry)


def build(name: str, H: int, N: int, L: int, seed: int = 0) -> nnx.Module:
    """Layer ``name`` mapping ``(B, L, H)`` to ``(B, L, H)`` (state size N)."""
    rngs = nnx.Rngs(seed)
    if name == "lstm":
        return _LSTM(H, rngs=rngs)
    if name == "hippo_rnn":
        return hippox.nnx.HiPPORNN(H, H, N=N, measure="legs", rngs=rngs)
    if name == "s4":
        return hippox.nnx.S4(H, L, N, rngs=rngs)
    if name == "s4d":
        return hippox.nnx.S4D(H, N, rngs=rngs)
    if name == "s5":
        return hippox.nnx.S5(H, N, rngs=rngs)
    raise ValueError(f"`name` must be one of {LAYERS}, got {name!r}.")


def _train_step_fn(graphdef):
    def loss(params, u):
        y = nnx.merge(graphdef, params)(u)
        return jnp.mean(jnp.square(y.astype(jnp.float32)))

    def step(params, u):
        return jax.value_and_grad(loss, argnums=(0, 1))(params, u)

    return step


def _n_params(model) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _train_group(Bs: int, H: int, N: int, L: int, repeats: int) -> list[Row]:
    u = jnp.asarray(np.random.default_rng(0).standard_normal((Bs, L, H)), jnp.float32)
    params_str = f"B={Bs} H={H} N={N} L={L}"
    rows = []
    for name in LAYERS:
        model = build(name, H, N, L)
        graphdef, params = nnx.split(model)
        row = measure(
            "layer_train_step",
            name,
            params_str,
            _train_step_fn(graphdef),
            params,
            u,
            repeats=repeats,
            baseline=name == "lstm",
        )
        row.note = f"{Bs * L / row.median_s:,.0f} elem/s fwd+bwd; {_n_params(model):,} params"
        rows.append(row)
    return rows


def _materialise(model) -> None:
    jax.block_until_ready(jax.tree.leaves(nnx.state(model)))


def init_times(name: str, H: int, N: int, L: int, repeats: int) -> tuple[float, list[float]]:
    """Seconds to build layer ``name`` the first time in this process, then ``repeats`` more."""
    _materialise(nnx.Linear(3, 5, rngs=nnx.Rngs(0)))  # JAX start-up, not any layer's cost
    t0 = time.perf_counter()
    _materialise(build(name, H, N, L, seed=0))
    first = time.perf_counter() - t0
    again = []
    for seed in range(1, repeats + 1):
        t0 = time.perf_counter()
        _materialise(build(name, H, N, L, seed=seed))
        again.append(time.perf_counter() - t0)
    return first, again


_INIT_SCRIPT = """
import json, sys
sys.path.insert(0, {bench!r})
import bench_layers
print(json.dumps(bench_layers.init_times({name!r}, {H}, {N}, {L}, {repeats})))
"""


def _init_group(H: int, N: int, L: int, repeats: int) -> list[Row]:
    """Each layer in a fresh process, so no layer's first init reuses another's compiles."""
    here = pathlib.Path(__file__).resolve().parent
    rows = []
    for name in LAYERS:
        code = _INIT_SCRIPT.format(bench=str(here), name=name, H=H, N=N, L=L, repeats=repeats)
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=here.parent,
        ).stdout
        first, again = json.loads(out.strip().splitlines()[-1])
        params_str = f"{name}: H={H} N={N}" + (f" L={L}" if name == "s4" else "")
        rows.append(Row("layer_init", f"{name} first init", params_str, first, 0.0, None, True))
        rows.append(
            Row(
                "layer_init",
                f"{name} second init",
                params_str,
                statistics.median(again),
                0.0,
                None,
                note=f"median of {repeats}, new seeds",
            )
        )
    return rows


_FIRST_PARAMS_SCRIPT = """
import json, time
import jax
import jax.numpy as jnp
from hippox._src.layers.s4 import S4Config
jax.block_until_ready(jax.random.split(jax.random.key(0)))  # JAX start-up, not the layer's
cfg = S4Config(H={H}, l_max={L}, N={N})
keys = jax.random.split(jax.random.key(1), len(cfg.param_shapes()))
t0, c0 = time.perf_counter(), time.process_time()
if {per_leaf}:
    specs = cfg.param_specs().items()
    p = {{n: init(k, s, jnp.float32) for k, (n, (s, init)) in zip(keys, specs)}}
else:
    p = cfg.init_from_keys(keys)
jax.block_until_ready(p)
print(json.dumps([time.perf_counter() - t0, time.process_time() - c0]))
"""


def _first_params_group(H: int, N: int, L: int, repeats: int) -> list[Row]:
    """First S4 parameter draw in a fresh process: one call per leaf vs one compiled call.

    ``init_params`` draws every leaf in one jit-compiled program (`init_from_keys`); the
    baseline calls each initializer eagerly, as the framework wrappers do, which compiles
    one small program per random draw and shape. Median of ``repeats`` fresh processes each
    (wall time; the note gives the process's CPU time, less sensitive to a loaded machine).
    """
    params_str = f"s4: H={H} N={N} L={L}"
    rows = []
    for per_leaf in (True, False):
        code = _FIRST_PARAMS_SCRIPT.format(H=H, N=N, L=L, per_leaf=per_leaf)
        times, cpu = [], []
        for _ in range(repeats):
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
            wall, c = json.loads(out.strip().splitlines()[-1])
            times.append(wall)
            cpu.append(c)
        name = "one eager call per leaf" if per_leaf else "init_params (one jit call)"
        rows.append(
            Row(
                "first_params",
                name,
                params_str,
                statistics.median(times),
                0.0,
                None,
                baseline=per_leaf,
                note=f"median of {repeats} fresh processes; CPU {statistics.median(cpu):.2f} s",
            )
        )
    return rows


_FIRST_BUILD_SCRIPT = """
import json, time
import jax
import jax.numpy as jnp
import hippox.{lib} as lib
jax.block_until_ready(jax.random.split(jax.random.key(0)))  # JAX start-up, not the layer's
H, N, L, fw = {H}, {N}, {L}, {fw!r}
u = jnp.zeros((1, 8, H), jnp.float32)
t0 = time.perf_counter()
if fw == "nnx":
    from flax import nnx
    p = nnx.state(lib.S4(H, L, N, rngs=nnx.Rngs(0)))
elif fw == "linen":
    p = lib.S4(H=H, l_max=L, N=N).init(jax.random.key(0), u)
elif fw == "haiku":
    import haiku as hk
    p = hk.transform(lambda u: lib.S4(H, L, N)(u)).init(jax.random.key(0), u)
elif fw == "equinox":
    p = lib.S4(H, L, N, key=jax.random.key(0))
else:  # the baseline: one eager call per leaf
    from hippox._src.layers.s4 import S4Config
    cfg = S4Config(H=H, l_max=L, N=N)
    keys = jax.random.split(jax.random.key(1), len(cfg.param_shapes()))
    specs = cfg.param_specs().items()
    p = {{n: init(k, s, jnp.float32) for k, (n, (s, init)) in zip(keys, specs)}}
jax.block_until_ready(jax.tree.leaves(p))
print(json.dumps(time.perf_counter() - t0))
"""


def _first_build_group(H: int, N: int, L: int, repeats: int) -> list[Row]:
    """First S4 build per framework in fresh processes (the module docstring)."""
    rows = []
    for fw in ("per_leaf", "nnx", "linen", "haiku", "equinox"):
        lib = "nnx" if fw == "per_leaf" else fw
        code = _FIRST_BUILD_SCRIPT.format(fw=fw, lib=lib, H=H, N=N, L=L)
        times = []
        for _ in range(repeats):
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
            times.append(json.loads(out.strip().splitlines()[-1]))
        name = "one eager call per leaf (config only)" if fw == "per_leaf" else f"{fw} S4"
        rows.append(
            Row(
                "first_build",
                name,
                f"S4 H={H} N={N} L={L}",
                statistics.median(times),
                0.0,
                None,
                baseline=fw == "per_leaf",
                note=f"median of {repeats} fresh processes",
            )
        )
    return rows


def _goal_group(Bs: int, H: int, N: int, L: int, repeats: int) -> list[Row]:
    """S4D / S4 forward and forward + backward against the FFT floor (module docstring)."""
    from hippox._src.layers.s4 import S4Config
    from hippox._src.layers.s4d import S4DConfig

    u = jnp.asarray(np.random.default_rng(0).standard_normal((Bs, L, H)), jnp.float32)
    label = f"B={Bs} H={H} N={N} L={L}"

    def fft_floor(u):
        ut = jnp.swapaxes(u, -1, -2)
        return jnp.fft.irfft(jnp.fft.rfft(ut, n=2 * L), n=2 * L)[..., :L]

    rows = [
        measure(
            "layer_goals",
            "rfft + irfft of u (floor)",
            label,
            fft_floor,
            u,
            repeats=repeats,
            baseline=True,
        )
    ]
    for cfg in (S4DConfig(H, N), S4Config(H, L, N)):
        name = type(cfg).__name__.removesuffix("Config")
        params = cfg.init_params(jax.random.key(0))
        rows.append(
            measure("layer_goals", f"{name} forward", label, cfg.apply, params, u, repeats=repeats)
        )
        grad = jax.grad(lambda p, u, cfg=cfg: jnp.sum(cfg.apply(p, u) ** 2), (0, 1))
        rows.append(
            measure(
                "layer_goals", f"{name} forward + backward", label, grad, params, u, repeats=repeats
            )
        )
    return rows


def run(quick: bool) -> list[Row]:
    if quick:
        return (
            _first_params_group(16, 16, 128, 1)
            + _first_build_group(16, 16, 128, 1)
            + _goal_group(2, 16, 16, 128, 3)
            + _init_group(16, 16, 128, 2)
            + _train_group(2, 16, 16, 128, 3)
        )
    return (
        _first_params_group(256, 64, 4096, 3)
        + _first_build_group(256, 64, 4096, 3)
        + _goal_group(8, 256, 64, 4096, 5)
        + _init_group(128, 64, 1024, 3)
        + _train_group(16, 128, 64, 1024, 3)
    )
