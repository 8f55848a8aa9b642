"""Haiku parameters from hippox initializer specs (one home for the Haiku modules).

hippox initializers follow ``init(key, shape, dtype)``; Haiku's are ``init(shape,
dtype)`` and draw keys from the transform's rng. `adapt` is that adapter (the body of
`hippox.haiku.to_haiku`), `get_params` creates a module's parameters from a
``{name: (shape, init)}`` spec dict, and `get_layer_params` those of a layer config,
drawn at init in one compiled program (`hippox.LayerConfig.init_from_keys`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import haiku as hk
import jax
import jax.numpy as jnp


def adapt(init: Callable) -> Callable:
    """``init(key, shape, dtype)`` -> Haiku's ``init(shape, dtype)`` (key: the next rng key,
    or None without an rng, which deterministic hippox initializers accept)."""
    return lambda shape, dtype: init(hk.maybe_next_rng_key(), tuple(shape), dtype)


def get_params(specs: Mapping, param_dtype) -> dict[str, jax.Array]:
    """``{name: hk.get_parameter(name, shape, param_dtype, adapt(init))}`` for a
    ``{name: (shape, init)}`` spec dict."""
    return {
        name: hk.get_parameter(name, shape, param_dtype, init=adapt(init))
        for name, (shape, init) in specs.items()
    }


def get_layer_params(module: hk.Module, config, param_dtype) -> dict[str, jax.Array]:
    """`get_params` of a layer config's specs, all leaves drawn in one compiled call.

    At the first init call of ``module`` one rng key is taken per leaf, in spec order
    (the keys `get_params` would give the leaves one by one), and
    ``config.init_from_keys`` draws every leaf in one program instead of one eager
    program per leaf. Later calls, and an init without an rng, are `get_params`.
    """
    specs = config.param_specs()
    if hk.running_init() and not module.params_dict():
        keys = [hk.maybe_next_rng_key() for _ in specs]
        if keys[0] is not None:  # without an rng every key is None: `get_params` below
            drawn = config.init_from_keys(jnp.stack(keys), param_dtype=param_dtype)
            return {
                name: hk.get_parameter(name, shape, param_dtype, init=lambda *_, v=drawn[name]: v)
                for name, (shape, _) in specs.items()
            }
    return get_params(specs, param_dtype)
