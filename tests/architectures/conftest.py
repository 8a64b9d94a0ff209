"""Fixtures for the architecture tests: pretrained networks are built once per module (loading is the slow part)."""

from __future__ import annotations

import pytest

from app.architectures import build_network, validate_architecture


@pytest.fixture(scope="module")
def text_spec() -> dict:
    return validate_architecture({"kind": "text-encoder", "max_length": 32})


@pytest.fixture(scope="module")
def text_net(text_spec: dict):
    return build_network(text_spec, seed=0).eval()


@pytest.fixture(scope="module")
def image_spec() -> dict:
    return validate_architecture({"kind": "image-backbone", "image_size": 64})


@pytest.fixture(scope="module")
def image_net(image_spec: dict):
    return build_network(image_spec, seed=0).eval()
