"""Drive the real huggingface_hub for the interop tests.

Usage: python hf.py '<json list of asks>'; each ask is {"repo": "org/name", "file": "a.bin" | null,
"revision": "main" | null, "offline": bool}. A file ask calls hf_hub_download, a fileless one
snapshot_download, both with cache_dir=$HF_HUB_CACHE. Prints a JSON list of the returned paths.
"""

import json
import os
import sys

from huggingface_hub import hf_hub_download, snapshot_download


def fetch(ask, cache_dir):
    common = dict(revision=ask.get("revision"), cache_dir=cache_dir, local_files_only=ask.get("offline", False))
    if ask.get("file"):
        return hf_hub_download(ask["repo"], ask["file"], **common)
    return snapshot_download(ask["repo"], **common)


def main():
    cache_dir = os.environ["HF_HUB_CACHE"]
    print(json.dumps([fetch(ask, cache_dir) for ask in json.loads(sys.argv[1])]))


if __name__ == "__main__":
    main()
