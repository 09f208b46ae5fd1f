"""Agreement with the official model's outputs on the shared parity fixtures (``shared/parity/README.md``):
the tolerances, the fixture's output names and the fixture's layout of point queries. ``benchmarks/parity.py``
renders and compares a fixture; the tests check its saved outputs against the same numbers."""
from __future__ import annotations

import torch

QUERY_RTOL = 1e-4          # |diff| <= 1e-4 * (1 + |reference|) at valid query points
IMAGE_P999 = 1e-4          # 99.9th percentile of |diff| over the pixels whose ray meets the box
IMAGE_MAX = 5e-3           # maximum |diff| over all pixels
DEPTH_P999 = 1e-3          # metres, where the reference opacity > 0.5
VALIDITY_MISMATCH = 1e-3   # fraction of query points whose hull validity may differ (points on the boundary)

#: fixture image name -> the name of the same output of ``render_image``
IMAGE_OUTPUTS = {"out/tex_fg_fine": "rgb", "out/alpha_fine": "opacity", "out/tex_fg": "rgb_coarse",
                 "out/alpha": "opacity_coarse"}
#: fixture depth name -> (the name of the output of ``render_image``, the fixture's opacity that selects pixels)
DEPTH_OUTPUTS = {"out/depth_fine": ("depth", "out/alpha_fine"), "out/depth": ("depth_coarse", "out/alpha")}
#: the columns of the fixture's ``query/raw`` (N, 5)
QUERY_COLUMNS = {"aux": [0], "density": [1], "rgb": [2, 3, 4]}


def official_query_layout(query: dict[str, torch.Tensor]) -> torch.Tensor:
    """``KeypointNeRF.query``'s outputs as the fixture's ``query/raw`` (N, 5): aux, raw density, r, g, b."""
    return torch.cat([query["aux"][:, None], query["raw_density"][:, None], query["rgb"]], dim=-1)
