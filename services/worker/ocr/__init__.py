"""Optical character recognition with the PP-OCR models (PaddleOCR's text detector, orientation classifier and
text recogniser, as ONNX graphs in the model repository): this project's own pre- and post-processing around
onnxruntime sessions (:mod:`.detection`: DB post-processing; :mod:`.recognition`: crops, CTC decoding;
:mod:`.engine`: the sessions and the whole read of an image)."""
