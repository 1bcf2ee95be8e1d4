"""Data layer: readers for each source layout, preprocessing, splits, prepared datasets."""
