"""Character language modelling and text generation (``rnnkit train lm``, ``generate``)."""
