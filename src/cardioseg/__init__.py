"""cardioseg: cardiac image segmentation from real data to clinical numbers."""

import os

# albumentations asks a package index for a newer version on import (a 2 s call out): a clinical
# tool does not contact the network unasked. A user who wants the check can set the variable to 0.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
