"""Synthetic darknet weights for benchmarks: He-initialised convolutions with
identity batch-norm statistics, so activations stay finite through deep nets."""
import numpy as np

import darknetpy as dn


def write_synthetic_weights(cfg, path, seed=0):
    """Write a .weights file for ``cfg`` whose values keep activations in range."""
    rng = np.random.default_rng(seed)
    net = dn.Network(cfg, batch=1, fuse=False)
    parts = [np.array([0, 2, 5], "<i4").tobytes(), np.zeros(1, "<u8").tobytes()]
    for layer in net.layers:
        if not layer.n_weights:
            continue
        if layer.type != "convolutional":
            parts.append(rng.uniform(0, 0.1, layer.n_weights).astype("<f4").tobytes())
            continue
        n = layer.output_shape[0]
        kernel = layer.n_weights - n * (4 if layer.batch_normalize else 1)
        fan_in = kernel // n
        record = [np.zeros(n)]
        if layer.batch_normalize:
            record += [np.ones(n), np.zeros(n), np.ones(n)]
        record.append(rng.standard_normal(kernel) * np.sqrt(1.0 / fan_in))
        parts.append(np.concatenate(record).astype("<f4").tobytes())
    net.close()
    with open(path, "wb") as f:
        f.write(b"".join(parts))
