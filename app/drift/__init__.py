"""Drift reports (MAS.md §8): deployment batches tested against every task's reference features."""
