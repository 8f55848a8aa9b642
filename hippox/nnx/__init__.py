"""Flax NNX layers of hippox: S4D, S4, S5, LSSL, the HiPPO-RNN, the baseline cells, the
`SequenceModel` backbone and its sampler `generate`, and the SaShiMi pooling backbone
(import explicitly: ``import hippox.nnx``).

Parameter names match `hippox.linen`; label them for optax with `hippox.optax_labels`.
"""

from hippox._src.layers.sashimi import SaShiMiCarry as SaShiMiCarry
from hippox.nnx.cells import CKBlock as CKBlock
from hippox.nnx.cells import CKConv as CKConv
from hippox.nnx.cells import ExpRNNCell as ExpRNNCell
from hippox.nnx.cells import GRUCell as GRUCell
from hippox.nnx.cells import LipschitzRNN as LipschitzRNN
from hippox.nnx.cells import LipschitzRNNCell as LipschitzRNNCell
from hippox.nnx.cells import LSTMCell as LSTMCell
from hippox.nnx.cells import MGUCell as MGUCell
from hippox.nnx.cells import MinimalRNNCell as MinimalRNNCell
from hippox.nnx.cells import RNNCell as RNNCell
from hippox.nnx.cells import UnICORNN as UnICORNN
from hippox.nnx.cells import UnICORNNCell as UnICORNNCell
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
