"""An effdsl plug-in op: ``grouped_pw``, a 1x1 conv in groups (ShuffleNet's and GhostNet's
cheap pointwise conv), with its shape rule, cost rule, torch module and label.

In a block definition::

    block cheap {
      grouped_pw groups 4 to mid
      bn
      ...
    }
"""

GROUPED_PW_SOURCE = '''
class GroupedPointwise(nn.Module):
    """A 1x1 conv from in_ch to out_ch channels in `groups` groups, without bias."""

    def __init__(self, in_ch: int, out_ch: int, groups: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
'''


def _shape(in_shape, options):
    """(to, H, W): a 1x1 conv keeps the size; both widths must split into the groups."""
    channels, height, width = in_shape
    groups, out = int(options["groups"]), int(options["to"])
    if groups < 1 or channels % groups or out % groups:
        raise ValueError(f"{groups} groups do not divide {channels} -> {out} channels")
    return (out, height, width)


def _cost(in_shape, out_shape, options):
    """A weight of out x in/groups; one multiply-add per weight and output position."""
    groups = int(options["groups"])
    weights = out_shape[0] * (in_shape[0] // groups)
    return (weights, weights * out_shape[1] * out_shape[2])


GROUPED_PW = {
    "options": {"groups": 2, "to": "out"},
    "shape": _shape,
    "cost": _cost,
    "class_name": "GroupedPointwise",
    "torch_source": GROUPED_PW_SOURCE,
    "label": "grouped 1x1",
}

# Broken on purpose (effdsl's tests): no cost rule and no module.
BROKEN = {"options": {}, "shape": _shape}


def _raise(*args):
    raise RuntimeError("this rule always fails")


# Broken on purpose: its shape rule raises.
RAISING = dict(GROUPED_PW, shape=_raise, class_name="Raising", torch_source="class Raising: pass")
