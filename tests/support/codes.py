"""Real QR codes and barcodes to put in test frames: OpenCV's QR encoder, zxing-cpp's barcode writer."""

import cv2
import numpy as np
import zxingcpp

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 (pixel edges: x2, y2 exclusive)


def qr_code(text: str, module: int) -> np.ndarray:
    """A QR code of ``text``, ``module`` px per module, quiet zone included (grayscale)."""
    code = cv2.QRCodeEncoder.create().encode(text)
    return cv2.resize(code, None, fx=module, fy=module, interpolation=cv2.INTER_NEAREST)


def linear_code(format_: zxingcpp.BarcodeFormat, text: str, module: int = 2, height: int = 60) -> np.ndarray:
    """A linear barcode of ``text``, ``module`` px per module, ``height`` px tall, quiet zones included (grayscale)."""
    pixels = np.asarray(zxingcpp.write_barcode_to_image(zxingcpp.create_barcode(text, format_), scale=module))
    return cv2.resize(pixels, (pixels.shape[1], height), interpolation=cv2.INTER_NEAREST)


def paste(pixels: np.ndarray, code: np.ndarray, x: int, y: int) -> Box:
    """``code`` pasted at (x, y) on the BGR ``pixels``; the box of its dark modules there."""
    pixels[y:y + code.shape[0], x:x + code.shape[1]] = code[..., None]
    rows, columns = np.nonzero(code < 128)
    return float(x + columns.min()), float(y + rows.min()), float(x + columns.max() + 1), float(y + rows.max() + 1)


def box_of(prediction: dict[str, float]) -> Box:
    """A serialised prediction's box (centre x/y, width, height) as x1, y1, x2, y2."""
    x, y, width, height = prediction["x"], prediction["y"], prediction["width"], prediction["height"]
    return x - width / 2, y - height / 2, x + width / 2, y + height / 2
