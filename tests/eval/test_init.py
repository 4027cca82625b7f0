"""The public names of pvvae.eval resolve to the metric implementations."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pvvae.eval as ev


def test_every_exported_name_resolves():
    for name in ev.__all__:
        assert callable(getattr(ev, name)), name
    for name in ("compute_fvd", "compute_kvd", "I3D", "load_i3d", "i3d_logits",
                 "frechet_distance", "kvd_from_features"):
        assert name in ev.__all__
    with pytest.raises(AttributeError):
        ev.not_a_metric  # noqa: B018


def test_import_is_light():
    code = (
        "import sys, pvvae.eval; "
        "print('scipy' in sys.modules, 'pvvae.eval.metrics.i3d' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
