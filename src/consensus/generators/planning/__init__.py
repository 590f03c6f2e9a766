"""Planning generators: model-predictive control over a world model (the protocols and the CEM step)."""

from consensus.generators.planning.cem import CEMSteps
from consensus.generators.planning.protocol import ActionSpace, WorldModel

__all__ = ["ActionSpace", "CEMSteps", "WorldModel"]
