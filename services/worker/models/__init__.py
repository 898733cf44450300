"""Detection models: the on-disk repository, the Darknet -> ONNX converter, the default model build."""
