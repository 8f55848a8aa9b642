"""Benchmarks of streaming a long sequence: one call vs chunks with a carry vs step mode.

Group ``chunked_forward`` (``ratio`` = baseline median / row median, same run), for the
NNX S4D and S5 layers on ``u`` of shape ``(B, L, H)``:

* ``one_call`` (baseline): ``layer(u)``, the whole sequence in convolution/scan mode;
* ``chunks_C``: the sequence in ``L / C`` chunks of length ``C``, the carry passed
  along (``layer(u_chunk, initial_carry=carry, return_carry=True)`` under
  `jax.lax.scan` over the chunks), so memory is bounded by a chunk;
* ``step_loop``: `jax.lax.scan` of ``layer.step`` over the ``L`` positions.

All three give the same outputs (checked once per row before timing). ``memory`` is
XLA's estimate for the compiled program (arguments + outputs + temporaries), the
peak the program needs. Full size: B = 4, H = 128, N = 64, L = 8192, chunks of 512 and
2048. ``quick=True`` runs the same rows at small sizes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _harness import Row, measure
from flax import nnx

import hippox.nnx


def build(name: str, H: int, N: int):
    """The NNX layer ``name`` (``s4d`` or ``s5``) with ``H`` channels and state size ``N``."""
    if name == "s4d":
        return hippox.nnx.S4D(H, N, rngs=nnx.Rngs(0))
    if name == "s5":
        return hippox.nnx.S5(H, N, rngs=nnx.Rngs(0))
    raise ValueError(f"`name` must be 's4d' or 's5', got {name!r}.")


def one_call(graphdef, state, u):
    return nnx.merge(graphdef, state)(u)


def chunked(graphdef, state, u, chunk):
    layer = nnx.merge(graphdef, state)
    B, L, H = u.shape
    chunks = jnp.moveaxis(u.reshape(B, L // chunk, chunk, H), 1, 0)

    def body(carry, u_c):
        return layer(u_c, initial_carry=carry, return_carry=True)

    _, ys = jax.lax.scan(body, layer.initialize_carry((B,)), chunks)
    return jnp.moveaxis(ys, 0, 1).reshape(B, L, H)


def step_loop(graphdef, state, u):
    layer = nnx.merge(graphdef, state)
    sp = layer.setup_step()

    def body(carry, u_k):
        return layer.step(carry, u_k, sp)

    _, ys = jax.lax.scan(body, layer.initialize_carry(u.shape[:1]), jnp.moveaxis(u, 1, 0))
    return jnp.moveaxis(ys, 0, 1)


def run(quick: bool) -> list[Row]:
    B, H, N, L = (2, 8, 8, 256) if quick else (4, 128, 64, 8192)
    chunks = (32, 128) if quick else (512, 2048)
    repeats = 3 if quick else 5
    u = jnp.asarray(np.random.default_rng(0).standard_normal((B, L, H)), jnp.float32)
    rows: list[Row] = []
    for name in ("s4d", "s5"):
        graphdef, state = nnx.split(build(name, H, N))
        params = f"{name} B={B} H={H} N={N} L={L}"
        ref = jax.jit(one_call, static_argnums=0)(graphdef, state, u)
        scale = float(jnp.max(jnp.abs(ref)))
        cases = [("one_call", one_call, ())]
        cases += [(f"chunks_{c}", chunked, (c,)) for c in chunks]
        cases += [("step_loop", step_loop, ())]
        for label, fn, extra in cases:
            static = (0, 3) if extra else (0,)
            y = jax.jit(fn, static_argnums=static)(graphdef, state, u, *extra)
            err = float(jnp.max(jnp.abs(y - ref))) / scale
            row = measure(
                "chunked_forward",
                label,
                params,
                fn,
                graphdef,
                state,
                u,
                *extra,
                repeats=repeats,
                baseline=label == "one_call",
                static_argnums=static,
            )
            row.note = f"{B * L / row.median_s:,.0f} elem/s; max rel. diff vs one call {err:.1e}"
            rows.append(row)
    return rows


if __name__ == "__main__":
    import sys

    from run import table

    print(table(run(quick="--quick" in sys.argv)))
