"""In-memory cluster cache fed by API watches, with assumed allocations and immutable snapshots."""
