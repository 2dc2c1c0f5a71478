"""Data preparation for the UniPool recipes: manifests, splits and trials."""
