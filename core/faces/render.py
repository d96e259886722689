"""Drawing keypoints with Pillow: on crops, on photos, and montages of a dataset."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

GROUND_TRUTH = (40, 220, 60)
PREDICTION = (240, 40, 40)
BOX = (255, 200, 0)


def draw_points(draw: ImageDraw.ImageDraw, points: np.ndarray, color, radius: float,
                style: str = "circle") -> None:
    """Draw (15, 2) points (pixel centres; NaN skipped): 'circle' for ground truth, 'cross'
    for predictions."""
    for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2):
        if np.isnan(x) or np.isnan(y):
            continue
        cx, cy = x + 0.5, y + 0.5  # pixel centre -> drawing coordinates (pixel edges)
        if style == "cross":
            draw.line([(cx - radius, cy - radius), (cx + radius, cy + radius)], fill=color,
                      width=max(1, int(radius / 2)))
            draw.line([(cx - radius, cy + radius), (cx + radius, cy - radius)], fill=color,
                      width=max(1, int(radius / 2)))
        else:
            draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=color,
                         width=max(1, int(radius / 2)))


def face_image(image: np.ndarray, truth: np.ndarray | None = None,
               prediction: np.ndarray | None = None, scale: int = 3) -> Image.Image:
    """A 96x96 crop enlarged ``scale`` times (nearest) with ground truth and/or predictions."""
    img = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    if truth is not None:
        draw_points(draw, np.asarray(truth).reshape(-1, 2) * scale + (scale - 1) / 2,
                    GROUND_TRUTH, 1.5 * scale)
    if prediction is not None:
        draw_points(draw, np.asarray(prediction).reshape(-1, 2) * scale + (scale - 1) / 2,
                    PREDICTION, 1.2 * scale, style="cross")
    return img


def montage(images: np.ndarray, truth: np.ndarray | None = None,
            prediction: np.ndarray | None = None, columns: int = 8, scale: int = 2
            ) -> Image.Image:
    """A grid of faces with keypoints drawn."""
    n = len(images)
    columns = max(1, min(columns, n))
    rows = (n + columns - 1) // columns
    size = 96 * scale
    sheet = Image.new("RGB", (columns * size, rows * size), (30, 30, 30))
    for i in range(n):
        tile = face_image(images[i], None if truth is None else truth[i],
                          None if prediction is None else prediction[i], scale)
        sheet.paste(tile, ((i % columns) * size, (i // columns) * size))
    return sheet


def photo_with_faces(photo: Image.Image, boxes: Sequence[Sequence[float]],
                     keypoints: Sequence[np.ndarray]) -> Image.Image:
    """A photo with each face's box and predicted keypoints (photo pixels)."""
    img = photo.convert("RGB").copy()
    draw = ImageDraw.Draw(img)
    r = max(2.0, max(img.size) / 300)
    for box, kp in zip(boxes, keypoints):
        draw.rectangle(list(box), outline=BOX, width=max(1, int(r / 2)))
        draw_points(draw, kp, PREDICTION, r, style="cross")
    return img
