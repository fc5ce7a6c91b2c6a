"""Writing a small file so that a reader never sees it half written (temp file + rename)."""

from __future__ import annotations

import tensorflow as tf

__all__ = ["atomic_write_text"]


def atomic_write_text(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename: a kill leaves the old or the new file.

    Args:
        path: The file to replace (any ``tf.io.gfile`` path); ``path + ".tmp"`` is the
            temporary.
        text: Its new contents.
    """
    temporary = path + ".tmp"
    with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(text)
    tf.io.gfile.rename(temporary, path, overwrite=True)
