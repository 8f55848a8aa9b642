"""Autoregressive sampling from a `hippox.linen.SequenceModel` (`generate`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from hippox._src import generate as _gen
from hippox.linen.sequence import SequenceModel

__all__ = ["generate"]


class _ByIdentity:
    """A static argument hashed by identity (linen modules with dict fields are unhashable)."""

    def __init__(self, value):
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other) -> bool:
        return isinstance(other, _ByIdentity) and other.value is self.value


def generate(
    model: SequenceModel,
    variables: Mapping,
    prompt: ArrayLike,
    steps: int,
    *,
    key=None,
    temperature: float = 1.0,
    embed: Callable | None = None,
    prompt_lengths: ArrayLike | None = None,
) -> jax.Array:
    """Samples ``steps`` tokens continuing ``prompt`` (jit-compiled; evaluation mode).

    The linen version of `hippox.nnx.generate` (same arguments, plus the model's
    ``variables``; compiled once per model object and static arguments): prefill with
    ``model.apply(variables, embed(prompt), deterministic=True, seq_lengths=...,
    return_carry=True)``, then `jax.lax.scan` over ``method="step"``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import hippox.linen
      >>> lm = hippox.linen.SequenceModel(d_output=5, d_model=8, n_layers=1, pooling=None,
      ...                                 layer_kwargs={"N": 4})
      >>> variables = lm.init(jax.random.key(0), jnp.ones((1, 3, 5)), deterministic=True)
      >>> hippox.linen.generate(lm, variables, jnp.array([[1, 2, 3]]), 4, temperature=0.0).shape
      (1, 4)
    """
    if not isinstance(model, SequenceModel):
        raise TypeError(
            f"`model` must be a hippox.linen.SequenceModel, got {type(model).__name__}."
        )
    if model.pooling is not None:
        raise ValueError(
            "`model` must map a sequence to per-position logits (pooling=None), got "
            f"pooling={model.pooling!r}."
        )
    try:
        d_input = variables["params"]["encoder"]["kernel"].shape[0]
    except (KeyError, TypeError, AttributeError):
        raise TypeError(
            "`variables` must be the model's variables (from model.init), with "
            "variables['params']['encoder']['kernel']."
        ) from None
    prompt, lengths, steps, key, temperature, greedy = _gen.check_generate_args(
        prompt, prompt_lengths, steps, key, temperature
    )
    _gen.check_vocabulary(d_input, model.d_output, embed)
    if embed is None:
        dtype = jnp.dtype(jnp.promote_types(model.param_dtype, jnp.float32))
        embed = _one_hot(d_input, dtype)
    return _run(
        _ByIdentity(model), variables, prompt, lengths, key, temperature, steps, greedy, embed
    )


@functools.lru_cache(maxsize=64)
def _one_hot(d_input: int, dtype):
    return _gen.one_hot(d_input, dtype)


@functools.partial(jax.jit, static_argnums=(0, 6, 7, 8))
def _run(held, variables, prompt, lengths, key, temperature, steps, greedy, embed):
    model = held.value
    sp = model.apply(variables, method="setup_step")

    def prefill(u, n):
        return model.apply(variables, u, True, seq_lengths=n, return_carry=True)

    def step(carry, u_k):
        return model.apply(variables, carry, u_k, sp, method="step")

    return _gen.autoregress(prefill, step, embed, prompt, lengths, steps, key, temperature, greedy)
