"""[convolutional]: forward (spec §3.2, §3.3) against a NumPy convolution, unfused and with batch
norm folded; gradients; the fused 3x3 path (Winograd F(4x4,3x3) / F(2x2,3x3)) against im2col + GEMM;
shapes of upstream cfgs."""
import math

import numpy as np
import pytest

from _harness import (COST, assert_matches, assert_same_outputs, assert_shapes_like_upstream, activate, build,
                      cfg_id, check_gradients, conv, copy_params, on_devices, outputs, param, random_input,
                      upstream_cfgs)


def reference_conv(x, weights, groups, stride_xy, padding, dilation):
    """z[n, f, oy, ox] = sum over the group's input channels and the kernel of
    W[f, ci, ky, kx] * x[n, g*Cg + ci, oy*sy - p*d + ky*d, ox*sx - p*d + kx*d], zero outside."""
    n, c, h, w = x.shape
    f, cg, k, _ = weights.shape
    sx, sy = stride_xy
    out_h, out_w = (h + 2 * padding - k) // sy + 1, (w + 2 * padding - k) // sx + 1
    margin = padding * dilation + k * dilation
    xp = np.zeros((n, c, h + 2 * margin, w + 2 * margin))
    xp[:, :, margin:margin + h, margin:margin + w] = x
    z = np.zeros((n, f, out_h, out_w))
    fg = f // groups
    for g in range(groups):
        for ky in range(k):
            for kx in range(k):
                y0 = margin - padding * dilation + ky * dilation
                x0 = margin - padding * dilation + kx * dilation
                patch = xp[:, g * cg:(g + 1) * cg, y0:y0 + (out_h - 1) * sy + 1:sy, x0:x0 + (out_w - 1) * sx + 1:sx]
                z[:, g * fg:(g + 1) * fg] += np.einsum("ncyx,fc->nfyx", patch, weights[g * fg:(g + 1) * fg, :, ky, kx])
    return z


