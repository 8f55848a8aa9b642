"""Source of notebooks/03_ssm_kernels.ipynb (build with notebooks/_build/build.py)."""

# %% [markdown]
# # One SSM, three views: recurrence, convolution, streaming step
#
# A state space model channel $dx/dt = A x + B u$, $y = C x + D u$ (stable $A$:
# $\mathrm{Re}\,\mathrm{eig}(A) < 0$), discretised with step $\Delta t$ (`dt`), is the linear
# recurrence
#
# $$x_k = \bar A\,x_{k-1} + \bar B\,u_k, \qquad y_k = C x_k + D u_k,$$
#
# which unrolls into a causal convolution $y = K * u + D u$ with the kernel
# $K_l = C \bar A^l \bar B$, $l = 0, \dots, L-1$. S4-type layers *train* with the
# convolution (one FFT, parallel over the length) and *generate* with the recurrence
# (constant work per step). This notebook computes the same outputs all three ways with
# hippox and checks that they agree, plots the kernels of S4-LegS, S4-FouT and S4D-Lin, and
# times convolution against scans.
#
# **Shapes and conventions** (as in the hippox docstrings): `H` channels, each with its own
# step `dt` `(H,)`; a real system of even size `N` is stored as `M = N/2` complex modes,
# one of each conjugate pair, with $\mathrm{Im}\,\Lambda \le 0$ (`conj_sym=True`); its real
# output is $y = 2\,\mathrm{Re}(C x) + D u$. `Lambda`, `B`, `C` are `(H, M)` or `(M,)`,
# inputs `u` are `(batch, H, L)`, kernels `K` are `(H, L)`.

# %% [install]

# %%
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import hippox

plt.rcParams.update({"figure.dpi": 72, "axes.grid": True, "grid.alpha": 0.3})

# Small sizes for CI (`HIPPOX_NOTEBOOK_SMALL=1`); full size runs in about a minute on a laptop CPU.
SMALL = os.environ.get("HIPPOX_NOTEBOOK_SMALL") == "1"
H, N, L, BATCH = (2, 16, 256, 2) if SMALL else (4, 64, 2048, 2)
M = N // 2  # complex modes per channel (conjugate-symmetric half)
print(f"hippox {hippox.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}")
print(f"SMALL={SMALL}: H={H}, N={N} (M={M} modes), L={L}, batch={BATCH}")

key_dt, key_u, key_d, key_c, key_cr = jax.random.split(jax.random.key(0), 5)
dt = jnp.exp(jax.random.uniform(key_dt, (H,), minval=np.log(1e-3), maxval=np.log(1e-1)))
u = jax.random.normal(key_u, (BATCH, H, L))
D = jax.random.normal(key_d, (H,))
C = jax.random.normal(key_c, (H, M), jnp.complex64)  # standard complex normal


def max_abs(a, b):
    return float(jnp.max(jnp.abs(a - b)))


def check(differences, scale):
    """Prints the max abs differences and fails loudly if one exceeds 2% of `scale`.

    A loose bound (it leaves room for TPUs' reduced-precision float32 matmuls) that
    still catches any sign, index or convention error, and NaNs.
    """
    for name, value in differences.items():
        print(f"max |{name}|".ljust(42) + f"= {value:.1e}")
    tol = 2e-2 * scale
    bad = {name: value for name, value in differences.items() if not value <= tol}  # NaN too
    assert not bad, f"the views disagree (tolerance {tol:.1e}): {bad}"


# %% [markdown]
# ## 1. S4D-Lin: a diagonal SSM
#
# S4D-Lin uses $A = \mathrm{diag}(\Lambda)$ with $\Lambda_n = -\tfrac12 - i\pi n$
# (`hippox.diag_init("lin", N)`, shape `(M,)`), $B = 1$, zero-order hold. The three views:
#
# * **convolution**: `kernel_diag` (a Vandermonde product) and `causal_conv` (real FFT);
# * **recurrence**: `discretize_diag` gives $(\bar A, \bar B)$, `linear_recurrence` runs
#   $x_k = \bar A x_{k-1} + \bar B u_k$ over the whole sequence (states `(batch, H, L, M)`);
# * **streaming step**: `diag_step_params` once, then `diag_step` per sample (here a Python
#   loop over the first samples, as in autoregressive generation), or `scan_steps` over the
#   sequence (a `lax.scan` of the same step).

