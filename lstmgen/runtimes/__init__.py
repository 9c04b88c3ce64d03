"""Adapters over the TFLite interpreters (LiteRT, tflite-runtime, TFLite Micro)."""
