"""ONNX export of a darknet network: the same inference graph for ONNX Runtime, OpenVINO, TensorRT.

Batch norm is folded into the convolution / connected weights; every layer kind darknetpy runs at
inference maps to standard ONNX operators (opset >= 13). The graph has one input ``input``
(N, C, H, W), float32 RGB in [0, 1] as :meth:`Network.predict` takes it, and:

- a network without ``[yolo]`` layers: one output ``output`` (N, outputs), what ``predict`` returns;
- ``decode=False``: one output per ``[yolo]`` layer, ``yolo_<index>`` (N, slots*(5+classes), h, w),
  that layer's output as darknet computes it (logistic on x, y, objectness and classes unless
  ``new_coords=1``, then ``scale_x_y``);
- ``decode=True``: one output ``detections`` (N, boxes, 5 + classes), boxes ready for NMS: per box
  ``x, y, w, h`` (centre and size, relative to the network input, darknet's ``get_yolo_box``),
  ``objectness``, then one score per class = objectness * class probability. Boxes come in darknet's
  order: ``[yolo]`` layers in cfg order, then cells in raster order, then the layer's anchor slots.
  No threshold is applied (darknet zeroes scores <= thresh) and no letterbox correction.

The model's metadata ``darknetpy.layer_outputs`` (JSON) lists, per layer index, the graph tensor that
holds that layer's output (add it to the graph outputs to read intermediate features).

Needs the ``onnx`` package (``pip install onnx``).
"""
from __future__ import annotations

import json
import os
from typing import Callable, Optional, Union

import numpy as np

from .errors import UnsupportedError

__all__ = ["export_onnx", "build_model"]

_BN_EPS = 1e-5          # darknet's batch-norm epsilon: x_hat = (x - mean) / sqrt(var + eps)
_MIN_OPSET = 13


