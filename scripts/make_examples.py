"""Write small raw-data tasks for the pretrained walk-through: sentences (.jsonl) and images (.zip).

Text tasks (for a text-encoder model), labels are class names:
    <out>/text/living-{train,eval}.jsonl   animal vs vehicle sentences
    <out>/text/things-{train,eval}.jsonl   fruit vs tool sentences
    <out>/text/deployment.jsonl            unlabeled sentences, as seen in deployment
Image tasks (for an image-backbone model), ImageFolder zips (one folder per class):
    <out>/images/warm-{train,eval}.zip     red vs yellow noisy squares
    <out>/images/cool-{train,eval}.zip     blue vs green noisy squares
    <out>/images/deployment.zip            unlabeled images
    <out>/images/query-{green,blue,red}.png  single images to predict

They are made from templates and random pixels here, so nothing is downloaded; the eval sentences
use sentence frames that the train sentences never use.

    python scripts/make_examples.py --out data
"""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

SUBJECTS = {
    "animal": ["cat", "dog", "horse", "cow", "sparrow", "lion", "rabbit", "goat"],
    "vehicle": ["car", "truck", "bus", "train", "bicycle", "tractor", "van", "scooter"],
    "fruit": ["apple", "banana", "cherry", "mango", "pear", "peach", "plum", "grape"],
    "tool": ["hammer", "wrench", "saw", "drill", "chisel", "shovel", "screwdriver", "rake"],
}
TRAIN_FRAMES = ["the {} is over there", "I saw a {} today", "a photo of a {}"]
EVAL_FRAMES = ["my neighbour has a {}", "look at that {}"]
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "yellow": (230, 220, 20)}


def text_records(classes: list[str], frames: list[str]) -> list[dict[str, str]]:
    """One labeled sentence per (class, subject, frame)."""
    return [{"text": frame.format(word), "label": name}
            for name in classes for word in SUBJECTS[name] for frame in frames]


def jsonl(records: list[dict[str, str]]) -> bytes:
    return "\n".join(json.dumps(record) for record in records).encode() + b"\n"


def png(colour: tuple[int, int, int], seed: int, size: int = 40) -> bytes:
    """A square of one colour with Gaussian pixel noise, as PNG bytes."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def image_folder_zip(classes: list[str], per_class: int, seed: int) -> bytes:
    """An ImageFolder zip: <class>/<i>.png for each class."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in classes:
            for i in range(per_class):
                archive.writestr(f"{name}/{i}.png", png(COLOURS[name], seed * 1000 + i))
    return buffer.getvalue()


def unlabeled_zip(colours: list[str], seed: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, name in enumerate(colours):
            archive.writestr(f"{i}.png", png(COLOURS[name], seed * 1000 + i))
    return buffer.getvalue()


def write_examples(out: Path) -> list[Path]:
    files = {
        "text/living-train.jsonl": jsonl(text_records(["animal", "vehicle"], TRAIN_FRAMES)),
        "text/living-eval.jsonl": jsonl(text_records(["animal", "vehicle"], EVAL_FRAMES)),
        "text/things-train.jsonl": jsonl(text_records(["fruit", "tool"], TRAIN_FRAMES)),
        "text/things-eval.jsonl": jsonl(text_records(["fruit", "tool"], EVAL_FRAMES)),
        "text/deployment.jsonl": jsonl([{"text": t} for t in ("a goat near the road", "a bus at night")]),
        "images/warm-train.zip": image_folder_zip(["red", "yellow"], 12, seed=1),
        "images/warm-eval.zip": image_folder_zip(["red", "yellow"], 6, seed=2),
        "images/cool-train.zip": image_folder_zip(["blue", "green"], 12, seed=3),
        "images/cool-eval.zip": image_folder_zip(["blue", "green"], 6, seed=4),
        "images/deployment.zip": unlabeled_zip(["blue", "green", "blue"], seed=5),
        "images/query-green.png": png(COLOURS["green"], 6),
        "images/query-blue.png": png(COLOURS["blue"], 8),
        "images/query-red.png": png(COLOURS["red"], 7),
    }
    written = []
    for name, data in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data"), help="folder to write to [data]")
    args = parser.parse_args()
    for path in write_examples(args.out):
        print(f"{path}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
