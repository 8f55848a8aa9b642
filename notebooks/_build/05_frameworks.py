"""Source of notebooks/05_frameworks.ipynb (build with notebooks/_build/build.py)."""

# ruff: noqa: E402  (the second cell installs Haiku/Equinox before the imports)

# %% [markdown]
# # hippox in your framework: one S4D layer in pure JAX, Flax NNX, Flax linen, Haiku and Equinox
#
# The numerical core of hippox is framework-free: **initializers** with the
# `jax.nn.initializers` signature `init(key, shape, dtype) -> jax.Array`, and **pure
# functions** (`hippox.kernel_diag`, `hippox.causal_conv`, ...) of plain arrays. The layers
# in `hippox.nnx`, `hippox.linen`, `hippox.haiku` and `hippox.equinox` are thin shells that
# create the same parameters with the same initializers and call the same pure code
# (`hippox.S4DConfig.apply`). This notebook:
#
# 1. calls the S4D initializers directly and writes the S4D forward pass as a pure function;
# 2. builds the library's S4D layer in all four frameworks, copies one parameter set across,
#    and shows that the outputs (and gradients) are the same numbers;
# 3. drops the initializers into your *own* modules: `self.param(...)` in linen,
#    `nnx.Param(init(rngs.params(), shape, dtype))` in NNX,
#    `hk.get_parameter(..., init=hippox.haiku.to_haiku(init))` in Haiku, and a plain call in
#    an Equinox constructor.
#
# **The S4D layer.** Per channel $h$: $dx/dt = \mathrm{diag}(\Lambda_h)\,x + B_h u$,
# $y = 2\,\mathrm{Re}(C_h x) + D_h u$, discretised with step $\Delta t_h = e^{\log \Delta t_h}$
# (zero-order hold) and run as a causal convolution with the kernel
# $K_{h,l} = 2\,\mathrm{Re}\sum_m C_{h,m} \bar B_{h,m} \bar A_{h,m}^{\,l}$. A real system of
# even state size `N` is stored as `M = N/2` complex modes, one of each conjugate pair, with
# $\mathrm{Im}\,\Lambda \le 0$; stability ($\mathrm{Re}\,\Lambda < 0$) is built in by storing
# `Lambda_re` through a transform ($\mathrm{Re}\,\Lambda = -e^{\texttt{Lambda\_re}}$).
# Complex quantities are stored as real leaves (a trailing axis of 2 for real and imaginary
# parts), so every optax transform treats them correctly.
#
# | leaf | shape | initializer |
# |---|---|---|
# | `Lambda_re` | `(H, M)` | `hippox.initializers.lambda_re("legs")` (deterministic) |
# | `Lambda_im` | `(H, M)` | `hippox.initializers.lambda_im("legs")` (deterministic) |
# | `B` | `(H, M, 2)` | `hippox.initializers.b("legs")` (deterministic) |
# | `C` | `(H, M, 2)` | `hippox.initializers.c()` (random) |
# | `D` | `(H,)` | `hippox.initializers.d()` (random) |
# | `log_dt` | `(H,)` | `hippox.initializers.log_dt(dt_min=1e-3, dt_max=1e-1)` (random) |
#
# Inputs are channel-last: `u` has shape `(batch, L, H)`, and so has the output `y`.

# %% [install]

# %%
# Haiku and Equinox are optional dependencies of hippox: install them when missing (Colab).
import importlib.util
import subprocess
import sys

missing = [
    pip_name
    for module, pip_name in (("haiku", "dm-haiku"), ("equinox", "equinox"))
    if importlib.util.find_spec(module) is None
]
if missing:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)

# %%
import os

import equinox as eqx
import haiku as hk
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from flax import linen as nn
from flax import nnx

import hippox
import hippox.equinox
import hippox.haiku
import hippox.linen
import hippox.nnx
from hippox import initializers

plt.rcParams.update({"figure.dpi": 72, "axes.grid": True, "grid.alpha": 0.3})

# Small sizes for CI (`HIPPOX_NOTEBOOK_SMALL=1`); full size runs in seconds.
SMALL = os.environ.get("HIPPOX_NOTEBOOK_SMALL") == "1"
H, N, L, BATCH = (2, 8, 32, 2) if SMALL else (4, 32, 256, 3)
M = N // 2  # stored complex modes per channel
print(f"hippox {hippox.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}")
print(f"SMALL={SMALL}: H={H}, N={N} (M={M} modes), L={L}, batch={BATCH}")

u = jax.random.normal(jax.random.key(0), (BATCH, L, H))  # float32 input (batch, L, H)


def max_abs(a, b):
    return float(jnp.max(jnp.abs(jnp.asarray(a) - jnp.asarray(b))))


