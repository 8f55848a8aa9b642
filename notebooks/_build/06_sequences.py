"""Source of notebooks/06_sequences.ipynb (build with notebooks/_build/build.py)."""

# %% [markdown]
# # Real sequences: padded batches, streaming in chunks, generation
#
# Every hippox sequence layer (S4D, S4, S5, LSSL, the HiPPO-RNN) and the `SequenceModel`
# backbone share one calling convention, the one of `flax.nnx.RNN`:
#
# ```python
# y = layer(u)                                                  # u (batch, L, H)
# carry, y = layer(u, seq_lengths=lengths, initial_carry=carry, return_carry=True)
# ```
#
# * `seq_lengths` `(batch,)`: positions at or after a sequence's length are **padding**:
#   they never influence the valid positions, their outputs are zero, and the returned
#   carry is the state after each sequence's last valid step.
# * `initial_carry`: the state to start from. It is the **step-mode** state
#   (`initialize_carry`, `step`), so a long sequence can be processed chunk by chunk, and a
#   prompt can be prefilled in one call and continued one token at a time.
#
# None of this falls back to a step loop: S4D and S5 run through their diagonal form, S4
# through its diagonal-plus-low-rank form, LSSL through its dense kernel, and the carried
# state enters as a free response `C Ā^(l+1) x₀` added to the convolution.
#
# This notebook shows the three things this makes possible: **variable-length batches**,
# **streaming** a long sequence in chunks, and **autoregressive generation** with
# `hippox.nnx.generate`.

# %% [install]

# %%
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import hippox.nnx

# Small sizes for CI (`HIPPOX_NOTEBOOK_SMALL=1`).
SMALL = os.environ.get("HIPPOX_NOTEBOOK_SMALL") == "1"
H, N = (4, 8) if SMALL else (16, 32)
L_LONG, CHUNK = (256, 64) if SMALL else (8192, 1024)
TRAIN_STEPS = 60 if SMALL else 400
NEW = 6 if SMALL else 12  # tokens to generate
print(f"SMALL={SMALL}: H={H}, N={N}, long sequence L={L_LONG} in chunks of {CHUNK}")
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Variable-length batches
#
# Three sequences of lengths 12, 7 and 3 are padded to `L = 12`. We fill the padding
# with large junk values on purpose: the outputs at valid positions are those of each
# sequence run alone, and the outputs at the padding positions are exactly zero.

# %%
layer = hippox.nnx.S4D(H, N, rngs=nnx.Rngs(0))
lengths = np.array([12, 7, 3])
u = jnp.asarray(rng.normal(size=(3, 12, H)), jnp.float32)
mask = np.arange(12)[None, :] < lengths[:, None]
u_junk = jnp.where(mask[..., None], u, 1e3)  # junk in the padding

carry, y = layer(u_junk, seq_lengths=jnp.asarray(lengths), return_carry=True)
for b, n in enumerate(lengths):
    c_alone, y_alone = layer(u[b : b + 1, :n], return_carry=True)
    print(
        f"sequence {b} (length {n:2d}): max |padded - alone| = "
        f"{float(jnp.max(jnp.abs(y[b, :n] - y_alone[0]))):.1e}, "
        f"max |output at padding| = {float(jnp.max(jnp.abs(y[b, n:]), initial=0.0)):.1e}, "
        f"carry difference = {float(jnp.max(jnp.abs(carry[b] - c_alone[0]))):.1e}"
    )

# %% [markdown]
# A `SequenceModel` passes the lengths to every block; its pooling (`mean`, `last`) uses
# the valid positions only, so a padded batch classifies each sequence exactly as if it
# were alone (BatchNorm statistics in training use valid positions only, too).

# %%
model = hippox.nnx.SequenceModel(
    2, 3, d_model=H, n_layers=2, layer="s5", layer_kwargs={"N": N}, rngs=nnx.Rngs(1)
)
model.eval()
x = jnp.asarray(rng.normal(size=(3, 12, 2)), jnp.float32)
logits = model(x, seq_lengths=jnp.asarray(lengths))
alone = jnp.concatenate([model(x[b : b + 1, :n]) for b, n in enumerate(lengths)])
print(
    "pooled logits, padded batch vs one at a time: max diff",
    float(jnp.max(jnp.abs(logits - alone))),
)

# %% [markdown]
# ## 2. Streaming a long sequence in chunks
#
# A long signal is processed `CHUNK` positions at a time, passing the carry along. The
# result equals one call on the whole sequence, while each call only holds one chunk (the
# convolution's FFT buffers scale with the chunk, not with the whole sequence). Under
# `jax.lax.scan` over the chunks, the whole stream compiles to one program.

