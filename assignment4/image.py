"""Build the spam filter's container image: stage a build context with exactly what the image needs, then build.

    python assignment4/image.py                      # build aml-spam-filter:latest with the machine's engine
    python assignment4/image.py --tag NAME:TAG --base-image python:3.11-slim --context-dir /tmp/ctx

The context (see the Dockerfile's header) takes ``app.py`` from ``assignment3`` at build time, the library as an
installable project (``pyproject.toml``, ``README.md``, ``shared/aml``: the image runs ``pip install ".[serve]"``),
the model artefact from the model store (``AML_MODEL_STORE``; built first if the store has none), and the ``serve``
extra's packages pinned from this environment (``requirements.txt``, ``constraints.txt``), so the pickled model loads
with the versions that saved it.

Base image: ``--base-image``, else ``AML_BASE_IMAGE``, else the local ``localhost/python-base:bookworm`` when the
engine has it (machines without a registry, see ``setup_container_engine.sh``), else the Dockerfile's public default.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from aml.core import modelstore
from aml.devtools import fixtures
from aml.ops import containers
from aml.spam import MODEL_NAME

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APP_DIR = ROOT / "assignment3"
DEFAULT_TAG = "aml-spam-filter:latest"
EXTRA = "serve"


def serve_packages(pyproject: str | Path = ROOT / "pyproject.toml") -> list[str]:
    """The packages of the library's ``serve`` extra, read from ``pyproject.toml`` (defined there once)."""
    return containers.extra_packages(pyproject, EXTRA)


def stage(dest: str | Path, model_store: str | Path | None = None) -> Path:
    """Stage the build context in ``dest`` (which must not exist yet or be empty) and return it."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty: stage into a fresh folder")
    model_dir = modelstore.store_path(MODEL_NAME, model_store)
    modelstore.load_metadata(model_dir)  # a clear error when the store has no such model
    containers.stage_context(
        dest,
        {
            "Dockerfile": HERE / "Dockerfile",
            ".dockerignore": HERE / ".dockerignore",
            "pyproject.toml": ROOT / "pyproject.toml",
            "README.md": ROOT / "README.md",
            "shared/aml": ROOT / "shared" / "aml",
            "app/app.py": APP_DIR / "app.py",
            f"app/models/{MODEL_NAME}/{modelstore.ARTEFACT}": model_dir / modelstore.ARTEFACT,
            f"app/models/{MODEL_NAME}/{modelstore.META}": model_dir / modelstore.META,
        },
    )
    why = f"the library's {EXTRA} extra, pinned from the training environment (pickle compatibility)"
    containers.write_pins(dest, serve_packages(), why)
    return dest


#: the base image choice (``--base-image``, ``AML_BASE_IMAGE``, the local image, the Dockerfile's default)
base_image = containers.base_image


def build_image(
    engine: str,
    tag: str = DEFAULT_TAG,
    model_store: str | Path | None = None,
    base: str | None = None,
    context_dir: str | Path | None = None,
) -> str:
    """Stage the context (in a temporary folder unless ``context_dir``) and build ``tag``; returns the image ID."""
    build_args = containers.base_image_args(engine, base)
    if context_dir is not None:
        return containers.build(engine, stage(context_dir, model_store), tag, build_args=build_args)
    with tempfile.TemporaryDirectory(prefix="aml-image-") as tmp:
        return containers.build(engine, stage(Path(tmp) / "context", model_store), tag, build_args=build_args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the spam filter's container image.")
    parser.add_argument("--tag", default=DEFAULT_TAG)
    parser.add_argument("--base-image", default=None, help="default: see the module docstring")
    parser.add_argument("--model-store", default=None, help="default: AML_MODEL_STORE or <repo>/models")
    parser.add_argument("--context-dir", default=None, help="stage the context here and keep it (default: temporary)")
    args = parser.parse_args(argv)
    fixtures.ensure_model(store=args.model_store)
    engine = containers.detect_engine()
    image = build_image(engine, args.tag, args.model_store, args.base_image, args.context_dir)
    name = containers.engine_name(engine)
    print(
        f"built {args.tag} ({image[:12]}) with {name}; run it with\n"
        f"  {name} run --rm --init --network=host -e PORT=8080 {args.tag}\n"
        f"  curl -s -X POST localhost:8080/score -H 'Content-Type: application/json' -d '{{\"text\": \"hi\"}}'"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
