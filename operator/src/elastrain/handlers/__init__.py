"""elastrain.handlers"""
