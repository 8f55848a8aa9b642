"""Source of notebooks/02_online_function_approximation.ipynb (build with build.py)."""

# %% [markdown]
# # Online function approximation with HiPPO memories
#
# A HiPPO memory reads a signal $f$ one sample at a time and keeps, in a state of fixed size
# $N$, the coefficients $c(t)$ of the signal's past in an orthogonal basis:
#
# $$\frac{dc}{dt} = A\,c + B\,f \quad(\text{stable } A:\ \mathrm{Re}\,\mathrm{eig}(A) < 0),
# \qquad f(t - s) \approx \sum_{n<N} c_n(t)\,g_n(s).$$
#
# `hippox.hippo_project(f, measure, N, ...)` runs this memory over a sampled signal
# `f` of shape `(..., L)` and returns the coefficients after every sample, `(..., L, N)` (or
# only the last, `(..., N)`, with `final_only=True`); `hippox.reconstruct(c, measure, s)`
# evaluates $\sum_n c_n g_n(s)$ at times ago `s`. This notebook covers
#
# 1. LegS, the memory of the *whole* history, over a long signal;
# 2. the window memories LegT, LagT and FouT;
# 3. the reconstruction error as a function of $N$;
# 4. the timescale robustness of LegS: the same signal sampled at two rates gives nearly the
#    same coefficients, LegT and LagT do not;
# 5. irregularly sampled input and missing samples (`timestamps`, NaN).

# %% [install]

# %%
import os
import time

import jax
import matplotlib.pyplot as plt
import numpy as np

import hippox

plt.rcParams.update({"figure.dpi": 72, "axes.grid": True, "grid.alpha": 0.3})

# Small sizes for CI (`HIPPOX_NOTEBOOK_SMALL=1`); full size runs in about a minute on a laptop CPU.
SMALL = os.environ.get("HIPPOX_NOTEBOOK_SMALL") == "1"
L_LEGS = 2_000 if SMALL else 200_000  # samples fed to the LegS memory
N = 32 if SMALL else 64  # memory size
print(f"hippox {hippox.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}")
print(f"SMALL={SMALL}: L_LEGS={L_LEGS:,}, N={N}")


