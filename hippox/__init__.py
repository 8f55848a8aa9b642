"""hippox: HiPPO operators and structured state space models for JAX.

Conventions: every system is ``dx/dt = A x + B u`` (stable A has eigenvalues with
negative real part); N is the state size, H the channel count, L the sequence
length, dt the step size. See the README for the glossary.
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

# --- operators (hippox/_src/matrices.py)
from hippox._src.matrices import MEASURES as MEASURES
from hippox._src.matrices import NPLR_MEASURES as NPLR_MEASURES
from hippox._src.matrices import Transition as Transition
from hippox._src.matrices import rank_correction as rank_correction
from hippox._src.matrices import transition as transition

# --- decompositions (hippox/_src/decompositions.py)
from hippox._src.decompositions import NPLR as NPLR
from hippox._src.decompositions import nplr as nplr

# --- discretisation (hippox/_src/discretize.py)
from hippox._src.discretize import Discretized as Discretized
from hippox._src.discretize import discretize as discretize
from hippox._src.discretize import discretize_diag as discretize_diag

# --- convolution kernels and FFT convolution (kernels.py, dplr.py, conv.py)
from hippox._src.conv import bidirectional_conv as bidirectional_conv
from hippox._src.conv import causal_conv as causal_conv
from hippox._src.dplr import dplr_c_from_tilde as dplr_c_from_tilde
from hippox._src.dplr import dplr_c_tilde as dplr_c_tilde
from hippox._src.kernels import kernel_diag as kernel_diag
from hippox._src.dplr import kernel_dplr as kernel_dplr
from hippox._src.kernels import kernel_naive as kernel_naive
from hippox._src.kernels import memory_budget as memory_budget

# --- diagonal / DPLR / S5 initialisations (hippox/_src/diagonal.py)
from hippox._src.diagonal import B_INITS as B_INITS
from hippox._src.diagonal import DIAG_INITS as DIAG_INITS
from hippox._src.diagonal import DPLR as DPLR
from hippox._src.diagonal import BlockDiagonal as BlockDiagonal
from hippox._src.diagonal import block_diagonal_init as block_diagonal_init
from hippox._src.diagonal import block_diagonal_normal as block_diagonal_normal
from hippox._src.diagonal import diag_b_init as diag_b_init
from hippox._src.diagonal import diag_init as diag_init
from hippox._src.diagonal import dplr as dplr

# --- step (streaming) mode and chunked processing (step.py, chunked.py, block_scan.py)
from hippox._src.step import DenseStepParams as DenseStepParams
from hippox._src.step import DiagStepParams as DiagStepParams
from hippox._src.step import DPLRStepParams as DPLRStepParams
from hippox._src.step import dense_step as dense_step
from hippox._src.step import dense_step_params as dense_step_params
from hippox._src.step import diag_step as diag_step
from hippox._src.step import diag_step_params as diag_step_params
from hippox._src.step import dplr_step_dense as dplr_step_dense
from hippox._src.step import dplr_step_dense_params as dplr_step_dense_params
from hippox._src.step import dplr_step_linear as dplr_step_linear
from hippox._src.step import dplr_step_linear_params as dplr_step_linear_params
from hippox._src.block_scan import block_scan_diag as block_scan_diag
from hippox._src.block_scan import diag_implementation as diag_implementation
from hippox._src.chunked import forward_chunk_dense as forward_chunk_dense
from hippox._src.chunked import forward_chunk_diag as forward_chunk_diag
from hippox._src.step import init_state as init_state
from hippox._src.step import scan_steps as scan_steps

# --- bases and reconstruction (hippox/_src/basis.py)
from hippox._src.basis import BASIS_MEASURES as BASIS_MEASURES
from hippox._src.basis import basis as basis
from hippox._src.basis import reconstruct as reconstruct

# --- recurrences, O(N) LegS memory, online projection (recurrence.py, legs.py, project.py)
from hippox._src.legs import legs_dt as legs_dt
from hippox._src.legs import legs_matvec as legs_matvec
from hippox._src.legs import legs_solve as legs_solve
from hippox._src.legs import legs_step as legs_step
from hippox._src.legs import legs_transition as legs_transition
from hippox._src.project import hippo_project as hippo_project
from hippox._src.recurrence import linear_recurrence as linear_recurrence

# --- initializers sub-namespace (hippox/initializers.py)
from hippox import initializers as initializers

# --- layer math (hippox/_src/layers/)
from hippox._src.layers.lssl import LSSLConfig as LSSLConfig
from hippox._src.layers.s4 import S4Config as S4Config
from hippox._src.layers.s4d import S4DConfig as S4DConfig
from hippox._src.layers.s5 import S5Config as S5Config
from hippox._src.layers.s5 import S5StepParams as S5StepParams

# --- HiPPO-RNN memory and cell math (hippox/_src/memory.py, hippox/_src/layers/rnn.py)
from hippox._src.layers.rnn import HiPPORNNConfig as HiPPORNNConfig
from hippox._src.layers.rnn import HiPPORNNState as HiPPORNNState
from hippox._src.layers.rnn import hippo_cell_options as hippo_cell_options
from hippox._src.memory import HiPPOMemory as HiPPOMemory
from hippox._src.memory import hippo_memory as hippo_memory

# --- baselines: recurrent cells and CKConv (cells.py, lipschitz.py, unicornn.py, ckconv.py)
from hippox._src.layers.cells import ExpRNNConfig as ExpRNNConfig
from hippox._src.layers.cells import GRUConfig as GRUConfig
from hippox._src.layers.cells import LSTMConfig as LSTMConfig
from hippox._src.layers.cells import LSTMState as LSTMState
from hippox._src.layers.cells import MGUConfig as MGUConfig
from hippox._src.layers.cells import MinimalRNNConfig as MinimalRNNConfig
from hippox._src.layers.cells import RNNConfig as RNNConfig
from hippox._src.layers.cells import RNNState as RNNState
from hippox._src.layers.ckconv import CKBlockConfig as CKBlockConfig
from hippox._src.layers.ckconv import CKConvConfig as CKConvConfig
from hippox._src.layers.lipschitz import LipschitzRNNConfig as LipschitzRNNConfig
from hippox._src.layers.unicornn import UnICORNNConfig as UnICORNNConfig
from hippox._src.layers.unicornn import UnICORNNState as UnICORNNState

# --- optimizer helpers (hippox/_src/optim.py)
from hippox._src.optim import SSM_PARAM_NAMES as SSM_PARAM_NAMES
from hippox._src.optim import optax_labels as optax_labels
from hippox._src.optim import ssm_optimizer as ssm_optimizer

try:
    __version__ = _version("hippox")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

#: The 0.0.x API lives in `hippox.compat`; these root names keep old code running.
_COMPAT_NAMES = ("EigenvectorPair", "HIPPO_MEASURES", "Hippo", "HippoParams")


def __getattr__(name: str):
    if name in _COMPAT_NAMES:
        from hippox import compat

        return getattr(compat, name)
    raise AttributeError(f"module 'hippox' has no attribute {name!r}")


__all__ = [
    "MEASURES",
    "NPLR_MEASURES",
    "Transition",
    "rank_correction",
    "transition",
    "NPLR",
    "nplr",
    "Discretized",
    "discretize",
    "discretize_diag",
    "bidirectional_conv",
    "causal_conv",
    "dplr_c_from_tilde",
    "dplr_c_tilde",
    "kernel_diag",
    "kernel_dplr",
    "kernel_naive",
    "memory_budget",
    "B_INITS",
    "DIAG_INITS",
    "DPLR",
    "BlockDiagonal",
    "block_diagonal_init",
    "block_diagonal_normal",
    "diag_b_init",
    "diag_init",
    "dplr",
    "DenseStepParams",
    "DiagStepParams",
    "DPLRStepParams",
    "dense_step",
    "dense_step_params",
    "diag_step",
    "diag_step_params",
    "dplr_step_dense",
    "dplr_step_dense_params",
    "dplr_step_linear",
    "dplr_step_linear_params",
    "block_scan_diag",
    "diag_implementation",
    "forward_chunk_dense",
    "forward_chunk_diag",
    "init_state",
    "scan_steps",
    "BASIS_MEASURES",
    "basis",
    "reconstruct",
    "legs_dt",
    "legs_matvec",
    "legs_solve",
    "legs_step",
    "legs_transition",
    "hippo_project",
    "linear_recurrence",
    "initializers",
    "LSSLConfig",
    "S4Config",
    "S4DConfig",
    "S5Config",
    "S5StepParams",
    "HiPPORNNConfig",
    "HiPPORNNState",
    "hippo_cell_options",
    "HiPPOMemory",
    "hippo_memory",
    "ExpRNNConfig",
    "GRUConfig",
    "LSTMConfig",
    "LSTMState",
    "MGUConfig",
    "MinimalRNNConfig",
    "RNNConfig",
    "RNNState",
    "CKBlockConfig",
    "CKConvConfig",
    "LipschitzRNNConfig",
    "UnICORNNConfig",
    "UnICORNNState",
    "SSM_PARAM_NAMES",
    "optax_labels",
    "ssm_optimizer",
]
