"""Scorers by what they read: ``text`` (solutions), ``image`` (images in [0, 1]), ``frames`` (a text against a
video's frames), ``views`` (a scene's camera views). Scorers take task knowledge (a prompt format, an
answer extractor, a scene's geometry) as arguments and never import a task."""
