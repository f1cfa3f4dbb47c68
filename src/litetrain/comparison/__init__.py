"""Compare stage: metrics, twin training on identical batches, inference and checkpoint checks, the verdict."""
