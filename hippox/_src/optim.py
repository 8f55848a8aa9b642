"""Optimizer helpers for SSM parameters: label the SSM tensors, build the S4/S5 optimizer.

The reference S4/S5 recipes give the SSM tensors (``Lambda``, ``P``, ``B``, ``log_dt``,
LSSL's ``A``) their own learning rate and no weight decay, and register a tensor whose
rate is 0 as a buffer (frozen). `optax_labels` labels the leaves for
`optax.multi_transform`; `ssm_optimizer` builds the whole optimizer from a few numbers.
optax is imported when `ssm_optimizer` is called (``import hippox`` does not need it).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING

import jax

from hippox._src import _validate

if TYPE_CHECKING:  # pragma: no cover
    import optax

#: A learning rate: a number or an optax schedule ``step -> rate``.
LearningRate = float | Callable[[jax.Array], jax.Array]

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


def _check_rate(name: str, value) -> LearningRate:
    if callable(value):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a number >= 0 or an optax schedule (a callable), got {value!r}."
        )
    return _validate.check_real(name, value, low=0.0)


def _with_schedule(rate: LearningRate, total_steps: int | None, warmup_steps: int):
    import optax

    if total_steps is None or callable(rate) or rate == 0.0:
        return rate
    return optax.warmup_cosine_decay_schedule(
        0.0, rate, warmup_steps=warmup_steps, decay_steps=total_steps
    )


def ssm_optimizer(
    learning_rate: LearningRate,
    *,
    ssm_learning_rate: LearningRate = 1e-3,
    tensor_learning_rates: Mapping[str, LearningRate] | None = None,
    weight_decay: float = 0.0,
    total_steps: int | None = None,
    warmup_steps: int = 0,
    b1: float = 0.9,
    b2: float = 0.999,
    ssm_names: Collection[str] = SSM_PARAM_NAMES,
) -> optax.GradientTransformation:
    """The standard S4/S5 optimizer: AdamW, each SSM tensor with its own rate, no decay.

    Every leaf whose name (the last name on its path, as in `optax_labels`) is in
    ``ssm_names`` (``Lambda_re``, ``Lambda_im``, ``P``, ``B``, ``log_dt``, ``A``) is
    optimised by Adam at its own learning rate without weight decay; every other leaf
    (``C``, ``D``, dense and norm layers) by AdamW at ``learning_rate`` with
    ``weight_decay``. A rate of exactly ``0`` freezes the tensor (`optax.set_to_zero`:
    zero updates, no optimizer state), as the reference code does by registering it as
    a buffer. With ``total_steps``, every numeric rate ``r`` follows the same linear
    warm-up from 0 over ``warmup_steps`` and cosine decay to 0 at ``total_steps``
    (`optax.warmup_cosine_decay_schedule` with peak ``r``); schedules passed in are
    used as they are.

    Args:
      learning_rate: rate of the non-SSM parameters: a number >= 0 or an optax schedule.
      ssm_learning_rate: rate of the SSM tensors (a number >= 0 or a schedule).
      tensor_learning_rates: per-tensor overrides ``{name: rate}``, names from
        ``ssm_names`` (e.g. ``{"log_dt": 0.0}`` freezes the step sizes).
      weight_decay: AdamW decay (>= 0) of the non-SSM parameters.
      total_steps: length of the cosine schedule (an integer >= 1), or None for
        constant rates.
      warmup_steps: linear warm-up steps, ``0 <= warmup_steps < total_steps``.
      b1: Adam's first-moment decay in ``[0, 1)``.
      b2: Adam's second-moment decay in ``[0, 1)``.
      ssm_names: leaf names treated as SSM tensors.

    Returns:
      An `optax.GradientTransformation` (an `optax.multi_transform`); its
      ``init``/``update`` accept a linen ``params`` dict, an NNX ``nnx.State`` or any
      pytree with named paths.

    Raises:
      TypeError: a rate that is neither a number nor a callable; a non-integer step count.
      ValueError: a negative or non-finite number; a `tensor_learning_rates` key not in
        ``ssm_names``; ``'default'`` in ``ssm_names``; ``warmup_steps`` without
        ``total_steps`` or not below it.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> from hippox._src.optim import ssm_optimizer
      >>> params = {"Lambda_re": jnp.ones(2), "log_dt": jnp.ones(2), "C": jnp.ones(2)}
      >>> tx = ssm_optimizer(1e-2, ssm_learning_rate=1e-3, tensor_learning_rates={"log_dt": 0.0})
      >>> updates, _ = tx.update(params, tx.init(params), params)  # gradient = params
      >>> [round(float(updates[k][0]), 6) for k in ("Lambda_re", "log_dt", "C")]
      [-0.001, 0.0, -0.01]
      >>> params = optax.apply_updates(params, updates)
    """
    import optax

    if isinstance(ssm_names, str) or not all(isinstance(n, str) for n in ssm_names):
        raise TypeError(f"`ssm_names` must be a collection of strings, got {ssm_names!r}.")
    names = frozenset(ssm_names)
    if "default" in names:
        raise ValueError(
            "`ssm_names` must not contain 'default' (the label of the other parameters)."
        )
    lr = _check_rate("learning_rate", learning_rate)
    default_ssm = _check_rate("ssm_learning_rate", ssm_learning_rate)
    overrides = {} if tensor_learning_rates is None else tensor_learning_rates
    if not isinstance(overrides, Mapping):
        raise TypeError(
            f"`tensor_learning_rates` must be a mapping {{name: rate}} or None, got {overrides!r}."
        )
    unknown = sorted(set(overrides) - names, key=str)
    if unknown:
        raise ValueError(
            f"`tensor_learning_rates` keys must be among {tuple(sorted(names))}, got {unknown}."
        )
    rates = {n: _check_rate(f"tensor_learning_rates[{n!r}]", r) for n, r in overrides.items()}
    wd = _validate.check_real("weight_decay", weight_decay, low=0.0)
    b1 = _validate.check_real("b1", b1, low=0.0)
    b2 = _validate.check_real("b2", b2, low=0.0)
    for name, b in (("b1", b1), ("b2", b2)):
        if b >= 1.0:
            raise ValueError(f"`{name}` must be in [0, 1), got {b}.")
    if total_steps is None:
        if warmup_steps != 0:
            raise ValueError(
                f"`warmup_steps` must be 0 when `total_steps` is None, got {warmup_steps!r}."
            )
    else:
        total_steps = _validate.check_size("total_steps", total_steps)
        warmup_steps = _validate.check_size("warmup_steps", warmup_steps, minimum=0)
        if warmup_steps >= total_steps:
            raise ValueError(
                f"`warmup_steps` must be < `total_steps` ({total_steps}), got {warmup_steps}."
            )

    def sched(rate):
        return _with_schedule(rate, total_steps, warmup_steps)

    transforms = {"default": optax.adamw(sched(lr), b1=b1, b2=b2, weight_decay=wd)}
    for name in sorted(names):
        rate = rates.get(name, default_ssm)
        frozen = not callable(rate) and rate == 0.0
        transforms[name] = optax.set_to_zero() if frozen else optax.adam(sched(rate), b1, b2)

    def label(path, _):
        name = _leaf_name(path)
        return name if name in names else "default"

    def labels(params):
        return jax.tree_util.tree_map_with_path(label, params)

    return optax.multi_transform(transforms, labels)
