"""Versions: immutable snapshots of a model (θ, Ω_frozen, Ω_open), their lineage, and the head."""
