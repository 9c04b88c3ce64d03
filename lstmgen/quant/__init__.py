"""Quantization: the quantizer and calibration."""