def band_limited_noise(key, L, cutoff):
    """White noise low-passed to `cutoff` cycles per L samples, unit RMS, float32 (L,)."""
    key_re, key_im = jax.random.split(key)
    spectrum = np.zeros(L // 2 + 1, complex)
    spectrum[1 : cutoff + 1] = np.asarray(jax.random.normal(key_re, (cutoff,))) + 1j * np.asarray(
        jax.random.normal(key_im, (cutoff,))
    )
    f = np.fft.irfft(spectrum, n=L)
    return (f / np.sqrt(np.mean(f**2))).astype(np.float32)


def rel_rms(approx, truth):
    """Relative RMS error ||approx - truth|| / ||truth||."""
    approx, truth = np.asarray(approx), np.asarray(truth)
    return float(np.sqrt(np.mean((approx - truth) ** 2) / np.mean(truth**2)))


# %% [markdown]
# ## 1. LegS: a memory of the whole history
#
# LegS weighs the whole history $[0, t]$ uniformly. Its memory is *scale invariant*,
# $dc/dt = (A c + B f)/t$, so it needs no step size: `hippo_project(f, "legs", N)` takes
# sample $k$ at time $t_k = k + 1$ and runs in $O(N)$ per step (no $N \times N$ matrix).
# From the final state alone, `reconstruct(c, "legs", s, scaled=True)` gives the history at
# the *fraction* $s \in [0, 1]$ of the record ago: $f(t (1 - s)) \approx \sum_n c_n g_n(s)$.
#
# The signal is band-limited noise with `cutoff` cycles over the record; the memory has
# $N$ numbers to remember all of it.

# %%
cutoff = N // 4
f = band_limited_noise(jax.random.key(0), L_LEGS, cutoff)
start = time.perf_counter()
c_legs = hippox.hippo_project(f, "legs", N, final_only=True).block_until_ready()
elapsed = time.perf_counter() - start
print(f"f: {f.shape} {f.dtype} -> final coefficients c: {c_legs.shape} {c_legs.dtype}")
print(f"{L_LEGS:,} LegS steps in {elapsed:.2f} s (compilation included)")

s = (np.arange(2000) + 0.5) / 2000  # fractions of the record ago, 0 = now
idx = np.clip(np.round((1.0 - s) * L_LEGS).astype(int) - 1, 0, L_LEGS - 1)  # sample at t(1 - s)
approx = np.asarray(hippox.reconstruct(c_legs, "legs", s, scaled=True))
print(f"relative RMS error of the reconstructed history: {rel_rms(approx, f[idx]):.2e}")

fig, ax = plt.subplots(figsize=(11, 3))
stride = max(1, L_LEGS // 5000)
ax.plot(np.arange(L_LEGS)[::stride], f[::stride], color="0.7", lw=3, label="signal")
ax.plot(idx, approx, "C3", lw=1, label=f"LegS reconstruction (N = {N})")
ax.set_xlabel("sample")
ax.set_title(f"The whole history of {L_LEGS:,} samples, from the final {N} coefficients")
ax.legend(loc="upper right")
plt.show()

# %% [markdown]
# ## 2. Window memories: LegT, LagT, FouT
#
# The time-invariant measures remember a *recent* stretch of the past, in their own time
# units, so they need a step size `dt` (time per sample):
#
# * LegT: a sliding window of length $\theta = 2$ (Legendre polynomials on it);
# * LagT: exponentially decaying weight $e^{-s}$ (Laguerre functions), nothing is cut off
#   but the far past fades;
# * FouT: a sliding window of length 2 (sines and cosines).
#
# We choose `dt` so that a window spans `WINDOW` samples (for LagT: 12 time units, where
# $e^{-s}$ is tiny), feed the memories a few windows of a signal, and reconstruct the last
# window from the final state with `reconstruct(c, measure, s)`, `s` = time ago.

# %%
WINDOW = 250 if SMALL else 2000  # samples per window
length = {"legt": 2.0, "lagt": 12.0, "fout": 2.0}  # window length in time units
g = band_limited_noise(jax.random.key(1), 4 * WINDOW, cutoff=4 * N // 8)

fig, ax = plt.subplots(figsize=(11, 3.2))
ax.plot(np.arange(WINDOW), g[-WINDOW:], color="0.6", lw=2, label="signal")
for i, measure in enumerate(["legt", "lagt", "fout"]):
    dt = length[measure] / WINDOW
    c = hippox.hippo_project(g, measure, N, dt=dt, final_only=True)
    ago = np.arange(WINDOW)  # samples ago
    approx = np.asarray(hippox.reconstruct(c, measure, ago * dt))
    truth = g[len(g) - 1 - ago]
    err = rel_rms(approx, truth)
    print(f"{measure}: dt = {dt:.2e}, relative RMS error over the window: {err:.2e}")
    ax.plot(WINDOW - 1 - ago, approx, f"C{i}", lw=1, label=measure)
ax.set_xlabel("sample within the last window")
ax.set_title(f"Reconstruction of the last {WINDOW} samples (N = {N})")
ax.legend(loc="upper left")
plt.show()

# %% [markdown]
# LegT is accurate over its window; LagT reconstructs the recent past well and degrades
# into the past (where its weight $e^{-s}$ is small); FouT has a Gibbs-type error where
# the window wraps around (its memory is exact only for signals periodic in the window).
#
# ## 3. Reconstruction error vs $N$
#
# A signal with `cutoff` cycles has about `2 * cutoff` degrees of freedom, and a memory of
# size $N$ can only hold so many. Below, LegS over the whole record for two bandwidths: the
# error stays large while $N$ is too small and drops steeply once $N$ is a few times the
# cutoff (about 4 times here), down to a floor set by float32 arithmetic and the
# discretisation of the memory.

# %%
L_ERR = 2_000 if SMALL else 20_000
Ns = [8, 16, 32] if SMALL else [8, 16, 32, 48, 64, 96, 128]
cutoffs = [4, 8] if SMALL else [8, 24]
s = (np.arange(1000) + 0.5) / 1000
idx = np.clip(np.round((1.0 - s) * L_ERR).astype(int) - 1, 0, L_ERR - 1)

fig, ax = plt.subplots(figsize=(6, 3.5))
for cut in cutoffs:
    x = band_limited_noise(jax.random.key(cut), L_ERR, cut)
    errs = []
    for n in Ns:
        c = hippox.hippo_project(x, "legs", n, final_only=True)
        errs.append(rel_rms(hippox.reconstruct(c, "legs", s, scaled=True), x[idx]))
    ax.semilogy(Ns, errs, "o-", label=f"cutoff = {cut} cycles")
    print(
        f"cutoff {cut:2d}: " + ", ".join(f"N={n}: {e:.1e}" for n, e in zip(Ns, errs, strict=True))
    )
ax.set_xlabel("N")
ax.set_ylabel("relative RMS error")
ax.set_title(f"LegS reconstruction of {L_ERR:,} samples")
ax.legend()
plt.show()

# %% [markdown]
# ## 4. Timescale robustness of LegS
#
# Take one continuous signal on $[0, 1]$ and sample it at two rates, $L$ and $4L$ samples.
# At the same *physical* time $t$ the two LegS memories have seen the same history, only
# sampled more or less densely, and since LegS has no timescale they hold (nearly) the same
# coefficients.
#
# The time-invariant memories have a timescale: their step size `dt` (time units per
# sample). A model that does not know the sampling rate uses the same `dt` for both, and then
# LegT's window covers 4 times less of the signal at the higher rate, and LagT's decay is 4
# times faster: the coefficients differ completely. Telling them the rate (`dt / 4` at the
# higher rate) fixes it, which is exactly the hyperparameter LegS does not need.


# %%
def smooth_signal(key, n_freq=12):
    """A random sum of sinusoids with up to n_freq cycles on [0, 1], evaluable at any t."""
    k_freq, k_amp, k_phase = jax.random.split(key, 3)
    freqs = np.asarray(jax.random.uniform(k_freq, (n_freq,), minval=0.5, maxval=n_freq))
    amps = np.asarray(jax.random.normal(k_amp, (n_freq,))) / np.sqrt(n_freq)
    phases = np.asarray(jax.random.uniform(k_phase, (n_freq,), maxval=2 * np.pi))
    return lambda t: np.sum(
        amps * np.sin(2 * np.pi * freqs * np.asarray(t)[..., None] + phases), -1
    )


signal = smooth_signal(jax.random.key(3))
L1, RATE = (250, 4) if SMALL else (1000, 4)
L2 = RATE * L1
t1 = np.arange(1, L1 + 1) / L1  # sample times of the two rates
t2 = np.arange(1, L2 + 1) / L2
f1 = signal(t1).astype(np.float32)
f2 = signal(t2).astype(np.float32)
k1 = np.arange(L1 // 100 - 1, L1, L1 // 100)  # common times: sample k1 of rate 1 ...
k2 = RATE * (k1 + 1) - 1  # ... is sample k2 of rate 2
assert np.allclose(t1[k1], t2[k2])

N_TS = 32
dt = {"legt": 2.0 / (L1 / 4), "lagt": 1.0 / (L1 / 10)}  # windows of L1/4 and ~L1/10 samples
runs = {  # name: (measure, kwargs at rate 1, kwargs at rate 2)
    "legs": ("legs", {}, {}),
    "legt, same dt": ("legt", {"dt": dt["legt"]}, {"dt": dt["legt"]}),
    "lagt, same dt": ("lagt", {"dt": dt["lagt"]}, {"dt": dt["lagt"]}),
    "legt, dt / 4": ("legt", {"dt": dt["legt"]}, {"dt": dt["legt"] / RATE}),
    "lagt, dt / 4": ("lagt", {"dt": dt["lagt"]}, {"dt": dt["lagt"] / RATE}),
}
coefs = {}
print(f"relative difference ||c(rate 1) - c(rate 4)|| / ||c(rate 1)||, N = {N_TS}")
for name, (measure, kw1, kw2) in runs.items():
    c1 = np.asarray(hippox.hippo_project(f1, measure, N_TS, **kw1))[k1]
    c2 = np.asarray(hippox.hippo_project(f2, measure, N_TS, **kw2))[k2]
    coefs[name] = (c1, c2)
    rel = np.linalg.norm(c1 - c2, axis=-1) / np.linalg.norm(c1, axis=-1)
    print(f"  {name:>14}: median {np.median(rel):.1e}, max {rel.max():.1e} at {len(k1)} times")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), constrained_layout=True)
for ax, name in zip(axes, ["legs", "legt, same dt"], strict=True):
    c1, c2 = coefs[name]
    for n in range(1, 4):
        ax.plot(t1[k1], c1[:, n], "-", color=f"C{n}", lw=3, alpha=0.4, label=f"c_{n}, {L1} samples")
        ax.plot(t2[k2], c2[:, n], "--", color=f"C{n}", lw=1.2, label=f"c_{n}, {L2} samples")
    ax.set_title(name)
    ax.set_xlabel("physical time t")
axes[0].legend(fontsize=7, ncols=3)
plt.show()

# %% [markdown]
# ## 5. Irregular sampling and missing samples
#
# `hippo_project` accepts `timestamps` of shape `(L,)` (strictly increasing, $> 0$; time
# starts at 0). LegS then steps by $(t_k - t_{k-1}) / t_k$, the time-invariant measures
# discretise $(A, B)$ anew for every step $t_k - t_{k-1}$.
#
# **Irregular samples.** Draw random sample times on $(0, 1]$ and compare the LegS memory of
# these samples with the memory of a dense regular sampling of the same signal.

# %%
N_IRR = 32 if SMALL else 64
L_DENSE = 2_000 if SMALL else 20_000
t_dense = np.arange(1, L_DENSE + 1) / L_DENSE
c_dense = hippox.hippo_project(signal(t_dense).astype(np.float32), "legs", N_IRR, final_only=True)

times = np.unique(np.asarray(jax.random.uniform(jax.random.key(4), (L_DENSE // 10,))))
times[-1] = 1.0  # end the record at t = 1 like the dense sampling
c_irr = hippox.hippo_project(
    signal(times).astype(np.float32),
    "legs",
    N_IRR,
    timestamps=times.astype(np.float32),
    final_only=True,
)
s = (np.arange(1000) + 0.5) / 1000
truth = signal(1.0 - s)  # the history at t = 1 - s, from the continuous signal
gaps = np.diff(times)
print(f"{len(times)} irregular samples (gaps {gaps.min():.1e} ... {gaps.max():.1e})")
for name, c in [("dense regular memory", c_dense), ("irregular memory", c_irr)]:
    err = rel_rms(hippox.reconstruct(c, "legs", s, scaled=True), truth)
    print(f"  {name:>20}: rel. error of the history {err:.2e}")
rel = np.linalg.norm(c_irr - c_dense) / np.linalg.norm(c_dense)
print(f"  ||c_irregular - c_dense|| / ||c_dense|| = {rel:.1e}")

# %% [markdown]
# **Missing samples.** On a regular grid, mark 30% of the samples (at random) as missing.
# There are two ways to tell `hippo_project`:
#
# * put `NaN` in `f`: the step is *skipped*, the state carried over unchanged, and the next
#   observed sample takes an ordinary step. The skipped time is not integrated, so the
#   memory's time axis drifts away from the record's: a time-warped history;
# * pass only the observed samples with their `timestamps`: the memory integrates across the
#   gaps and keeps the time axis right.
#
# The second is what you want for gaps in a record; the NaN form suits streams where missing
# steps should simply not count.

# %%
missing = np.asarray(jax.random.uniform(jax.random.key(5), (L_DENSE,))) < 0.3
f_dense = signal(t_dense).astype(np.float32)
f_nan = np.where(missing, np.nan, f_dense).astype(np.float32)
c_nan = hippox.hippo_project(f_nan, "legs", N_IRR, final_only=True)
c_obs = hippox.hippo_project(
    f_dense[~missing],
    "legs",
    N_IRR,
    timestamps=t_dense[~missing].astype(np.float32),
    final_only=True,
)
r_nan = np.asarray(hippox.reconstruct(c_nan, "legs", s, scaled=True))
r_obs = np.asarray(hippox.reconstruct(c_obs, "legs", s, scaled=True))
print(f"{missing.sum()} of {L_DENSE} samples missing")
print(f"  NaN (skipped steps):        rel. error of the history {rel_rms(r_nan, truth):.2e}")
print(f"  observed + timestamps:      rel. error of the history {rel_rms(r_obs, truth):.2e}")

fig, ax = plt.subplots(figsize=(11, 3))
ax.plot(1.0 - s, truth, color="0.6", lw=3, label="signal")
ax.plot(1.0 - s, r_obs, "C0", lw=1.2, label="observed samples + timestamps")
ax.plot(1.0 - s, r_nan, "C3", lw=1.2, label="NaN for missing (time-warped)")
ax.set_xlabel("time t")
ax.set_title(f"LegS memory at t = 1 with 30% of the samples missing (N = {N_IRR})")
ax.legend(loc="upper left", fontsize=8)
plt.show()
