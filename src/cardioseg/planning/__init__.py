"""Choosing the training recipe from the data, the time budget and the machine (nnU-Net's plans, for CPU minutes)."""
