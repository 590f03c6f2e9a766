"""The image-generation task: a diffusion generator guided by an ensemble of image scorers.

The parts live by role: the generator in ``consensus.generators.diffusion``, the guidance in
``consensus.core.feedback.guidance``, the scorers in ``consensus.scorers.image``, FID/KID/IS in
``consensus.eval.metrics``. Here: Fashion-MNIST (``data``), the embedded default generator and scorers
(``experiment``), held-out evaluation (``evaluate``) and its report (``report``), the image grid, and
``consensus image`` (``cli``).
"""
