"""ONNX Runtime, the referee: exports, their cache, and inference sessions."""
