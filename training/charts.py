"""Charts for result files (the architecture search's and the benchmarks'), drawn with PIL (no plotting dependency)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw


def scatter_chart(points: list[dict], path: Path, title: str, x_label: str, y_label: str) -> None:
    """Labelled points `{"x", "y", "label"}` on linear axes from zero, saved as a PNG."""
    width, height, margin = 900, 560, 70
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 10), title, fill="black")
    x_top = max(p["x"] for p in points) * 1.1 or 1.0
    y_low = min(0.0, min(p["y"] for p in points))
    y_top = max(p["y"] for p in points) * 1.05 or 1.0
    left, right, top, bottom = margin, width - 20, 40, height - margin
    draw.line((left, bottom, right, bottom), fill="black")
    draw.line((left, top, left, bottom), fill="black")
    draw.text(((left + right) // 2 - 60, bottom + 30), x_label, fill="black")
    draw.text((5, top - 20), y_label, fill="black")
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + fraction * (right - left)
        y = bottom - fraction * (bottom - top)
        draw.text((x - 10, bottom + 8), f"{fraction * x_top:.3g}", fill="gray")
        draw.text((8, y - 6), f"{y_low + fraction * (y_top - y_low):.3g}", fill="gray")
    for point in points:
        x = left + point["x"] / x_top * (right - left)
        y = bottom - (point["y"] - y_low) / (y_top - y_low) * (bottom - top)
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=(70, 110, 220))
        draw.text((x + 7, y - 7), point["label"], fill="black")
    image.save(path)
