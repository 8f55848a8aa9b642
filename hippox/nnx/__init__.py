"""Flax NNX layers of hippox: S4D, S4, S5, LSSL, the HiPPO-RNN, the `SequenceModel`
backbone and its sampler `generate`, the SaShiMi pooling backbone (import explicitly: ``import hippox.nnx``).

Parameter names match `hippox.linen`; label them for optax with `hippox.optax_labels`.
"""

from hippox.nnx.generate import generate as generate
from hippox.nnx.layers import LSSL as LSSL
from hippox.nnx.layers import S4 as S4
from hippox.nnx.layers import S4D as S4D
from hippox.nnx.layers import S5 as S5
from hippox.nnx.rnn import HiPPORNN as HiPPORNN
from hippox.nnx.rnn import HiPPORNNCell as HiPPORNNCell
from hippox.nnx.sashimi import SaShiMi as SaShiMi
from hippox.nnx.sequence import SequenceCarry as SequenceCarry
from hippox.nnx.sequence import SequenceModel as SequenceModel

__all__ = [
    "HiPPORNN",
    "HiPPORNNCell",
    "LSSL",
    "S4",
    "S4D",
    "S5",
    "SaShiMi",
    "SequenceCarry",
    "SequenceModel",
    "generate",
]
