"""The dataset's assets, one module each."""
