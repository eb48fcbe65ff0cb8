"""The model as ONNX graphs: checkpoint, export, calibration, Q/DQ quantization, fidelity, artifacts."""
