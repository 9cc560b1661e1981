"""Thin adapters between Kubernetes objects (dicts from the API) and the api/core types."""
