"""Fault-drill helpers: faults a drill injects into the parts around the service (its own PostgreSQL,
a small filesystem for the store)."""
