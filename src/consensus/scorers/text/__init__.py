"""Text scorers: question–solution experts that look at different things."""

from consensus.scorers.text.agreement import AnswerAgreement
from consensus.scorers.text.arithmetic import ArithmeticVerifier
from consensus.scorers.text.judge import LLMJudge
from consensus.scorers.text.likelihood import LMLikelihood
from consensus.scorers.text.lm_verifier import LMVerifier
from consensus.scorers.text.reward import ProcessRewardScorer, RewardModelScorer
from consensus.scorers.text.verifier import StepVerifier, TrainedVerifier

__all__ = ["AnswerAgreement", "ArithmeticVerifier", "LLMJudge", "LMLikelihood", "LMVerifier", "ProcessRewardScorer",
           "RewardModelScorer", "StepVerifier", "TrainedVerifier"]
