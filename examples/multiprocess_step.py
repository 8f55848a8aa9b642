"""The sharded training step of ``sharded_step.py`` across processes with `jax.distributed`.

``sharded_step.py`` splits a `hippox.nnx.SequenceModel` training step over a
``('data', 'model')`` mesh of devices in one process. Here the same step runs across
``P`` local CPU processes (a coordinator on ``localhost``), each owning ``D`` devices:
the global mesh is ``(P, D)``, so ``'data'`` spans the processes (each feeds its own
slice of the batch with `jax.make_array_from_process_local_data`) and ``'model'``
splits the SSM channels over the devices of one process. Every process builds the
same model from the same seed; the parameters are placed with their channel
shardings, and the compiled step's collectives run over the network between the
processes (Gloo on CPU).

Each worker writes its loss and the gathered updated parameters to
``OUT/process<i>.npz``; ``--single`` runs the same step in one process on one device
(``OUT/single.npz``), the reference they must equal.

Usage (from the repository root)::

    .venv/bin/python examples/multiprocess_step.py              # 2 processes x 2 devices

launches the workers and the reference, bounds every process's time, and prints the
largest differences as JSON (exit status 1 above ``--tol``).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
BATCH, L, D_MODEL, N = 8, 16, 8, 8


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, L, 1)).astype(np.float32)
    y = rng.integers(0, 10, BATCH).astype(np.int32)
    return x, y


def _build(layer: str):
    import optax
    from flax import nnx

    import hippox
    from hippox.nnx import SequenceModel

    kw = {"N": N} if layer != "s5" else {"N": N, "blocks": 2}
    model = SequenceModel(
        1, 10, d_model=D_MODEL, n_layers=2, layer=layer, layer_kwargs=kw, rngs=nnx.Rngs(0)
    )
    tx = optax.multi_transform(
        {"default": optax.adamw(1e-2, weight_decay=0.05), "ssm": optax.adam(1e-3)},
        hippox.optax_labels,
    )
    return model, tx


def _flat(tree) -> dict[str, np.ndarray]:
    import jax

    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        out[jax.tree_util.keystr(path)] = np.asarray(leaf)
    return out


def run_single(out: pathlib.Path, layer: str) -> None:
    """The reference: the whole step in this process on one device."""
    import jax
    from flax import nnx

    sys.path.insert(0, str(HERE))
    import sharded_step

    model, tx = _build(layer)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    x, y = _data()
    step = sharded_step.make_step(graphdef, tx)
    p, _, _, loss, _ = step(params, rest, jax.jit(tx.init)(params), x, y)
    np.savez(out / "single.npz", loss=np.asarray(loss), **_flat(p))


def run_worker(out: pathlib.Path, layer: str, process_id: int, num_processes: int, port: int):
    """One process of the distributed step (call before anything else touches JAX)."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"localhost:{port}",
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=60,
    )
    from flax import nnx
    from jax.experimental import multihost_utils
    from jax.sharding import NamedSharding

    sys.path.insert(0, str(HERE))
    import sharded_step

    n_local = jax.local_device_count()
    mesh = sharded_step.make_mesh((num_processes, n_local))
    # every row of the mesh is one process's devices: 'data' spans the processes
    rows = [{d.process_index for d in row} for row in mesh.devices]
    assert rows == [{i} for i in range(num_processes)], rows

    model, tx = _build(layer)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    p_sh = jax.tree.map(lambda s: NamedSharding(mesh, s), sharded_step.param_specs(model, params))
    opt_state = jax.jit(tx.init)(jax.device_put(params, p_sh))
    (ps, rs, os_), sh = sharded_step.shard_everything(mesh, model, params, rest, opt_state)
    x, y = _data()
    per = BATCH // num_processes
    mine = slice(process_id * per, (process_id + 1) * per)
    xs = jax.make_array_from_process_local_data(sh[3], x[mine])
    ys = jax.make_array_from_process_local_data(sh[4], y[mine])
    assert xs.shape == x.shape and not xs.is_fully_addressable
    step = sharded_step.make_step(graphdef, tx, shardings=sh)
    new_p, _, _, loss, _ = step(ps, rs, os_, xs, ys)
    gathered = multihost_utils.process_allgather(new_p, tiled=True)
    loss = np.asarray(loss.addressable_shards[0].data)  # replicated: every copy is the loss
    specs = {k: str(v.sharding.spec) for k, v in new_p["layers"][0].items()}
    np.savez(
        out / f"process{process_id}.npz",
        loss=loss,
        **_flat(gathered),
    )
    (out / f"process{process_id}.json").write_text(
        json.dumps(
            {
                "process_count": jax.process_count(),
                "devices": jax.device_count(),
                "local_devices": n_local,
                "layer0_specs": specs,
            }
        )
    )
    jax.distributed.shutdown()


