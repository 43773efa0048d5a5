"""nasa_assets: an ML-ready image dataset from the NASA Image and Video Library, built with Dagster."""
