"""``finmlops models publish``: registered versions as Triton model repositories."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from finmlops.config import Settings
from finmlops.contracts import ModelCard


def publish_versions(settings: Settings, refs: list[str], root: str,
                     endpoint_url: str | None) -> list[dict[str, Any]]:
    """Publish each registered version named by ``refs`` (every version when empty) as a Triton
    repository under ``root`` and record where on the version; one row per version."""
    from finmlops.deploy import publish_version
    from finmlops.tracking import (
        download_model,
        list_models,
        mark_published,
        onnx_signature,
        resolve,
    )

    wanted = [resolve(settings, r) for r in refs] if refs else [
        resolve(settings, row["version"]) for row in reversed(list_models(settings))]
    rows = []
    for info in {i.version: i for i in wanted}.values():
        with tempfile.TemporaryDirectory(prefix="finmlops-publish-") as tmp:
            local = download_model(settings, info.version, Path(tmp) / "model")
            # aliases move; the published bytes never do
            card = ModelCard.read(local).model_dump(mode="json", exclude_unset=True,
                                                    exclude={"aliases"})
            done = publish_version(local / "model.onnx", onnx_signature(local / "model.onnx"),
                                   model=info.name, version=info.version, root=root,
                                   card=card, endpoint_url=endpoint_url, source=info.uri)
        mark_published(settings, info.version, done.repository)
        rows.append({"version": info.version, "variant": info.variant,
                     "repository": done.repository, "model_folder": done.model_folder,
                     "created": done.created})
    return rows
