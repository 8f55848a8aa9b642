"""Linen modules whose fields are generated from a hippox layer config.

A linen layer's fields are the config's fields (the sizes first, then the keyword
options), renamed or omitted where the linen idiom differs, plus ``dtype`` and
``param_dtype``. Generating them from the config keeps the two from drifting apart and
keeps each wrapper a few lines long; the config is built and validated once, in
``__post_init__``, and kept as ``module.config``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import jax.numpy as jnp
from flax import linen as nn

from hippox._src import _validate


class ConfigModule(nn.Module):
    """Base of the linen wrappers: fields from ``config_class``, ``config`` built once.

    Subclasses set ``config_class`` and may pass, as class keywords, ``rename``
    (config field -> module field) and ``omit`` (config fields that are not module
    fields; `config_placeholders` supplies their values).
    """

    config_class: ClassVar[type | None] = None
    _field_names: ClassVar[dict[str, str]] = {}  # config field -> module field

    def __init_subclass__(cls, rename: Mapping[str, str] | None = None, omit=(), **kwargs):
        config_class = cls.__dict__.get("config_class")
        if config_class is not None:
            rename = dict(rename or {})
            fields = [f for f in dataclasses.fields(config_class) if f.name not in omit]
            fields = [f for f in fields if not f.kw_only] + [f for f in fields if f.kw_only]
            annotations = {}
            for f in fields:
                name = rename.get(f.name, f.name)
                if hasattr(nn.Module, name):
                    raise TypeError(
                        f"{cls.__name__}: the config field {f.name!r} would shadow "
                        f"flax.linen.Module.{name}; rename it (class keyword `rename`)."
                    )
                annotations[name] = f.type
                if f.default is not dataclasses.MISSING:
                    setattr(cls, name, f.default)
            annotations.update(dtype="Any", param_dtype="Any")
            cls.dtype, cls.param_dtype = None, jnp.float32
            annotations.update(cls.__dict__.get("__annotations__", {}))
            cls.__annotations__ = annotations
            cls._field_names = {f.name: rename.get(f.name, f.name) for f in fields}
        super().__init_subclass__(**kwargs)

    @nn.nowrap
    def config_placeholders(self) -> dict[str, Any]:
        """Values of the omitted config fields (none by default)."""
        return {}

    def __post_init__(self):
        super().__post_init__()
        if self.config_class is not None:
            kwargs = {c: getattr(self, m) for c, m in self._field_names.items()}
            config = self.config_class(**kwargs, **self.config_placeholders())
            object.__setattr__(self, "config", config)  # linen modules are frozen
            _validate.real_dtype(self.param_dtype, name="param_dtype")
