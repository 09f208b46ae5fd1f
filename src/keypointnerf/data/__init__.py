"""Data: the ZJU-MoCap reader (and synthetic sets in the same layout), safe loading and data checks."""
