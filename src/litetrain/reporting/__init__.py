"""Report stage: JSON (machine-readable, versioned) and the console table."""
