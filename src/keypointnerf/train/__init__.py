"""Training: typed configs and presets (``config``), losses (``losses``), the Lightning module and data
(``module``) and the ``keypointnerf train`` command (``commands``)."""
