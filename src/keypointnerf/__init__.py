"""KeypointNeRF: generalizable volumetric avatars from a few calibrated views and their 3D keypoints.

Package layout (one package per concern):
- ``data``: ZJU-MoCap reader, safe loading, data checks, synthetic people (``data.synth``).
- ``model``: image encoders, relative spatial encoding, per-view geometry MLP and fusion, IBR colour head,
  official-checkpoint import.
- ``render``: rays, near/far, sampling, compositing, chunked image rendering with visual-hull culling.
- ``train``, ``eval``, ``export``: Lightning training, the ZJU protocol metrics, meshes and videos.
- ``cli``: the ``keypointnerf`` command.
"""

__version__ = "0.1.0"
