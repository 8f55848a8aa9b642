"""Haiku parameters from hippox initializer specs (one home for the Haiku modules).

hippox initializers follow ``init(key, shape, dtype)``; Haiku's are ``init(shape,
dtype)`` and draw keys from the transform's rng. `adapt` is that adapter (the body of
`hippox.haiku.to_haiku`), `get_params` creates a module's parameters from a
``{name: (shape, init)}`` spec dict (a layer config's ``param_specs()``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import haiku as hk
import jax


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
