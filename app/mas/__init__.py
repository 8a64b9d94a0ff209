"""Memory Aware Synapses in pure torch: networks, importance, penalty, training loop, evaluation.

This package is the science of the service. It imports torch, numpy and safetensors only, never
the web, database or queue layers, so a researcher can read and test it on its own.
"""
