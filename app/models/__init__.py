"""Models: a named architecture with a seed, its versions, its aliases (production first) and its promotion
policy."""