def reference_layer(net, layer, x, filters, size, groups=1, stride_xy=(1, 1), padding=0, dilation=1, bn=False,
                    act="linear"):
    c = x.shape[1]
    weights = param(net, layer, "weights", (filters, c // groups, size, size))
    z = reference_conv(x.astype(np.float64), weights, groups, stride_xy, padding, dilation)
    per_filter = (1, filters, 1, 1)
    if bn:
        mean, var = param(net, layer, "rolling_mean", per_filter), param(net, layer, "rolling_variance", per_filter)
        z = param(net, layer, "scales", per_filter) * (z - mean) / np.sqrt(var + 1e-5)
    return activate(z + param(net, layer, "biases", per_filter), act)


# (cfg extra, input shape, reference arguments)
CASES = {
    "3x3": (conv(4), (3, 6, 7), dict(filters=4, size=3, padding=1)),
    "groups-stride2": (conv(4, stride=2, extra="groups=2"), (4, 7, 7),
                       dict(filters=4, size=3, groups=2, stride_xy=(2, 2), padding=1)),
    "depthwise-stride_xy": (conv(6, extra="groups=3\nstride_x=2\nstride_y=1"), (3, 6, 6),
                            dict(filters=6, size=3, groups=3, stride_xy=(2, 1), padding=1)),
    "dilation2": (conv(3, extra="dilation=2"), (2, 7, 7), dict(filters=3, size=3, padding=1, dilation=2)),
    "1x1-direct": (conv(5, size=1, pad=0), (4, 5, 5), dict(filters=5, size=1)),
    "explicit-padding": (conv(4, pad=0, extra="padding=2"), (2, 5, 5), dict(filters=4, size=3, padding=2)),
    "5x5-stride3": (conv(3, size=5, stride=3), (2, 11, 10), dict(filters=3, size=5, stride_xy=(3, 3), padding=2)),
    "bn-leaky": (conv(4, act="leaky", extra="batch_normalize=1"), (3, 6, 6),
                 dict(filters=4, size=3, padding=1, bn=True, act="leaky")),
    "bn-mish-1x1": (conv(6, size=1, act="mish", extra="batch_normalize=1"), (3, 4, 5),
                    dict(filters=6, size=1, bn=True, act="mish")),
    "bn-swish-groups": (conv(4, act="swish", extra="batch_normalize=1\ngroups=2"), (4, 5, 5),
                        dict(filters=4, size=3, groups=2, padding=1, bn=True, act="swish")),
    "logistic-default": ("[convolutional]\nfilters=2\nsize=3\npad=1\n", (2, 4, 4),
                         dict(filters=2, size=3, padding=1, act="logistic")),
    # maps of >= 4 blocks of output rows: inference runs them block by block, bias and activation fused
    "blocks-1x1-bn-leaky": (conv(6, size=1, pad=0, act="leaky", extra="batch_normalize=1"), (4, 64, 64),
                            dict(filters=6, size=1, bn=True, act="leaky")),
    "blocks-stride2-groups-bn-mish": (conv(4, stride=2, act="mish", extra="batch_normalize=1\ngroups=2"),
                                      (4, 200, 64),
                                      dict(filters=4, size=3, groups=2, stride_xy=(2, 2), padding=1, bn=True,
                                           act="mish")),
    "blocks-3x3-swish": (conv(5, act="swish"), (3, 70, 64), dict(filters=5, size=3, padding=1, act="swish")),
    # stride 2 in blocks of output rows, im2col'd rows padded to whole cache lines: widths off the kernel's
    # tiles, taps in two slices (40 x 9), padding read past the right edge or not read at all
    "blocks-stride2-bn-leaky": (conv(20, stride=2, act="leaky", extra="batch_normalize=1"), (40, 250, 69),
                                dict(filters=20, size=3, stride_xy=(2, 2), padding=1, bn=True, act="leaky")),
    "blocks-stride2-pad0": (conv(17, stride=2, pad=0), (6, 400, 70), dict(filters=17, size=3, stride_xy=(2, 2))),
    "blocks-5x5-stride2-padding3": (conv(9, size=5, stride=2, pad=0, extra="padding=3"), (5, 360, 47),
                                    dict(filters=9, size=5, stride_xy=(2, 2), padding=3)),
    "blocks-stride_x2-stride_y1": (conv(6, extra="stride_x=2\nstride_y=1"), (8, 260, 40),
                                   dict(filters=6, size=3, stride_xy=(2, 1), padding=1)),
    "blocks-stride2-dilation2": (conv(5, stride=2, extra="dilation=2"), (3, 360, 50),
                                 dict(filters=5, size=3, stride_xy=(2, 2), padding=1, dilation=2)),
    "blocks-stride2-padding-past-the-map": (conv(5, stride=2, pad=0, extra="padding=30"), (3, 400, 20),
                                            dict(filters=5, size=3, stride_xy=(2, 2), padding=30)),
    "blocks-5x5-logistic": (conv(3, size=5, act="logistic"), (2, 64, 64),
                            dict(filters=3, size=5, padding=2, act="logistic")),
    # maps whose last columns ride on a wider tile of the packed GEMM (AVX-512: 49 = 16 + 16 + 17,
    # 35 = 16 + 19, 27 = 16 + 11, 13 = 8 + 5); 64 input channels or more: the broadcasting kernel
    "tile-widths-7x7": (conv(20, size=1, pad=0), (64, 7, 7), dict(filters=20, size=1)),
    "tile-widths-5x7": (conv(18, size=1, pad=0), (70, 5, 7), dict(filters=18, size=1)),
    "tile-widths-3x9": (conv(17, act="leaky"), (8, 3, 9), dict(filters=17, size=3, padding=1, act="leaky")),
    "tile-widths-1x13": (conv(16, size=1, pad=0, act="leaky"), (64, 1, 13), dict(filters=16, size=1, act="leaky")),
}


@on_devices
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("fuse", [False, True], ids=["unfused", "fused"])
def test_forward_matches_numpy(tmp_path, device, case, fuse):
    body, shape, kwargs = CASES[case]
    net = build(tmp_path, body, shape, batch=2, fuse=fuse, device=device)
    x = random_input(net)
    got = outputs(net, x)[0]
    assert_matches(got, reference_layer(net, 0, x, **kwargs), case, tol=1e-5 if not fuse else 1e-4)


@pytest.mark.parametrize("body,shape", [
    (conv(4, act="logistic"), (3, 6, 6)),
    (conv(4, stride=2, act="tanh", extra="groups=2"), (4, 7, 7)),
    (conv(6, act="linear", extra="groups=3\nstride_x=2\nstride_y=1"), (3, 6, 6)),
    (conv(3, act="logistic", extra="dilation=2"), (2, 7, 7)),
    (conv(3, size=1, pad=0, act="linear"), (4, 5, 5)),
    (conv(4, size=3, pad=0, act="linear", extra="padding=2"), (2, 5, 5)),
], ids=["plain", "groups-stride", "depthwise-stride_xy", "dilation", "1x1", "explicit-padding"])
def test_gradients(tmp_path, body, shape):
    check_gradients(build(tmp_path, body + COST, shape, train=True))


@pytest.mark.parametrize("act", ["linear", "leaky", "mish", "swish", "logistic"])
def test_batchnorm_training_gradients(tmp_path, act):
    body = conv(4, act=act, extra="batch_normalize=1") + conv(3, act="linear") + COST
    check_gradients(build(tmp_path, body, (3, 5, 5), batch=3, train=True), n_idx=12)


# threads x mini-batch: one thread; whole images per thread, split unevenly; fewer images than
# threads (each GEMM split instead)
@pytest.mark.parametrize("threads,batch", [(1, 3), (2, 3), (4, 3)], ids=["serial", "images-split", "gemm-split"])
@pytest.mark.parametrize("act", ["leaky", "mish"])
def test_training_paths_gradients(tmp_path, threads, batch, act):
    """Each way a training convolution splits its work across threads: fused activation / bias /
    batch-norm backward, 3x3 and 1x1 (direct) layers, groups and stride, weight-gradient sums
    of several threads."""
    body = (conv(4, act=act, extra="batch_normalize=1") + conv(4, size=1, pad=0, act="leaky")
            + conv(4, stride=2, act=act, extra="groups=2\nbatch_normalize=1") + COST)
    net = build(tmp_path, body, (2, 6, 6), batch=batch, train=True, threads=threads)
    check_gradients(net, n_idx=12, eps=1e-4 if act == "leaky" else 1e-3)


@pytest.mark.parametrize("act", ["leaky", "relu6", "selu", "gelu", "hard_mish", "normalize_channels"])
def test_activation_gradients(tmp_path, act):
    net = build(tmp_path, conv(3, act=act) + conv(2, size=1, pad=0) + COST, (2, 4, 4), train=True)
    check_gradients(net, seed=6, eps=1e-4)


def test_shared_weights(tmp_path):
    """share_index: the second layer runs with the first one's weights, and both uses add to
    the owner's delta."""
    body = conv(3, act="tanh") + conv(3, act="logistic", extra="share_index=0")
    net = build(tmp_path, body, (3, 4, 4))
    x = random_input(net)
    first, second = outputs(net, x)
    assert_matches(second, reference_layer(net, 0, first, filters=3, size=3, padding=1, act="logistic"), "shared")
    grads = check_gradients(build(tmp_path, body + COST, (3, 4, 4), train=True))
    assert set(grads) == {(0, "weights"), (0, "biases")}


def test_stopbackward_freezes_earlier_layers(tmp_path):
    body = conv(3, act="tanh") + conv(3, act="tanh", extra="stopbackward=1") + conv(2) + COST
    net = build(tmp_path, body, (2, 4, 4), train=True)
    x = np.ones((2, 2, 4, 4), np.float32)
    y = np.zeros((2, net.outputs), np.float32)
    _, dx = net.backward(x, y, input_delta=True)
    assert net.param_delta(0, "weights") is None  # frozen: no training buffers
    assert np.all(dx == 0)
    assert np.any(net.param_delta(2, "weights"))


# input c, h, w; layers (filters, size, stride, batch_normalize, activation)
FUSED_3X3 = [
    (1, 5, 7, [(3, 3, 1, 1, "leaky")]),
    (3, 8, 8, [(8, 3, 1, 1, "linear"), (5, 3, 1, 1, "mish")]),
    (5, 13, 13, [(17, 3, 1, 1, "leaky"), (9, 1, 1, 1, "linear"), (11, 3, 1, 1, "linear")]),
    (7, 1, 1, [(4, 3, 1, 1, "linear")]),
    (2, 3, 11, [(6, 3, 1, 1, "linear")]),
    (16, 33, 29, [(32, 3, 1, 1, "leaky"), (24, 3, 2, 1, "leaky"), (13, 3, 1, 1, "logistic")]),
    (3, 70, 150, [(10, 3, 1, 1, "leaky"), (20, 3, 1, 0, "linear")]),
    (64, 20, 20, [(64, 3, 1, 1, "linear")]),
    # small maps next to the channels: 4x4 tiles (F(4x4, 3x3)) on weights transformed whole ...
    (256, 13, 11, [(128, 3, 1, 1, "leaky")]),
    (192, 11, 10, [(160, 3, 1, 1, "linear")]),
    (128, 10, 10, [(64, 3, 1, 1, "leaky")]),
    (192, 9, 8, [(160, 3, 1, 1, "linear")]),
    # ... or, past 8 MiB of transformed weights, transformed panel by panel as the GEMMs take them;
    # on 2x2 tiles (AVX-512) made in registers by the products, a panel of filters at a time
    (256, 8, 8, [(288, 3, 1, 1, "leaky")]),
    (256, 7, 7, [(232, 3, 1, 1, "mish")]),  # the last panel half full
    # 2x2 tiles (F(2x2, 3x3)) where they beat 4x4 ones (6x6 maps), weights transformed whole or by panel
    (64, 6, 6, [(64, 3, 1, 1, "mish")]),
    (384, 6, 6, [(384, 3, 1, 1, "leaky")]),
    # Winograd (16 input channels or more) on maps of odd sizes, of one tile, of one pixel
    (16, 13, 11, [(17, 3, 1, 1, "leaky"), (20, 3, 1, 1, "mish")]),
    (24, 3, 5, [(6, 3, 1, 1, "linear")]),
    (16, 1, 1, [(4, 3, 1, 1, "linear")]),
    # im2col and 1x1 on packed weights: filter counts and pixel counts off the kernel's tile sizes
    (40, 11, 9, [(24, 3, 2, 1, "leaky"), (33, 1, 1, 1, "mish"), (37, 5, 1, 1, "linear")]),
]


def with_room(tmp_path, body, shape, room):
    """body ("least": each layer's workspace in the room beside the outputs, at most what the later
    outputs leave, so Winograd runs in the least it can), or ("most") body and an [upsample] whose
    large output leaves every layer the room for its fastest workspace."""
    if room == "least":
        return body
    out = build(tmp_path, body, shape, batch=1).layers[-1].outputs
    return body + f"[upsample]\nstride={min(16, max(2, math.isqrt(2**22 // out)))}\n\n"


@pytest.mark.parametrize("c,h,w,layers", FUSED_3X3)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("room", ["least", "most"])
def test_fused_3x3_matches_im2col(tmp_path, c, h, w, layers, threads, room):
    """The fused inference path of 3x3 stride-1 pad-1 convolutions (Winograd) and of the others
    (GEMM on packed weights) against the unfused im2col + GEMM path, every layer, on the same
    random parameters; Winograd in the least workspace and in its fastest."""
    body = "".join(conv(f, size=k, stride=s, act=act, extra=f"batch_normalize={bn}") for f, k, s, bn, act in layers)
    body = with_room(tmp_path, body, (c, h, w), room)
    reference = build(tmp_path, body, (c, h, w), batch=1, fuse=False, threads=threads)
    fused = build(tmp_path, body, (c, h, w), batch=1, fuse=True, threads=threads)
    for i, _ in enumerate(layers):  # weights scaled by 1/sqrt(fan-in) keep activations in range
        scaled = reference.param(i, "weights") / np.sqrt(reference.layers[i].input_shape[0] * 9)
        reference.set_param(i, "weights", scaled)
    copy_params(reference, fused)
    x = np.random.default_rng(1).uniform(-1, 1, (1, c, h, w)).astype(np.float32)
    assert_same_outputs(reference, fused, x)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("room", ["least", "most"])
def test_winograd_on_a_batch_of_images(tmp_path, threads, room):
    """A network run layer by layer (a [connected] layer multiplies the whole batch) convolves all
    its images at once: small maps side by side in groups (of one image in the least workspace),
    the weights transformed once (whole, or panel by panel); every layer against the unfused
    im2col path."""
    body = (conv(600, act="leaky", extra="batch_normalize=1")   # 2x2 tiles, weights transformed by panel
            + with_room(tmp_path, conv(64, act="mish", extra="batch_normalize=1"), (600, 6, 6), room)  # whole
            + "[connected]\noutput=5\nactivation=linear\n\n")
    reference = build(tmp_path, body, (256, 6, 6), batch=3, fuse=False, threads=threads)
    fused = build(tmp_path, body, (256, 6, 6), batch=3, fuse=True, threads=threads)
    for i in range(2):
        scaled = reference.param(i, "weights") / np.sqrt(reference.layers[i].input_shape[0] * 9)
        reference.set_param(i, "weights", scaled)
    copy_params(reference, fused)
    assert_same_outputs(reference, fused, np.random.default_rng(2).uniform(-1, 1, (3, 256, 6, 6)).astype(np.float32))


def test_more_threads_than_the_workspace_was_sized_for(tmp_path):
    """Inference unrolls one block of rows per thread into a workspace sized when the network
    was built; a network given more threads later runs those layers on fewer threads, same values."""
    body = conv(8, size=5, act="leaky", extra="batch_normalize=1") + conv(6, stride=2, act="mish")
    one = build(tmp_path, body, (4, 512, 64), batch=1, fuse=True, threads=1)
    many = build(tmp_path, body, (4, 512, 64), batch=1, fuse=True, threads=16)
    copy_params(one, many)
    assert_same_outputs(one, many, np.random.default_rng(3).uniform(-1, 1, (1, 4, 512, 64)).astype(np.float32))


def test_winograd_given_more_threads_than_planned(tmp_path):
    """A network's workspace is planned for the process's threads before set_threads: Winograd that
    transforms U in slices, in the least workspace, runs its products on fewer threads when given
    more, same values."""
    body = conv(384, act="leaky", extra="batch_normalize=1")  # 2x2 tiles, U in slices
    one = build(tmp_path, body, (384, 6, 6), batch=1, fuse=True, threads=1)
    many = build(tmp_path, body, (384, 6, 6), batch=1, fuse=True, threads=16)
    copy_params(one, many)
    assert_same_outputs(one, many, np.random.default_rng(4).uniform(-1, 1, (1, 384, 6, 6)).astype(np.float32))


@pytest.mark.parametrize("path", upstream_cfgs("convolutional"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "convolutional")


# 3x3 stride-1 pad-1 training passes (Winograd F(4x4,3x3) / F(2x2,3x3) where dn_wino_train_tile picks
# it, else im2col): c, filters, h, w, batch, threads. Maps 1x1 (im2col), 2x2 and 3x3 (2x2 tiles), odd
# and partial tiles, c and filters off the SIMD width, fewer images than threads, uneven image split,
# a map wide enough to run in strips of tile rows, and narrow maps whose tile rows of many images
# run side by side (more images than one run of 64 tiles takes, the last run partial), and im2col
# (3 input channels) on a map whose column matrix goes through the GEMMs in blocks of rows.
TRAIN_3X3 = [
    (16, 16, 8, 8, 3, 2),
    (17, 19, 5, 7, 3, 2),
    (16, 24, 1, 1, 2, 2),
    (20, 16, 2, 2, 4, 2),
    (16, 18, 3, 3, 1, 2),
    (24, 17, 13, 11, 2, 1),
    (33, 16, 9, 6, 5, 3),
    (16, 16, 84, 512, 2, 2),
    (16, 20, 7, 10, 23, 1),
    (18, 16, 2, 6, 70, 2),
    (3, 16, 40, 300, 2, 1),
]


@pytest.mark.parametrize("c,k,h,w,batch,threads", TRAIN_3X3, ids=lambda v: str(v))
def test_training_3x3_matches_numpy(tmp_path, c, k, h, w, batch, threads):
    """A training step's forward output, input delta and weight delta against NumPy: the
    output z = conv(x, W) + b, the input delta conv(dz, W rotated 180 degrees, channels
    transposed), the weight delta the correlation of the padded input with dz."""
    net = build(tmp_path, conv(k) + COST, (c, h, w), batch=batch, train=True, threads=threads)
    weights = param(net, 0, "weights", (k, c, 3, 3)) / np.sqrt(9 * c)
    net.set_param(0, "weights", weights)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (batch, c, h, w)).astype(np.float32)
    y = rng.uniform(-1, 1, (batch, k * h * w)).astype(np.float32)
    _, dx = net.backward(x, y, input_delta=True)
    z = net.layer_output(0).astype(np.float64)
    dz = net.layer_delta(0).astype(np.float64)
    assert_matches(z, reference_layer(net, 0, x, filters=k, size=3, padding=1), "output", tol=1e-4)
    rotated = weights[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    assert_matches(dx, reference_conv(dz, rotated, 1, (1, 1), 1, 1), "input delta", tol=1e-4)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    dw = np.stack([np.einsum("nfyx,ncyx->fc", dz, xp[:, :, ky:ky + h, kx:kx + w])
                   for ky in range(3) for kx in range(3)], -1).reshape(k, c, 3, 3)
    assert_matches(net.param_delta(0, "weights"), dw, "weight delta", tol=1e-4)
