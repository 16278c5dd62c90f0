"""One module per image.  Each exposes `build() -> Path` (the cached image directory)."""
