"""The local demo: a stand-in cluster with GPU nodes, tenants and a burst of pods."""
