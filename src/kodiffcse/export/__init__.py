"""Writing trained models for use elsewhere: sentence-transformers dirs, ONNX, model cards."""
