"""Models: a named architecture with a seed, its versions, and a head."""
