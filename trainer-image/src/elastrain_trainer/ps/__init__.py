"""Parameter-server mode: asynchronous SGD, workers as HTTP clients of the ps (``transport``)."""
