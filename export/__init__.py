"""Keras checkpoint → rtsep model folder: tf2onnx conversion, graph clean-up, parity checks."""
