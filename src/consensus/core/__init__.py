"""The core: the scorer contract, the ensemble, the engine, its feedback forms, budget, trace and weighting.

It imports no model library beyond torch.
"""
