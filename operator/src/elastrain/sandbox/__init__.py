"""elastrain.sandbox"""
