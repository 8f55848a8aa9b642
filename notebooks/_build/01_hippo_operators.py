"""Source of notebooks/01_hippo_operators.ipynb (build with notebooks/_build/build.py)."""

# %% [markdown]
# # HiPPO operators: matrices, spectra, NPLR form and bases
#
# A HiPPO operator is a pair $(A, B)$ for the linear ODE
#
# $$\frac{dx}{dt} = A\,x(t) + B\,u(t),$$
#
# whose state $x(t) \in \mathbb{R}^N$ holds the coefficients of the *past* of the input
# $u$ in an orthogonal basis: the basis and the weighting of the past (the *measure*) are
# what distinguish LegS, LegT, LagT, FouT, ... A stable $A$ has eigenvalues with negative
# real part.
#
# This notebook shows, for every measure that `hippox` knows:
#
# 1. the transition matrices $A$ as heatmaps (`hippox.transition`, `hippox.MEASURES`);
# 2. their spectra in the complex plane;
# 3. the normal-plus-low-rank (NPLR) form used by S4 (`hippox.nplr`), checked numerically:
#    $A + P^\top P = 2\,\mathrm{Re}(V \Lambda V^*)$;
# 4. the basis functions and measures (`hippox.basis`): the LegT / LagT / LegS picture of
#    the HiPPO paper, with an orthonormality check and the identity linking the operator
#    to its basis.
#
# Symbols: `N` state size, `A` `(N, N)`, `B` `(N,)`, `Lambda` `(N/2,)`, `P` `(rank, N)`
# (original basis) or `(rank, N/2)` (eigenbasis), `V` `(N, N/2)`.

# %% [install]

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import scipy.linalg

import hippox

# float64 everywhere in this notebook: it checks identities to ~1e-13. The hippox
# functions take dtype=jnp.float64 only when x64 is on; float32 is their default.
jax.config.update("jax_enable_x64", True)
plt.rcParams.update({"figure.dpi": 72, "axes.grid": True, "grid.alpha": 0.3})

# Small sizes for CI (`HIPPOX_NOTEBOOK_SMALL=1`); the defaults run in seconds on a laptop.
SMALL = os.environ.get("HIPPOX_NOTEBOOK_SMALL") == "1"
N_HEAT = 8 if SMALL else 16  # state size of the heatmaps
N_SPEC = 16 if SMALL else 64  # state size of the spectra and NPLR checks
print(f"hippox {hippox.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}")
print(f"SMALL={SMALL}: N_HEAT={N_HEAT}, N_SPEC={N_SPEC}")

# %% [markdown]
# ## 1. The transition matrices
#
# `hippox.MEASURES` lists every name `hippox.transition(measure, N)` accepts (the aliases
# `fourier` = `fout` and `fourier_diag` = `foud` included). `random` and `diagonal` are
# ablations drawn from a `key`. Each panel shows $A$ (row = output index $n$, column = input
# index $k$) on a symmetric colour scale, with $\max |A_{nk}|$ in the title. The structure
# differs a lot: LegS is lower triangular, LegT/LMU have a checkerboard sign pattern above
# the diagonal, the Laguerre measures are lower triangular with constant columns, the
# Fourier ones are $2 \times 2$ rotation blocks plus a rank-one term.

# %%
ALIASES = {"fourier": "fout", "fourier_diag": "foud"}
RANDOM = ("random", "diagonal")
names = [m for m in hippox.MEASURES if m not in ALIASES]
print("hippox.MEASURES =", hippox.MEASURES)


def get_transition(measure, N):
    """(A, B) as float64 NumPy arrays; the random ablations get a fixed key."""
    key = jax.random.key(0) if measure in RANDOM else None
    A, B = hippox.transition(measure, N, key=key, dtype=jnp.float64)
    return np.asarray(A), np.asarray(B)


