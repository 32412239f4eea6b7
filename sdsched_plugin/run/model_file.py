"""A model file's metadata, read from its safetensors header alone.

One job: ``read_metadata(path)``. A safetensors file starts with the header's length (8 bytes,
little-endian) and the header itself, JSON whose ``__metadata__`` maps text to text; the tensors
follow and are never read, so a multi-GB checkpoint costs two reads. Standard library only: no
torch, no ``safetensors``. Anything else is one ``OptionError`` naming the file and why.
"""

from __future__ import annotations

import json
import struct

from ..schedule.options import OptionError

FLAG = "--from"
MAX_HEADER = 100_000_000  # the safetensors format's own limit on the header


def _refuse(path, en: str, ja: str) -> OptionError:
    return OptionError(FLAG, str(path), en, ja)


def read_metadata(path) -> dict[str, str]:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            size = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if not 2 <= size <= MAX_HEADER:
                raise _refuse(path, "a .safetensors model file; this is not one", ".safetensors 形式のモデルファイルを指定してください")
            header = json.loads(f.read(size).decode("utf-8"))
    except OSError as error:
        raise _refuse(path, f"a model file that can be read ({error.strerror or error})", "読めるモデルファイルを指定してください") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _refuse(path, "a .safetensors model file; its header is not one", ".safetensors 形式のモデルファイルを指定してください") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not metadata:
        raise _refuse(
            path, "a model saved with its training metadata; this one has none", "学習時のメタデータを持つモデルを指定してください(このファイルにはありません)"
        )
    return {str(key): str(value) for key, value in metadata.items()}
