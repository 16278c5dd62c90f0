"""The image builder: recipes that turn Debian packages into what the lab boots, cached by content.

Each recipe names its inputs (packages resolved to exact versions and checksums, its own source, other
images); the hash of those inputs is the cache key.  A build goes to a temporary directory and is renamed
into place when complete, under a lock, so parallel test workers build an image once and never see half
of one.
"""
