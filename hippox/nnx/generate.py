"""Autoregressive sampling from a `hippox.nnx.SequenceModel` (`generate`)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike

from hippox._src import generate as _gen
from hippox.nnx.sequence import SequenceModel

__all__ = ["generate"]


def generate(
    model: SequenceModel,
    prompt: ArrayLike,
    steps: int,
    *,
    key=None,
    temperature: float = 1.0,
    embed: Callable | None = None,
    prompt_lengths: ArrayLike | None = None,
) -> jax.Array:
    """Samples ``steps`` tokens continuing ``prompt`` (jit-compiled; evaluation mode).

    The prompt is prefilled in one call of the chunked forward
    (``model(embed(prompt), seq_lengths=prompt_lengths, return_carry=True)``), then
    `jax.lax.scan` runs step mode, feeding back the embedding of each drawn token. The
    model must map embeddings to next-token logits: ``pooling=None`` and
    ``d_output = V`` (the vocabulary). Dropout is off and BatchNorm uses its running
    averages (the model itself is not modified).

    Token ``t`` of the batch is one draw ``jax.random.categorical(keys[t], logits_t /
    temperature, axis=-1)`` over the ``(..., V)`` next-token logits, with ``keys =
    jax.random.split(key, steps)``, or is the argmax when ``temperature == 0``.

    Args:
      model: a `hippox.nnx.SequenceModel` with ``pooling=None``.
      prompt: ``(..., P)`` integer tokens.
      steps: number of tokens to draw.
      key: jax.random key (may be None when ``temperature == 0``).
      temperature: ``>= 0``; 0 is greedy decoding.
      embed: ``tokens (...) -> (..., d_input)``, a hashable callable (a function; it
        is a static argument of the compiled sampler). None: ``one_hot(tokens,
        d_input)`` (needs ``d_output <= d_input``).
      prompt_lengths: ``(...)`` ints in ``[1, P]``: prompt ``b`` is
        ``prompt[b, :prompt_lengths[b]]`` (the rest is padding); None: all ``P``.

    Returns:
      ``(..., steps)`` int32 tokens.

    Raises:
      TypeError, ValueError: a model that is not a sequence-to-sequence
        `SequenceModel`, bad tokens, lengths, ``steps``, ``temperature`` or ``key``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> import hippox.nnx
      >>> lm = hippox.nnx.SequenceModel(5, 5, d_model=8, n_layers=1, pooling=None,
      ...                               layer_kwargs={"N": 4}, rngs=nnx.Rngs(0))
      >>> prompt = jnp.array([[1, 2, 3], [4, 0, 0]])
      >>> out = hippox.nnx.generate(lm, prompt, 6, key=jax.random.key(1),
      ...                           prompt_lengths=jnp.array([3, 1]))
      >>> out.shape, out.dtype
      ((2, 6), dtype('int32'))
    """
    if not isinstance(model, SequenceModel):
        raise TypeError(f"`model` must be a hippox.nnx.SequenceModel, got {type(model).__name__}.")
    if model.wiring.pooling is not None:
        raise ValueError(
            "`model` must map a sequence to per-position logits (pooling=None), got "
            f"pooling={model.wiring.pooling!r}."
        )
    prompt, lengths, steps, key, temperature, greedy = _gen.check_generate_args(
        prompt, prompt_lengths, steps, key, temperature
    )
    d_output = model.decoder.out_features
    _gen.check_vocabulary(model.d_input, d_output, embed)
    if embed is None:
        embed = _one_hot(
            model.d_input, jnp.dtype(jnp.promote_types(model.param_dtype, jnp.float32))
        )
    graphdef, state = nnx.split(model)
    return _run(graphdef, state, prompt, lengths, key, temperature, steps, greedy, embed)


@functools.lru_cache(maxsize=64)
def _one_hot(d_input: int, dtype):
    return _gen.one_hot(d_input, dtype)


@functools.partial(jax.jit, static_argnums=(0, 6, 7, 8))
def _run(graphdef, state, prompt, lengths, key, temperature, steps, greedy, embed):
    model = nnx.merge(graphdef, state)
    model.eval()
    sp = model.setup_step()

    def prefill(u, n):
        return model(u, seq_lengths=n, return_carry=True)

    def step(carry, u_k):
        return model.step(carry, u_k, sp)

    return _gen.autoregress(prefill, step, embed, prompt, lengths, steps, key, temperature, greedy)
