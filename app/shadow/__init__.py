"""Shadow deployments: a share of production's predictions replayed on another version, off the request
path, and how often the two agree."""