# %%
Lambda = hippox.diag_init("lin", N)  # (M,) complex64, Im <= 0
B = jnp.ones((M,), jnp.complex64)
print("Lambda[:4] =", np.round(np.asarray(Lambda[:4]), 3))

# convolution
K = hippox.kernel_diag(Lambda, B, C, dt, L)  # (H, L) float32
y_conv = hippox.causal_conv(u, K, D=D)  # (BATCH, H, L)

# recurrence
Ab, Bb = hippox.discretize_diag(Lambda, B, dt)  # (H, M) each
x = hippox.linear_recurrence(Ab, Bb[:, None, :] * u[..., None], diagonal=True)  # (BATCH, H, L, M)
y_rec = 2 * jnp.einsum("hm,bhlm->bhl", C, x).real + D[:, None] * u

# streaming: one sample at a time, then the whole sequence with scan_steps
params = hippox.diag_step_params(Lambda, B, C, dt, D)
step = jax.jit(hippox.diag_step)
state = hippox.init_state(params, (BATCH,))  # (BATCH, H, M) complex zeros
n_stream = 64
y_stream = []
for k in range(n_stream):
    state, y_k = step(params, state, u[..., k])  # u_k (BATCH, H) -> y_k (BATCH, H)
    y_stream.append(y_k)
y_stream = jnp.stack(y_stream, axis=-1)
y_scan, state_L = hippox.scan_steps(params, u)