ncols = 5
nrows = -(-len(names) // ncols)
fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.6 * nrows), constrained_layout=True)
for ax, measure in zip(axes.flat, names, strict=False):
    A, B = get_transition(measure, N_HEAT)
    vmax = np.abs(A).max()
    ax.imshow(A, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_title(f"{measure}\nmax|A| = {vmax:.3g}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
for ax in axes.flat[len(names) :]:
    ax.axis("off")
fig.suptitle(f"HiPPO transition matrices A (N = {N_HEAT}; red > 0, blue < 0)")
plt.show()

# %% [markdown]
# The closed forms are easy to read off. LegS, for instance, is
# $A_{nk} = -\sqrt{2n+1}\sqrt{2k+1}$ for $n > k$, $-(n+1)$ on the diagonal and $0$ above,
# with $B_n = \sqrt{2n+1}$:

# %%
A, B = get_transition("legs", 4)
q = np.sqrt(2 * np.arange(4) + 1.0)
A_closed = -np.tril(np.outer(q, q), -1) - np.diag(np.arange(4) + 1.0)
print(np.round(A, 4))
print("max |A - closed form| =", np.abs(A - A_closed).max(), "  max |B - q| =", np.abs(B - q).max())

# %% [markdown]
# ## 2. Spectra
#
# Eigenvalues of $A$ in the complex plane (computed in float64 with NumPy). With
# $dx/dt = A x + B u$ a stable operator has all eigenvalues in the left half plane
# $\mathrm{Re}\,\lambda < 0$. Remarks:
#
# * LegS is triangular: its eigenvalues are exactly $-1, -2, \dots, -N$ (real, spread out:
#   a wide range of timescales);
# * LagT is triangular with a constant diagonal: all eigenvalues are $-1/2$ (one Jordan
#   block);
# * the Fourier measures (`fout`, `fourier_decay`, `fourier2`) have an eigenvalue exactly
#   $0$: state slot 1 holds $\sin(0 \cdot s) = 0$ and is decoupled from the input;
# * `legsd` and `foud` are normal (no low-rank term), so their eigenvalues sit on the
#   line $\mathrm{Re} = -1/2$;
# * the `random` ablation ($A \sim \mathcal{N}(0, 1/N^2)$) is not stable in general.

# %%
fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols, 2.5 * nrows), constrained_layout=True)
rows = []
for ax, measure in zip(axes.flat, names, strict=False):
    A, _ = get_transition(measure, N_SPEC)
    ev = np.linalg.eigvals(A)
    rows.append((measure, ev.real.max(), ev.real.min(), np.abs(ev.imag).max()))
    ax.scatter(ev.real, ev.imag, s=10, color="C0")
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_title(measure, fontsize=9)
    ax.tick_params(labelsize=7)
for ax in axes.flat[len(names) :]:
    ax.axis("off")
fig.suptitle(f"Eigenvalues of A (N = {N_SPEC}); x: Re, y: Im")
plt.show()

print(f"{'measure':>14} | {'max Re':>10} | {'min Re':>10} | {'max |Im|':>9}")
for measure, re_max, re_min, im_max in rows:
    print(f"{measure:>14} | {re_max:10.4f} | {re_min:10.4f} | {im_max:9.3f}")

# %% [markdown]
# ## 3. The NPLR form (the S4 parameterisation)
#
# For the measures in `hippox.NPLR_MEASURES`, adding a low-rank term makes $A$ normal:
# $A + P^\top P = -c\,I + S$ with $S$ skew-symmetric (`hippox.rank_correction` gives the
# real `P` of shape `(rank, N)`; rank 2 for LegT, 1 otherwise). A normal matrix is unitarily
# diagonalisable; its eigenvalues come in conjugate pairs, and `hippox.nplr` keeps one of
# each pair, the half with $\mathrm{Im}\,\Lambda \le 0$:
#
# $$A + P^\top P = 2\,\mathrm{Re}\left(V\,\mathrm{diag}(\Lambda)\,V^*\right),\qquad
# V \in \mathbb{C}^{N \times N/2},\ \Lambda \in \mathbb{C}^{N/2}.$$
#
# `nplr` also returns $P$ and $B$ in the eigenbasis, $\tilde P = (V^* P^\top)^\top$ and
# $\tilde B = V^* B$. With the full unitary $V_f = [V, \bar V]$ ($N \times N$),
# $\Lambda_f = [\Lambda, \bar\Lambda]$ and $\tilde P_f = [\tilde P, \overline{\tilde P}]$, the
# operator in the eigenbasis is *diagonal plus low rank* (DPLR), the form S4 computes with:
#
# $$V_f^* A V_f = \mathrm{diag}(\Lambda_f) - \tilde P_f^\top\,\overline{\tilde P_f}.$$
#
# Below every identity is checked in float64 (residuals relative to $\max|A|$).

