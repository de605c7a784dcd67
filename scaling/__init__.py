"""Scaling-law experiments for ECG deep learning."""

__version__ = "0.1.0"