class _Graph:
    """Nodes and initializers of the graph being built, with fresh tensor names."""

    def __init__(self, opset: int):
        from onnx import helper, numpy_helper
        self.helper, self.numpy_helper, self.opset = helper, numpy_helper, opset
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value, hint: str = "c", dtype=np.float32) -> str:
        name = self.name(hint)
        self.inits.append(self.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def ints(self, values, hint: str = "shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint, np.int64)

    def op(self, op_type: str, inputs: list, hint: Optional[str] = None, out: Optional[str] = None,
           **attrs) -> str:
        out = out or self.name(hint or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def reduce(self, op_type: str, x: str, axes: list, keepdims: int = 1) -> str:
        """ReduceSum takes axes as an input from opset 13, the other reductions from opset 18."""
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.ints(axes, "axes")], keepdims=keepdims)
        return self.op(op_type, [x], axes=axes, keepdims=keepdims)

    def scalar(self, v: float) -> str:
        return self.const(np.float32(v), "k")


# ---------------------------------------------------------------- activations (darknet's formulas)


def _where(g: _Graph, cond: str, a: str, b: str) -> str:
    return g.op("Where", [cond, a, b])


def _sigmoid(g, x):
    return g.op("Sigmoid", [x])


def _mul(g, *xs):
    out = xs[0]
    for x in xs[1:]:
        out = g.op("Mul", [out, x])
    return out


def _affine(g, x, a, b):
    """a * x + b."""
    return g.op("Add", [g.op("Mul", [x, g.scalar(a)]), g.scalar(b)])


def _piecewise3(g, x, lo, hi, below, mid, above):
    """below(x) where x < lo, above(x) where x > hi, mid(x) between (darknet's plse/lhtan)."""
    return _where(g, g.op("Less", [x, g.scalar(lo)]), below,
                  _where(g, g.op("Greater", [x, g.scalar(hi)]), above, mid))


def _stair(g, x):
    n = g.op("Floor", [x])
    half = g.op("Floor", [g.op("Mul", [x, g.scalar(.5)])])
    even = g.op("Equal", [g.op("Sub", [n, _mul(g, g.op("Floor", [g.op("Mul", [n, g.scalar(.5)])]),
                                                g.scalar(2))]), g.scalar(0)])
    return _where(g, even, half, g.op("Add", [g.op("Sub", [x, n]), half]))


def _channel_norm(g, x, kind):
    """normalize_channels*: per pixel over the channel axis (1), darknet's 1e-4 in the sum."""
    if kind == "normalize_channels":
        pos = g.op("Relu", [x])
        return g.op("Div", [pos, g.op("Add", [g.reduce("ReduceSum", pos, [1]), g.scalar(1e-4)])])
    if kind == "normalize_channels_softmax_maxval":
        x = g.op("Sub", [x, g.reduce("ReduceMax", x, [1])])
    e = g.op("Exp", [x])
    return g.op("Div", [e, g.op("Add", [g.reduce("ReduceSum", e, [1]), g.scalar(1e-4)])])


def _tanh_softplus(g, x):
    return g.op("Tanh", [g.op("Softplus", [x])])


_ACTIVATIONS: dict = {
    "linear": lambda g, x: x,
    "logistic": _sigmoid,
    "loggy": lambda g, x: _affine(g, _sigmoid(g, x), 2, -1),
    "relu": lambda g, x: g.op("Relu", [x]),
    "relu6": lambda g, x: g.op("Clip", [x, g.scalar(0), g.scalar(6)]),
    "relie": lambda g, x: g.op("LeakyRelu", [x], alpha=.01),
    "leaky": lambda g, x: g.op("LeakyRelu", [x], alpha=.1),
    "revleaky": lambda g, x: g.op("LeakyRelu", [x], alpha=.1),
    "ramp": lambda g, x: g.op("Add", [g.op("Relu", [x]), g.op("Mul", [x, g.scalar(.1)])]),
    "tanh": lambda g, x: g.op("Tanh", [x]),
    "elu": lambda g, x: g.op("Elu", [x], alpha=1.),
    "selu": lambda g, x: g.op("Selu", [x], alpha=1.6732, gamma=1.0507),
    "gelu": lambda g, x: _mul(g, x, g.scalar(.5), g.op("Add", [g.scalar(1), g.op("Tanh", [g.op("Add", [
        g.op("Mul", [x, g.scalar(.797885)]), _mul(g, x, x, x, g.scalar(.035677))])])])),
    "plse": lambda g, x: _piecewise3(g, x, -4, 4, _affine(g, x, .01, .04), _affine(g, x, .125, .5),
                                     _affine(g, x, .01, .96)),
    "hardtan": lambda g, x: g.op("Clip", [x, g.scalar(-1), g.scalar(1)]),
    "lhtan": lambda g, x: _piecewise3(g, x, 0, 1, _affine(g, x, .001, 0), x, _affine(g, x, .001, .999)),
    "stair": _stair,
    "swish": lambda g, x: g.op("Mul", [x, _sigmoid(g, x)]),
    "mish": lambda g, x: g.op("Mul", [x, _tanh_softplus(g, x)]),
    "hard_mish": lambda g, x: _where(g, g.op("Greater", [x, g.scalar(0)]), x, _where(
        g, g.op("Greater", [x, g.scalar(-2)]), g.op("Add", [_mul(g, x, x, g.scalar(.5)), x]), g.scalar(0))),
    "normalize_channels": lambda g, x: _channel_norm(g, x, "normalize_channels"),
    "normalize_channels_softmax": lambda g, x: _channel_norm(g, x, "normalize_channels_softmax"),
    "normalize_channels_softmax_maxval": lambda g, x: _channel_norm(g, x, "normalize_channels_softmax_maxval"),
}


# ---------------------------------------------------------------- layers

class _Tensor:
    """A layer output in the graph: flat (N, values) or an image (N, C, H, W)."""

    def __init__(self, name: str, shape: tuple):
        self.name, self.shape = name, shape   # shape: (c, h, w) of an image, or (values,)


class _Exporter:
    def __init__(self, net, g: _Graph):
        self.net, self.g = net, g
        self.fused = bool(net.info["fused"])

    # -- input views
    def image(self, t: _Tensor, shape: tuple) -> str:
        if t.shape == tuple(shape):
            return t.name
        return self.g.op("Reshape", [t.name, self.g.ints((-1,) + tuple(shape))])

    def flat(self, t: _Tensor) -> str:
        return t.name if len(t.shape) == 1 else self.g.op("Flatten", [t.name], axis=1)

    def inputs(self, layer, outs: dict) -> list:
        return [outs[i] for i in layer.input_layers]

    def out(self, layer, name: str) -> _Tensor:
        c, h, w = layer.output_shape
        is_image = c * h * w == layer.outputs and c > 0
        return _Tensor(name, (c, h, w) if is_image else (layer.outputs,))

    def act(self, x: str, name: str) -> str:
        return _ACTIVATIONS[name](self.g, x)

    def folded(self, index: int, per_out: int) -> tuple:
        """(weights, biases) of layer `index` with its batch norm folded in."""
        w = self.net.param(index, "weights").reshape(per_out, -1)
        b = self.net.param(index, "biases")
        if self.net.layers[index].batch_normalize:
            s = self.net.param(index, "scales") / np.sqrt(self.net.param(index, "rolling_variance") + _BN_EPS)
            w = w * s[:, None]
            b = b - self.net.param(index, "rolling_mean") * s
        return w.astype(np.float32), b.astype(np.float32)

    # -- one method per layer kind: (layer, attrs, input tensors) -> output name
    def convolutional(self, layer, a, ins):
        g, c, (n, oh, ow) = self.g, layer.input_shape[0], layer.output_shape
        src = a["share_index"] if a["share_index"] >= 0 else layer.index
        w, b = self.folded(src, a["filters"])
        k, d, p = a["size"], a["dilation"], a["padding"]
        w = w.reshape(n, c // a["groups"], k, k)
        pad_begin = p * d   # darknet's dilated window starts pad*dilation before the output's origin
        # end pads that give darknet's output size (which ignores the dilation); where the window
        # never reaches the end, no pad and ONNX's floor give the same size
        ends = [max(0, (o - 1) * s + (k - 1) * d + 1 - size - pad_begin)
                for o, s, size in ((oh, a["stride_y"], layer.input_shape[1]), (ow, a["stride_x"], layer.input_shape[2]))]
        y = g.op("Conv", [self.image(ins[0], layer.input_shape), g.const(w, "w"), g.const(b, "b")],
                 kernel_shape=[k, k], strides=[a["stride_y"], a["stride_x"]], dilations=[d, d],
                 pads=[pad_begin, pad_begin] + ends, group=a["groups"])
        return self.act(y, a["activation"])

    def connected(self, layer, a, ins):
        w, b = self.folded(layer.index, a["output"])
        y = self.g.op("Gemm", [self.flat(ins[0]), self.g.const(w, "w"), self.g.const(b, "b")], transB=1)
        return self.act(y, a["activation"])

    def _pool(self, op, layer, a, ins, **extra):
        p = a["padding"]
        return self.g.op(op, [self.image(ins[0], layer.input_shape)], kernel_shape=[a["size"]] * 2,
                         strides=[a["stride_y"], a["stride_x"]], pads=[p // 2, p // 2, p - p // 2, p - p // 2], **extra)

    def maxpool(self, layer, a, ins):
        if not a["maxpool_depth"]:
            return self._pool("MaxPool", layer, a, ins)
        g, (c, h, w), oc = self.g, layer.input_shape, a["out_channels"]
        x = self.image(ins[0], layer.input_shape)
        if c % oc == 0:   # output channel j = max over input channels j, j+oc, j+2oc, ...
            return g.reduce("ReduceMax", g.op("Reshape", [x, g.ints([-1, c // oc, oc, h, w])]), [1], keepdims=0)
        planes = [g.reduce("ReduceMax", g.op("Gather", [x, g.ints(list(range(j, c, oc)), "idx")], axis=1), [1])
                  for j in range(oc)]
        return g.op("Concat", planes, axis=1)

    def local_avgpool(self, layer, a, ins):
        return self._pool("AveragePool", layer, a, ins, count_include_pad=0)

    def avgpool(self, layer, a, ins):
        return self.g.op("GlobalAveragePool", [self.image(ins[0], layer.input_shape)])

    def softmax(self, layer, a, ins):
        g, n = self.g, layer.inputs
        x = g.op("Reshape", [self.flat(ins[0]), g.ints([-1, a["groups"], n // a["groups"]])])
        if a["temperature"] != 1:
            x = g.op("Div", [x, g.scalar(a["temperature"])])
        return g.op("Reshape", [g.op("Softmax", [x], axis=-1), g.ints([-1, n])])

    def identity(self, layer, a, ins):
        return ins[0].name

    dropout = cost = empty = identity

    def route(self, layer, a, ins):
        g, k, j = self.g, a["groups"], a["group_id"]
        images = all(len(t.shape) == 3 for t in ins) and len(self.out(layer, "").shape) == 3
        parts = []
        for t in ins:
            x, axis, size = (t.name, 1, t.shape[0]) if images else (self.flat(t), 1, int(np.prod(t.shape)))
            if k > 1:
                part = size // k
                x = g.op("Slice", [x, g.ints([j * part]), g.ints([(j + 1) * part]), g.ints([axis])])
            parts.append(x)
        return parts[0] if len(parts) == 1 else g.op("Concat", parts, axis=1)

    def shortcut(self, layer, a, ins):
        g, (c, h, w) = self.g, layer.output_shape
        weights = self.shortcut_weights(layer, a)
        terms = []
        for k, t in enumerate(ins):
            x = self.image(t, t.shape if len(t.shape) == 3 else layer.input_shape)
            src_c = t.shape[0] if len(t.shape) == 3 else c
            if src_c > c:      # a `from` layer adds its overlapping channel prefix
                x = g.op("Slice", [x, g.ints([0]), g.ints([c]), g.ints([1])])
            elif src_c < c:
                x = g.op("Pad", [x, g.ints([0, 0, 0, 0, 0, c - src_c, 0, 0])])
            if weights is not None:
                wk = weights[k].reshape(1, -1, 1, 1) if weights.shape[1] > 1 else weights[k, 0]
                x = g.op("Mul", [x, g.const(wk, "sw")])
            terms.append(x)
        y = terms[0] if len(terms) == 1 else g.op("Sum", terms)
        return self.act(y, a["activation"])

    def shortcut_weights(self, layer, a) -> Optional[np.ndarray]:
        """(inputs, 1 or channels) weights as the engine applies them, normalised across inputs."""
        if a["weights_type"] == "none":
            return None
        w = self.net.param(layer.index, "weights").astype(np.float64).reshape(len(layer.input_layers), -1)
        if a["weights_normalization"] == "relu":   # a fused network clamps at 0.001 (darknet's fuse quirk)
            r = np.maximum(w, .001 if self.fused else 0.)
            w = r / (r.sum(axis=0) + 1e-4)
        elif a["weights_normalization"] == "softmax":
            e = np.exp(w - w.max(axis=0))
            w = e / (e.sum(axis=0) + 1e-4)
        return w.astype(np.float32)

    def upsample(self, layer, a, ins):
        g, k, x = self.g, abs(a["stride"]), self.image(ins[0], layer.input_shape)
        if a["stride"] > 0:
            y = g.op("Resize", [x, "", g.const([1, 1, k, k], "scales")], mode="nearest",
                     coordinate_transformation_mode="asymmetric", nearest_mode="floor")
            scale = a["scale"]
        else:   # darknet's down-sampling sums k x k blocks
            y = g.op("AveragePool", [x], kernel_shape=[k, k], strides=[k, k])
            scale = a["scale"] * k * k
        return y if scale == 1 else g.op("Mul", [y, g.scalar(scale)])

    def scale_channels(self, layer, a, ins):
        c, h, w = layer.output_shape
        s = self.image(ins[0], (1, h, w) if a["scale_wh"] else (c, 1, 1))
        y = self.g.op("Mul", [self.image(ins[1], layer.output_shape), s])
        return self.act(y, a["activation"])

    def sam(self, layer, a, ins):
        y = self.g.op("Mul", [self.image(ins[0], layer.output_shape), self.image(ins[1], layer.output_shape)])
        return self.act(y, a["activation"])

    def reorg3d(self, layer, a, ins):
        # out[(dy*s + dx)*c + ci, y, x] = in[ci, y*s + dy, x*s + dx]: ONNX SpaceToDepth's order
        return self.g.op("SpaceToDepth", [self.image(ins[0], layer.input_shape)], blocksize=a["stride"])

    def activation(self, layer, a, ins):
        t = ins[0]
        return self.act(t.name, a["activation"])

    def batchnorm(self, layer, a, ins):
        c = layer.input_shape[0]
        p = {k: self.net.param(layer.index, k) for k in ("scales", "rolling_mean", "rolling_variance", "biases")}
        s = p["scales"] / np.sqrt(p["rolling_variance"] + _BN_EPS)
        y = self.g.op("Mul", [self.image(ins[0], layer.input_shape), self.g.const(s.reshape(1, c, 1, 1), "s")])
        return self.g.op("Add", [y, self.g.const((p["biases"] - p["rolling_mean"] * s).reshape(1, c, 1, 1), "b")])

    def yolo(self, layer, a, ins):
        """darknet's inference transform, in the layer's own layout (N, slots*(5+classes), h, w)."""
        g, (c, h, w) = self.g, layer.output_shape
        n, e = len(a["mask"]), a["classes"] + 5
        x = g.op("Reshape", [self.image(ins[0], layer.input_shape), g.ints([-1, n, e, h, w])])
        part = lambda lo, hi: g.op("Slice", [x, g.ints([lo]), g.ints([hi]), g.ints([2])])  # noqa: E731
        xy, wh, rest = part(0, 2), part(2, 4), part(4, e)
        if not a["new_coords"]:
            xy, rest = _sigmoid(g, xy), _sigmoid(g, rest)
        s = a["scale_x_y"]
        if s != 1:
            xy = _affine(g, xy, s, -(s - 1) / 2)
        y = g.op("Concat", [xy, wh, rest], axis=2)
        return g.op("Reshape", [y, g.ints([-1, c, h, w])])

    def decode_yolo(self, layer, a, raw: str) -> str:
        """(N, h*w*slots, 5+classes) boxes of one [yolo] layer from its output (darknet's get_yolo_box)."""
        g, (c, h, w) = self.g, layer.output_shape
        n, e = len(a["mask"]), a["classes"] + 5
        anchors = np.asarray(a["anchors"], np.float32).reshape(-1, 2)[list(a["mask"])]
        v = g.op("Transpose", [g.op("Reshape", [raw, g.ints([-1, n, e, h, w])])], perm=[0, 3, 4, 1, 2])
        part = lambda lo, hi: g.op("Slice", [v, g.ints([lo]), g.ints([hi]), g.ints([4])])  # noqa: E731
        col, row = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        grid = np.stack([col, row], -1)[:, :, None, :]                       # (h, w, 1, 2)
        xy = g.op("Div", [g.op("Add", [part(0, 2), g.const(grid, "grid")]), g.const([w, h], "lwh")])
        wh = part(2, 4)
        wh = _mul(g, wh, wh, g.scalar(4)) if a["new_coords"] else g.op("Exp", [wh])
        wh = g.op("Mul", [wh, g.const(anchors / np.float32([self.net.width, self.net.height]), "anchors")])
        obj = part(4, 5)
        scores = g.op("Mul", [part(5, e), obj])
        y = g.op("Concat", [xy, wh, obj, scores], axis=4)
        return g.op("Reshape", [y, g.ints([-1, h * w * n, e])])


def export_onnx(net, path: Union[str, os.PathLike], *, opset: int = 17, batch: Optional[int] = 1,
                decode: bool = True) -> None:
    """Write ``net`` (weights as they are now) as an ONNX model; see the module documentation for
    the outputs. ``batch=None`` makes the batch dimension dynamic. Raises UnsupportedError naming
    the layer when a layer has no ONNX form."""
    import onnx
    model = build_model(net, opset=opset, batch=batch, decode=decode)
    onnx.save(model, os.fspath(path))
    onnx.checker.check_model(os.fspath(path))   # from the file: one serialisation, not two


def build_model(net, *, opset: int = 17, batch: Optional[int] = 1, decode: bool = True):
    """The ``onnx.ModelProto`` that :func:`export_onnx` writes (not checked)."""
    try:
        from onnx import TensorProto, helper
    except ImportError:
        raise UnsupportedError("exporting to ONNX needs the onnx package: pip install onnx") from None

    if opset < _MIN_OPSET:
        raise ValueError(f"opset={opset} is too old: the export needs opset {_MIN_OPSET} or later")
    if batch is not None and (not isinstance(batch, (int, np.integer)) or batch < 1):
        raise ValueError(f"batch must be a positive int or None (dynamic), not {batch!r}")
    g = _Graph(opset)
    ex = _Exporter(net, g)
    outs: dict = {-1: _Tensor("input", net.input_shape)}
    heads = []
    for layer in net.layers[:net.output_layer + 1]:
        convert: Optional[Callable] = getattr(ex, layer.type, None) if layer.type in _KINDS else None
        if convert is None:
            raise UnsupportedError(f"layer {layer.index} [{layer.type}] has no ONNX export "
                                   f"({layer.summary.strip()})")
        a = net.layer_attrs(layer.index)
        if a.get("activation", "linear") not in _ACTIVATIONS:
            raise UnsupportedError(f"layer {layer.index} [{layer.type}]: activation={a['activation']} has no "
                                   "ONNX export")
        outs[layer.index] = ex.out(layer, convert(layer, a, ex.inputs(layer, outs)))
        if layer.type == "yolo":
            heads.append((layer, a))

    dim = "batch" if batch is None else int(batch)
    if not heads:
        last = outs[net.output_layer]
        results = [(g.op("Identity", [ex.flat(last)], out="output"), [dim, net.outputs])]
    elif not decode:
        results = [(g.op("Identity", [outs[l.index].name], out=f"yolo_{l.index}"), [dim, *l.output_shape])
                   for l, _ in heads]
    else:
        boxes = [ex.decode_yolo(l, a, outs[l.index].name) for l, a in heads]
        total = sum(l.output_shape[1] * l.output_shape[2] * len(a["mask"]) for l, a in heads)
        classes = {a["classes"] for _, a in heads}
        if len(classes) != 1:
            raise UnsupportedError(f"the [yolo] layers have different classes= ({sorted(classes)}): decoded "
                                   "boxes need one class count; export with decode=False")
        y = boxes[0] if len(boxes) == 1 else g.op("Concat", boxes, axis=1)
        results = [(g.op("Identity", [y], out="detections"), [dim, total, 5 + classes.pop()])]
    graph = helper.make_graph(
        g.nodes, os.path.basename(net.cfg_path),
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [dim, *net.input_shape])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in results],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="darknetpy")
    helper.set_model_props(model, {"darknetpy.layer_outputs": json.dumps([outs[i].name for i in range(len(outs) - 1)])})
    return model


# every layer kind with an ONNX form (the _Exporter method of that name)
_KINDS = frozenset({"convolutional", "connected", "maxpool", "local_avgpool", "avgpool", "softmax", "dropout",
                    "cost", "empty", "route", "shortcut", "upsample", "scale_channels", "sam", "reorg3d",
                    "activation", "batchnorm", "yolo"})
