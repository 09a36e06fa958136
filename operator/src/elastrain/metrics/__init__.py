"""elastrain.metrics"""
