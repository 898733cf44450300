"""The model layer's errors: one small hierarchy the worker maps onto wire error types."""


class ModelError(Exception):
    """Base of every error about obtaining, loading or running a detection model."""


class ModelNotFoundError(ModelError):
    """No model with this id is registered in the repository."""


class InvalidModelError(ModelError):
    """A model id, its metadata, its ONNX graph or its Darknet files cannot be used."""


class ModelSourceError(ModelError):
    """The model's source files could not be fetched or do not match their checksum."""


class InferenceDeviceError(ModelError):
    """The requested inference device (e.g. a GPU) is not available to onnxruntime."""
