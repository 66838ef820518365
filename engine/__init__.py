"""Model, data, training, evaluation, export, runtime backends and imaging."""
