"""Flax linen layers of hippox: S4D, S4, S5, LSSL, the HiPPO-RNN, the baseline cells, the
`SequenceModel` backbone and its sampler `generate` (import explicitly:
``import hippox.linen``).

Parameter names match `hippox.nnx`; label them for optax with `hippox.optax_labels`.
"""

from hippox._src.layers.sashimi import SaShiMiCarry as SaShiMiCarry
from hippox.linen.cells import CKBlock as CKBlock
from hippox.linen.cells import CKConv as CKConv
from hippox.linen.cells import ExpRNNCell as ExpRNNCell
from hippox.linen.cells import GRUCell as GRUCell
from hippox.linen.cells import LipschitzRNN as LipschitzRNN
from hippox.linen.cells import LipschitzRNNCell as LipschitzRNNCell
from hippox.linen.cells import LSTMCell as LSTMCell
from hippox.linen.cells import MGUCell as MGUCell
from hippox.linen.cells import MinimalRNNCell as MinimalRNNCell
from hippox.linen.cells import RNNCell as RNNCell
from hippox.linen.cells import UnICORNN as UnICORNN
from hippox.linen.cells import UnICORNNCell as UnICORNNCell
from hippox.linen.generate import generate as generate
from hippox.linen.layers import LSSL as LSSL
from hippox.linen.layers import S4 as S4
from hippox.linen.layers import S4D as S4D
from hippox.linen.layers import S5 as S5
from hippox.linen.rnn import HiPPORNN as HiPPORNN
from hippox.linen.rnn import HiPPORNNCell as HiPPORNNCell
from hippox.linen.sashimi import SaShiMi as SaShiMi
from hippox.linen.sequence import SequenceCarry as SequenceCarry
from hippox.linen.sequence import SequenceModel as SequenceModel

__all__ = [
    "CKBlock",
    "CKConv",
    "ExpRNNCell",
    "generate",
    "GRUCell",
    "HiPPORNN",
    "HiPPORNNCell",
    "LipschitzRNN",
    "LipschitzRNNCell",
    "LSSL",
    "LSTMCell",
    "MGUCell",
    "MinimalRNNCell",
    "RNNCell",
    "S4",
    "S4D",
    "S5",
    "SaShiMi",
    "SaShiMiCarry",
    "SequenceCarry",
    "SequenceModel",
    "UnICORNN",
    "UnICORNNCell",
]
