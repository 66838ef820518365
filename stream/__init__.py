"""The Faust worker, windowing, sinks, simulator, embedded services and CLI."""
