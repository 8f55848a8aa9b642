"""The causal FFT convolution against the straightforward JAX one and the FFT floor.

Group ``causal_conv`` (``u`` ``(B, H, L)``, ``K`` ``(H, L)``, ``D`` ``(H,)``, float32;
full size B = 8, H = 256, L = 4096):

* ``pad + rfft + mul + irfft`` (baseline): the plain JAX convolution, no non-finite
  policy: explicit zero padding to ``2L``, both transforms, product, inverse, slice, ``+ D u``.
* `hippox.causal_conv`: the same with the non-finite policy (module docstring of
  ``hippox/_src/conv.py``).
* ``rfft + irfft of u`` (floor): only the two transforms of the input at length ``2L``,
  with nothing else; no convolution of this size can be cheaper with XLA's FFT.
* ``torch rfft conv`` (only when torch is importable; not a dependency): the same plain
  convolution in PyTorch on the CPU, timed eagerly (median of the same repeats).
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from _harness import Row, measure

import hippox


def _plain(u: jax.Array, K: jax.Array, D: jax.Array) -> jax.Array:
    L = u.shape[-1]
    n = 2 * L
    up = jnp.pad(u, [(0, 0)] * (u.ndim - 1) + [(0, n - L)])
    kp = jnp.pad(K, [(0, 0)] * (K.ndim - 1) + [(0, n - L)])
    y = jnp.fft.irfft(jnp.fft.rfft(up) * jnp.fft.rfft(kp), n=n)[..., :L]
    return y + D[:, None] * u


def _floor(u: jax.Array, K: jax.Array, D: jax.Array) -> jax.Array:
    n = 2 * u.shape[-1]
    return jnp.fft.irfft(jnp.fft.rfft(u, n=n), n=n)


def _torch_row(params: str, u: np.ndarray, K: np.ndarray, D: np.ndarray, repeats: int):
    try:
        import torch
    except ImportError:
        return None
    tu, tk, td = (torch.from_numpy(np.asarray(x)) for x in (u, K, D))
    L = tu.shape[-1]

    def conv():
        y = torch.fft.irfft(torch.fft.rfft(tu, n=2 * L) * torch.fft.rfft(tk, n=2 * L), n=2 * L)
        return y[..., :L] + td[:, None] * tu

    conv()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        conv()
        times.append(time.perf_counter() - t0)
    return Row(
        "causal_conv",
        "torch rfft conv",
        params,
        statistics.median(times),
        0.0,
        None,
        note=f"torch {torch.__version__}, eager",
    )


def run(quick: bool) -> list[Row]:
    B, H, L = (2, 32, 1024) if quick else (8, 256, 4096)
    repeats = 3 if quick else 7
    rng = np.random.default_rng(0)
    u = jnp.asarray(rng.standard_normal((B, H, L)), jnp.float32)
    K = jnp.asarray(rng.standard_normal((H, L)) / L, jnp.float32)
    D = jnp.asarray(rng.standard_normal(H), jnp.float32)
    params = f"B={B} H={H} L={L}"
    rows = [
        measure(
            "causal_conv",
            "pad + rfft + mul + irfft",
            params,
            _plain,
            u,
            K,
            D,
            repeats=repeats,
            baseline=True,
        ),
        measure(
            "causal_conv",
            "hippox.causal_conv",
            params,
            lambda u, K, D: hippox.causal_conv(u, K, D=D),
            u,
            K,
            D,
            repeats=repeats,
        ),
        measure(
            "causal_conv", "rfft + irfft of u (floor)", params, _floor, u, K, D, repeats=repeats
        ),
    ]
    torch_row = _torch_row(params, u, K, D, repeats)
    return rows + ([] if torch_row is None else [torch_row])
