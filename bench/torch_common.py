"""Helpers the PyTorch reference scripts of the bench share (not part of the package)."""
import json
import os
import re
import struct

import numpy as np


def read_safetensors(path):
    """Every tensor of a float32 .safetensors file, by name, as numpy arrays of its shape."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + begin:8 + n + end], dtype="<f4").reshape(info["shape"])
    return out


def blas_libraries():
    """The BLAS shared objects this process has mapped (after a matmul), resolved to files."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            p = parts[-1] if len(parts) >= 6 else ""
            if re.search(r"blas|mkl|lapack", os.path.basename(p)):
                libs.add(os.path.realpath(p))
    return sorted(libs)
