"""Trace-driven simulator that replays real GPU job traces through the core decisions."""
