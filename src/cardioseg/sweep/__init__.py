"""Architecture sweeps: a grid of training runs, run locally or on Ray, reported like the echo study."""
