"""The project's vocabulary: the names every stage agrees on, in one home that imports nothing."""

PRECISIONS = ("fp32", "fp16", "int8")
BACKEND_NAMES = ("auto", "onnxruntime", "tensorrt", "torch")
CALIBRATION_METHODS = ("entropy", "minmax", "percentile")
PREPROCESS_METHODS = ("exact", "fast")
INT8_GRAPH_FLAVOURS = ("onnxruntime", "tensorrt")  # the Q/DQ graphs graphs/quantize.py writes
INT8_FLAVOURS = ("auto", *INT8_GRAPH_FLAVOURS)  # auto: the backend's own
MODEL_LABEL = "Res2Net50"  # the model's name in the card's results table and the reports
RESULT_PROPERTY = "res2net_result"  # the user_properties name a test's result record travels under
NUM_CLASSES = 1000  # ImageNet-1k: labels are 0..999, the sorted-WNID indices
