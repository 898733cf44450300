"""The kinds of values that flow between workflow steps (the reference's kind names).

A block input accepts a set of kinds, a block output has one or more; a selector is valid when the
two sets meet, or when either side is the wildcard ``*``. Kinds are only checked at compile time.
"""

WILDCARD = "*"
IMAGE = "image"
VIDEO_METADATA = "video_metadata"
TIMESTAMP = "timestamp"
MODEL_ID = "roboflow_model_id"
PROJECT = "roboflow_project"
API_KEY = "roboflow_api_key"
SECRET = "secret"
FLOAT_ZERO_TO_ONE = "float_zero_to_one"
FLOAT = "float"
INTEGER = "integer"
BOOLEAN = "boolean"
STRING = "string"
LIST_OF_VALUES = "list_of_values"
DICTIONARY = "dictionary"
RGB_COLOR = "rgb_color"
POINT = "point"
ZONE = "zone"
BYTES = "bytes"
SERIALISED_PAYLOADS = "serialised_payloads"
TOP_CLASS = "top_class"
DETECTION = "detection"
DETECTIONS_OVERLAPS = "detections_overlaps"
OBJECT_DETECTION = "object_detection_prediction"
INSTANCE_SEGMENTATION = "instance_segmentation_prediction"
RLE_INSTANCE_SEGMENTATION = "rle_instance_segmentation_prediction"
KEYPOINT_DETECTION = "keypoint_detection_prediction"
CLASSIFICATION = "classification_prediction"
QR_CODE_DETECTION = "qr_code_detection"
BAR_CODE_DETECTION = "bar_code_detection"
PREDICTION_TYPE = "prediction_type"
PARENT_ID = "parent_id"
INFERENCE_ID = "inference_id"
IMAGE_METADATA = "image_metadata"
NUMPY_ARRAY = "numpy_array"
LANGUAGE_MODEL_OUTPUT = "language_model_output"  # an LLM's text answer (open_ai, anthropic_claude, google_gemini)
CONTOURS = "contours"  # OpenCV contours: a list of (N, 1, 2) point arrays (contours_detection)
IMAGE_KEYPOINTS = "image_keypoints"  # SIFT keypoints: a list of {pt, size, angle, response, octave, class_id}
EMBEDDING = "embedding"  # a feature vector (a list of numbers): identify_changes / identify_outliers read them

# Numbers widen: an integer is a valid float, a float in [0, 1] is a valid float.
_WIDENS_TO = {
    INTEGER: {FLOAT},
    FLOAT_ZERO_TO_ONE: {FLOAT},
    # Decoded codes are boxes like a detector's (one more data field, the text): unlike the reference, whose
    # manifests name no block that takes them, they feed whatever takes object detections (filters, drawing).
    QR_CODE_DETECTION: {OBJECT_DETECTION},
    BAR_CODE_DETECTION: {OBJECT_DETECTION},
}

DETECTIONS = (OBJECT_DETECTION, INSTANCE_SEGMENTATION, KEYPOINT_DETECTION)


def compatible(produced: tuple[str, ...], accepted: tuple[str, ...]) -> bool:
    """Whether a value of one of the ``produced`` kinds may feed an input accepting ``accepted``."""
    if WILDCARD in produced or WILDCARD in accepted:
        return True
    widened = set(produced)
    for kind in produced:
        widened |= _WIDENS_TO.get(kind, set())
    return bool(widened & set(accepted))
