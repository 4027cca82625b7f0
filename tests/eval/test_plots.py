"""Figure helpers: the flow colour wheel."""

from __future__ import annotations

import numpy as np
import torch

from pvvae.eval.plots import flow_to_rgb


def test_flow_colours_follow_the_hsv_wheel():
    flow = torch.zeros(2, 1, 4)
    flow[0, 0, 1] = 2.0  # +x at full magnitude: hue 0, red
    flow[1, 0, 2] = 2.0  # +y (down): hue 90 degrees, yellow-green
    flow[0, 0, 3] = 1.0  # +x at half magnitude: half-saturated red
    rgb = flow_to_rgb(flow)
    assert rgb.shape == (1, 4, 3)
    np.testing.assert_allclose(rgb[0], [[1, 1, 1], [1, 0, 0], [0.5, 1, 0], [1, 0.5, 0.5]],
                               atol=1e-6)
    np.testing.assert_allclose(flow_to_rgb(flow, max_norm=4.0)[0, 1], [1, 0.5, 0.5], atol=1e-6)