def free_port() -> int:
    """A TCP port on localhost that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("JAX_ENABLE_X64", None)
    return env


def launch(
    out: pathlib.Path,
    *,
    layer: str = "s4d",
    num_processes: int = 2,
    local_devices: int = 2,
    timeout: float = 300.0,
) -> dict:
    """Runs the workers and the single-process reference; compares their results.

    Every process runs with ``cwd=out`` and is killed if it is still running after
    ``timeout`` seconds (all of them are killed when one fails).

    Returns:
      ``{"loss_single", "loss_multi": per process, "loss_diff", "param_max_diff",
      "workers": each worker's report}``.

    Raises:
      RuntimeError: a process failed or timed out (with the tail of its output).
    """
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    me = str(pathlib.Path(__file__).resolve())
    common = ["--out", str(out), "--layer", layer]
    cmds = [
        [
            sys.executable,
            me,
            *common,
            "--worker",
            str(i),
            "--num-processes",
            str(num_processes),
            "--port",
            str(port),
        ]
        for i in range(num_processes)
    ]
    cmds.append([sys.executable, me, *common, "--single"])
    envs = [_env(local_devices)] * num_processes + [_env(1)]
    logs = [open(out / f"log{i}.txt", "w+") for i in range(len(cmds))]  # noqa: SIM115
    procs = []
    try:
        for cmd, env, log in zip(cmds, envs, logs, strict=True):
            procs.append(
                subprocess.Popen(cmd, env=env, cwd=out, stdout=log, stderr=subprocess.STDOUT)
            )
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs):
            failed = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
            if failed or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        bad = [i for i, p in enumerate(procs) if p.poll() != 0]
        if bad:
            tails = []
            for i in bad:
                logs[i].seek(0)
                tails.append(f"--- {' '.join(cmds[i][2:])}\n{logs[i].read()[-3000:]}")
            raise RuntimeError("processes failed or timed out:\n" + "\n".join(tails))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for log in logs:
            log.close()
    single = np.load(out / "single.npz")
    multi = [np.load(out / f"process{i}.npz") for i in range(num_processes)]
    workers = [json.loads((out / f"process{i}.json").read_text()) for i in range(num_processes)]
    keys = sorted(k for k in single.files if k != "loss")
    diffs = [float(np.max(np.abs(m[k] - single[k]))) for m in multi for k in keys]
    assert all(sorted(m.files) == sorted(single.files) for m in multi)
    return {
        "layer": layer,
        "loss_single": float(single["loss"]),
        "loss_multi": [float(m["loss"]) for m in multi],
        "loss_diff": max(abs(float(m["loss"]) - float(single["loss"])) for m in multi),
        "param_max_diff": max(diffs),
        "n_params": len(keys),
        "workers": workers,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=None)
    parser.add_argument("--layer", default="s4d", choices=["s4d", "s4", "s5"])
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--num-processes", type=int, default=2)
    parser.add_argument("--local-devices", type=int, default=2)
    parser.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--tol", type=float, default=1e-5)
    args = parser.parse_args(argv)
    if args.worker is not None:
        run_worker(args.out, args.layer, args.worker, args.num_processes, args.port)
        return 0
    if args.single:
        run_single(args.out, args.layer)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        res = launch(
            args.out or pathlib.Path(tmp),
            layer=args.layer,
            num_processes=args.num_processes,
            local_devices=args.local_devices,
            timeout=args.timeout,
        )
    res["ok"] = res["loss_diff"] <= args.tol and res["param_max_diff"] <= args.tol
    print(json.dumps(res))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
