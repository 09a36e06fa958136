"""Developer tools run by make (chart validation and the like)."""
