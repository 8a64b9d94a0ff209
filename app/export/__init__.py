"""Versions as files for use outside the service: θ as a safetensors checkpoint that says what it is, and one
task's network as ONNX or TorchScript (graphs.py: pure torch; service.py and routes.py: the version lookup and
the HTTP shell of both downloads)."""
