"""elastrain.kube"""