# chunked: two halves with a carried state (long sequences in pieces)
y_a, state_a = hippox.forward_chunk_diag(params, u[..., : L // 2])
y_b, state_b = hippox.forward_chunk_diag(params, u[..., L // 2 :], state_a)
y_chunk = jnp.concatenate([y_a, y_b], axis=-1)

print(f"shapes: K {K.shape}, y {y_conv.shape}, states {x.shape}")
y_max = float(jnp.abs(y_conv).max())
print(f"max |y| = {y_max:.2f}")
differences = {
    "conv - recurrence": max_abs(y_conv, y_rec),
    "conv - scan_steps": max_abs(y_conv, y_scan),
    f"conv - streaming (first {n_stream})": max_abs(y_conv[..., :n_stream], y_stream),
    "conv - two chunks": max_abs(y_conv, y_chunk),
    "final state: scan - chunks": max_abs(state_L, state_b),
}
check(differences, y_max)

# %% [markdown]
# ## 2. S4-LegS: diagonal plus low rank
#
# S4 keeps the HiPPO-LegS operator in its NPLR form (notebook 01). With
# `Lambda, P, B, V = hippox.nplr("legs", N)` (shapes `(M,)`, `(1, M)`, `(M,)`, `(N, M)`) the
# real operator in the eigenbasis is diagonal plus low rank,
# $V_f^* A V_f = \mathrm{diag}(\Lambda_f) - \tilde P_f^\top \overline{\tilde P_f}$, on the
# conjugate-closed set of modes $\Lambda_f = [\Lambda, \bar\Lambda]$, $\tilde P_f = [\tilde P,
# \overline{\tilde P}]$. hippox stores one half (`conj_sym=True`); the low-rank term couples
# the two halves. A complex output vector `C` `(M,)` is the real output row
# $c = 2\,\mathrm{Re}(C V^*)$ in the original basis (and $C = c V$).
#
# * **convolution**: S4 parameterises the kernel by $\tilde C = C (I - \bar A^L)$
#   (`dplr_c_tilde`), which lets `kernel_dplr` evaluate the bilinear kernel at the roots of
#   unity with Cauchy sums and the Woodbury identity, without forming $\bar A$;
# * **recurrence** (independent reference): the real $N \times N$ HiPPO-LegS matrices
#   `hippox.transition("legs", N)`, discretised with `hippox.discretize(..., "bilinear")`,
#   run by `linear_recurrence`, read out with the real row $c$;
# * **streaming step**: `dplr_step_linear` ($O(M \cdot \mathrm{rank})$ per step, Woodbury
#   again) and `dplr_step_dense` (forms the $M \times M$ step matrix once). The steps use
#   the plain $C$.

# %%
Lambda, P, B, V = hippox.nplr("legs", N)
C_tilde = hippox.dplr_c_tilde(C, Lambda, P, dt, L)  # (H, M)
K = hippox.kernel_dplr(Lambda, P, B, C_tilde, dt, L)  # (H, L)
y_conv = hippox.causal_conv(u, K, D=D)

# the real system: A (N, N), b (N,), output rows c (H, N)
A, b = hippox.transition("legs", N)
c = 2 * jnp.einsum("hm,nm->hn", C, jnp.conj(V)).real
Ab, Bb = hippox.discretize(A, b, dt, method="bilinear")  # (H, N, N), (H, N)
x = hippox.linear_recurrence(Ab, Bb[:, None, :] * u[..., None])  # (BATCH, H, L, N), real
y_rec = jnp.einsum("hn,bhln->bhl", c, x) + D[:, None] * u

p_linear = hippox.dplr_step_linear_params(Lambda, P, B, C, dt, D)
y_linear, _ = hippox.scan_steps(p_linear, u)
p_dense = hippox.dplr_step_dense_params(Lambda, P, B, C, dt, D)
y_dense, _ = hippox.scan_steps(p_dense, u)

state = hippox.init_state(p_linear, (BATCH,))
step = jax.jit(hippox.dplr_step_linear)
y_stream = []
for k in range(n_stream):
    state, y_k = step(p_linear, state, u[..., k])
    y_stream.append(y_k)
y_stream = jnp.stack(y_stream, axis=-1)

y_max = float(jnp.abs(y_conv).max())
print(f"max |y| = {y_max:.2f}")
differences = {
    "conv - real N x N recurrence": max_abs(y_conv, y_rec),
    "conv - scan of dplr_step_linear": max_abs(y_conv, y_linear),
    "conv - scan of dplr_step_dense": max_abs(y_conv, y_dense),
    f"conv - streaming (first {n_stream})": max_abs(y_conv[..., :n_stream], y_stream),
}
check(differences, y_max)

# %% [markdown]
# ## 3. The kernels are the HiPPO basis functions
#
# With the output row $c = e_n$ (the $n$-th state of the real system, $C = e_n V$) the kernel
# is the impulse response of that state. For the time-invariant LegS memory it approximates
# $\Delta t\,\omega(s)\,g_n(s)$ with $\omega(s) = e^{-s}$ and
# $g_n(s) = \sqrt{2n+1}\,P_n(2e^{-s} - 1)$ (`hippox.basis`, notebook 01): the kernels *are* the
# basis functions, sampled. (Sampled at the middle of each step, $s = (l + \tfrac12)\Delta t$:
# the bilinear $\bar B = (I - \tfrac{\Delta t}{2} A)^{-1} \Delta t B$ carries half a step of
# decay; the error is $O(\Delta t^2)$.) FouT's states are windowed cosines and sines; S4D-Lin's
# modes are damped oscillations $e^{-s/2}\cos(\pi n s)$. Each S4 kernel is checked against the
# brute-force kernel $c \bar A^l \bar B$ of the real $N \times N$ matrices (`kernel_naive`);
# the dashed lines are the continuous-time LegS basis functions.


# %% [markdown]
# One precaution, as in S4's layers: the Cauchy/Woodbury evaluation of `kernel_dplr` needs
# $\mathrm{Re}(\Lambda) < 0$ strictly. FouT's normal part is skew-symmetric, so its spectrum is
# purely imaginary and contains an exact $0$ (the constant function), which would be divided by
# at the $z = 1$ node. Like hippox's layers (and the reference S4 init), we clamp
# $\mathrm{Re}(\Lambda) \le -10^{-4}$; the kernel then differs from the undamped system by a
# factor $e^{-10^{-4} s}$, invisible here.


# %%
def nplr_clamped(measure):
    """hippox.nplr with Re(Lambda) <= -1e-4, as the S4 layers parameterise it."""
    Lambda, P, B, V = hippox.nplr(measure, N)
    return jnp.minimum(Lambda.real, -1e-4) + 1j * Lambda.imag, P, B, V


def hippo_kernels(measure, c, dt, L):
    """S4 kernels (H, L) of the NPLR form of `measure` for real output rows c (H, N)."""
    Lambda, P, B, V = nplr_clamped(measure)
    C = c.astype(jnp.complex64) @ V  # (H, M)
    return hippox.kernel_dplr(Lambda, P, B, hippox.dplr_c_tilde(C, Lambda, P, dt, L), dt, L)


def naive_kernels(measure, c, dt, L):
    """Brute-force kernels c Ab^l Bb of the real N x N system (bilinear)."""
    A, b = hippox.transition(measure, N)
    Ab, Bb = hippox.discretize(A, b, dt, method="bilinear")
    return hippox.kernel_naive(Ab, Bb, c, L)


n_show = 4
L_K = 256 if SMALL else 1024
dt_legs, dt_fout, dt_lin = 8.0 / L_K, 3.0 / L_K, 10.0 / L_K  # kernels span 8, 3, 10 time units
unit = jnp.eye(n_show, N)  # c = e_0 ... e_3 (original basis), one per channel
unit_modes = jnp.eye(n_show, M, dtype=jnp.complex64)  # C = e_0 ... e_3 in the diagonal basis
cases = {}  # title: (kernels (n_show, L_K), dt)
differences = {}
for measure, title, step_size in [("legs", "S4-LegS", dt_legs), ("fout", "S4-FouT", dt_fout)]:
    dts_unit = jnp.full(n_show, step_size)
    K_fast = hippo_kernels(measure, unit, dts_unit, L_K)
    K_ref = naive_kernels(measure, unit, dts_unit, L_K)
    cases[f"{title} (nplr('{measure}'))"] = (K_fast, step_size)
    differences[f"{title}: kernel_dplr - kernel_naive"] = max_abs(K_fast, K_ref)
K_lin = hippox.kernel_diag(
    hippox.diag_init("lin", N), jnp.ones(M), unit_modes, jnp.full(n_show, dt_lin), L_K
)
cases["S4D-Lin (diag_init('lin'))"] = (K_lin, dt_lin)
check(differences, float(jnp.abs(cases["S4-LegS (nplr('legs'))"][0]).max()))

s_mid = (np.arange(L_K) + 0.5) * dt_legs  # step midpoints
G = np.exp(-s_mid)[:, None] * np.asarray(hippox.basis("legs", n_show, s_mid))  # ω g, (L_K, n)
K_legs = np.asarray(cases["S4-LegS (nplr('legs'))"][0]) / dt_legs
err = np.abs(K_legs - G.T).max()
print(f"LegS, dt = {dt_legs:.1e}: max |K/dt - ω g| = {err:.1e} (max |ω g| = {np.abs(G).max():.2f})")

fig, axes = plt.subplots(1, 3, figsize=(13, 3.3), constrained_layout=True)
for ax, (title, (Ks, step_size)) in zip(axes, cases.items(), strict=True):
    s_axis = np.arange(L_K) * step_size
    for n in range(n_show):
        ax.plot(s_axis, np.asarray(Ks[n]) / step_size, color=f"C{n}", label=f"state {n}")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("s = l · dt (time ago)")
axes[0].plot(s_mid, G, "k--", lw=0.8)
axes[0].set_ylabel("K_l / dt")
axes[0].legend(fontsize=8)
plt.show()

# %% [markdown]
# A layer starts from random $C$ and one `dt` per channel, log-uniform in $[10^{-3}, 10^{-1}]$:
# each channel then looks at a different timescale. The kernels of the three inits with the
# same random $C$ for three values of `dt` (on a log length axis):

# %%
dts = jnp.array([1e-3, 1e-2, 1e-1])
C_rand = jax.random.normal(jax.random.key(7), (M,), jnp.complex64)
L_R = 1024 if SMALL else 4096
kernels, differences = {}, {}
for measure in ["legs", "fout"]:
    Lambda, P, B, V = nplr_clamped(measure)
    C_tilde = hippox.dplr_c_tilde(jnp.broadcast_to(C_rand, (3, M)), Lambda, P, dts, L_R)
    kernels[f"S4-{measure}"] = hippox.kernel_dplr(Lambda, P, B, C_tilde, dts, L_R)
    c_rand = jnp.broadcast_to(2 * (C_rand @ jnp.conj(V).T).real, (3, N))  # the real output row
    K_ref = naive_kernels(measure, c_rand, dts, L_R)
    differences[f"S4-{measure}: kernel_dplr - kernel_naive"] = max_abs(
        kernels[f"S4-{measure}"], K_ref
    )
kernels["S4D-Lin"] = hippox.kernel_diag(hippox.diag_init("lin", N), jnp.ones(M), C_rand, dts, L_R)
check(differences, float(jnp.abs(kernels["S4-legs"]).max()))

fig, axes = plt.subplots(1, 3, figsize=(13, 3.2), constrained_layout=True)
for ax, (name, Ks) in zip(axes, kernels.items(), strict=True):
    for i, d in enumerate(np.asarray(dts)):
        ax.semilogx(np.arange(1, L_R + 1), np.asarray(Ks[i]), lw=1, label=f"dt = {d:g}")
    ax.set_title(f"{name}, random C")
    ax.set_xlabel("lag l + 1")
axes[0].legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 4. Speed: convolution vs scans
#
# One forward pass $u \mapsto y$ of a diagonal (S4D) layer, jitted, computed as
#
# * **conv**: `kernel_diag` + `causal_conv` (FFT, $O(L \log L)$, parallel over the length);
# * **scan**: `scan_steps` (a sequential `lax.scan` over the $L$ steps);
# * **assoc. scan**: `linear_recurrence(..., method="associative")` (parallel prefix scan,
#   depth $O(\log L)$, materialises all states) and the output contraction.
#
# Timings are the best of a few runs after compilation, with `block_until_ready` (noisy on a
# shared or busy machine). The convolution scales best. The sequential scan pays a fixed cost
# per step, and its $L$ steps cannot run in parallel, which matters most on accelerators. The
# associative scan does more work than the sequential one and keeps all `(batch, H, L, M)`
# states in memory: it only pays off where there is parallel hardware to spend.

# %%
H_T, N_T, B_T = (8, 32, 2) if SMALL else (16, 64, 2)
Ls = [256, 1024] if SMALL else [256, 1024, 4096, 16384]
M_T = N_T // 2
Lambda_t = hippox.diag_init("lin", N_T)
B_t = jnp.ones((M_T,), jnp.complex64)
C_t = jax.random.normal(jax.random.key(8), (H_T, M_T), jnp.complex64)
dt_t = jnp.logspace(-3, -1, H_T)
D_t = jnp.ones((H_T,))


@jax.jit
def by_conv(u):
    K = hippox.kernel_diag(Lambda_t, B_t, C_t, dt_t, u.shape[-1])
    return hippox.causal_conv(u, K, D=D_t)


@jax.jit
def by_scan(u):
    params = hippox.diag_step_params(Lambda_t, B_t, C_t, dt_t, D_t)
    return hippox.scan_steps(params, u)[0]


@jax.jit
def by_assoc(u):
    Ab, Bb = hippox.discretize_diag(Lambda_t, B_t, dt_t)
    x = hippox.linear_recurrence(
        Ab, Bb[:, None, :] * u[..., None], diagonal=True, method="associative"
    )
    return 2 * jnp.einsum("hm,bhlm->bhl", C_t, x).real + D_t[:, None] * u


def best_time(fn, u, repeats=3 if SMALL else 5):
    fn(u).block_until_ready()  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(u).block_until_ready()
        times.append(time.perf_counter() - start)
    return min(times)


methods = {"conv": by_conv, "scan": by_scan, "assoc. scan": by_assoc}
timings = {name: [] for name in methods}
print(f"H={H_T}, N={N_T}, batch={B_T}, times in ms; max |conv - other| in the last column")
print(f"{'L':>6} | " + " | ".join(f"{name:>11}" for name in methods) + " | max diff")
for n_steps in Ls:
    u_t = jax.random.normal(jax.random.key(n_steps), (B_T, H_T, n_steps))
    for name, fn in methods.items():
        timings[name].append(best_time(fn, u_t))
    y_ref = by_conv(u_t)
    diff = max(max_abs(y_ref, by_scan(u_t)), max_abs(y_ref, by_assoc(u_t)))
    row = " | ".join(f"{1e3 * timings[name][-1]:11.2f}" for name in methods)
    print(f"{n_steps:6d} | {row} | {diff:.1e}")

fig, ax = plt.subplots(figsize=(6, 3.5))
for name in methods:
    ax.loglog(Ls, 1e3 * np.array(timings[name]), "o-", label=name)
ax.set_xlabel("sequence length L")
ax.set_ylabel("ms per forward pass")
ax.set_title(f"S4D layer forward on {jax.devices()[0].platform}")
ax.legend()
plt.show()