# %% [markdown]
# ## 1. The initializers and the pure forward pass
#
# Each initializer is built by a factory with keyword-only options and called as
# `init(key, shape, dtype)`. The shape is the source of truth: the initializer reads `M` (and
# `H`) from it. The deterministic ones (the HiPPO-LegS spectrum and `B`) accept `key=None`; the
# random ones refuse it with a clear message.

# %%
SPECS = {  # name: (initializer, shape), as in the table above
    "Lambda_re": (initializers.lambda_re("legs"), (H, M)),
    "Lambda_im": (initializers.lambda_im("legs"), (H, M)),
    "B": (initializers.b("legs"), (H, M, 2)),
    "C": (initializers.c(), (H, M, 2)),
    "D": (initializers.d(), (H,)),
    "log_dt": (initializers.log_dt(dt_min=1e-3, dt_max=1e-1), (H,)),
}
keys = jax.random.split(jax.random.key(1), len(SPECS))
params = {
    name: init(k, shape, jnp.float32)
    for k, (name, (init, shape)) in zip(keys, SPECS.items(), strict=True)
}
for name, value in params.items():
    print(f"{name:>9s}: {str(value.shape):>12s} {value.dtype}")

Lambda = initializers.lambda_from_params(params["Lambda_re"], params["Lambda_im"])
print("Lambda[0, :4] =", np.round(np.asarray(Lambda[0, :4]), 3), "(S4D-LegS: Re = -1/2)")
print("dt =", np.round(np.asarray(jnp.exp(params["log_dt"])), 4))
print("Lambda_im without a key:", initializers.lambda_im("legs")(None, (M,))[:3], "...")
try:
    initializers.c()(None, (H, M, 2))
except ValueError as err:
    print("C without a key -> ValueError:", err)

# %% [markdown]
# The S4D forward pass from those leaves, as a pure function of arrays: rebuild the complex
# values, compute the kernel `(H, L)` with `hippox.kernel_diag` (a Vandermonde product; zero-
# order hold, conjugate-symmetric half by default) and convolve with `hippox.causal_conv`
# (FFT; it takes the length axis last, hence the transposes). This is the function every
# framework below ends up calling (the library's own version is `hippox.S4DConfig.apply`).


# %%
def s4d_forward(p, u):
    """Pure S4D: `p` the six leaves above, `u` (..., L, H) -> `y` (..., L, H)."""
    Lambda = initializers.lambda_from_params(p["Lambda_re"], p["Lambda_im"])  # (H, M) complex
    B = jax.lax.complex(p["B"][..., 0], p["B"][..., 1])  # (H, M)
    C = jax.lax.complex(p["C"][..., 0], p["C"][..., 1])  # (H, M)
    K = hippox.kernel_diag(Lambda, B, C, jnp.exp(p["log_dt"]), u.shape[-2])  # (H, L)
    y = hippox.causal_conv(jnp.swapaxes(u, -1, -2), K, D=p["D"])  # (..., H, L)
    return jnp.swapaxes(y, -1, -2)


y_pure = jax.jit(s4d_forward)(params, u)
y_config = hippox.S4DConfig(H, N).apply(params, u)
print(
    f"y {y_pure.shape} {y_pure.dtype};  max |s4d_forward - S4DConfig.apply| = "
    f"{max_abs(y_pure, y_config):.1e}"
)

# %% [markdown]
# ## 2. The library layer in four frameworks
#
# Each framework's `S4D` creates its parameters with the initializers of section 1 (the same
# names and shapes everywhere) from its own random keys. The deterministic leaves (`Lambda_re`,
# `Lambda_im`, `B`) therefore agree at once; the random ones (`C`, `D`, `log_dt`) differ until
# we copy one parameter set across. We copy the `params` dict of section 1 into each framework
# in its own idiom:
#
# * **Flax NNX**: write into the `nnx.Param` attributes (`layer.C[...] = new_C`), or all of
#   them at once with `nnx.update(layer, nnx.State(params))`;
# * **Flax linen**: pass `{"params": params}` to `apply`;
# * **Haiku**: pass `{"s4d": params}` (the module name) to `apply`;
# * **Equinox**: `eqx.tree_at(lambda m: m.params, layer, params)`.
#
# The outputs then agree to the last bit (the printed differences are 0): all five run the
# same float32 operations in the same order.

# %%
# Flax NNX
layer_nnx = hippox.nnx.S4D(H, N, rngs=nnx.Rngs(0))
init_nnx = nnx.to_pure_dict(nnx.state(layer_nnx, nnx.Param))

# Flax linen
layer_linen = hippox.linen.S4D(H=H, N=N)
init_linen = layer_linen.init(jax.random.key(0), u)["params"]

# Haiku: the module lives inside a function transformed by hk.transform
s4d_haiku = hk.without_apply_rng(hk.transform(lambda u: hippox.haiku.S4D(H, N)(u)))
init_haiku = s4d_haiku.init(jax.random.key(0), u)["s4d"]

