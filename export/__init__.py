"""BRD Edge export: student checkpoint -> ONNX, OpenVINO IR, TensorRT engine, each checked for parity.

Kept free of torch so that `export.trt` and `export.openvino` given an .onnx run without it;
every module imports torch/distill lazily, only on the checkpoint (.pt) path.
"""
