"""Evaluation: one resumable harness and one metrics module for every task."""
