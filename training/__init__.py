"""Training side of rtsep: Keras model family, losses, data and the training loop (TensorFlow)."""
