"""Memory Aware Synapses: Ω is the output's sensitivity to each parameter, measured without labels."""

from app.mas.methods.anchored import Anchored


class MAS(Anchored):
    name = "mas"
