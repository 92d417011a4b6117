"""[avgpool] (global average, spec §3.5): forward against NumPy, gradients, shapes of upstream cfgs."""
import pytest

from _harness import (COST, assert_matches, assert_shapes_like_upstream, build, cfg_id, check_gradients, conv,
                      on_devices, outputs, random_input, upstream_cfgs)


@on_devices
@pytest.mark.parametrize("shape", [(3, 5, 7), (8, 1, 1), (2, 13, 13)])
def test_forward_matches_numpy(tmp_path, device, shape):
    net = build(tmp_path, "[avgpool]\n", shape, batch=3, device=device)
    x = random_input(net)
    out = outputs(net, x)[0]
    assert out.shape == (3, shape[0], 1, 1)
    assert_matches(out, x.mean(axis=(2, 3), dtype="f8"), "avgpool")


def test_gradients(tmp_path):
    check_gradients(build(tmp_path, "[avgpool]\n\n" + conv(3, size=1, pad=0) + COST, (4, 5, 5), train=True))


@pytest.mark.parametrize("path", upstream_cfgs("avgpool"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "avgpool")
