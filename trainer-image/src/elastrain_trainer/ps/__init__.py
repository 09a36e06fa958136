"""Parameter-server mode: asynchronous SGD over torch.distributed.rpc (TensorPipe)."""
