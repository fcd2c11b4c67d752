"""Reading data (sources) and writing results (sinks)."""
