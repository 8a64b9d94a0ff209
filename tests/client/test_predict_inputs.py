"""What `Client.predict` makes of its inputs: a single string is one text (it once became one prediction per
character), a single path or bytes one image, and inputs that mix kinds or hold numbers in a list are refused,
naming the item, before any request is sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from lifelong_client import Client

from tests.conftest import Service, unique

REVIEWS = {"positive": ["a lovely film", "a wonderful story", "a great cast", "a delightful evening", "truly moving"],
           "negative": ["a dull film", "a boring story", "a terrible cast", "a wasted evening", "truly awful"]}


@pytest.fixture(scope="module")
def reviews(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, str]]:
    """A MiniLM text model (frozen encoder, a short max_length: seconds on a CPU) that learned a sentiment task."""
    train = tmp_path_factory.mktemp("reviews") / "train.jsonl"
    train.write_text("".join(json.dumps({"text": text, "label": label}) + "\n"
                             for label, texts in REVIEWS.items() for text in texts))
    with Client(service.url, timeout=60.0) as lifelong:
        name = unique("reviews")
        lifelong.create_model(name, {"kind": "text-encoder", "max_length": 8, "trainable": "none"})
        job = lifelong.add_task(name, "sentiment", train, epochs=3, lr=0.1, batch_size=5).wait(timeout=300)
        assert job.succeeded, job.data
        yield lifelong, name


def test_a_single_string_is_one_text(reviews: tuple[Client, str]) -> None:
    lifelong, name = reviews
    alone = lifelong.predict(name, "a lovely film", task="sentiment", probabilities=True)
    assert alone.predictions.shape == (1,) and len(alone.labels) == 1 and alone.probabilities.shape == (1, 2)
    listed = lifelong.predict(name, ["a lovely film"], task="sentiment", probabilities=True)
    assert alone.predictions.tolist() == listed.predictions.tolist() and alone.labels == listed.labels
    np.testing.assert_allclose(alone.probabilities, listed.probabilities, rtol=1e-5)
    two = lifelong.predict(name, ("a lovely film", "a dull film"), task="sentiment")
    assert two.predictions.shape == (2,) and two.labels[0] == alone.labels[0]
    from_array = lifelong.predict(name, np.array(["a lovely film", "a dull film"]), task="sentiment")
    assert from_array.labels == two.labels


@pytest.mark.parametrize(("inputs", "error", "says"), [
    (["a lovely film", 3], TypeError, "item 1 is int"),
    ([[0.0] * 64, [1.0] * 64], TypeError, "numpy array"),
    ([np.zeros(64)], TypeError, "item 0 is ndarray"),
    ([], ValueError, "empty"),
    ({"text": "a lovely film"}, TypeError, "not dict"),
    (42, TypeError, "not int"),
    (np.zeros(3, dtype=np.complex64), TypeError, "complex64"),
])
def test_ambiguous_inputs_are_refused_before_sending(reviews: tuple[Client, str], inputs: object,
                                                     error: type[Exception], says: str) -> None:
    lifelong, name = reviews
    with pytest.raises(error, match=says):
        lifelong.predict(name, inputs, task="sentiment")  # type: ignore[arg-type]


def test_texts_mixed_with_images_are_refused(reviews: tuple[Client, str], tmp_path: Path) -> None:
    lifelong, name = reviews
    (image := tmp_path / "cat.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"item 0 is a text, item 1 an image"):
        lifelong.predict(name, ["a lovely film", image], task="sentiment")
    with pytest.raises(ValueError, match=r"names a file.*Path"):
        lifelong.predict(name, str(image), task="sentiment")


def sent(inputs: object) -> tuple[list[httpx.Request], Exception | None]:
    """The requests `predict(inputs)` sends, to a stand-in server that answers every one with one row."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"model": "m", "version": 1, "task": "t", "predictions": [0]})

    with Client("http://lifelong.test", transport=httpx.MockTransport(answer)) as client:
        try:
            client.predict("m", inputs, task="t")  # type: ignore[arg-type]
        except (TypeError, ValueError) as refused:
            return seen, refused
    return seen, None


def test_one_image_is_one_file_and_a_refusal_sends_nothing(tmp_path: Path) -> None:
    (image := tmp_path / "red.png").write_bytes(b"\x89PNG red")
    for one in (image, b"\x89PNG red", bytearray(b"\x89PNG red")):
        (request,), refused = sent(one)
        assert refused is None and request.content.count(b'name="files"') == 1 and b"\x89PNG red" in request.content
    (request,), _ = sent("a lovely film")
    assert json.loads(request.content) == {"texts": ["a lovely film"], "probabilities": False, "task": "t"}
    (request,), _ = sent(np.zeros((2, 64), dtype=np.float64))
    assert request.headers["content-type"] == "application/x-npy" and request.url.params["task"] == "t"
    seen, refused = sent(["a lovely film", 0.5])
    assert seen == [] and isinstance(refused, TypeError)
