"""The pure maths of the hippox layers, one module per layer.

``base`` (the shared `LayerConfig` and helpers), ``siso`` (what S4D and S4 share),
``s4d``, ``s4``, ``s5``, ``lssl``, ``rnn`` (the HiPPO-RNN cell) and ``backbone``
(`SequenceModel`'s framework-free pieces). The framework wrappers
(`hippox.nnx`, `hippox.linen`, `hippox.haiku`, `hippox.equinox`) only create
parameters and call these configs.
"""
