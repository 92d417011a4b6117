"""Network.layer_attrs: the hyper-parameters each layer kind resolved from its cfg section,
defaults included (what exporters read instead of re-parsing cfg text)."""
import darknetpy as dn

CFG = """[net]
batch=1
width=16
height=16
channels=3

[convolutional]
filters=6
size=3
stride=2
pad=1
groups=3
activation=mish

[convolutional]
filters=4
size=5
stride_x=1
stride_y=2
padding=1
dilation=2

[maxpool]
stride=2

[route]
layers=-1
groups=2
group_id=1

[upsample]

[route]
layers=-1

[shortcut]
from=-2
weights_type=per_channel
weights_normalization=softmax

[convolutional]
filters=12
size=1

[yolo]
classes=1
num=2
anchors=3,4, 5,6
"""


def test_resolved_hyper_parameters(tmp_path):
    cfg = tmp_path / "a.cfg"
    cfg.write_text(CFG)
    with dn.Network(cfg) as net:
        attrs = [net.layer_attrs(i) for i in range(len(net.layers))]
    assert attrs[0] == {"filters": 6, "size": 3, "stride_x": 2, "stride_y": 2, "padding": 1, "dilation": 1,
                        "groups": 3, "activation": "mish", "share_index": -1}
    assert attrs[1] == {"filters": 4, "size": 5, "stride_x": 1, "stride_y": 2, "padding": 1, "dilation": 2,
                        "groups": 1, "activation": "logistic", "share_index": -1}   # darknet's default
    # size defaults to the stride, padding to size - 1
    assert attrs[2] == {"size": 2, "stride_x": 2, "stride_y": 2, "padding": 1, "maxpool_depth": 0,
                        "out_channels": 1}
    assert attrs[3] == {"groups": 2, "group_id": 1}
    assert attrs[4] == {"stride": 2, "scale": 1.0}
    assert attrs[6] == {"weights_type": "per_channel", "weights_normalization": "softmax",
                        "activation": "linear"}
    # mask defaults to 0..num-1
    assert attrs[8] == {"classes": 1, "num": 2, "mask": (0, 1), "anchors": (3.0, 4.0, 5.0, 6.0), "scale_x_y": 1.0,
                        "new_coords": 0}
