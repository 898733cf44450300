"""Stateful video blocks (trackers and analytics) and what they share: video time, tracked detections.

Each block instance serves one video source (the executor builds one per step and source), so the
state these blocks keep between frames (tracks, crossings, entry times, paths) is per source.
"""
