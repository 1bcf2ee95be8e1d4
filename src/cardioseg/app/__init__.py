"""`cardioseg serve`: a local web app to review a model's segmentation and correct it by hand."""
