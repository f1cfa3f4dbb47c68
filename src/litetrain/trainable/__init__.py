"""Building trainable TFLite models from Keras models."""
