"""The image-generation task: a diffusion generator guided by an ensemble of image scorers.

The parts live by role: the generator in ``consensus.generators.diffusion``, the guidance in
``consensus.core.feedback.guidance``, the scorers in ``consensus.scorers.image``. Here: the embedded
Fashion-MNIST default (``default``, ``fashion_data``), evaluation (``metrics``, ``evaluate``), the
image grid, and ``consensus image`` (``cli``).
"""
