"""Evaluation scenarios behind ``fusewatch evaluate``: the models run on simulated and real data, scored."""
