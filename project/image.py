"""Build the project's container image (the ML system: ``src/app.py`` over stores in a volume).

    python project/image.py                       # build aml-spam-project:latest with the machine's engine
    python project/image.py --tag NAME:TAG --base-image python:3.11-slim --context-dir /tmp/ctx

The context is the one the Dockerfile's header lists: the library's ``project`` extra pinned from this environment
(``requirements.txt``; ``constraints.txt`` adds the ``setuptools`` that builds the library's wheel), the library as
an installable project (``pyproject.toml``, ``README.md``, ``shared/aml``) and the service (``project/Dockerfile``,
``project/src``, ``project/config``). Nothing else of the repository (stores, notebooks, ``.venv``) goes in.

The base image is chosen by :func:`aml.ops.containers.base_image` (``--base-image``, ``AML_BASE_IMAGE``, the
local ``localhost/python-base:bookworm`` when the engine has it, else the Dockerfile's public default), as for
Assignment 4's image. The continuous deployment hook (:mod:`aml.ops.deploy`) runs this script in the pushed tree.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from aml.ops import containers

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_TAG = "aml-spam-project:latest"
EXTRA = "project"
DOCKERFILE = "project/Dockerfile"


def project_packages(pyproject: str | Path = ROOT / "pyproject.toml") -> list[str]:
    """The packages of the library's ``project`` extra (its references to other extras expanded)."""
    return containers.extra_packages(pyproject, EXTRA)


def stage(dest: str | Path, root: str | Path = ROOT) -> Path:
    """Stage the build context of the repository ``root`` in ``dest`` (new or empty) and return it."""
    dest, root = Path(dest), Path(root)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty: stage into a fresh folder")
    containers.stage_context(
        dest,
        {
            "pyproject.toml": root / "pyproject.toml",
            "README.md": root / "README.md",
            "shared/aml": root / "shared" / "aml",
            DOCKERFILE: root / DOCKERFILE,
            "project/src": root / "project" / "src",
            "project/config": root / "project" / "config",
        },
    )
    why = f"the library's {EXTRA} extra, pinned from the environment that trains and tests the models"
    containers.write_pins(dest, project_packages(root / "pyproject.toml"), why)
    return dest


def build_image(
    engine: str,
    tag: str = DEFAULT_TAG,
    base: str | None = None,
    context_dir: str | Path | None = None,
    root: str | Path = ROOT,
) -> str:
    """Stage the context (in a temporary folder unless ``context_dir``) and build ``tag``; returns the image ID."""
    build_args = containers.base_image_args(engine, base)

    def build(context: Path) -> str:
        return containers.build(engine, context, tag, dockerfile=context / DOCKERFILE, build_args=build_args)

    if context_dir is not None:
        return build(stage(context_dir, root))
    with tempfile.TemporaryDirectory(prefix="aml-project-image-") as tmp:
        return build(stage(Path(tmp) / "context", root))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the project's container image.")
    parser.add_argument("--tag", default=DEFAULT_TAG)
    parser.add_argument("--base-image", default=None, help="default: see the module docstring")
    parser.add_argument("--context-dir", default=None, help="stage the context here and keep it (default: temporary)")
    args = parser.parse_args(argv)
    engine = containers.detect_engine()
    started = time.perf_counter()
    image = build_image(engine, args.tag, args.base_image, args.context_dir)
    elapsed = time.perf_counter() - started
    name = containers.engine_name(engine)
    size = containers.image_info(engine, image)["size"] / 1e6
    print(
        f"built {args.tag} ({image[:12]}, {size:.0f} MB) with {name} in {elapsed:.1f} s; run it with\n"
        f"  mkdir -p store && chown 10001:10001 store\n"
        f"  {name} run -d --init --network=host -v $PWD/store:/store -e AML_API_TOKEN=... -e PORT=8000 {args.tag}\n"
        f"  curl -s localhost:8000/health"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
