"""Reading a YAML config file and saying in one line what is wrong with it.

Shared by the training config ([`sparsediff.training.config`][sparsediff.training.config])
and the experiment configs of ``pipelines/``: YAML through ``yaml.safe_load`` only,
and pydantic's errors as one line that lists the valid keys of a section.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sparsediff.errors import ConfigError

__all__ = ["format_validation_error", "read_yaml_mapping"]


def format_validation_error(
    err: ValidationError, model: type[BaseModel], what: str = "config"
) -> str:
    """One line for a pydantic error; unknown keys list the valid keys of their section."""
    msgs = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            section: Any = model
            for part in e["loc"][:-1]:
                field = section.model_fields.get(str(part))
                ann = field.annotation if field else None
                section = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else section
            valid = sorted(section.model_fields)
            close = difflib.get_close_matches(str(e["loc"][-1]), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            msgs.append(f"unknown key {loc!r}{hint}; valid keys here: {', '.join(valid)}")
        else:
            msgs.append(f"{loc or what}: {e['msg']}")
    return f"invalid {what}: " + "; ".join(msgs)


def read_yaml_mapping(path: str | os.PathLike[str], what: str = "config") -> dict[str, Any]:
    """Read a YAML file (``yaml.safe_load``) that must hold a mapping.

    Raises
    ------
    ConfigError
        A missing file, invalid YAML, or a document that is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of config sections")
    return raw
