"""The default lesion-segmentation network: a small MONAI 3D UNet.

Constructor arguments are stored on ``self`` under the same names: NVFlare exports a model's
constructor arguments into the job only when they are attributes of the instance.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import UNet
from torch import nn

DEFAULT_CHANNELS = (8, 16, 32)


class SegUNet(nn.Module):
    """3D UNet for binary lesion segmentation (2 output classes: background, lesion).

    Args:
        in_channels: image channels.
        out_channels: classes including background.
        channels: feature channels per level.
        num_res_units: residual units per block.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        num_res_units: int = 1,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.channels = list(channels)
        self.num_res_units = num_res_units
        self.net = UNet(
            spatial_dims=3,
            in_channels=in_channels,
            out_channels=out_channels,
            channels=tuple(self.channels),
            strides=tuple([2] * (len(self.channels) - 1)),
            num_res_units=num_res_units,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, out_channels, *spatial)."""
        return self.net(x)
