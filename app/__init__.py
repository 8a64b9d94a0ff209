"""lifelong: a REST service that keeps a PyTorch model learning new tasks without forgetting (MAS)."""
