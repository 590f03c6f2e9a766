"""The fuzz suite's budget: a fixed number of cases per property, derandomized so CI sees the same cases every run
(a failure there is a bug, never bad luck). ``CONSENSUS_FUZZ=long`` runs ten times as many, freshly random, for a
local hunt."""

import os

from hypothesis import HealthCheck, settings

CASES = 150
settings.register_profile("ci", max_examples=CASES, derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=10 * CASES, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("long" if os.environ.get("CONSENSUS_FUZZ") == "long" else "ci")
