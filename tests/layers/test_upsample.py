"""[upsample] (spec §1.5, §3.9): nearest-neighbour up-sampling times ``scale``; a negative
stride -k sums k x k blocks times ``scale``; against NumPy; gradients; shapes."""
import pytest

from _harness import (COST, assert_matches, assert_shapes_like_upstream, build, cfg_id, check_gradients, conv,
                      on_devices, outputs, random_input, upstream_cfgs)


def reference_upsample(x, stride, scale):
    if stride > 0:
        return scale * x.repeat(stride, axis=2).repeat(stride, axis=3)
    k = -stride
    n, c, h, w = x.shape
    blocks = x[:, :, :h // k * k, :w // k * k].reshape(n, c, h // k, k, w // k, k)
    return scale * blocks.sum(axis=(3, 5), dtype="f8")


@on_devices
@pytest.mark.parametrize("stride,scale,shape", [(2, 1.0, (3, 4, 5)), (3, 0.5, (2, 3, 2)), (-2, 1.0, (3, 6, 4)),
                                                (-2, 0.25, (2, 7, 5)), (-3, 1.0, (2, 9, 7))])
def test_forward_matches_numpy(tmp_path, device, stride, scale, shape):
    net = build(tmp_path, f"[upsample]\nstride={stride}\nscale={scale}\n", shape, device=device)
    x = random_input(net)
    assert_matches(outputs(net, x)[0], reference_upsample(x, stride, scale), f"stride {stride}")


@pytest.mark.parametrize("up", ["stride=2", "stride=2\nscale=0.5", "stride=-2", "stride=-2\nscale=0.25"])
def test_gradients(tmp_path, up):
    check_gradients(build(tmp_path, conv(3) + f"[upsample]\n{up}\n\n" + COST, (2, 4, 4), train=True))


@pytest.mark.parametrize("path", upstream_cfgs("upsample"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "upsample")
