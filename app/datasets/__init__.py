"""Datasets: uploaded or inline arrays, parsed once, stored content-addressed, referred to by id."""
