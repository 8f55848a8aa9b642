"""Optimizer helpers for SSM parameters: label the SSM tensors for `optax.multi_transform`.

The reference S4/S5 recipes give the SSM tensors (``Lambda``, ``P``, ``B``, ``log_dt``,
LSSL's ``A``) their own learning rate and no weight decay.
"""

from __future__ import annotations

import jax

#: Parameter names `optax_labels` puts in the ``'ssm'`` group.
SSM_PARAM_NAMES: frozenset[str] = frozenset({"Lambda_re", "Lambda_im", "P", "B", "log_dt", "A"})


def _leaf_name(path) -> str | None:
    for k in reversed(path):
        name = getattr(k, "key", None)
        if name is None:
            name = getattr(k, "name", None)
        if isinstance(name, str) and name not in ("value", "raw_value"):
            return name
    return None


def optax_labels(params, *, ssm_names=SSM_PARAM_NAMES):
    """Labels every leaf ``'ssm'`` or ``'default'`` for `optax.multi_transform`.

    A leaf is ``'ssm'`` when the last name on its path is one of ``ssm_names``
    (default: ``Lambda_re``, ``Lambda_im``, ``P``, ``B``, ``log_dt``, ``A``); everything
    else (``C``, ``C_bwd``, ``D``, other layers' weights) is ``'default'``. S4-style
    training gives the ``'ssm'`` group its own (smaller) learning rate and no weight
    decay. Works on any pytree with named paths: a linen ``params`` dict, an NNX
    ``nnx.State`` (``nnx.state(model, nnx.Param)``), or a plain dict. It can be passed
    directly as ``param_labels`` (optax calls it on the parameter tree).

    Args:
      params: a pytree of parameters.
      ssm_names: the leaf names to put in the ``'ssm'`` group.

    Returns:
      A pytree of the same structure with ``'ssm'`` / ``'default'`` strings.

    Examples:
      >>> import optax
      >>> import hippox
      >>> params = {"layer": {"Lambda_re": 0.0, "C": 0.0, "log_dt": 0.0}}
      >>> hippox.optax_labels(params)
      {'layer': {'C': 'default', 'Lambda_re': 'ssm', 'log_dt': 'ssm'}}
      >>> tx = optax.multi_transform(
      ...     {"ssm": optax.adam(1e-3), "default": optax.adamw(1e-2, weight_decay=0.05)},
      ...     hippox.optax_labels)
    """
    names = frozenset(ssm_names)
    return jax.tree_util.tree_map_with_path(
        lambda path, _: "ssm" if _leaf_name(path) in names else "default", params
    )
