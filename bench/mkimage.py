#!/usr/bin/env python3
"""Writes an OCI image layout for the gateway benchmark, streaming: each layer
is an uncompressed tar holding one file of random bytes, hashed as it is
written, so a 4 GiB layer never sits in memory.

    bench/mkimage.py DIR TAG SIZE[,SIZE...]    sizes in bytes (k/m/g suffixes)
"""
import hashlib
import json
import os
import sys
import tarfile


def size_of(text):
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1].lower(), 1)
    return int(text.rstrip("kKmMgG")) * mult


def put(out, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(f"{out}/blobs/sha256/{digest}", "wb") as f:
        f.write(data)
    return f"sha256:{digest}", len(data)


def layer(out, index, size):
    tmp = f"{out}/blobs/layer.tmp"
    h = hashlib.sha256()
    written = 0
    with open(tmp, "wb") as f:
        def w(b):
            nonlocal written
            f.write(b)
            h.update(b)
            written += len(b)
        info = tarfile.TarInfo(f"layer-{index}.bin")
        info.size = size
        info.mode = 0o644
        w(info.tobuf(format=tarfile.USTAR_FORMAT))
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            w(chunk)
            left -= len(chunk)
        w(b"\0" * ((512 - size % 512) % 512) + b"\0" * 1024)
    digest = h.hexdigest()
    os.replace(tmp, f"{out}/blobs/sha256/{digest}")
    return f"sha256:{digest}", written


def main():
    out, tag, sizes = sys.argv[1], sys.argv[2], [size_of(s) for s in sys.argv[3].split(",")]
    os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
    layers = [layer(out, i, s) for i, s in enumerate(sizes)]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layers]},
    }).encode()
    config_digest, config_size = put(out, config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": d, "size": n} for d, n in layers],
    }).encode()
    manifest_digest, manifest_size = put(out, manifest)
    with open(f"{out}/oci-layout", "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(f"{out}/index.json", "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
    print(" ".join(d for d, _ in layers))


if __name__ == "__main__":
    main()
