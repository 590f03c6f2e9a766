"""Offline model recipes: real pre-trained weights that install from the package registries."""
