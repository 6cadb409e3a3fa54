"""Reads. Each takes the acting user and returns only what that user may see."""
