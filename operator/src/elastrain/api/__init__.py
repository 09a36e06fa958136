"""elastrain.api"""
