"""A data- and channel-parallel training step of a hippox `SequenceModel` on a device mesh.

The mesh has two named axes:

* ``'data'``: the batch is split over it (each device row sees ``batch / n_data``
  examples; gradients are summed across it by the compiler);
* ``'model'``: the H channels of every SSM layer are split over it. An S4D or S4 layer
  is H independent SSMs, so its per-channel parameters (``Lambda``, ``P``, ``B``,
  ``C``, ``D``, ``log_dt``, all with a leading H axis) shard without any
  communication in the kernel and the convolution. An S5 layer is one MIMO SSM: its
  ``B`` ``(M, H, 2)`` is split on its H axis (``B u`` becomes a partial sum the
  compiler all-reduces), ``C`` ``(H, M, 2)`` and ``D`` on theirs, and the per-mode
  ``Lambda`` and ``log_dt`` are replicated.

Everything else (encoder, mixers, norms, decoder) is replicated. Nothing in the model
changes: the shardings are `jax.sharding.NamedSharding` annotations of the parameter
pytree (from `flax.nnx.split`) and of the batch, given to `jax.jit` as
``in_shardings`` / ``out_shardings``; XLA's partitioner inserts the collectives.

Run on 8 simulated CPU devices (the flag must be set before JAX starts)::

    XLA_FLAGS=--xla_force_host_platform_device_count=8 \\
        .venv/bin/python examples/sharded_step.py --layer s4d --mesh 4 2

which prints the largest differences between the sharded step and the same step on
one device (loss, gradients, updated parameters) as JSON, and exits with status 1 if
any exceeds the tolerance (``--check``, on by default).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import hippox
from hippox.nnx import SequenceModel

#: For each layer config type, ``{parameter name: index of its H (channel) axis}``.
#: Parameters not listed (S5's per-mode ``Lambda_re``, ``Lambda_im``, ``log_dt``) are
#: replicated.
CHANNEL_AXIS: dict[type, dict[str, int]] = {
    hippox.S4DConfig: {
        "Lambda_re": 0,
        "Lambda_im": 0,
        "B": 0,
        "C": 0,
        "C_bwd": 0,
        "D": 0,
        "log_dt": 0,
    },
    hippox.S4Config: {
        "Lambda_re": 0,
        "Lambda_im": 0,
        "P": 1,
        "B": 0,
        "C": 0,
        "C_bwd": 0,
        "D": 0,
        "log_dt": 0,
    },
    hippox.S5Config: {"B": 1, "C": 0, "C_bwd": 0, "D": 0},
}


def make_mesh(shape: Sequence[int] = (4, 2), axis_names=("data", "model")) -> Mesh:
    """A ``shape[0] × shape[1]`` mesh over the first ``prod(shape)`` devices."""
    n = int(np.prod(shape))
    if len(jax.devices()) < n:
        raise ValueError(
            f"`shape` must fit the {len(jax.devices())} available devices, got {tuple(shape)}."
        )
    return Mesh(np.asarray(jax.devices()[:n]).reshape(tuple(shape)), tuple(axis_names))


def _key_name(k) -> object:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return getattr(k, attr)
    return k


def param_specs(model: SequenceModel, params: nnx.State, *, model_axis: str = "model"):
    """A `PartitionSpec` per parameter leaf: SSM channel axes on ``model_axis``.

    Args:
      model: the `hippox.nnx.SequenceModel` the parameters belong to.
      params: ``nnx.state(model, nnx.Param)`` (or the Param part of `flax.nnx.split`).
      model_axis: mesh axis the channels are split over.

    Returns:
      A pytree with the structure of ``params`` whose leaves are `PartitionSpec`.
    """

    def spec(path, leaf):
        names = [_key_name(k) for k in path]
        if names[0] == "layers":
            config = getattr(model.layers[names[1]], "config", None)
            axis = CHANNEL_AXIS.get(type(config), {}).get(names[2])
            if axis is not None:
                parts = [None] * np.ndim(leaf)
                parts[axis] = model_axis
                return P(*parts)
        return P()

    return jax.tree_util.tree_map_with_path(spec, params)


def make_step(graphdef, tx: optax.GradientTransformation, *, shardings=None):
    """The jitted train step ``(params, rest, opt_state, x, y) -> (params, rest, opt_state,
    loss, grads)`` (cross-entropy of a classifier).

    Args:
      graphdef: from ``nnx.split(model, nnx.Param, ...)``.
      tx: the optax optimiser.
      shardings: None (let jit follow its inputs, e.g. one device) or a tuple
        ``(param, rest, opt_state, x, y)`` of sharding pytrees; the outputs keep the
        parameter / optimiser-state shardings, the loss is replicated and the
        gradients are sharded like the parameters.
    """

    def loss_fn(model, x, y):
        logits = model(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(params, rest, opt_state, x, y):
        model = nnx.merge(graphdef, params, rest)
        # gradients with respect to the nnx.Param leaves; RNG state (dropout) advances
        loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        rest = nnx.state(model, nnx.Not(nnx.Param))
        return optax.apply_updates(params, updates), rest, opt_state, loss, grads

    if shardings is None:
        return jax.jit(step)
    p_sh, r_sh, o_sh, x_sh, y_sh = shardings
    replicated = NamedSharding(x_sh.mesh, P())
    return jax.jit(
        step,
        in_shardings=(p_sh, r_sh, o_sh, x_sh, y_sh),
        out_shardings=(p_sh, r_sh, o_sh, replicated, p_sh),
    )


def shard_everything(mesh: Mesh, model: SequenceModel, params, rest, opt_state):
    """Places a training state on ``mesh``; returns it and the shardings for `make_step`.

    Parameters: SSM channel axes on ``'model'`` (`param_specs`), the rest replicated.
    Optimiser state: build it with ``jax.jit(tx.init)`` from the placed parameters, so
    adam's ``mu`` / ``nu`` inherit the parameter shardings; leaves without a mesh
    sharding (step counts) are replicated. Batch: ``x`` ``(batch, L, d)`` and ``y``
    ``(batch,)`` split over ``'data'``.

    Returns:
      ``(params, rest, opt_state)`` placed, and the tuple of shardings
      ``(params, rest, opt_state, x, y)``.
    """
    replicated = NamedSharding(mesh, P())
    p_sh = jax.tree.map(lambda s: NamedSharding(mesh, s), param_specs(model, params))
    r_sh = jax.tree.map(lambda _: replicated, rest)
    o_sh = jax.tree.map(
        lambda a: (
            a.sharding
            if isinstance(a.sharding, NamedSharding) and a.sharding.mesh == mesh
            else replicated
        ),
        opt_state,
    )
    x_sh = NamedSharding(mesh, P("data", None, None))
    y_sh = NamedSharding(mesh, P("data"))
    placed = (put(params, p_sh), put(rest, r_sh), put(opt_state, o_sh))
    return placed, (p_sh, r_sh, o_sh, x_sh, y_sh)


def put(tree, shardings):
    """`jax.device_put` of a pytree, also across processes for PRNG key leaves.

    With `jax.distributed`, a mesh spans devices this process cannot address;
    ``device_put`` places ordinary arrays there (every process passes the same value)
    but not typed PRNG keys (the dropout RNG state), which go as their raw key data.
    """

    def one(x, s):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = jax.device_put(jax.random.key_data(x), s)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        return jax.device_put(x, s)

    return jax.tree.map(one, tree, shardings)


def _max_diff(a, b) -> float:
    diffs = jax.tree.leaves(
        jax.tree.map(lambda u, v: float(np.max(np.abs(np.asarray(u) - np.asarray(v)))), a, b)
    )
    return max(diffs) if diffs else 0.0


def _max_abs(a) -> float:
    return max(float(np.max(np.abs(u))) for u in jax.tree.leaves(a))


def check(
    layer: str = "s4d",
    mesh_shape: Sequence[int] = (4, 2),
    *,
    batch: int = 16,
    L: int = 32,
    d_model: int = 8,
    N: int = 8,
    seed: int = 0,
) -> dict:
    """One sharded step against the same step on one device.

    Returns:
      A dict with the loss of both, the largest absolute differences of the loss, the
      gradients and the updated parameters, the largest gradient magnitude, the
      number of all-reduce ops in the compiled sharded step (the gradient sums over
      ``'data'``), and the sharding specs the first layer's parameters carry after
      the step.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, L, 1)).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int32)
    kw = {"N": N} if layer != "s5" else {"N": N, "blocks": 2}
    model = SequenceModel(
        1,
        10,
        d_model=d_model,
        n_layers=2,
        layer=layer,
        layer_kwargs=kw,
        l_max=L if layer == "s4" else None,
        rngs=nnx.Rngs(seed),
    )
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.multi_transform(
        {"default": optax.adamw(1e-2, weight_decay=0.05), "ssm": optax.adam(1e-3)},
        hippox.optax_labels,
    )
    # Reference: everything on one device.
    dev0 = jax.devices()[0]
    one = lambda t: jax.device_put(t, dev0)  # noqa: E731
    p1, r1, x1, y1 = one(params), one(rest), one(x), one(y)
    ref = make_step(graphdef, tx)(p1, r1, jax.jit(tx.init)(p1), x1, y1)
    # Sharded: place the parameters, build the optimiser state from them, shard the batch.
    mesh = make_mesh(mesh_shape)
    p_sh = jax.tree.map(lambda s: NamedSharding(mesh, s), param_specs(model, params))
    opt_state = jax.jit(tx.init)(jax.device_put(params, p_sh))
    (ps, rs, os_), sh = shard_everything(mesh, model, params, rest, opt_state)
    xs, ys = jax.device_put(x, sh[3]), jax.device_put(y, sh[4])
    sharded_step = make_step(graphdef, tx, shardings=sh)
    hlo = sharded_step.lower(ps, rs, os_, xs, ys).compile().as_text()
    out = sharded_step(ps, rs, os_, xs, ys)
    layer_specs = {name: str(v.sharding.spec) for name, v in out[0]["layers"][0].items()}
    return {
        "layer": layer,
        "mesh": list(mesh_shape),
        "devices": len(mesh.devices.flat),
        "loss_sharded": float(out[3]),
        "loss_single": float(ref[3]),
        "loss_diff": abs(float(out[3]) - float(ref[3])),
        "grad_max_diff": _max_diff(out[4], ref[4]),
        "grad_max_abs": _max_abs(ref[4]),
        "param_max_diff": _max_diff(out[0], ref[0]),
        "x_spec": str(xs.sharding.spec),
        "all_reduces": hlo.count("all-reduce("),
        "layer0_specs": layer_specs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", nargs="+", default=["s4d", "s5"], choices=["s4", "s4d", "s5"])
    parser.add_argument("--mesh", nargs=2, type=int, default=[4, 2], metavar=("DATA", "MODEL"))
    parser.add_argument("--tol", type=float, default=1e-5, help="max abs difference allowed")
    args = parser.parse_args(argv)
    ok = True
    for layer in args.layer:
        res = check(layer, tuple(args.mesh))
        res["ok"] = bool(
            res["loss_diff"] <= args.tol
            and res["grad_max_diff"] <= args.tol * max(1.0, res["grad_max_abs"])
            and res["param_max_diff"] <= args.tol
        )
        ok &= res["ok"]
        print(json.dumps(res), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
