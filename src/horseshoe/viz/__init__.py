"""Pictures: image grids, GIFs of sampling, and plots."""
