"""Structure: a picture's edge map (Canny, by OpenCV), the condition of a structure-guided (ControlNet) run."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

# the thresholds canny ControlNets are trained and run with (lllyasviel's ControlNet 1.1 and diffusers' examples)
LOW_THRESHOLD, HIGH_THRESHOLD = 100, 200


def edge_map(image: Image.Image) -> Image.Image:
    """White one-pixel edges on black, as canny ControlNets take them. Found on all three colour channels (OpenCV
    takes the strongest gradient of the three), so the border between two colours of equal brightness counts too."""
    edges = cv2.Canny(np.ascontiguousarray(np.asarray(image.convert("RGB"))), LOW_THRESHOLD, HIGH_THRESHOLD)
    return Image.fromarray(edges).convert("RGB")
