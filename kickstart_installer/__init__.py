"""The lab's own installer: it speaks kickstart (parsed by pykickstart, Anaconda's parser)."""