# Equinox
layer_eqx = hippox.equinox.S4D(H, N, key=jax.random.key(0))
init_eqx = layer_eqx.params

inits = {"NNX": init_nnx, "linen": init_linen, "Haiku": init_haiku, "Equinox": init_eqx}
print(f"{'leaf':>9s} {'shape':>12s}  " + "  ".join(f"{fw:>8s}" for fw in inits))
for name in SPECS:
    shapes = {tuple(p[name].shape) for p in inits.values()}
    same = ["same" if max_abs(p[name], params[name]) == 0 else "differs" for p in inits.values()]
    print(f"{name:>9s} {str(shapes.pop()):>12s}  " + "  ".join(f"{s:>8s}" for s in same))
print("('same': equal to the section-1 leaf before any copying)")

# %%
nnx.update(layer_nnx, nnx.State(params))  # NNX: write the values into the Param attributes
outputs = {
    "pure": y_pure,
    "NNX": layer_nnx(u),
    "linen": layer_linen.apply({"params": params}, u),
    "Haiku": s4d_haiku.apply({"s4d": params}, u),
    "Equinox": eqx.tree_at(lambda m: m.params, layer_eqx, params)(u),
}
for fw, y in outputs.items():
    print(f"{fw:>8s}: y {y.shape} {y.dtype},  max |y - y_pure| = {max_abs(y, y_pure):.1e}")

# %%
fig, (ax_k, ax_y) = plt.subplots(1, 2, figsize=(12, 3.4), constrained_layout=True)
K = layer_nnx.kernel(L)  # (H, L), the library layer's kernel
dts = np.exp(np.asarray(params["log_dt"]))
for h in (int(np.argmin(dts)), int(np.argmax(dts))):  # the smallest and the largest step
    ax_k.plot(K[h], lw=1, label=f"channel {h}, dt = {dts[h]:.4f}")
ax_k.set(xlabel="lag l", ylabel="K[h, l]", title="S4D-LegS kernels (the shared parameters)")
ax_k.legend(fontsize=8)
T = min(L, 64)
styles = {"pure": "-", "NNX": "--", "linen": ":", "Haiku": "-.", "Equinox": (0, (1, 3))}
for fw, y in outputs.items():
    ax_y.plot(y[0, :T, 0], ls=styles[fw], lw=2, label=fw)
ax_y.set(xlabel="t", ylabel="y[0, t, 0]", title=f"the same output in five frameworks (t < {T})")
ax_y.legend(fontsize=8, ncol=5)
plt.show()

# %% [markdown]
# ### Gradients and optax labels
#
# The same numbers hold for gradients: below the gradient of `mean(y²)` with respect to
# every leaf, taken the idiomatic way in each framework (`nnx.grad` on the module, `jax.grad`
# on the linen / Haiku parameter dicts, `eqx.filter_grad` on the Equinox module).
# `hippox.optax_labels` (the `'ssm'` / `'default'` grouping for `optax.multi_transform`)
# reads the leaf names from the pytree paths, so it labels all four parameter trees alike.


# %%
def loss(y):
    return jnp.mean(y**2)


grads = {
    "pure": jax.grad(lambda p: loss(s4d_forward(p, u)))(params),
    "NNX": nnx.to_pure_dict(nnx.grad(lambda m: loss(m(u)))(layer_nnx)),
    "linen": jax.grad(lambda p: loss(layer_linen.apply({"params": p}, u)))(params),
    "Haiku": jax.grad(lambda p: loss(s4d_haiku.apply(p, u)))({"s4d": params})["s4d"],
    "Equinox": eqx.filter_grad(lambda m: loss(m(u)))(
        eqx.tree_at(lambda m: m.params, layer_eqx, params)
    ).params,
}
for fw, g in list(grads.items())[1:]:
    diff = max(max_abs(g[name], grads["pure"][name]) for name in SPECS)
    print(f"{fw:>8s}: max over leaves of |grad - grad_pure| = {diff:.1e}")

trees = {
    "NNX": nnx.state(layer_nnx, nnx.Param),
    "linen": {"params": params},
    "Haiku": {"s4d": params},
    "Equinox": layer_eqx,
}
for fw, tree in trees.items():
    labels = jax.tree_util.tree_flatten_with_path(hippox.optax_labels(tree))[0]
    ssm = [jax.tree_util.keystr(p, simple=True, separator="/") for p, v in labels if v == "ssm"]
    print(f"{fw:>8s}: 'ssm' group = {ssm}")

