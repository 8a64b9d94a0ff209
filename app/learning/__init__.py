"""Learning: requests to learn a task or refresh importance, and the jobs that carry them out."""
