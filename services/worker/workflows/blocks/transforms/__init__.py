"""Implementations of the transformations family (crops, slicer, stitch, consensus), one concept a module."""