# %%
layer = hippox.nnx.S4D(H, N, rngs=nnx.Rngs(2))
signal = jnp.asarray(rng.normal(size=(1, L_LONG, H)), jnp.float32)
y_once = layer(signal)


@nnx.jit
def stream(layer, signal):
    chunks = jnp.moveaxis(signal.reshape(1, L_LONG // CHUNK, CHUNK, H), 1, 0)

    def body(carry, chunk):
        return layer(chunk, initial_carry=carry, return_carry=True)

    _, ys = jax.lax.scan(body, layer.initialize_carry((1,)), chunks)
    return jnp.moveaxis(ys, 0, 1).reshape(1, L_LONG, H)


y_stream = stream(layer, signal)
rel = float(jnp.max(jnp.abs(y_stream - y_once)) / jnp.max(jnp.abs(y_once)))
print(f"{L_LONG // CHUNK} chunks of {CHUNK}: max relative difference to one call {rel:.1e}")

# %% [markdown]
# The carry is the step-mode state, so the stream can also switch to one position at a
# time (e.g. a live signal) and back:

# %%
carry, y_head = layer(signal[:, :100], return_carry=True)  # prefill 100 positions at once
sp = layer.setup_step()
steps = []
for k in range(100, 110):  # then 10 single steps
    carry, y_k = layer.step(carry, signal[:, k], sp)
    steps.append(y_k)
carry, y_tail = layer(signal[:, 110:200], initial_carry=carry, return_carry=True)  # chunk again
y_mixed = jnp.concatenate([y_head, jnp.stack(steps, 1), y_tail], axis=1)
print(
    "call -> steps -> call vs one call: max diff",
    float(jnp.max(jnp.abs(y_mixed - y_once[:, :200]))),
)

# %% [markdown]
# ## 3. Generation
#
# A `SequenceModel` with `pooling=None` whose decoder outputs logits over a vocabulary is
# a language model. `hippox.nnx.generate(model, prompt, steps, key=..., temperature=...)`
# prefills the prompt through the chunked forward (one call, `return_carry=True`), then
# runs `jax.lax.scan` over step mode, feeding back the one-hot of each drawn token
# (`embed=` for another embedding), all in one compiled program. `temperature=0` is
# greedy decoding; `prompt_lengths` lets the prompts of a batch have different lengths.
#
# A toy task: sequences that count upwards modulo `V = 6` from a random start,
# `3 4 5 0 1 2 3 …`. A small model learns to predict the next token.

# %%
V, L_TRAIN = 6, 24
lm = hippox.nnx.SequenceModel(
    V,
    V,
    d_model=16,
    n_layers=1,
    layer="s4d",
    layer_kwargs={"N": 16},
    pooling=None,
    rngs=nnx.Rngs(3),
)
optimizer = nnx.Optimizer(lm, optax.adam(1e-2), wrt=nnx.Param)


def batch(key, size=32):
    start = jax.random.randint(key, (size, 1), 0, V)
    return (start + jnp.arange(L_TRAIN + 1)) % V


@nnx.jit
def train_step(lm, optimizer, tokens):
    def loss_fn(lm):
        logits = lm(jax.nn.one_hot(tokens[:, :-1], V))
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(lm)
    optimizer.update(lm, grads)
    return loss


key = jax.random.key(0)
for _ in range(TRAIN_STEPS):
    key, sub = jax.random.split(key)
    loss = train_step(lm, optimizer, batch(sub))
print(f"after {TRAIN_STEPS} steps: training loss {float(loss):.3f}")

# %%
lm.eval()
prompts = jnp.asarray([[2, 3, 4, 5], [5, 0, 0, 0], [1, 2, 0, 0]])
prompt_lengths = jnp.asarray([4, 1, 2])
greedy = hippox.nnx.generate(lm, prompts, NEW, temperature=0.0, prompt_lengths=prompt_lengths)
sampled = hippox.nnx.generate(
    lm, prompts, NEW, key=jax.random.key(1), temperature=1.0, prompt_lengths=prompt_lengths
)
for b, n in enumerate(np.asarray(prompt_lengths)):
    print(
        f"prompt {np.asarray(prompts[b, :n]).tolist()} -> greedy {np.asarray(greedy[b]).tolist()}"
        f", sampled {np.asarray(sampled[b]).tolist()}"
    )

# %% [markdown]
# The sampler agrees with the slow way, re-running the full model on the growing
# sequence for every new token:

# %%
tokens = [2, 3, 4, 5]
for _ in range(NEW):
    logits = lm(jax.nn.one_hot(jnp.asarray(tokens), V)[None])[0, -1]
    tokens.append(int(jnp.argmax(logits)))
print("full forward at every position:", tokens[4:])
print("generate (prefill + scan):     ", np.asarray(greedy[0]).tolist())
assert tokens[4:] == np.asarray(greedy[0]).tolist()