# %%
print(f"hippox.NPLR_MEASURES = {hippox.NPLR_MEASURES}\n")
print(
    f"{'measure':>14} | rank | {'A+PᵀP vs 2Re(VΛV*)':>19} | {'V*V - I':>8} | "
    f"{'DPLR':>8} | {'Re Λ':>16} | max Im Λ"
)
for measure in hippox.NPLR_MEASURES:
    rank = 2 if measure == "legt" else 1
    A, B = get_transition(measure, N_SPEC)
    P = np.asarray(hippox.rank_correction(measure, N_SPEC, rank=rank, dtype=jnp.float64))
    Lambda, Pt, Bt, V = (
        np.asarray(x) for x in hippox.nplr(measure, N_SPEC, rank=rank, dtype=jnp.float64)
    )
    normal = 2.0 * (V @ np.diag(Lambda) @ V.conj().T).real
    scale = np.abs(A).max()
    err_nplr = np.abs(A + P.T @ P - normal).max() / scale
    err_unitary = np.abs(V.conj().T @ V - np.eye(N_SPEC // 2)).max()
    Vf = np.concatenate([V, V.conj()], axis=1)
    Pf = np.concatenate([Pt, Pt.conj()], axis=1)
    dplr = np.diag(np.concatenate([Lambda, Lambda.conj()])) - Pf.T @ Pf.conj()
    err_eig = np.abs(Vf.conj().T @ A @ Vf - dplr).max() / scale
    print(
        f"{measure:>14} | {rank:4d} | {err_nplr:19.1e} | {err_unitary:8.1e} | {err_eig:8.1e} | "
        f"[{Lambda.real.min():6.3f}, {Lambda.real.max():6.3f}] | {Lambda.imag.max():.2e}"
    )

# %% [markdown]
# Note the real parts: the normal part of LegS (and `tlagt`, `foud`) is $-\tfrac12 I$ plus a
# skew matrix, while for LegT, LagT and the Fourier measures it is purely skew
# ($\mathrm{Re}\,\Lambda = 0$): there the damping lives entirely in the low-rank term.
#
# The low-rank term moves the eigenvalues a lot. For LegS, the eigenvalues of $A$ are
# $-1, \dots, -N$, while those of the normal part $A + P^\top P$ all have real part $-1/2$
# and imaginary parts spread over a wide band (the full spectrum is $\Lambda$ together with
# its conjugates). Keeping only $\Lambda$ and dropping $P$ gives the diagonal **S4D-LegS**
# initialisation (`hippox.diag_init("legs", N)`).

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
for ax, measure in zip(axes, ["legs", "legt", "fout"], strict=True):
    rank = 2 if measure == "legt" else 1
    A, _ = get_transition(measure, N_SPEC)
    Lambda = np.asarray(hippox.nplr(measure, N_SPEC, rank=rank, dtype=jnp.float64).Lambda)
    ev = np.linalg.eigvals(A)
    ax.scatter(ev.real, ev.imag, s=14, label="eig(A)")
    full = np.concatenate([Lambda, Lambda.conj()])
    ax.scatter(full.real, full.imag, s=14, marker="x", color="0.6", label="conj(Λ)")
    ax.scatter(Lambda.real, Lambda.imag, s=14, marker="x", color="C3", label="Λ (Im ≤ 0, kept)")
    ax.set_title(f"{measure}: eig(A) vs eig(A + PᵀP)")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("Re")
    ax.set_ylabel("Im (symlog)")
axes[0].legend(fontsize=8)
plt.show()

Lambda_s4d = np.asarray(hippox.diag_init("legs", N_SPEC, dtype=jnp.float64))
Lambda_nplr = np.asarray(hippox.nplr("legs", N_SPEC, dtype=jnp.float64).Lambda)
print(
    "S4D-LegS Lambda == nplr('legs').Lambda:",
    np.allclose(Lambda_s4d, Lambda_nplr, rtol=0, atol=1e-12),
)

# %% [markdown]
# ## 4. Measures and basis functions
#
# The state $x(t)$ of a HiPPO memory holds the coefficients of the input's past in a basis
# $g_n$, orthonormal under the measure $\omega$:
#
# $$u(t - s) \approx \sum_n x_n(t)\,g_n(s),\qquad s \ge 0 \text{ is the time ago}.$$
#
# `hippox.basis(measure, N, s)` evaluates $g_n(s)$ as an `(len(s), N)` array. The three
# classic measures of the HiPPO paper:
#
# * **LegT** (translated Legendre): uniform weight on a sliding window
#   $[t - \theta, t]$ ($\theta = 2$ by default), $g_n(s) = \sqrt{2n+1}\,P_n(1 - 2s/\theta)$;
# * **LagT** (translated Laguerre): exponentially decaying weight $e^{-s}$ on the whole
#   past. hippox puts the decay into the basis, $g_n(s) = e^{-s/2} L_n(s)$ with $\omega = 1$,
#   so that $g_m g_n = e^{-s} L_m L_n$ carries the paper's weight;
# * **LegS** (scaled Legendre): uniform weight on the whole history $[0, t]$; the window
#   *stretches* with $t$, so the basis is written in the fraction of the history
#   $s/t \in [0, 1]$ (`scaled=True`): $g_n = \sqrt{2n+1}\,P_n(1 - 2 s/t)$.
#
# The top row draws the measure at two current times ($t = 5$ and $t = 10$): LegT and LagT
# *translate* with $t$, LegS *stretches*. The bottom row draws the first four basis
# functions at $t = 10$ over absolute time, each on the support of its measure (LegT zoomed
# in on its window).

# %%
t_now = [5.0, 10.0]
tt = np.linspace(0.0, 10.0, 1001)  # absolute time axis
theta = 2.0
n_show = 4


def measure_and_basis(name, t):
    """Measure weight and first basis functions over absolute time tt, at current time t."""
    s = np.clip(t - tt, 0.0, None)  # time ago (clipped; masked below)
    past = tt <= t
    if name == "LegT":
        w = np.where(past & (s <= theta), 1.0 / theta, 0.0)
        G = np.asarray(hippox.basis("legt", n_show, s, theta=theta))
    elif name == "LagT":
        w = np.where(past, np.exp(-s), 0.0)
        G = np.asarray(hippox.basis("lagt", n_show, s))
    else:  # LegS: uniform on [0, t], basis in the fraction s/t
        w = np.where(past, 1.0 / t, 0.0)
        G = np.asarray(hippox.basis("legs", n_show, np.clip(s / t, 0.0, 1.0), scaled=True))
    G = np.where((w > 0)[:, None], G, np.nan)  # draw each basis on its support only
    return w, G


fig, axes = plt.subplots(2, 3, figsize=(12, 5.5), constrained_layout=True)
axes[1, 0].set_xlim(7.5, 10.2)  # LegT remembers only the window [t - θ, t]: zoom in
for j, name in enumerate(["LegT", "LagT", "LegS"]):
    for t, style in zip(t_now, ["--", "-"], strict=True):
        w, G = measure_and_basis(name, t)
        axes[0, j].fill_between(tt, w, alpha=0.25 if t == t_now[1] else 0.1, color="C0")
        axes[0, j].plot(tt, w, style, color="C0", label=f"weight at t = {t:g}")
        axes[0, j].axvline(t, color="k", lw=0.8, ls=style)
    for n in range(n_show):
        axes[1, j].plot(tt, G[:, n], label=f"g_{n}")
    axes[0, j].set_title(f"{name}: weight on the past")
    axes[1, j].set_title(f"{name}: basis functions at t = {t_now[1]:g}")
    axes[1, j].set_xlabel("absolute time")
    axes[0, j].legend(fontsize=8, loc="upper left")
axes[1, 2].legend(fontsize=8, loc="upper center", ncols=4)
plt.show()

# %% [markdown]
# **Orthonormality.** Each basis is orthonormal under its measure: the Gram matrix
# $\int g_m(s)\,g_n(s)\,\omega(s)\,ds$ is the identity. We compute it with Gauss quadrature
# (NumPy's `leggauss` / `laggauss`), independently of hippox. Exceptions documented in
# `hippox.basis`: the Fourier slot 1 ($\sin 0 = 0$) has norm 0, and the Legendre Memory
# Unit (`lmu`) basis is orthogonal with norms $1/(2n+1)$.

# %%
N_GRAM = 8 if SMALL else 32
xg, wg = np.polynomial.legendre.leggauss(4 * N_GRAM)  # nodes/weights on [-1, 1]


def on_interval(a, b):
    """Gauss-Legendre nodes and weights for ∫_a^b."""
    return a + (b - a) * (xg + 1) / 2, wg * (b - a) / 2


def gram(G, w):
    return G.T @ (w[:, None] * G)


checks = {}
s, w = on_interval(0.0, 2.0)  # legt, θ = 2: ω = 1/θ on [0, θ]
checks["legt"] = (gram(np.asarray(hippox.basis("legt", N_GRAM, s)), w / 2.0), np.eye(N_GRAM))
s, w = on_interval(0.0, 1.0)  # lmu, θ = 1: ω = 1 on [0, 1], norms 1/(2n+1)
G = np.asarray(hippox.basis("lmu", N_GRAM, s))
checks["lmu"] = (gram(G, w), np.diag(1.0 / (2 * np.arange(N_GRAM) + 1.0)))
s, w = on_interval(0.0, 1.0)  # legs scaled: ω = 1 on [0, 1]
G = np.asarray(hippox.basis("legs", N_GRAM, s, scaled=True))
checks["legs (scaled)"] = (gram(G, w), np.eye(N_GRAM))
x, w = on_interval(0.0, 1.0)  # legs LTI: ω = e^{-s} on [0, ∞); substitute x = e^{-s}
G = np.asarray(hippox.basis("legs", N_GRAM, -np.log(x)))
checks["legs (LTI)"] = (gram(G, w), np.eye(N_GRAM))
s, w = np.polynomial.laguerre.laggauss(2 * N_GRAM)  # ∫ e^{-s} f(s) ds on [0, ∞)
# lagt: ω = 1 and g_n = e^{-s/2} L_n, so g_m g_n ω = e^{-s} L_m L_n (the laggauss weight)
G = np.asarray(hippox.basis("lagt", N_GRAM, s)) * np.exp(s / 2)[:, None]
checks["lagt"] = (gram(G, w), np.eye(N_GRAM))
s, w = on_interval(0.0, 2.0)  # fout: ω = 1/2 on [0, 2]
want = np.eye(N_GRAM)
want[1, 1] = 0.0
checks["fout"] = (gram(np.asarray(hippox.basis("fout", N_GRAM, s)), w / 2.0), want)

print(f"N = {N_GRAM}: max |Gram - expected|")
for name, (got, want) in checks.items():
    print(f"  {name:>14}: {np.abs(got - want).max():.1e}")

# %% [markdown]
# **Operator ↔ basis.** For the exact-projection measures the impulse response of the
# memory *is* the weighted basis: $e^{sA} B = \omega(s)\,g(s)$. (An impulse fed in $s$ time
# units ago leaves the coefficients $\omega(s) g_n(s)$ of a delta function.) Check it with
# SciPy's `expm` for the time-invariant LegS memory ($\omega = e^{-s}$,
# $g_n = \sqrt{2n+1}\,P_n(2e^{-s} - 1)$) and LagT ($\omega = 1$, $g_n = e^{-s/2} L_n(s)$):

# %%
N_ID = 8 if SMALL else 24
s_test = np.array([0.1, 0.5, 1.0, 2.0, 4.0])
for measure, omega in [("legs", np.exp(-s_test)), ("lagt", np.ones_like(s_test))]:
    A, B = get_transition(measure, N_ID)
    impulse = np.stack([scipy.linalg.expm(si * A) @ B for si in s_test])
    weighted = omega[:, None] * np.asarray(hippox.basis(measure, N_ID, s_test))
    rel = np.abs(impulse - weighted).max() / np.abs(impulse).max()
    print(f"{measure}: max |expm(sA) B - ω(s) g(s)| / max |expm(sA) B| = {rel:.1e}")

# %% [markdown]
# **Next:** `02_online_function_approximation.ipynb` runs these memories on signals
# (`hippox.hippo_project`, `hippox.reconstruct`); `03_ssm_kernels.ipynb` turns the NPLR
# form into S4 convolution kernels.
