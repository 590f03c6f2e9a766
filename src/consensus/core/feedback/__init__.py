"""Feedback forms: small pluggable objects that act on a step's proposals (contract: ``base.Feedback``).

- ``Best``, ``TopK`` (select.py): keep the lowest-energy candidates (best-of-N, beam search).
- ``Resample`` (resample.py): draw survivors by exp(−E/τ) (sequential Monte Carlo).
- ``TokenReweight`` (token_reweight.py): the next token by log p_LM + log softmax(−E/τ).
- ``CacheShift`` (cache_shift.py): ZeroCap's gradient steps on the LM's key/value cache.
- ``Guidance`` (guidance.py): move a diffusion sample's x̂0 along the ensemble's gradient.
"""

from consensus.core.feedback.base import Context, Feedback
from consensus.core.feedback.cache_shift import CacheShift
from consensus.core.feedback.guidance import SCHEDULES, Guidance
from consensus.core.feedback.resample import Resample
from consensus.core.feedback.select import Best, TopK
from consensus.core.feedback.token_reweight import TokenReweight

__all__ = ["SCHEDULES", "Best", "CacheShift", "Context", "Feedback", "Guidance", "Resample", "TokenReweight", "TopK"]
