"""View scorers: the energy of spatial relations as one camera sees a scene."""

from consensus.scorers.views.relations import ViewScorer

__all__ = ["ViewScorer"]
