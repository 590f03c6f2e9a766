"""consensus: compose pre-trained models at inference time by iterative consensus.

A generator proposes, an ensemble of scorers gives each proposal an energy (lower is
better), and the loop feeds the scorers' choice back to the generator until they agree.
"""

from consensus.ensemble import Ensemble, EnsembleEnergies, NonFiniteEnergyError, normalize
from consensus.loop import Budget, ConsensusResult, Proposals, run_consensus
from consensus.scorer import Scorer
from consensus.selection import Best, Resample, TopK
from consensus.trace import TraceWriter, read_trace

__all__ = [
    "Best",
    "Budget",
    "ConsensusResult",
    "Ensemble",
    "EnsembleEnergies",
    "NonFiniteEnergyError",
    "Proposals",
    "Resample",
    "Scorer",
    "TopK",
    "TraceWriter",
    "normalize",
    "read_trace",
    "run_consensus",
]
__version__ = "0.1.0"
