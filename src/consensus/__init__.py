"""consensus: compose pre-trained models at inference time by iterative consensus.

A generator proposes, an ensemble of scorers gives each proposal an energy (lower is better), and
one engine feeds the scorers' verdict back to the generator through feedback forms until they agree.
"""

from consensus.core.agreement import Agreement, Verified
from consensus.core.budget import Budget
from consensus.core.engine import ConsensusResult, Proposals, run_consensus
from consensus.core.ensemble import Ensemble, EnsembleEnergies, NonFiniteEnergyError, normalize
from consensus.core.feedback import Best, CacheShift, Feedback, Guidance, Resample, TokenReweight, TopK
from consensus.core.rounds import Rounds
from consensus.core.scorer import Scorer
from consensus.core.trace import TraceWriter, read_trace

__all__ = [
    "Agreement",
    "Best",
    "Budget",
    "CacheShift",
    "ConsensusResult",
    "Ensemble",
    "EnsembleEnergies",
    "Feedback",
    "Guidance",
    "NonFiniteEnergyError",
    "Proposals",
    "Resample",
    "Rounds",
    "Scorer",
    "TokenReweight",
    "TopK",
    "TraceWriter",
    "Verified",
    "normalize",
    "read_trace",
    "run_consensus",
]
__version__ = "0.1.0"
