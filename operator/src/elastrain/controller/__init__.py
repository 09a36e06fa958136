"""elastrain.controller"""
