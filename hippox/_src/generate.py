"""Autoregressive sampling from a sequence model: prefill a prompt, then step.

The framework-free core of `hippox.nnx.generate` and `hippox.linen.generate`. A model
that maps token embeddings ``(..., L, d_input)`` to next-token logits
``(..., L, V)`` (a `SequenceModel` with ``pooling=None``) is run in two phases:

1. **prefill**: the whole prompt in one call of the chunked forward
   (``model(embed(prompt), seq_lengths=..., return_carry=True)``, convolution mode, no
   step loop), giving the carry after each prompt's last valid token and the logits
   there;
2. **decode**: `jax.lax.scan` over step mode, feeding back the embedding of the token
   just drawn.

Token ``t`` of the continuation (``t = 0 … steps - 1``) is drawn for the whole batch
at once, ``jax.random.categorical(keys[t], logits_t / temperature, axis=-1)`` with
``keys = jax.random.split(key, steps)`` and ``logits_t`` the ``(..., V)`` next-token
logits of every sequence, or is the argmax when ``temperature == 0`` (greedy), so a
slow reference that re-runs the full forward pass on the growing sequences and draws
the same way gets the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from hippox._src import _validate
from hippox._src.layers.masking import check_seq_lengths


def check_generate_args(prompt, prompt_lengths, steps, key, temperature):
    """Validates the arguments of a sampler; returns them normalised.

    Returns:
      ``(prompt int32 (..., P), lengths int32 (...) or None, steps, key, temperature,
      greedy)``.
    """
    prompt = _validate.as_array("prompt", prompt)
    if prompt.dtype == bool or not jnp.issubdtype(prompt.dtype, jnp.integer):
        raise TypeError(f"`prompt` must be an array of integer tokens, got dtype {prompt.dtype}.")
    if prompt.ndim < 1 or prompt.shape[-1] < 1:
        raise ValueError(
            f"`prompt` must have shape (..., P) with P >= 1 tokens, got {prompt.shape}."
        )
    lengths = check_seq_lengths(prompt_lengths, prompt.shape[:-1], prompt.shape[-1])
    values = None if lengths is None else _validate.concrete_value(lengths)
    if values is not None and values.size and values.min() < 1:
        raise ValueError(
            f"`prompt_lengths` must be >= 1 (a prompt needs a token), got {values.min()}."
        )
    steps = _validate.check_size("steps", steps)
    temperature = _validate.check_real("temperature", temperature, low=0.0)
    greedy = temperature == 0.0
    if key is None and not greedy:
        raise ValueError("`key` must be a jax.random key for sampling (temperature > 0), got None.")
    if key is None:
        key = jax.random.key(0)  # unused by greedy decoding
    return prompt.astype(jnp.int32), lengths, steps, key, temperature, greedy


def check_vocabulary(d_input: int, d_output: int, embed) -> None:
    """The default one-hot embedding needs every token id < d_input."""
    if embed is None and d_output > d_input:
        raise ValueError(
            f"`embed` must be given when the model has more outputs (d_output={d_output}) than "
            f"inputs (d_input={d_input}): the default embedding is a one-hot of size d_input."
        )
    if embed is not None and not callable(embed):
        raise TypeError(
            f"`embed` must be callable tokens -> (..., d_input) or None, got {embed!r}."
        )


def one_hot(d_input: int, dtype) -> Callable:
    """The default embedding: ``one_hot(tokens, d_input)``."""
    return lambda tokens: jax.nn.one_hot(tokens, d_input, dtype=dtype)


def sample(logits: jax.Array, key, temperature, greedy: bool) -> jax.Array:
    """A token per row of ``logits`` ``(..., V)``: argmax, or a softmax draw at ``temperature``."""
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, logits / temperature, axis=-1).astype(jnp.int32)


def autoregress(
    prefill: Callable,
    step: Callable,
    embed: Callable,
    prompt: jax.Array,
    lengths: jax.Array | None,
    steps: int,
    key,
    temperature,
    greedy: bool,
) -> jax.Array:
    """Prefill, then ``steps - 1`` decoding steps under `jax.lax.scan` (module docstring).

    Args:
      prefill: ``(u (..., P, d_input), lengths) -> (carry, logits (..., P, V))``.
      step: ``(carry, u_k (..., d_input)) -> (carry, logits_k (..., V))``.
      embed: ``tokens (...) int -> (..., d_input)``.
      prompt: ``(..., P)`` int32 tokens.
      lengths: ``(...)`` prompt lengths in ``[1, P]``, or None (all ``P``).
      steps: number of tokens to draw.
      key: jax.random key (token ``t`` uses ``jax.random.split(key, steps)[t]``).
      temperature: softmax temperature (> 0 unless ``greedy``).
      greedy: take the argmax.

    Returns:
      ``(..., steps)`` int32 tokens continuing each prompt.
    """
    carry, logits = prefill(embed(prompt), lengths)
    if lengths is None:
        last = logits[..., -1, :]
    else:
        idx = jnp.broadcast_to((lengths - 1)[..., None, None], (*logits.shape[:-2], 1, 1))
        last = jnp.take_along_axis(logits, idx, axis=-2)[..., 0, :]
    keys = jax.random.split(key, steps)
    first = sample(last, keys[0], temperature, greedy)

    def body(state, k):
        carry, token = state
        carry, logits_k = step(carry, embed(token))
        token = sample(logits_k, k, temperature, greedy)
        return (carry, token), token

    _, rest = jax.lax.scan(body, (carry, first), keys[1:])
    return jnp.concatenate([first[..., None], jnp.moveaxis(rest, 0, -1)], axis=-1)