# %% [markdown]
# ## 3. The initializers in your own modules
#
# You do not need the library's layers to use hippox: the initializers fit each framework's
# own parameter API, and the pure function does the rest. Here is a minimal S4D in each
# framework, built from `SPECS` (section 1) and `s4d_forward`:
#
# * **linen**: `self.param(name, init, shape, dtype)`: linen calls `init(key, shape, dtype)`
#   with a key from the `params` stream;
# * **NNX**: `nnx.Param(init(rngs.params(), shape, dtype))`;
# * **Haiku**: Haiku initializers take `(shape, dtype)` and draw keys from the transform, so
#   `hippox.haiku.to_haiku(init)` adapts them:
#   `hk.get_parameter(name, shape, dtype, init=hippox.haiku.to_haiku(init))`;
# * **Equinox**: no adapter, call `init(key, shape, dtype)` in the constructor.


# %%
class MyS4DLinen(nn.Module):
    @nn.compact
    def __call__(self, u):
        p = {
            name: self.param(name, init, shape, jnp.float32)
            for name, (init, shape) in SPECS.items()
        }
        return s4d_forward(p, u)


class MyS4DNNX(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        for name, (init, shape) in SPECS.items():
            setattr(self, name, nnx.Param(init(rngs.params(), shape, jnp.float32)))

    def __call__(self, u):
        return s4d_forward({name: getattr(self, name)[...] for name in SPECS}, u)


def my_s4d_haiku(u):
    p = {
        name: hk.get_parameter(name, shape, jnp.float32, init=hippox.haiku.to_haiku(init))
        for name, (init, shape) in SPECS.items()
    }
    return s4d_forward(p, u)


class MyS4DEqx(eqx.Module):
    params: dict

    def __init__(self, key):
        keys = jax.random.split(key, len(SPECS))
        self.params = {
            name: init(k, shape, jnp.float32)
            for k, (name, (init, shape)) in zip(keys, SPECS.items(), strict=True)
        }

    def __call__(self, u):
        return s4d_forward(self.params, u)


mine_linen = MyS4DLinen()
mine_nnx = MyS4DNNX(nnx.Rngs(0))
mine_haiku = hk.without_apply_rng(hk.transform(my_s4d_haiku))
mine_eqx = MyS4DEqx(jax.random.key(0))
# Freshly initialised: the parameter trees have the library's names and shapes.
fresh = {
    "linen": mine_linen.init(jax.random.key(0), u)["params"],
    "NNX": nnx.to_pure_dict(nnx.state(mine_nnx, nnx.Param)),
    "Haiku": mine_haiku.init(jax.random.key(0), u)["~"],  # "~": parameters of a bare function
    "Equinox": mine_eqx.params,
}
for fw, p in fresh.items():
    ok = jax.tree.map(jnp.shape, dict(p)) == jax.tree.map(jnp.shape, params)
    print(f"{fw:>8s}: names and shapes as the library layer: {ok}")

# With the shared parameters: the same outputs as the library layers.
nnx.update(mine_nnx, nnx.State(params))
mine = {
    "linen": mine_linen.apply({"params": params}, u),
    "NNX": mine_nnx(u),
    "Haiku": mine_haiku.apply({"~": params}, u),
    "Equinox": eqx.tree_at(lambda m: m.params, mine_eqx, params)(u),
}
for fw, y in mine.items():
    print(f"{fw:>8s} (own module): max |y - library NNX layer| = {max_abs(y, outputs['NNX']):.1e}")

# %% [markdown]
# Haiku can even initialise without an rng when every initializer is deterministic (the
# HiPPO spectrum and `B` here): `to_haiku` passes `key=None`, and a random initializer says
# clearly that it needs a key.


# %%
def spectrum_only():
    return {
        name: hk.get_parameter(name, shape, jnp.float32, init=hippox.haiku.to_haiku(init))
        for name, (init, shape) in SPECS.items()
        if name in ("Lambda_re", "Lambda_im", "B")
    }


no_rng = hk.transform(spectrum_only).init(None)["~"]
print({name: value.shape for name, value in no_rng.items()})
print("equal to section 1:", all(max_abs(no_rng[n], params[n]) == 0 for n in no_rng))
try:
    hk.transform(my_s4d_haiku).init(None, u)
except ValueError as err:
    print("init(None) with a random initializer -> ValueError:", err)

# %% [markdown]
# ## Summary
#
# * One set of initializers (`hippox.initializers`, the `jax.nn.initializers` signature) and
#   one set of pure functions (`hippox.kernel_diag`, `hippox.causal_conv`, or the whole layer
#   as `hippox.S4DConfig.apply`) serve every framework.
# * The library layers `hippox.nnx.S4D`, `hippox.linen.S4D`, `hippox.haiku.S4D` and
#   `hippox.equinox.S4D` share parameter names and shapes, so a parameter dict moves between
#   them unchanged, with identical outputs and gradients. The same holds for the HiPPO-RNN
#   cell (`HiPPORNNCell` in each of the four namespaces).
# * `hippox.optax_labels` gives the S4 optimiser grouping in all of them.
