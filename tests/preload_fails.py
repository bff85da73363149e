"""A module test kernels preload that cannot be imported."""

raise RuntimeError("this module refuses to be imported")
