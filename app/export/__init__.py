"""Versions as files for use outside the service: the checkpoint's metadata, and one task's network as ONNX
or TorchScript (graphs.py: pure torch; service.py and routes.py: the version lookup and the HTTP shell)."""
