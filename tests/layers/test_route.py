"""[route] (spec §1.5, §3.9): per sample, the selected channel slices of the listed layers
concatenated in list order (groups/group_id take slice group_id of each); gradients; shapes."""
import numpy as np
import pytest

from _harness import (COST, assert_shapes_like_upstream, build, cfg_id, check_gradients, conv, on_devices, outputs,
                      random_input, upstream_cfgs)


@on_devices
@pytest.mark.parametrize("route,picks", [
    ("layers=0,1", [(0, None), (1, None)]),
    ("layers=1,0", [(1, None), (0, None)]),
    ("layers=-2", [(0, None)]),
    ("layers=0,1\ngroups=2\ngroup_id=1", [(0, (2, 1)), (1, (2, 1))]),
    ("layers=0\ngroups=4\ngroup_id=2", [(0, (4, 2))]),
])
def test_forward_matches_numpy(tmp_path, device, route, picks):
    net = build(tmp_path, conv(4) + conv(2, act="tanh") + f"[route]\n{route}\n", (3, 4, 5), device=device)
    outs = outputs(net, random_input(net))
    parts = []
    for layer, split in picks:
        out = outs[layer]
        if split:
            groups, group_id = split
            n = out.shape[1] // groups
            out = out[:, group_id * n:(group_id + 1) * n]
        parts.append(out)
    np.testing.assert_array_equal(outs[2], np.concatenate(parts, axis=1))


def test_gradients_with_groups(tmp_path):
    body = (conv(4, act="logistic") + conv(2, act="tanh") + "[route]\nlayers=0,1\n\n"
            "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n\n" + conv(3, size=1, pad=0) + COST)
    check_gradients(build(tmp_path, body, (2, 4, 4), train=True))


@pytest.mark.parametrize("path", upstream_cfgs("route"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "route")
