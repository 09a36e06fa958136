"""elastrain.planner"""
