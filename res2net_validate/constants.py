"""The project's vocabulary: the names every stage agrees on, in one home that imports nothing."""

PRECISIONS = ("fp32", "fp16", "int8")
BACKEND_NAMES = ("auto", "onnxruntime", "tensorrt", "torch")
CALIBRATION_METHODS = ("entropy", "minmax", "percentile")
PREPROCESS_METHODS = ("exact", "fast")
INT8_FLAVOURS = ("auto", "onnxruntime", "tensorrt")  # auto: the backend's own
