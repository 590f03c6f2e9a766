"""Helpers of the drill suite."""

import threading

import pytest


def finishes_within(seconds: float, fn, *args):
    """Run ``fn(*args)`` and fail if it has not returned after ``seconds``: a time-out only a hang can hit
    (exponential work on these inputs would take hours; linear work takes milliseconds)."""
    outcome = {}

    def target():
        try:
            outcome["value"] = fn(*args)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = error

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"{getattr(fn, '__qualname__', fn)} did not finish within {seconds} s: it hangs on this input")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
