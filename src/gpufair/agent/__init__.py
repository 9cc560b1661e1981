"""The node agent: discovers per-GPU topology and publishes it as node labels."""
